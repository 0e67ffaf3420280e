"""Integration: the whole chain on the bundled sample into a temp lake, asserted on the Delta contents."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from clinlake.config import lake_path

ROOT = Path(__file__).resolve().parent.parent


def _read(spark, cfg, table):
    return spark.read.format("delta").load(lake_path(cfg, table))


def _chain(spark, cfg):
    from jobs import build_vocabulary, deidentify_notes, extract_concepts, ingest_notes, train_ner, train_suggester

    ns = argparse.Namespace
    out = {"ingest": ingest_notes.run(spark, cfg, ns(input=str(ROOT / "sample/notes/notes.jsonl"), format="json")),
           "vocab": build_vocabulary.run(spark, cfg, ns())}
    out["train"] = train_ner.run(spark, cfg, ns(model="gazetteer"))
    out["suggester"] = train_suggester.run(spark, cfg, ns())      # on the bundled 40 coded CodiEsp notes
    out["deid"] = deidentify_notes.run(spark, cfg, ns())
    out["extract"] = extract_concepts.run(spark, cfg, ns(model_alias=None))
    return out


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    from tests.conftest import test_config

    tmp = tmp_path_factory.mktemp("chain")
    cfg = test_config(tmp)
    first = _chain(spark, cfg)
    return cfg, first


def test_ingest_reconciles(spark, lake):
    cfg, first = lake
    ing = first["ingest"]
    n_raw = sum(1 for _ in open(ROOT / "sample/notes/notes.jsonl", encoding="utf-8"))
    assert ing["notes_read"] == n_raw
    assert ing["notes_read"] == ing["accepted"] + ing["quarantined"]
    assert _read(spark, cfg, "note").count() == ing["accepted"]
    assert _read(spark, cfg, "note_quarantine").count() == ing["quarantined"]
    reasons = {r["reason"] for r in _read(spark, cfg, "note_quarantine").select("reason").collect()}
    assert {"note_text is null", "note_text is empty or whitespace", "duplicate note_id with different text",
            "note_date unparseable or impossible", "note_id is not an integer"} <= reasons


def test_deid_reconciles_and_changes_text(spark, lake):
    cfg, first = lake
    d = first["deid"]
    assert d["notes_processed"] == d["deidentified"] + d["quarantined"]
    deid = _read(spark, cfg, "note_deid").select("note_id", F.col("note_text").alias("deid"))
    orig = _read(spark, cfg, "note").select("note_id", "note_text")
    joined = orig.join(deid, "note_id")
    assert joined.count() == d["deidentified"]
    assert joined.filter("deid <> note_text").count() > 0.9 * d["deidentified"]  # MEDDOCAN notes all carry PHI
    assert _read(spark, cfg, "phi_span").count() > 0


def test_note_nlp_offsets_equal_lexical_variant(spark, lake):
    cfg, first = lake
    nlp = _read(spark, cfg, "note_nlp")
    assert nlp.count() > 0
    texts = dict(_read(spark, cfg, "note_deid").select("note_id", "note_text").collect())
    for r in nlp.select("note_id", "offset_start", "offset_end", "lexical_variant").collect():
        assert texts[r["note_id"]][r["offset_start"]:r["offset_end"]] == r["lexical_variant"]
    systems = {r[0] for r in nlp.select("nlp_system").distinct().collect()}
    assert systems == {f"{first['train']['model']}@{first['train']['version']}"}
    assert nlp.filter("note_nlp_source_concept_id > 0").count() > 0.5 * nlp.count()


def test_the_run_records_the_resolver_and_its_serving_settings(lake):
    """Settings that change the codes a resolver version gives are logged with the run that wrote them."""
    import mlflow

    from clinlake import tracking

    cfg, first = lake
    tracking.configure(cfg)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="tags.`clinlake.job` = 'extract_concepts'")
    assert runs, "extract_concepts logged no MLflow run"
    params = runs[-1].data.params   # the oldest: the chain's own run
    assert params["resolver"] == first["extract"]["resolver"]
    assert (params["icdo_axes"], params["icdo_specific_histology"], params["min_score"]) == ("True", "True", "0.0")


def test_second_run_changes_nothing(spark, lake):
    cfg, _ = lake
    from delta.tables import DeltaTable

    tables = ("note", "note_quarantine", "note_deid", "phi_span", "note_nlp", "concept", "note_code_suggestion")
    before = {t: DeltaTable.forPath(spark, lake_path(cfg, t)).history(1).first()["version"] for t in tables}
    counts = {t: _read(spark, cfg, t).count() for t in tables}
    from jobs import build_vocabulary, deidentify_notes, extract_concepts, ingest_notes

    ns = argparse.Namespace
    ing = ingest_notes.run(spark, cfg, ns(input=str(ROOT / "sample/notes/notes.jsonl"), format="json"))
    assert ing["new_in_note"] == 0
    assert build_vocabulary.run(spark, cfg, ns()).get("skipped")
    assert deidentify_notes.run(spark, cfg, ns())["notes_processed"] == 0
    assert extract_concepts.run(spark, cfg, ns(model_alias=None))["notes_processed"] == 0
    after = {t: DeltaTable.forPath(spark, lake_path(cfg, t)).history(1).first()["version"] for t in tables}
    assert after == before
    assert {t: _read(spark, cfg, t).count() for t in tables} == counts


def test_note_code_suggestion_holds_ranked_codes_of_similar_notes(spark, lake):
    """Every de-identified note gets suggestions from the registered suggester: ranks 1..n per note and vocabulary,
    scores in (0, 1], the system named on each row and in the run's parameters."""
    import mlflow

    from clinlake import tracking

    cfg, first = lake
    ref = f"{first['suggester']['model']}@{first['suggester']['version']}"
    assert first["extract"]["suggester"] == ref and first["extract"]["code_suggestions_written"] > 0
    rows = _read(spark, cfg, "note_code_suggestion")
    assert rows.count() == first["extract"]["code_suggestions_written"]
    assert {r[0] for r in rows.select("nlp_system").distinct().collect()} == {ref}
    assert {r[0] for r in rows.select("vocabulary_id").distinct().collect()} == {"ICD10CM", "ICD10PCS"}
    assert rows.filter("score <= 0 or score > 1").count() == 0
    ranks = rows.groupBy("note_id", "vocabulary_id").agg(F.min("rank").alias("lo"), F.max("rank").alias("hi"),
                                                         F.count("*").alias("n"), F.countDistinct("rank").alias("d"))
    assert ranks.filter("lo <> 1 or hi <> n or d <> n").count() == 0
    assert ranks.filter(F.col("n") > cfg.suggest.top_n).count() == 0
    deid_ids = {r[0] for r in _read(spark, cfg, "note_deid").select("note_id").collect()}
    assert {r[0] for r in rows.select("note_id").distinct().collect()} == deid_ids
    tracking.configure(cfg)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="tags.`clinlake.job` = 'extract_concepts'")
    assert runs[-1].data.params["suggester"] == ref


def test_a_new_suggester_champion_resuggests_without_rerunning_recognisers(spark, lake):
    """Moving the suggester's @champion re-suggests every note; no recogniser runs again."""
    from mlflow import MlflowClient

    from jobs import extract_concepts, train_suggester

    cfg, first = lake
    v2 = train_suggester.run(spark, cfg, argparse.Namespace())
    assert v2["version"] == "2" and not v2["champion"]
    MlflowClient().set_registered_model_alias("code-suggester-es", "champion", "2")
    n_notes = _read(spark, cfg, "note_deid").count()
    out = extract_concepts.run(spark, cfg, argparse.Namespace(model_alias=None))
    recogniser = f"{first['train']['model']}@{first['train']['version']}"
    assert out["notes_per_model"][recogniser] == 0 and out["notes_per_model"]["code-suggester-es@2"] == n_notes
    assert {r[0] for r in _read(spark, cfg, "note_code_suggestion").select("nlp_system").distinct().collect()} \
        == {"code-suggester-es@2"}
    assert extract_concepts.run(spark, cfg, argparse.Namespace(model_alias=None))["notes_processed"] == 0


@pytest.mark.dev_eval
def test_promotion_gate_keeps_an_equal_challenger(spark, lake, shared_dir):
    """Version 2 of the same gazetteer scores the same on CodiEsp dev: the gate keeps version 1 as champion."""
    from mlflow import MlflowClient

    from jobs import promote_model, train_ner

    cfg, first = lake
    cfg.promotion.models["ner-gazetteer-es"].data = str(shared_dir / "corpora/codiesp/dev")
    v2 = train_ner.run(spark, cfg, argparse.Namespace(model="gazetteer"))
    assert v2["version"] == "2" and not v2["champion"]
    out = promote_model.run(spark, cfg, argparse.Namespace(model="ner-gazetteer-es", version="2", margin=None))
    assert out["promoted"] is False and out["champion"] == first["train"]["version"]
    assert out["f1_x"]["champion"] == out["f1_x"]["challenger"] > 0
    assert str(MlflowClient().get_model_version_by_alias("ner-gazetteer-es", "champion").version) == "1"


@pytest.mark.dev_eval
def test_changed_champion_reprocesses_only_its_output(spark, lake):
    """Moving @champion makes the next incremental run redo exactly the notes that model produced."""
    from mlflow import MlflowClient

    from jobs import deidentify_notes, extract_concepts

    cfg, _ = lake
    MlflowClient().set_registered_model_alias("ner-gazetteer-es", "champion", "2")
    n_notes = _read(spark, cfg, "note_deid").count()
    out = extract_concepts.run(spark, cfg, argparse.Namespace(model_alias=None))
    assert out["notes_processed"] == n_notes and out["model"] == "ner-gazetteer-es@2"
    assert deidentify_notes.run(spark, cfg, argparse.Namespace())["notes_processed"] == 0
    systems = {r[0] for r in _read(spark, cfg, "note_nlp").select("nlp_system").distinct().collect()}
    assert systems == {"ner-gazetteer-es@2"}
