"""Job run_study: a study definition over this site's lake -> a results package of suppressed aggregates."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from clinlake import tracking  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.errors import UserError  # noqa: E402
from clinlake.study.cohort import compute_aggregates, load_site_tables  # noqa: E402
from clinlake.study.definition import Study, load_study  # noqa: E402
from clinlake.study.package import append_audit, audit_path, check_out, write_package  # noqa: E402
from clinlake.study.tables import publishable  # noqa: E402

log = logging.getLogger("clinlake.run_study")
DEFAULT_MIN_CELL_COUNT = 5


def min_cell_count(study: Study, cfg: DictConfig) -> int:
    """The stricter of the study's and the site's (conf study.min_cell_count) thresholds; 5 when neither is set."""
    site = (cfg.get("study", {}) or {}).get("min_cell_count")
    if site is not None and (not isinstance(site, int) or isinstance(site, bool) or site < 1):
        raise UserError(f"conf study.min_cell_count must be a whole number >= 1, got {site!r}")
    given = [v for v in (study.min_cell_count, site) if v is not None]
    return max(given) if given else DEFAULT_MIN_CELL_COUNT


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Validate the study, aggregate, suppress, write the package; every attempt goes to the audit log."""
    audit = audit_path(cfg)
    entry = {"event": "run_study", "study_file": str(Path(args.study).resolve()), "site_id": args.site_id,
             "out": str(Path(args.out).resolve())}
    try:
        if not str(args.site_id or "").strip():
            raise UserError("--site-id must not be empty")
        study, file_sha = load_study(args.study)
        check_out(args.out, bool(getattr(args, "overwrite", False)))
        k = min_cell_count(study, cfg)
        entry.update(study_id=study.id, study_sha256=study.sha256(), study_file_sha256=file_sha, min_cell_count=k)
        with tracking.job_run(cfg, "run_study", {"study_id": study.id, "study_sha256": study.sha256(),
                                                 "site_id": args.site_id, "min_cell_count": k, "lake": cfg.lake}):
            import mlflow

            agg = compute_aggregates(load_site_tables(spark, cfg), study)
            tables, _ = publishable(study, agg, k)
            manifest = write_package(args.out, study, tables, site_id=args.site_id, k=k,
                                     model_versions=agg.model_versions, has_person=agg.has_person,
                                     file_sha256=file_sha, overwrite=bool(getattr(args, "overwrite", False)))
            cells = sum(o["cells"] for o in manifest["outputs"])
            suppressed = sum(o["suppressed"] for o in manifest["outputs"])
            mlflow.log_metrics({"cells": cells, "cells_suppressed": suppressed})
    except Exception as exc:
        append_audit(audit, {**entry, "status": "error", "error": str(exc).splitlines()[0][:300] if str(exc) else
                             type(exc).__name__})
        raise
    outputs = {o["name"]: {"cells": o["cells"], "suppressed": o["suppressed"]} for o in manifest["outputs"]}
    append_audit(audit, {**entry, "status": "ok", "cells_published": cells - suppressed, "cells_suppressed": suppressed,
                         "outputs": outputs, "model_versions": agg.model_versions,
                         "code_version": manifest["code_version"]})
    return {"study": study.id, "site_id": args.site_id, "out": str(Path(args.out).resolve()), "min_cell_count": k,
            "cells": cells, "suppressed": suppressed, "person_table": agg.has_person,
            "model_versions": agg.model_versions, "audit_log": str(audit)}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    parser.add_argument("--study", required=True, help="study definition YAML (e.g. conf/studies/example.yaml)")
    parser.add_argument("--site-id", required=True, help="name of this site as it appears in network results")
    parser.add_argument("--out", required=True, help="folder for the results package")
    parser.add_argument("--overwrite", action="store_true", help="replace a package already in --out")
    run_job("run_study", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
