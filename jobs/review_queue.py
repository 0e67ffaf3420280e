"""Job review_queue: terminologist review loop over low-confidence code mappings (docs/review.md).

--export CSV   refresh review_queue from note_nlp (mappings scoring below review.threshold), write the pending
               mappings as a CSV to review (fill in decision: accept / reject / replace, and corrected_code).
--import CSV   check a reviewed CSV and add its decisions to the corrections file build_vocabulary applies as
               gazetteer overrides; the next build_vocabulary + extract_concepts run uses the reviewed codes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from clinlake import delta, review, tracking  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.config import lake_path  # noqa: E402
from clinlake.errors import UserError  # noqa: E402

log = logging.getLogger("clinlake.review_queue")


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Export: refresh the queue (idempotent) then write the CSV. Import: validate, write overrides, mark decided."""
    if not delta.exists(spark, lake_path(cfg, "note_nlp")):
        raise UserError(f"no note_nlp table in {cfg.lake}: run extract_concepts first")
    with tracking.job_run(cfg, "review_queue", {"action": "export" if args.export else "import",
                                                "threshold": review.threshold_of(cfg)}) as mrun:
        import mlflow

        meta = dict(job="review_queue", run_id=mrun.info.run_id)
        if args.export:
            with delta.commit_metadata(spark, **meta, action="refresh"):
                refreshed = review.write_queue(spark, cfg)
            n = review.export_queue(spark, cfg, args.export)
            mlflow.log_metrics({"exported": n, "review_candidates": refreshed["review_candidates"]})
            return {"exported": n, "out": args.export, "threshold": review.threshold_of(cfg), **refreshed}
        with delta.commit_metadata(spark, **meta):
            out = review.import_reviews(spark, cfg, args.import_csv)
        mlflow.log_metrics({"reviewed": out["reviewed"], "correction_rows": out.get("correction_rows", 0)})
        return out


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--export", metavar="CSV", help="write the pending low-confidence mappings to this CSV")
    action.add_argument("--import", dest="import_csv", metavar="CSV", help="apply a reviewed CSV")
    run_job("review_queue", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
