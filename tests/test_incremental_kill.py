"""Restartability: a job SIGKILLed mid-run and rerun ends with no duplicate and no lost row, as a clean run does.

60 synthetic notes (CLINLAKE_KILL_TEST_NOTES) are ingested into a temp lake; `jobs/deidentify_notes.py` runs as a subprocess
in its own process group and is killed (whole group: Python driver, JVM, Python workers) at a chosen point:
  - `during_compute`: the de-identification UDF is running (a Python worker exists), nothing committed yet;
  - `between_tables`: phi_span has committed, note_deid (the "done" marker, written last) not yet.
It is then rerun to completion (in the test's own Spark: the same job code and configuration, one JVM start fewer)
and compared with a clean run on a copy of the same `note` table.

The same is done during the Delta writes of the other row jobs (the `_delta_log` is polled and the job killed after
the first of its commits):
  - `ingest_notes`: `note` created, its MERGE not yet committed (or the quarantine not yet);
  - `extract_concepts`: `nlp_chunk` committed, `note_nlp` / `nlp_processed` (the done marker) not yet.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from tests.script_modules import load_script

ROOT = Path(__file__).resolve().parent.parent
N_NOTES = int(os.environ.get("CLINLAKE_KILL_TEST_NOTES", "60"))
pytestmark = pytest.mark.slow


def _job_cmd(job: str, lake: Path, mlruns: Path) -> list[str]:
    return [sys.executable, str(ROOT / "jobs" / f"{job}.py"), "--env", "test", "--lake", str(lake),
            "--set", f"mlflow.dir={mlruns}"]


def _rerun(spark, job: str, lake: Path, mlruns: Path, **args) -> dict:
    """The rerun after a kill, in this process's Spark: the same job code and config as the killed subprocess (only
    the kill needs a process of its own; each rerun as a subprocess cost one more JVM start and model load)."""
    from clinlake.config import load_config

    module = importlib.import_module(f"jobs.{job}")
    return module.run(spark, load_config("test", [f"mlflow.dir={mlruns}"], lake=str(lake)), argparse.Namespace(**args))


def _commits(table: Path) -> int:
    log = table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def _python_workers(pid: int) -> int:
    """Number of pyspark.daemon processes under pid (the job's UDFs are running when > 0)."""
    from clinlake.procs import cmdline, descendants

    return sum(b"pyspark.daemon" in cmdline(k) for k in descendants(pid))


def run_and_kill(cmd: list[str], trigger, timeout: float = 900) -> bool:
    """Start cmd in its own process group; SIGKILL the group once trigger(pid) is true. True if killed mid-run."""
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                return False  # finished before the trigger: the caller asserts on this
            if trigger(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
                return True
            time.sleep(0.05)
        raise AssertionError(f"trigger never fired within {timeout}s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    """Synthetic notes ingested once into a template lake (only `note` is copied into each test's lake)."""
    from jobs import ingest_notes
    from tests.conftest import test_config

    base = tmp_path_factory.mktemp("kill")
    gen = load_script("make_synthetic_lake")
    gen.write_lake(gen.generate(spark, N_NOTES, seed=11, partitions=2), str(base / "raw"))
    cfg = test_config(base)
    summary = ingest_notes.run(spark, cfg, argparse.Namespace(input=str(base / "raw" / "notes"), format="parquet"))
    assert summary["accepted"] == N_NOTES
    return base / "lake" / "note"


def _lake_with_notes(note_table: Path, root: Path) -> Path:
    lake = root / "lake"
    shutil.copytree(note_table, lake / "note")
    return lake


def _state(spark, lake: Path) -> dict:
    deid = spark.read.format("delta").load(str(lake / "note_deid"))
    if (lake / "phi_span" / "_delta_log").exists():
        phi = spark.read.format("delta").load(str(lake / "phi_span"))
    else:  # killed before phi_span was ever created, and the rerun did not create it: every audit row is lost
        phi = spark.createDataFrame([], "note_id long, start int")
    return {
        "deid_rows": deid.count(), "deid_ids": deid.select("note_id").distinct().count(),
        "phi_rows": phi.count(), "phi_keys": phi.select("note_id", "start").distinct().count(),
        "phi_notes": phi.select("note_id").distinct().count(),
        "notes_missing_phi": deid.join(phi, "note_id", "left_anti").count(),
    }


@pytest.fixture(scope="module")
def clean(spark, ingested, tmp_path_factory):
    """The reference: one uninterrupted run on a copy of the same note table."""
    from jobs import deidentify_notes
    from tests.conftest import test_config

    root = tmp_path_factory.mktemp("clean")
    lake = _lake_with_notes(ingested, root)
    # in this process's Spark: same job code and config as the subprocess runs, without one more JVM start
    deidentify_notes.run(spark, test_config(root), argparse.Namespace())
    state = _state(spark, lake)
    state_lake[0] = lake
    return state


state_lake: list[Path | None] = [None]  # the clean run's lake (note + note_deid), reused as extract's input


@pytest.mark.parametrize("kill_point", [
    "during_compute",
    "between_tables",
])
def test_killed_deid_rerun_has_no_duplicate_and_no_loss(spark, ingested, clean, tmp_path, kill_point):
    lake = _lake_with_notes(ingested, tmp_path)
    out, phi = lake / "note_deid", lake / "phi_span"
    if kill_point == "during_compute":
        trigger = lambda pid: _python_workers(pid) > 0 and _commits(out) == 0  # noqa: E731
    else:
        # ensure_table's empty commit is version 0, the MERGE version 1; the job commits phi_span before note_deid
        trigger = lambda pid: _commits(phi) >= 2 and _commits(out) < 2  # noqa: E731
    cmd = _job_cmd("deidentify_notes", lake, tmp_path / "mlruns")
    assert run_and_kill(cmd, trigger), "the job finished before it could be killed"
    _rerun(spark, "deidentify_notes", lake, tmp_path / "mlruns")
    state = _state(spark, lake)
    assert state["deid_rows"] == state["deid_ids"], "duplicate note_id in note_deid"
    assert state["phi_rows"] == state["phi_keys"], "duplicate (note_id, start) in phi_span"
    assert state["notes_missing_phi"] == 0, "notes in note_deid whose phi_span rows were lost"
    assert state == clean
    # every input note is either de-identified or quarantined by this job
    notes = spark.read.format("delta").load(str(lake / "note")).select("note_id")
    deid = spark.read.format("delta").load(str(out)).select("note_id")
    quarantined = spark.read.format("delta").load(str(lake / "note_quarantine")).select("note_id") \
        if (lake / "note_quarantine").exists() else notes.limit(0)
    assert notes.join(deid.union(quarantined), "note_id", "left_anti").count() == 0
    # a third run finds nothing to do
    assert _rerun(spark, "deidentify_notes", lake, tmp_path / "mlruns")["notes_processed"] == 0
    assert spark.read.format("delta").load(str(out)).filter(F.col("note_id").isNull()).count() == 0


def test_killed_ingest_during_merge_rerun_has_no_duplicate_and_no_loss(spark, ingested, tmp_path):
    raw = ingested.parent.parent / "raw" / "notes"
    lake = tmp_path / "lake"
    cmd = _job_cmd("ingest_notes", lake, tmp_path / "mlruns") + ["--input", str(raw), "--format", "parquet"]
    note = lake / "note"
    # ensure_table's empty-table commit is version 0; the MERGE that brings the rows is the next one
    assert run_and_kill(cmd, lambda pid: _commits(note) == 1), "ingest finished before it could be killed"
    _rerun(spark, "ingest_notes", lake, tmp_path / "mlruns", input=str(raw), format="parquet")
    table = spark.read.format("delta").load(str(note))
    assert table.count() == table.select("note_id").distinct().count() == N_NOTES
    reference = spark.read.format("delta").load(str(ingested)).select("note_id", "text_sha256")
    assert table.select("note_id", "text_sha256").exceptAll(reference).count() == 0
    assert reference.exceptAll(table.select("note_id", "text_sha256")).count() == 0


@pytest.fixture(scope="module")
def vocab_lake(spark, ingested, vocabulary):
    """Vocabulary tables and the gazetteer recogniser (@champion) built once in the template lake."""
    from jobs import train_ner
    from tests.conftest import test_config

    base = ingested.parent.parent
    cfg = test_config(base)
    vocabulary(cfg)
    train_ner.run(spark, cfg, argparse.Namespace(model="gazetteer"))
    return base / "lake", base / "mlruns"


def _extract_lake(clean_lake: Path, vocab: Path, root: Path) -> Path:
    lake = root / "lake"
    shutil.copytree(clean_lake / "note_deid", lake / "note_deid")
    for table in vocab.iterdir():
        if table.name not in ("note", "note_quarantine") and (table / "_delta_log").exists():
            shutil.copytree(table, lake / table.name)
    return lake


def _nlp_state(spark, lake: Path) -> dict:
    nlp = spark.read.format("delta").load(str(lake / "note_nlp"))
    done = spark.read.format("delta").load(str(lake / "nlp_processed"))
    # a mention may carry several source codes whose standard concept is the same (often 0: no "Maps to"),
    # so the source concept belongs to the key
    keys = ["note_id", "offset_start", "offset_end", "note_nlp_concept_id", "note_nlp_source_concept_id", "nlp_system"]
    return {"rows": nlp.count(), "keys": nlp.select(*keys).distinct().count(),
            "ids": nlp.select("note_nlp_id").distinct().count(),
            "notes": nlp.select("note_id").distinct().count(), "processed": done.count(),
            "processed_ids": done.select("note_id").distinct().count()}


def test_killed_extract_during_delta_writes_rerun_has_no_duplicate_and_no_loss(spark, clean, vocab_lake, tmp_path):
    vocab, mlruns = vocab_lake
    from clinlake.config import load_config
    from jobs import extract_concepts

    ref_lake = _extract_lake(state_lake[0], vocab, tmp_path / "ref")
    extract_concepts.run(spark, load_config("test", [f"mlflow.dir={mlruns}"], lake=str(ref_lake)),
                         argparse.Namespace(model_alias=None))
    expected = _nlp_state(spark, ref_lake)
    lake = _extract_lake(state_lake[0], vocab, tmp_path / "killed")
    cmd = _job_cmd("extract_concepts", lake, mlruns)
    chunk, processed = lake / "nlp_chunk", lake / "nlp_processed"
    trigger = lambda pid: _commits(chunk) >= 2 and _commits(processed) < 2  # noqa: E731
    assert run_and_kill(cmd, trigger, timeout=1800), "extract finished before it could be killed"
    _rerun(spark, "extract_concepts", lake, mlruns, model_alias=None)
    state = _nlp_state(spark, lake)
    assert state["rows"] == state["keys"] == state["ids"], "duplicate concept rows in note_nlp"
    assert state == expected
    n_deid = spark.read.format("delta").load(str(lake / "note_deid")).count()
    assert state["processed_ids"] == n_deid, "a note lost its done marker"
