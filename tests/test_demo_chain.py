"""The demo chain, run once as `make demo` runs it (a subprocess), then asserted on twice.

Integration: the lake it wrote (ingest, de-identification, extraction, suggestions reconcile; offsets refer to the
stored text), a second run that changes nothing, and a new suggester champion that re-suggests without rerunning the
recognisers; these jobs run in this test session's Spark on the demo's lake.

Privacy: after that run over PHI-seeded notes, no note text and no PHI value outside restricted tables. The bundled
sample notes are MEDDOCAN cases whose gold PHI is in sample/corpora/meddocan. The chain runs as subprocesses (their
stdout/stderr are the logs scanned), followed by a privacy-preserving export, the terminologists' review CSV, a
federated study package with its network merge, and one failing invocation whose input carries PHI (the exception
path). scripts/privacy_scan.py then searches logs, the MLflow store (SQLite + artifacts: params, metrics, tags,
models), Great Expectations results and Data Docs, and the exports.

One file, so one chain: the two halves once ran it separately (in-process for integration, as the demo for privacy),
which cost the suite a whole chain run (1,106 s of test time for the two files, 837 s for this one, 2026-12-06).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from clinlake.config import lake_path
from tests.script_modules import load_script

ROOT = Path(__file__).resolve().parent.parent
PHI_DIR = ROOT / "sample" / "corpora" / "meddocan"
NOTES = ROOT / "sample" / "notes" / "notes.jsonl"


@pytest.fixture(scope="module")
def scanner():
    return load_script("privacy_scan")


@pytest.fixture(scope="module")
def needles(scanner):
    return scanner.needles(PHI_DIR, NOTES)


def test_rule_keeps_specific_values_and_drops_common_ones(scanner):
    bg = "el paciente vive en madrid. varón de 53 años"
    assert scanner.usable_phi("De Miguel Rivera", "NOMBRE_SUJETO_ASISTENCIA", bg)
    assert scanner.usable_phi("2569870", "ID_SUJETO_ASISTENCIA", bg)
    assert not scanner.usable_phi("Madrid", "TERRITORIO", bg)  # occurs in the product's own text
    assert not scanner.usable_phi("H", "SEXO_SUJETO_ASISTENCIA", bg)  # too short
    assert not scanner.usable_phi("53 años", "EDAD_SUJETO_ASISTENCIA", bg)  # a common type
    assert not scanner.usable_phi("1963", "FECHAS", bg)  # a short bare number


def test_scanner_finds_a_planted_leak_and_never_prints_it(scanner, needles, tmp_path):
    phi = next(n for n in needles if n.kind.startswith("phi:NOMBRE"))
    line = next(n for n in needles if n.kind == "note_text")
    (tmp_path / "clean.log").write_text("INFO ingest_notes: 67 rows\n", encoding="utf-8")
    (tmp_path / "leaky.log").write_text(f"WARN something about {phi.text.upper()} here\n", encoding="utf-8")
    (tmp_path / "page.html").write_text(f"<td>{line.text.replace(' ', '&#32;', 1)}</td>", encoding="utf-8")
    findings, n = scanner.scan([tmp_path], needles)
    assert n == 3
    assert {(Path(f.path).name, f.kind.split(":")[0]) for f in findings} >= {("leaky.log", "phi"),
                                                                           ("page.html", "note_text")}
    assert not any(Path(f.path).name == "clean.log" for f in findings)
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "privacy_scan.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1 and "LEAK" in out.stdout and phi.text not in out.stdout.casefold()


def _job(args: list[str], log: Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    log.write_text(f"$ {' '.join(args)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}\n", encoding="utf-8")
    return done


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Demo chain + export + a failing invocation, all as subprocesses with their output kept as log files."""
    tmp = tmp_path_factory.mktemp("privacy")
    lake, mlruns, logs, exports = tmp / "lake", tmp / "mlruns", tmp / "logs", tmp / "exports"
    logs.mkdir()
    exports.mkdir()
    common = ["--env", "test", "--lake", str(lake), "--set", f"mlflow.dir={mlruns}"]
    demo = _job([str(ROOT / "scripts" / "demo.py"), *common, "--summary-json", str(tmp / "demo_summary.json")],
                logs / "demo.log")
    assert demo.returncode == 0, demo.stderr[-3000:]
    export = _job([str(ROOT / "jobs" / "export_duckdb.py"), *common, "--out", str(exports / "lake.duckdb"),
                   "--redact-text", "--no-note-text"], logs / "export.log")
    assert export.returncode == 0, export.stderr[-3000:]
    # The terminologists' CSV leaves the restricted zone too: mentions (from note_deid) and codes only.
    review = _job([str(ROOT / "jobs" / "review_queue.py"), *common, "--export", str(exports / "review_queue.csv")],
                  logs / "review_export.log")
    assert review.returncode == 0, review.stderr[-3000:]
    assert len((exports / "review_queue.csv").read_text(encoding="utf-8").splitlines()) > 1, "empty review export"
    # A federated study's package and the network merge are what leaves the hospital: aggregates only.
    example = ROOT / "conf" / "studies" / "example.yaml"
    study = _job([str(ROOT / "jobs" / "run_study.py"), *common, "--study", str(example), "--site-id", "demo",
                  "--out", str(exports / "study_demo")], logs / "run_study.log")
    assert study.returncode == 0, study.stderr[-3000:]
    merged = _job([str(ROOT / "scripts" / "merge_sites.py"), "--packages", str(exports / "study_demo"),
                   "--out", str(exports / "study_network")], logs / "merge_sites.log")
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert any((exports / "study_network").iterdir()), "the merge wrote nothing"
    # The exception path: JSON read as CSV makes note text the header; the error must not echo it.
    failed = _job([str(ROOT / "jobs" / "ingest_notes.py"), *common, "--input", str(NOTES), "--format", "csv"],
                  logs / "failed_ingest.log")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr[-3000:]
    return {"tmp": tmp, "lake": lake, "mlruns": mlruns, "logs": logs, "exports": exports, "demo": demo}


@pytest.mark.slow
def test_no_note_text_or_phi_in_logs_mlflow_gx_and_exports(scanner, needles, demo_run):
    places = [demo_run["logs"], demo_run["mlruns"], demo_run["lake"] / "_quality", demo_run["exports"]]
    places += list(demo_run["tmp"].rglob("*.log")) + list(ROOT.glob("derby.log"))
    findings, n_files = scanner.scan(places, needles)
    assert n_files > 20, "nothing to scan: the run wrote no logs / MLflow / GX files"
    assert not findings, "\n".join(f"{f.kind} ({f.ref}) in {f.path}" for f in findings[:30])


@pytest.mark.slow
def test_data_docs_built_linked_and_free_of_values(demo_run):
    docs = demo_run["lake"] / "_quality" / "data_docs"
    assert (docs / "index.html").exists()
    pages = list((docs / "validations").rglob("*.html"))
    suites = {p.relative_to(docs / "validations").parts[0] for p in pages}
    assert {"note", "note_deid", "note_nlp"} <= suites
    # every validation logs where its page is (the jobs' JSON summaries carry the same path as `data_docs`)
    linked = re.findall(r"quality gate '(\w+)': Data Docs (\S+\.html)", demo_run["demo"].stderr)
    assert {s for s, _ in linked} >= {"note", "note_deid", "note_nlp"}
    assert all(Path(p).exists() for _, p in linked)
    for result in (demo_run["lake"] / "_quality" / "gx" / "uncommitted" / "validations").rglob("*.json"):
        for r in json.loads(result.read_text(encoding="utf-8"))["results"]:
            assert not r["result"].get("partial_unexpected_list"), result
            assert "unexpected_list" not in r["result"] and "unexpected_rows" not in r["result"]


# ---------------------------------------------------------------- integration: the demo's lake


def _read(spark, cfg, table):
    return spark.read.format("delta").load(lake_path(cfg, table))


@pytest.fixture(scope="module")
def lake(demo_run):
    """(cfg, summaries): the demo's lake and MLflow store as a test config, and the summaries its jobs returned."""
    from tests.conftest import test_config

    return test_config(demo_run["tmp"]), json.loads((demo_run["tmp"] / "demo_summary.json").read_text(encoding="utf-8"))


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
    # the cache of served codes belongs to a registered version; the exact lookup has none
    assert params["resolver_cache"] == ("none" if params["resolver"] == "resolver-exact" else "resolver_cache")


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
