"""Job ingest_notes: raw notes (parquet/csv/json/text) -> Delta `note` (MERGE) + `note_quarantine`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from clinlake import catalog, delta, ingest, quality, tracking  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.config import lake_path  # noqa: E402

log = logging.getLogger("clinlake.ingest_notes")


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Extract -> transform -> validate -> load; returns the counts that must reconcile."""
    note_path, quarantine_path = lake_path(cfg, "note"), lake_path(cfg, "note_quarantine")
    with tracking.job_run(cfg, "ingest_notes", {"input": args.input, "format": args.format, "lake": cfg.lake}) as mrun:
        raw = ingest.read_raw(spark, args.input, args.format)
        checked = (
            raw.transform(ingest.with_omop_names, cfg.ingest.column_map)
            .transform(ingest.with_note_columns, cfg)
            .transform(ingest.with_quarantine_reason, cfg)
            .transform(ingest.with_duplicate_reason)
            .withColumn("ingest_run_id", F.lit(mrun.info.run_id))
            .withColumn("ingested_at", F.current_timestamp())
            .cache()
        )
        good, bad = ingest.split_good_bad(checked)
        good = good.withColumn("ingest_run_id", F.lit(mrun.info.run_id)).withColumn("ingested_at", F.current_timestamp())
        bad = (bad.withColumn("job", F.lit("ingest_notes")).withColumn("run_id", F.lit(mrun.info.run_id))
               .withColumn("quarantined_at", F.current_timestamp()))
        n_read, n_good, n_bad = checked.count(), good.count(), bad.count()
        log.info("read %d rows: %d good, %d to quarantine", n_read, n_good, n_bad)
        gate = quality.validate(good, cfg, "note")
        before = delta.version(spark, note_path)
        n_before = spark.read.format("delta").load(note_path).count() if before is not None else 0
        with delta.commit_metadata(spark, job="ingest_notes", run_id=mrun.info.run_id):
            delta.merge_upsert_changed(spark, good, note_path, key="note_id", change_col="text_sha256")
            delta.merge_insert_new(spark, bad, quarantine_path, keys=["row_sha256"])
        n_after = spark.read.format("delta").load(note_path).count()
        reasons = {r["reason"]: r["n"] for r in bad.groupBy("reason").agg(F.count("*").alias("n")).collect()}
        checked.unpersist()
        for table in ("note", "note_quarantine"):
            catalog.register(spark, cfg, table)
        summary = {
            "notes_read": n_read, "accepted": n_good, "quarantined": n_bad,
            "reconciled": n_read == n_good + n_bad,
            "new_in_note": n_after - n_before, "note_rows": n_after,
            "note_version": delta.version(spark, note_path), "quality_gate": gate["success"],
            "data_docs": gate.get("data_docs"),
            "quarantine_reasons": reasons,
        }
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if not summary["reconciled"]:  # cannot happen by construction; fail loudly if it ever does
            raise RuntimeError(f"row reconciliation failed: {summary}")
        print(f"ingest_notes: notes read {n_read} = written {n_good} + quarantined {n_bad}")
        return summary


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    parser.add_argument("--input", required=True, help="file or folder of raw notes")
    parser.add_argument("--format", required=True, help="parquet | csv | json | text (folder of .txt, one note each)")
    run_job("ingest_notes", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
