"""Privacy: after a demo-like run over PHI-seeded notes, no note text and no PHI value outside restricted tables.

The bundled sample notes are MEDDOCAN cases whose gold PHI is in sample/corpora/meddocan. The chain runs as
subprocesses (their stdout/stderr are the logs scanned), followed by a privacy-preserving export, the
terminologists' review CSV, a federated study package with its network merge, and one failing invocation whose
input carries PHI (the exception path). scripts/privacy_scan.py then searches logs, the MLflow store
(SQLite + artifacts: params, metrics, tags, models), Great Expectations results and Data Docs, and the exports.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PHI_DIR = ROOT / "sample" / "corpora" / "meddocan"
NOTES = ROOT / "sample" / "notes" / "notes.jsonl"


def _scanner():
    spec = importlib.util.spec_from_file_location("privacy_scan", ROOT / "scripts" / "privacy_scan.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def scanner():
    return _scanner()


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
    demo = _job([str(ROOT / "scripts" / "demo.py"), *common], logs / "demo.log")
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
