"""The standalone-cluster path inside `make test`: master + one worker on 127.0.0.1, one job via scripts/submit.sh.

tests/test_cluster.py (marker `cluster`, `make test-cluster`) runs the whole chain and kills a worker, 15-30 min
on this machine; this smoke test keeps CI on the same road in a few minutes: the code archive, the jars, the
spark-submit to a real master, tasks on the worker's executor, and a Delta table written from there.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.script_modules import load_script
from tests.test_cluster import ROOT, Cluster, _submit

N_NOTES = 6
pytestmark = pytest.mark.slow


def test_ingest_submitted_to_a_standalone_master_runs_on_its_worker(spark, tmp_path):
    gen = load_script("make_synthetic_lake")
    gen.write_lake(gen.generate(spark, N_NOTES, seed=11, partitions=1), str(tmp_path / "raw"))
    subprocess.run(["bash", str(ROOT / "scripts" / "submit.sh"), "build"], cwd=ROOT, check=True)
    lake, mlruns = tmp_path / "lake", tmp_path / "mlruns"
    cluster = Cluster(tmp_path)
    try:
        cluster.start(workers=1)
        summary, _ = _submit(cluster, "ingest_notes", lake, mlruns, "--input", str(tmp_path / "raw" / "notes"),
                             "--format", "parquet")
        state = cluster.state()
        apps = state["completedapps"] + state["activeapps"]
    finally:
        cluster.stop()

    assert summary["accepted"] == N_NOTES and summary["reconciled"]
    # The application registered with this master and got the worker's core: not a silent local run.
    assert len(apps) == 1 and apps[0]["cores"] >= 1
    executor_logs = list((tmp_path / "work_worker0").glob("app-*/*/stderr"))
    assert executor_logs and any("Running task" in p.read_text(errors="replace") for p in executor_logs)
    note = spark.read.format("delta").load(str(lake / "note"))
    assert note.count() == note.select("note_id").distinct().count() == N_NOTES
