"""Job deidentify_notes: Delta note -> rules + NER (by alias) -> surrogates -> Delta note_deid + restricted phi_span."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from clinlake import catalog, delta, omop, quality, recognisers, tracking  # noqa: E402
from clinlake.cli import Steps, base_parser, run_job  # noqa: E402
from clinlake.config import lake_path  # noqa: E402
from clinlake.deid import job as deid  # noqa: E402
from clinlake.errors import UserError  # noqa: E402
from clinlake.ner.settings import with_model_defaults  # noqa: E402

log = logging.getLogger("clinlake.deidentify_notes")


def load_model(cfg: DictConfig) -> tuple[object | None, str | None]:
    """The deid NER pipeline by alias when enabled and registered; rules alone otherwise (logged).

    With `deid.vote` the alias and the vote's member aliases load as one recognisers.Ensemble (`combine: spans`,
    an exact span vote, or `tokens`, a vote per token); a missing member is an error, not a quiet fall-back to fewer
    voters.
    """
    if not cfg.deid.use_model:
        return None, None
    name, alias = str(cfg.deid.model_name), str(cfg.deid.model_alias)
    try:
        tracking.resolve_alias(cfg, name, alias)
    except UserError:
        log.warning("no %s@%s registered: de-identifying with rules only", name, alias)
        return None, None
    vote = cfg.deid.get("vote")
    if vote:
        combine = recognisers.combine_of(vote, "deid.vote")
        crf_alias = str(vote.get("crf") or "")
        if crf_alias and combine == "spans":
            raise UserError("deid.vote.crf votes per token: use combine: tokens or spans+tokens")
        return recognisers.load_vote(cfg, name, alias, *recognisers.vote_of(vote, "deid.vote"), crf_alias,
                                     combine=combine, crf_model=str(with_model_defaults(cfg).models.deid_crf.name))
    return tracking.load_spark_model(cfg, name, alias)


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """note -> (new or changed, or new deid system) -> deid -> residual check -> GX gate -> atomic writes."""
    note_path = lake_path(cfg, "note")
    if not delta.exists(spark, note_path):
        raise UserError(f"input table {note_path} not found: run ingest_notes first")
    step = Steps(log)
    secret = deid.secret_for(cfg)
    policy = deid.policy_for(cfg)
    with step("load_model"):
        model, model_system = load_model(cfg)
    deid_system = ";".join(s for s in (deid.rules_system(cfg, policy), model_system) if s)
    out_path, phi_path = lake_path(cfg, "note_deid"), lake_path(cfg, "phi_span")
    quarantine_path = lake_path(cfg, "note_quarantine")
    input_version = delta.version(spark, note_path)
    notes = spark.read.format("delta").option("versionAsOf", input_version).load(note_path)
    todo = notes
    if delta.exists(spark, out_path):
        done = spark.read.format("delta").load(out_path).filter(F.col("deid_system") == deid_system) \
            .select("note_id", "text_sha256")
        todo = notes.join(done, ["note_id", "text_sha256"], "left_anti")
    note_cols = omop.NOTE.fieldNames() + ["text_sha256", "ingest_run_id", "ingested_at"]
    with tracking.job_run(cfg, "deidentify_notes", {"deid_system": deid_system, "input_version": input_version}) as mrun:
        import mlflow

        udf = __import__("udfs.deid", fromlist=["make_deid_udf"]).make_deid_udf(policy, secret)
        processed = (todo.transform(deid.with_model_spans, model, int(cfg.scale.max_chunk_chars)).transform(deid.with_deid, udf)
                     .transform(deid.with_residual_check).cache())
        with step("deidentify"):
            n_todo = processed.count()
        ok = processed.filter("deid.error IS NULL AND residual IS NULL")
        bad = processed.filter("deid.error IS NOT NULL OR residual IS NOT NULL").select(
            "note_id",
            F.coalesce(F.col("deid.error"), F.concat(F.lit("residual identifier pattern after de-identification: "),
                                                     F.col("residual"))).alias("reason"),
            # never the text: the quarantine row names the note, the reason and the fingerprint
            F.to_json(F.struct("note_id", "person_id", "text_sha256")).alias("raw_row"),
        ).withColumn("row_sha256", F.sha2(F.concat_ws("|", "reason", "raw_row"), 256)) \
            .withColumn("job", F.lit("deidentify_notes")).withColumn("run_id", F.lit(mrun.info.run_id)) \
            .withColumn("quarantined_at", F.current_timestamp())
        rows = deid.deid_rows(ok, deid_system, note_cols)
        phi = deid.phi_rows(ok, bool(cfg.deid.audit_original_text))
        n_ok, n_bad = ok.count(), bad.count()
        with step("quality_gate"):
            gate = quality.validate(rows, cfg, "note_deid") if n_ok else {"success": True}
        if n_todo:
            with step("write_tables"), delta.commit_metadata(
                    spark, job="deidentify_notes", run_id=mrun.info.run_id, models=deid_system,
                    input_version=input_version):
                # note_deid is the "done" marker the next run reads, so it is committed last: a job killed
                # between commits redoes those notes instead of leaving them without phi_span audit rows.
                delta.replace_for_keys(spark, phi, processed.select("note_id"), phi_path, key="note_id")
                if n_bad:
                    delta.merge_insert_new(spark, bad, quarantine_path, keys=["row_sha256"])
                delta.replace_for_keys(spark, rows, processed.select("note_id"), out_path, key="note_id")
        phi_counts = {r["phi_type"]: r["n"] for r in phi.groupBy("phi_type").agg(F.count("*").alias("n")).collect()}
        summary = {
            "deid_system": deid_system, "input_version": input_version, "notes_in_input": notes.count(),
            "notes_processed": n_todo, "deidentified": n_ok, "quarantined": n_bad,
            "reconciled": n_todo == n_ok + n_bad, "phi_spans": sum(phi_counts.values()),
            "phi_per_type": phi_counts, "quality_gate": gate["success"], "data_docs": gate.get("data_docs"),
        }
        mlflow.log_metrics({"notes_processed": n_todo, "deidentified": n_ok, "quarantined": n_bad,
                            "phi_spans": summary["phi_spans"]})
        processed.unpersist()
        with step("register_tables"):
            for table in ("note_deid", "phi_span", "note_quarantine"):
                catalog.register(spark, cfg, table)
        summary["step_seconds"] = step.seconds
        return summary


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    run_job("deidentify_notes", base_parser(__doc__).parse_args(argv), run)


if __name__ == "__main__":
    main()
