"""Terminologist review loop (clinlake/review.py, jobs/review_queue.py): pure pieces on inline frames, then the
whole loop on the bundled sample: low-score mapping -> review_queue -> CSV -> reviewed CSV -> import ->
build_vocabulary -> the next extract_concepts run codes the mention with the reviewed code."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from clinlake import review
from clinlake.config import lake_path
from clinlake.errors import UserError
from clinlake.vocab.normalize import normalize

LV = {"DIAGNOSTICO": "ICD10CM", "PROCEDIMIENTO": "ICD10PCS", "MORFOLOGIA_NEOPLASIA": "ICDO3"}
T1, T2 = dt.datetime(2026, 1, 1, 10, 0), dt.datetime(2026, 1, 2, 10, 0)


def _write(path: Path, header: list[str], rows: list[list[str]], bom: bool = False) -> str:
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


# ---------------------------------------------------------------- pure pieces


def test_candidates_group_low_score_mappings(spark):
    nlp = spark.createDataFrame([
        (1, "Carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3", 0.3, T2, "m@1"),
        (2, "carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3", 0.3, T1, "m@1"),
        (2, "carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3", 0.3, T1, "m@1"),
        (1, "HTA", "DIAGNOSTICO", "ICD10CM", "I10", 0.9, T1, "m@1"),  # confident: not queued
        (3, "tumor raro", "DIAGNOSTICO", "ICD10CM", None, None, T2, "m@1"),  # uncoded: queued without a code
        (None, None, None, None, None, None, None, None),  # an all-null row
    ], "note_id long, lexical_variant string, label string, vocabulary_id string, concept_code string, "
       "score double, nlp_datetime timestamp, nlp_system string")
    got = review.with_review_candidates(nlp, 0.5)
    expected = spark.createDataFrame([
        ("carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3", "carcinoma", 0.3, 2, 3, T1, "m@1", "pending", None, None),
        ("tumor raro", "DIAGNOSTICO", "ICD10CM", None, "tumor raro", None, 1, 1, T2, "m@1", "pending", None, None),
    ], review.REVIEW_QUEUE)
    assertDataFrameEqual(got, expected)
    assert review.with_review_candidates(nlp, 0.5, include_unmapped=False).count() == 1
    assert review.with_review_candidates(nlp, 0.95, include_unmapped=False).count() == 2


def test_parse_reviews_checks_columns_and_decisions(tmp_path):
    ok = _write(tmp_path / "ok.csv", ["Mention", "label", "code", "decision", "corrected_code"], [
        ["carcinoma", "MORFOLOGIA_NEOPLASIA", "8010/3", "Accept", ""],
        ["dolor", "DIAGNOSTICO", "R52", "", ""],  # not reviewed yet: skipped
        ["fiebre", "DIAGNOSTICO", "R50.9", "replace", "r50.81"],
        ["tos", "DIAGNOSTICO", "R05", "reject", "ignored"],
    ], bom=True)
    got = review.parse_reviews(ok, LV)
    assert [(r.line, r.mention, r.decision, r.vocabulary_id, r.corrected_code) for r in got] == [
        (2, "carcinoma", "accept", "ICDO3", ""), (4, "fiebre", "replace", "ICD10CM", "r50.81"),
        (5, "tos", "reject", "ICD10CM", "")]
    cases = {
        "missing column(s) decision": (["mention", "label", "code"], [["dolor", "DIAGNOSTICO", "R52"]]),
        "line 3: unknown decision 'maybe'": (["mention", "label", "code", "decision"],
                                             [["dolor", "DIAGNOSTICO", "R52", "ok"], ["tos", "DIAGNOSTICO", "R52", "maybe"]]),
        "line 2: 'replace' needs the corrected code": (["mention", "label", "code", "decision"],
                                                       [["dolor", "DIAGNOSTICO", "R52", "replace"]]),
        "line 2: unknown label 'SINTOMA'": (["mention", "label", "code", "decision"], [["dolor", "SINTOMA", "R52", "accept"]]),
        "line 2: 'accept' needs the proposed code": (["mention", "label", "code", "decision"],
                                                     [["dolor", "DIAGNOSTICO", "", "accept"]]),
        "line 3: 'Dolor' (DIAGNOSTICO, code 'r52') is already decided on line 2": (
            ["mention", "label", "code", "decision"], [["dolor", "DIAGNOSTICO", "R52", "ok"], ["Dolor", "DIAGNOSTICO", "r52", "no"]]),
    }
    for i, (message, (header, rows)) in enumerate(cases.items()):
        with pytest.raises(UserError, match=re.escape(message)) as err:
            review.parse_reviews(_write(tmp_path / f"bad{i}.csv", header, rows), LV)
        assert "\n" not in str(err.value)


def test_overrides_make_the_reviewed_code_the_only_one(spark):
    reviews = review.reviews_frame(spark, [
        review.Review(2, "Fiebre", "DIAGNOSTICO", "ICD10CM", "r50.9", "replace", "r50.81"),
        review.Review(3, "tos", "DIAGNOSTICO", "ICD10CM", "R05", "reject", ""),
        review.Review(4, "carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3", "accept", ""),
    ])
    gazetteer = spark.createDataFrame([
        ("fiebre", "DIAGNOSTICO", "ICD10CM", "R50.9"), ("fiebre", "DIAGNOSTICO", "ICD10CM", "R50.2"),
        ("tos", "DIAGNOSTICO", "ICD10CM", "R05"), ("tos", "DIAGNOSTICO", "ICD10CM", "R05.1"),
        ("carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3"), ("carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/2"),
        (None, None, None, None),
    ], "mention_norm string, label string, vocabulary_id string, concept_code string")
    got = review.with_overrides(reviews, gazetteer)
    expected = spark.createDataFrame([
        ("Fiebre", "DIAGNOSTICO", "R50.9", "reject", "ICD10CM"),
        ("Fiebre", "DIAGNOSTICO", "R50.81", "accept", "ICD10CM"),
        ("Fiebre", "DIAGNOSTICO", "R50.2", "reject", "ICD10CM"),
        ("tos", "DIAGNOSTICO", "R05", "reject", "ICD10CM"),  # reject alone leaves the other codes (R05.1) in place
        ("carcinoma", "MORFOLOGIA_NEOPLASIA", "8010/3", "accept", "ICDO3"),
        ("carcinoma", "MORFOLOGIA_NEOPLASIA", "8010/2", "reject", "ICDO3"),
    ], "mention string, label string, code string, decision string, vocabulary_id string")
    assertDataFrameEqual(got, expected)


def test_unknown_codes_are_found(spark):
    reviews = review.reviews_frame(spark, [
        review.Review(2, "a", "DIAGNOSTICO", "ICD10CM", "R52", "accept", ""),
        review.Review(3, "b", "DIAGNOSTICO", "ICD10CM", "R52", "replace", "Z99.999"),
        review.Review(4, "c", "DIAGNOSTICO", "ICD10CM", "NOPE", "reject", ""),  # rejected codes need not exist
    ])
    known = spark.createDataFrame([("ICD10CM", "R52"), (None, None)], "vocabulary_id string, concept_code string")
    got = review.filter_unknown_codes(reviews, known).collect()
    assert [(r["line"], r["code"]) for r in got] == [(3, "Z99.999")]


def test_merge_corrections_keeps_the_newest_decision():
    old = [{"mention": "Fiebre", "label": "DIAGNOSTICO", "code": "R50.9", "decision": "reject", "vocabulary_id": "ICD10CM"},
           {"mention": "tos", "label": "DIAGNOSTICO", "code": "R05", "decision": "accept", "vocabulary_id": "ICD10CM"}]
    new = [{"mention": "fiebre", "label": "DIAGNOSTICO", "code": "r50.9", "decision": "accept", "vocabulary_id": "ICD10CM"}]
    got = review.merge_corrections(old, new)
    assert len(got) == 2
    assert {(normalize(r["mention"]), r["decision"]) for r in got} == {("fiebre", "accept"), ("tos", "accept")}


NLP_SCHEMA = ("note_id long, lexical_variant string, label string, vocabulary_id string, concept_code string, "
              "score double, nlp_datetime timestamp, nlp_system string")


def test_incremental_refresh_equals_a_full_one(spark, tmp_path):
    """write_queue over the notes a run rewrote gives the queue a full recomputation gives; decisions are kept."""
    from delta.tables import DeltaTable

    from clinlake import delta
    from tests.conftest import test_config

    cfg = test_config(tmp_path)
    path = lake_path(cfg, "note_nlp")
    spark.createDataFrame([
        (1, "Carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3", 0.3, T2, "m@1"),
        (1, "HTA", "DIAGNOSTICO", "ICD10CM", "I10", 0.2, T1, "m@1"),          # only note 1: untouched below
        (2, "carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3", 0.3, T1, "m@1"),
        (2, "tumor raro", "DIAGNOSTICO", "ICD10CM", None, None, T2, "m@1"),
        (3, "masa", "DIAGNOSTICO", "ICD10CM", "R22.9", 0.2, T1, "m@1"),      # only note 3, pending: goes
        (3, "quiste", "DIAGNOSTICO", "ICD10CM", "N83.2", 0.1, T1, "m@1"),    # only note 3, decided: stays
        (None, None, None, None, None, None, None, None),
    ], NLP_SCHEMA).write.format("delta").save(path)
    assert review.write_queue(spark, cfg)["review_candidates"] == 5
    qpath = lake_path(cfg, "review_queue")
    DeltaTable.forPath(spark, qpath).update("mention_norm = 'quiste'", {"status": "'reject'"})
    before = delta.version(spark, path)
    rewritten = spark.createDataFrame([
        (2, "carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3", 0.4, T2, "m@2"),   # score and count change
        (2, "carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3", 0.4, T2, "m@2"),
        (3, "masa", "DIAGNOSTICO", "ICD10CM", "R22.9", 0.9, T2, "m@2"),      # now confident
        (4, "Nódulo", "DIAGNOSTICO", "ICD10CM", None, None, T2, "m@2"),      # a new note, a new mapping
        (4, "tumor raro", "DIAGNOSTICO", "ICD10CM", None, None, T1, "m@2"),  # note 2 no longer has it; note 4 does
    ], NLP_SCHEMA)
    ids = spark.createDataFrame([(2,), (3,), (4,)], "note_id long")
    delta.replace_for_keys(spark, rewritten, ids, path, key="note_id")

    got = review.write_queue(spark, cfg, ids, before)

    queue = spark.read.format("delta").load(qpath)
    # touched: carcinoma, tumor raro, masa, quiste, nodulo (not hta); masa's pending row removed
    assert (got["review_candidates"], got["review_removed"]) == (3, 1)
    assert [r["mention_norm"] for r in queue.filter("status = 'reject'").collect()] == ["quiste"]
    assert queue.filter("mention_norm = 'masa'").count() == 0
    carcinoma = queue.filter("mention_norm = 'carcinoma'").first()
    assert (carcinoma["score"], carcinoma["n_notes"], carcinoma["n_mentions"], carcinoma["first_seen"]) == (0.4, 2, 3, T1)
    # a full refresh finds nothing to change (no new version), and its candidates are the pending rows
    version = delta.version(spark, qpath)
    assert review.write_queue(spark, cfg) == {"review_candidates": 4, "review_changed": 0, "review_removed": 0}
    assert delta.version(spark, qpath) == version
    full = review.with_review_candidates(spark.read.format("delta").load(path), review.threshold_of(cfg))
    assertDataFrameEqual(queue.filter("status = 'pending'").drop("first_seen"),
                         full.drop("first_seen"))


# ---------------------------------------------------------------- the whole loop on the bundled sample


def _chain(spark, cfg, tmp: Path, vocabulary):
    from jobs import deidentify_notes, extract_concepts, ingest_notes, train_ner

    ns = argparse.Namespace
    # 25 sample notes hold plenty of low-score mappings and keep the loop's five extract-side runs short
    from tests.conftest import sample_notes

    ingest_notes.run(spark, cfg, ns(input=str(sample_notes(tmp, 25)), format="json"))
    vocabulary(cfg)
    train_ner.run(spark, cfg, ns(model="gazetteer"))
    deidentify_notes.run(spark, cfg, ns())
    extract_concepts.run(spark, cfg, ns(model_alias=None))


def _hooks(spark, cfg):
    """What extract_concepts calls after writing NOTE_NLP (until that hook is wired in, the test calls it here)."""
    from clinlake import note_code

    nlp = spark.read.format("delta").load(lake_path(cfg, "note_nlp"))
    note_code.write(spark, cfg, nlp, nlp.select("note_id").distinct())
    return review.write_queue(spark, cfg)


@pytest.fixture(scope="module")
def loop_lake(spark, tmp_path_factory, vocabulary):
    from tests.conftest import test_config

    tmp = tmp_path_factory.mktemp("review")
    # A high threshold so the bundled sample surely holds low-score mappings whatever the resolver's calibration.
    cfg = test_config(tmp, ["review.threshold=0.99"])
    _chain(spark, cfg, tmp, vocabulary)
    first = _hooks(spark, cfg)
    return cfg, tmp, first


def test_review_loop_end_to_end(spark, loop_lake):
    from jobs import build_vocabulary, deidentify_notes, extract_concepts, ingest_notes
    from jobs import review_queue as job

    cfg, tmp, first = loop_lake
    ns = argparse.Namespace
    nlp = spark.read.format("delta").load(lake_path(cfg, "note_nlp"))
    queue = spark.read.format("delta").load(lake_path(cfg, "review_queue"))

    # 1. every queued mapping scores below the threshold (or has no code), and every such mapping is queued
    low = {(normalize(r["lexical_variant"]), r["label"], r["concept_code"]) for r in
           nlp.filter("score < 0.99 or score is null or concept_code is null").collect()}
    queued = {(r["mention_norm"], r["label"], r["concept_code"]) for r in queue.collect()}
    assert queued == low and first["review_candidates"] == len(low) > 0
    assert queue.filter("score >= 0.99").count() == 0
    assert set(queue.columns) & {"snippet", "note_text", "note_id", "person_id"} == set()  # nothing beyond the mention

    # 2. export, and a rerun of the queue refresh changes nothing (no new Delta version)
    out = tmp / "to_review.csv"
    exported = job.run(spark, cfg, ns(export=str(out), import_csv=None))
    assert exported["exported"] == len(low) and exported["review_changed"] == 0
    with open(out, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == review.EXPORT_COLUMNS and len(rows) == len(low)

    # 3. the terminologist replaces the proposed code of the most frequent coded diagnosis mapping
    dx = [r for r in rows if r["label"] == "DIAGNOSTICO" and r["code"]]
    assert dx, "the sample should queue at least one coded diagnosis"
    target = dx[0]
    concept = spark.read.format("delta").load(lake_path(cfg, "concept"))
    corrected = concept.filter((F.col("vocabulary_id") == "ICD10CM") & (F.col("concept_code") != target["code"])
                               & F.col("concept_code").rlike(r"^[A-Z]\d\d\.\d+$")).orderBy("concept_code").first()
    new_code = corrected["concept_code"]
    for r in rows:
        r["decision"], r["corrected_code"] = ("replace", new_code.lower()) if r is target else ("", "")
    reviewed = _write(tmp / "reviewed.csv", review.EXPORT_COLUMNS, [[r[c] for c in review.EXPORT_COLUMNS] for r in rows])

    # bad files are refused with one line, before anything is written
    bad = _write(tmp / "bad.csv", ["mention", "label", "code", "decision", "corrected_code"],
                 [[target["mention"], "DIAGNOSTICO", target["code"], "replace", "Q99.XYZ"]])
    with pytest.raises(UserError, match=r"line 2: unknown code 'Q99.XYZ' in ICD10CM"):
        job.run(spark, cfg, ns(export=None, import_csv=bad))
    assert not Path(review.corrections_path(cfg)).exists()

    # 4. import: corrections file + queue row marked
    imp = job.run(spark, cfg, ns(export=None, import_csv=reviewed))
    assert imp["reviewed"] == 1 and imp["replace"] == 1 and imp["queue_rows_marked"] == 1
    norm = normalize(target["mention"])
    marked = spark.read.format("delta").load(lake_path(cfg, "review_queue")) \
        .filter((F.col("mention_norm") == norm) & (F.col("concept_code") == target["code"])).first()
    assert (marked["status"], marked["corrected_code"]) == ("replace", new_code)

    # 5. build_vocabulary sees the changed corrections file and rebuilds: the gazetteer holds only the new code
    vocab = build_vocabulary.run(spark, cfg, ns())
    assert not vocab.get("skipped")
    gaz = spark.read.format("delta").load(lake_path(cfg, "gazetteer"))
    codes = {r["concept_code"] for r in gaz.filter((F.col("mention_norm") == norm) & (F.col("label") == "DIAGNOSTICO"))
             .collect()}
    assert codes == {new_code}

    # 6. the next extraction run (a new note mentioning it) codes the mention with the reviewed code
    note = tmp / "new_note.jsonl"
    note.write_text(json.dumps({"note_id": 990001, "person_id": 501, "note_date": "2026-01-05",
                                "note_title": "Informe de alta",
                                "note_text": f"Paciente de 70 años.\nDiagnóstico: {target['mention']}.\n"}) + "\n",
                    encoding="utf-8")
    ingest_notes.run(spark, cfg, ns(input=str(note), format="json"))
    deidentify_notes.run(spark, cfg, ns())
    assert extract_concepts.run(spark, cfg, ns(model_alias=None))["notes_processed"] == 1
    new_rows = spark.read.format("delta").load(lake_path(cfg, "note_nlp")).filter("note_id = 990001") \
        .filter(F.col("label") == "DIAGNOSTICO").collect()
    hits = [r for r in new_rows if normalize(r["lexical_variant"]) == norm]
    assert hits and {r["concept_code"] for r in hits} == {new_code}

    # 7. the hooks after that run: the decided mapping stays as audit, the reviewed code ranks in note_code
    _hooks(spark, cfg)
    after = spark.read.format("delta").load(lake_path(cfg, "review_queue"))
    assert after.filter((F.col("mention_norm") == norm) & (F.col("status") == "replace")).count() == 1
    ranked = spark.read.format("delta").load(lake_path(cfg, "note_code")).filter("note_id = 990001").collect()
    assert new_code in {r["concept_code"] for r in ranked}
