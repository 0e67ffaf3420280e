"""Job extract_concepts: note_deid -> Spark NLP recognisers (by MLflow alias) -> codes -> assertion -> Delta note_nlp."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from clinlake import (  # noqa: E402
    catalog, delta, note_code, note_nlp, quality, recognise, recognisers, resolve, review, suggest, tracking)
from clinlake.cli import Steps, base_parser, run_job  # noqa: E402
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


def finish(spark: SparkSession, cfg: DictConfig, chunks: DataFrame, notes: DataFrame, resolver=None) -> DataFrame:
    """Merged chunks + note text -> NOTE_NLP rows (lexical variant, resolve, assert, assemble)."""
    vocab = {t: spark.read.format("delta").load(lake_path(cfg, t)) for t in ("concept", "concept_relationship")}
    if resolver is None:
        resolver, _ = resolve.load_resolver(spark, cfg)  # resolver-es@alias, else exact gazetteer lookup
    coded = (
        chunks.transform(recognise.with_piece_text, notes, cfg.get("scale"))  # bounded text per mention
        .transform(recognise.with_lexical_variant)
        .transform(resolve.with_codes, resolver, vocab["concept"], vocab["concept_relationship"],
                   dict(cfg.extract.label_vocabularies))
    )
    if resolver.ref != resolve.EXACT_SYSTEM:
        # A registered resolver contributed the codes: nlp_system names it next to the recogniser.
        coded = coded.withColumn("nlp_system", F.concat_ws(";", "nlp_system", F.lit(resolver.ref)))
    return (
        coded.transform(with_assertion)
        .transform(recognise.with_note_offsets, int(cfg.extract.snippet_chars))
        .transform(note_nlp.to_note_nlp, int(cfg.extract.snippet_chars))
    )


def extract(spark: SparkSession, cfg: DictConfig, notes: DataFrame, models: list[tuple]) -> DataFrame:
    """Pure chain: notes -> every recogniser -> overlap policy -> NOTE_NLP rows (what the evaluation job runs)."""
    merged = recognisers.recognise_all(notes, models, cfg.get("scale"), recognisers.keep_overlaps(cfg))
    return finish(spark, cfg, merged, notes)


def _pending(spark: SparkSession, notes: DataFrame, log_path: str, ref: str) -> DataFrame:
    """Notes whose current text this recogniser version has not processed yet."""
    if not delta.exists(spark, log_path):
        return notes
    done = spark.read.format("delta").load(log_path).filter(F.col("nlp_system") == ref) \
        .select("note_id", "text_sha256")
    return notes.join(done, ["note_id", "text_sha256"], "left_anti")


def _mark_processed(spark: SparkSession, pending: dict[str, DataFrame], run_id: str, log_path: str) -> None:
    """Record (note, text fingerprint) as done by each model that processed it: the commit that ends a run."""
    for ref, todo in pending.items():
        processed = todo.select("note_id", "text_sha256") \
            .withColumn("model_name", F.lit(recognisers.model_name(ref))) \
            .withColumn("nlp_system", F.lit(ref)).withColumn("run_id", F.lit(run_id)) \
            .withColumn("processed_at", F.current_timestamp())
        delta.replace_for_keys(spark, processed, processed.select("note_id", "model_name"), log_path,
                               key=["note_id", "model_name"])
        todo.unpersist()


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Load recognisers by alias -> per model, notes it has not processed -> chunks -> merged NOTE_NLP per note.

    Each recogniser's chunks are kept in `nlp_chunk` (keyed by note and model), so a new champion re-runs only that
    model; the notes it touched get their NOTE_NLP rows rebuilt from every model's stored chunks. Commit order makes a
    kill at any point safe: nlp_chunk, then note_nlp, then the processed log (the done marker) last.
    """
    step = Steps(log)
    refresh = cfg.review.get("refresh", "full")
    if refresh not in ("full", "incremental"):
        raise UserError(f"review.refresh must be 'full' or 'incremental', got '{refresh}'")
    with step("load_models"):
        models = recognisers.load(cfg, getattr(args, "model_alias", None))
    refs = [ref for _, ref in models]
    input_path = lake_path(cfg, str(cfg.extract.input_table))
    if not delta.exists(spark, input_path):
        raise UserError(f"input table {input_path} not found: run the previous job first")
    for t in ("gazetteer", "concept", "concept_relationship"):
        if not delta.exists(spark, lake_path(cfg, t)):
            raise UserError(f"vocabulary table '{t}' missing in the lake: run build_vocabulary first")
    with step("load_models"):
        resolver, resolver_ref = resolve.load_resolver(spark, cfg)
        # similar-note code suggestions (note_code_suggestion) when a suggester is registered and enabled
        suggester = suggest.load_registered(cfg)
    suggester_ref = suggester[1] if suggester else None
    out_path, log_path = lake_path(cfg, "note_nlp"), lake_path(cfg, "nlp_processed")
    chunk_path = lake_path(cfg, "nlp_chunk")
    input_version = delta.version(spark, input_path)
    notes = spark.read.format("delta").option("versionAsOf", input_version).load(input_path)
    if "deid_text_sha256" in notes.columns:
        # Offsets refer to the de-identified text: its fingerprint decides what needs reprocessing.
        notes = notes.withColumn("text_sha256", F.col("deid_text_sha256"))
    notes = notes.select("note_id", "note_text", "text_sha256")
    n_input = notes.count()
    with tracking.job_run(cfg, "extract_concepts", {
        "models": ",".join(refs), "resolver": resolver_ref, "suggester": suggester_ref or "none",
        "input_table": str(cfg.extract.input_table),
        "input_version": input_version,
        "label_vocabularies": str(to_dict(cfg)["extract"]["label_vocabularies"]),
        # serving-time settings that change the codes a resolver version gives (docs/resolution.md)
        **{k: resolver.params.get(k) for k in ("icdo_axes", "icdo_specific_histology", "min_score")},
        # whether this resolver version's ICD-O-3 classifier served (a version trained before it has none)
        "icdo_classifier": resolver.icdo_classifier is not None and bool(resolver.params.get("icdo_classifier", True)),
        # codes of mentions coded before come from this table (resolve.cached_codes); "none" when off or no version
        "resolver_cache": str(resolver.params.get("cache_table")) if resolver.cache_path else "none",
    }) as mrun:
        import mlflow

        meta = dict(job="extract_concepts", run_id=mrun.info.run_id,
                    models=",".join(refs + [resolver_ref] + ([suggester_ref] if suggester_ref else [])),
                    input_table=str(cfg.extract.input_table), input_version=input_version)
        pending, per_model = {}, {}
        for model, ref in models:
            with step("find_pending"):
                todo = _pending(spark, notes, log_path, ref).cache()
                per_model[ref] = todo.count()
            log.info("%s: %d of %d notes to process", ref, per_model[ref], n_input)
            if per_model[ref]:
                with step("recognise"):
                    chunks = recognisers.recognise_chunks(todo, model, ref, cfg.get("scale")).localCheckpoint()
                keys = todo.select("note_id").withColumn("model_name", F.lit(recognisers.model_name(ref)))
                with step("write_nlp_chunk"), delta.commit_metadata(spark, **meta):
                    delta.replace_for_keys(spark, chunks, keys, chunk_path, key=["note_id", "model_name"])
                pending[ref] = todo
            else:
                todo.unpersist()
        if resolver.ref != resolve.EXACT_SYSTEM:
            # A new resolver champion recodes every note from the stored chunks; no recogniser runs again.
            with step("find_pending"):
                todo = _pending(spark, notes, log_path, resolver.ref).cache()
                per_model[resolver.ref] = todo.count()
            if per_model[resolver.ref]:
                pending[resolver.ref] = todo
        if suggester_ref:
            # A new suggester champion re-suggests every note from its text; as for a new resolver, no recogniser
            # runs again (the notes' NOTE_NLP rows are rebuilt from the stored chunks).
            with step("find_pending"):
                todo = _pending(spark, notes, log_path, suggester_ref).cache()
                per_model[suggester_ref] = todo.count()
            if per_model[suggester_ref]:
                pending[suggester_ref] = todo
        affected = None
        for todo in pending.values():
            ids = todo.select("note_id")
            affected = ids if affected is None else affected.unionByName(ids)
        n_rows, n_codes, n_suggested, queue, gate, per_vocab = 0, 0, 0, None, {"success": True}, {}
        if affected is not None:
            affected = affected.distinct().cache()
            n_todo = affected.count()
            todo_notes = notes.join(affected, "note_id")
            stored = spark.read.format("delta").load(chunk_path).filter(F.col("nlp_system").isin(refs)) \
                .join(affected, "note_id")
            merged = stored.transform(recognisers.filter_overlaps, [recognisers.model_name(r) for r in refs],
                                      recognisers.keep_overlaps(cfg))
            with step("merge_resolve_assert"):
                rows = finish(spark, cfg, merged, todo_notes, resolver).localCheckpoint()
                # This run's rows only: a count over the whole table would make every small run scan the lake.
                per_vocab = {r["vocabulary_id"] or "none": r["n"] for r in
                             rows.groupBy("vocabulary_id").agg(F.count("*").alias("n")).collect()}
                n_rows = sum(per_vocab.values())
            with step("quality_gate"):
                gate = quality.validate(rows, cfg, "note_nlp") if n_rows else gate
            nlp_before = delta.version(spark, out_path)   # the rows these notes had, for the review queue
            with delta.commit_metadata(spark, **meta):
                with step("write_note_nlp"):
                    delta.replace_for_keys(spark, rows, affected, out_path, key="note_id")
                with step("write_note_code"):
                    n_codes = note_code.write(spark, cfg, rows, affected)   # ranked codes per note (present mentions)
                if suggester:
                    with step("write_note_code_suggestion"):
                        n_suggested = suggest.write(spark, cfg, suggest.with_suggestions(
                            todo_notes, suggester[0], suggester_ref), affected)
                with step("write_review_queue"):
                    # low-confidence mappings for terminologists; review.refresh says full or only touched ones
                    incremental = refresh == "incremental" and n_todo < n_input
                    queue = review.write_queue(spark, cfg, affected if incremental else None, nlp_before)
                with step("write_processed_log"):
                    _mark_processed(spark, pending, mrun.info.run_id, log_path)
            affected.unpersist()
        else:
            n_todo = 0
        log.info("%d notes processed, %d concepts written", n_todo, n_rows)
        summary = {
            "model": ",".join(refs), "resolver": resolver_ref, "input_version": input_version, "notes_in_input": n_input,
            "notes_processed": n_todo, "notes_per_model": per_model, "concepts_written": n_rows,
            "note_codes_written": n_codes, "suggester": suggester_ref, "code_suggestions_written": n_suggested,
            "review_queue": queue,
            "quality_gate": gate["success"], "data_docs": gate.get("data_docs"),
            "note_nlp_version": delta.version(spark, out_path),
            "concepts_per_vocabulary": per_vocab,
        }
        mlflow.log_metrics({"notes_processed": n_todo, "concepts_written": n_rows, "notes_in_input": n_input})
        with step("register_tables"):
            for table in ("note_nlp", "nlp_processed", "nlp_chunk", "note_code_suggestion"):
                if delta.exists(spark, lake_path(cfg, table)):
                    catalog.register(spark, cfg, table)
        summary["step_seconds"] = step.seconds
        return summary


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    parser.add_argument("--model-alias", help="registry alias of the models to serve (default: conf, champion)")
    run_job("extract_concepts", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
