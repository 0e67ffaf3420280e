"""Job extract_concepts: note_deid -> Spark NLP recogniser (by MLflow alias) -> codes -> assertion -> Delta note_nlp."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from clinlake import catalog, delta, note_nlp, quality, recognise, resolve, tracking  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.config import lake_path, to_dict  # noqa: E402
from clinlake.errors import UserError  # noqa: E402

log = logging.getLogger("clinlake.extract_concepts")


def with_assertion(chunks: DataFrame) -> DataFrame:
    """Context (negation, certainty, experiencer, temporality) when the assertion stage is installed."""
    try:
        from clinlake.assertion.spark import with_assertion as assertion_stage
    except ImportError:
        return note_nlp.with_default_assertion(chunks)
    return assertion_stage(chunks, text_col="note_text", start_col="offset_start", end_col="offset_end")


def extract(spark: SparkSession, cfg: DictConfig, notes: DataFrame, model, nlp_system: str) -> DataFrame:
    """Pure chain: notes -> NOTE_NLP rows (recognise, dedupe, resolve, assert, assemble)."""
    labels = recognise.matcher_labels(model)
    keep = ["note_id", "note_text", "text_sha256"]
    annotated = model.transform(notes.select(*keep))
    vocab = {t: spark.read.format("delta").load(lake_path(cfg, t)) for t in ("gazetteer", "concept", "concept_relationship")}
    index = resolve.gazetteer_index(vocab["gazetteer"])
    return (
        recognise.explode_chunks(annotated, labels, keep)
        .transform(recognise.filter_contained)
        .transform(recognise.with_lexical_variant)
        .transform(resolve.with_codes, index, vocab["concept"], vocab["concept_relationship"],
                   dict(cfg.extract.label_vocabularies))
        .withColumn("nlp_system", F.lit(nlp_system))
        .transform(with_assertion)
        .transform(note_nlp.to_note_nlp, int(cfg.extract.snippet_chars))
    )


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Load model by alias -> pick unprocessed notes -> extract -> validate -> atomic Delta replace per note."""
    mcfg = cfg.models.recogniser
    model, nlp_system = tracking.load_spark_model(cfg, str(mcfg.name), str(args.model_alias or mcfg.alias))
    input_path = lake_path(cfg, str(cfg.extract.input_table))
    if not delta.exists(spark, input_path):
        raise UserError(f"input table {input_path} not found: run the previous job first")
    for t in ("gazetteer", "concept", "concept_relationship"):
        if not delta.exists(spark, lake_path(cfg, t)):
            raise UserError(f"vocabulary table '{t}' missing in the lake: run build_vocabulary first")
    out_path, log_path = lake_path(cfg, "note_nlp"), lake_path(cfg, "nlp_processed")
    input_version = delta.version(spark, input_path)
    notes = spark.read.format("delta").option("versionAsOf", input_version).load(input_path)
    if "deid_text_sha256" in notes.columns:
        # Offsets refer to the de-identified text: its fingerprint decides what needs reprocessing.
        notes = notes.withColumn("text_sha256", F.col("deid_text_sha256"))
    todo = notes
    if delta.exists(spark, log_path):
        done = spark.read.format("delta").load(log_path).filter(F.col("nlp_system") == nlp_system) \
            .select("note_id", F.col("text_sha256"))
        todo = notes.join(done, ["note_id", "text_sha256"], "left_anti")
    todo = todo.cache()
    n_todo, n_input = todo.count(), notes.count()
    log.info("%d of %d notes need processing by %s", n_todo, n_input, nlp_system)
    with tracking.job_run(cfg, "extract_concepts", {
        "models": nlp_system, "input_table": str(cfg.extract.input_table), "input_version": input_version,
        "label_vocabularies": str(to_dict(cfg)["extract"]["label_vocabularies"]),
    }) as mrun:
        import mlflow

        rows = extract(spark, cfg, todo, model, nlp_system).cache()
        n_rows = rows.count()
        gate = quality.validate(rows, cfg, "note_nlp") if n_rows else {"success": True}
        processed = todo.select("note_id", "text_sha256").withColumn("nlp_system", F.lit(nlp_system)) \
            .withColumn("run_id", F.lit(mrun.info.run_id)).withColumn("processed_at", F.current_timestamp())
        if n_todo:
            with delta.commit_metadata(spark, job="extract_concepts", run_id=mrun.info.run_id, models=nlp_system,
                                       input_table=str(cfg.extract.input_table), input_version=input_version):
                delta.replace_for_keys(spark, rows, todo.select("note_id"), out_path, key="note_id")
                delta.replace_for_keys(spark, processed, todo.select("note_id"), log_path, key="note_id")
        total = spark.read.format("delta").load(out_path) if delta.exists(spark, out_path) else None
        per_vocab = {}
        if total is not None:
            per_vocab = {r["vocabulary_id"] or "none": r["n"] for r in
                         total.groupBy("vocabulary_id").agg(F.count("*").alias("n")).collect()}
        summary = {
            "model": nlp_system, "input_version": input_version, "notes_in_input": n_input,
            "notes_processed": n_todo, "concepts_written": n_rows, "quality_gate": gate["success"],
            "note_nlp_version": delta.version(spark, out_path), "concepts_per_vocabulary": per_vocab,
        }
        mlflow.log_metrics({"notes_processed": n_todo, "concepts_written": n_rows, "notes_in_input": n_input})
        rows.unpersist()
        for table in ("note_nlp", "nlp_processed"):
            catalog.register(spark, cfg, table)
        todo.unpersist()
        return summary


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    parser.add_argument("--model-alias", help="registry alias of the models to serve (default: conf, champion)")
    run_job("extract_concepts", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
