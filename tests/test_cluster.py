"""A real Spark standalone cluster on 127.0.0.1: master + two one-core workers, jobs shipped with scripts/submit.sh.

ingest -> deidentify -> extract run with `spark-submit --master spark://127.0.0.1:<port>`; one worker (its whole
process group: the Worker JVM and the executor it launched) is killed while de-identification runs, and the
chain must still finish with the right counts. Vocabulary tables and the gazetteer model are built first in local
mode (they are inputs, not what is tested). Only processes this test started are stopped, always, in a finally.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.script_modules import load_script

ROOT = Path(__file__).resolve().parent.parent
# Few notes: what is tested is shipping, scheduling and recovery, not throughput (each job is a fresh driver JVM).
N_NOTES = int(os.environ.get("CLINLAKE_CLUSTER_TEST_NOTES", "40"))
# Vocabulary sources the chain needs here (gazetteer -> matcher, ICD-10-CM -> codes); the rest only cost time.
VOCAB_SOURCES = ("icd10cm", "gazetteer")
pytestmark = pytest.mark.cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_env(tmp: Path) -> dict[str, str]:
    import pyspark

    env = dict(os.environ)
    env.update({
        "SPARK_HOME": str(Path(pyspark.__file__).parent), "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(tmp / "logs"), "SPARK_WORKER_DIR": str(tmp / "work"),
        "PYSPARK_PYTHON": str(ROOT / ".venv" / "bin" / "python"),
    })
    return env


class Cluster:
    """Master and workers as process groups of their own; stop() kills exactly those groups."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.env = tmp, _spark_env(tmp)
        self.procs: dict[str, subprocess.Popen] = {}
        self.killed: set[str] = set()
        self.port, self.ui = _free_port(), _free_port()
        self.url = f"spark://127.0.0.1:{self.port}"

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.tmp / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen([str(ROOT / ".venv" / "bin" / "spark-class"), *args], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, workers: int = 2) -> None:
        self._start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(self.port), "--webui-port", str(self.ui)])
        for i in range(workers):
            self.add_worker(f"worker{i}")
        self.wait_workers(workers)

    def add_worker(self, name: str, memory: str = "2g") -> None:
        work = self.tmp / f"work_{name}"
        work.mkdir()
        self._start(name, ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1",
                           "--memory", memory, "--webui-port", str(_free_port()), "--work-dir", str(work),
                           self.url])

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}/json/", timeout=5) as r:
            return json.load(r)

    def wait_workers(self, n: int, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if sum(w["state"] == "ALIVE" for w in self.state()["workers"]) >= n:
                    return
            except OSError:
                pass
            for name, p in self.procs.items():
                if p.poll() is not None and name not in self.killed:
                    raise RuntimeError(f"{name} exited: {(self.tmp / f'{name}.log').read_text()[-2000:]}")
            time.sleep(1)
        raise TimeoutError(f"{n} workers did not register with {self.url}")

    def kill(self, name: str) -> None:
        p = self.procs[name]
        self.killed.add(name)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # the worker's group includes the executor JVM it started
            p.wait(30)

    def stop(self) -> None:
        for name in sorted(self.procs, reverse=True):  # workers first, then the master
            try:
                self.kill(name)
            except ProcessLookupError:
                pass


def _submit(cluster: Cluster, job: str, lake: Path, mlruns: Path, *args: str, wait=None) -> tuple[dict, bool]:
    """spark-submit one job via scripts/submit.sh; wait(proc) may act while it runs. Returns (summary, acted)."""
    cmd = ["bash", str(ROOT / "scripts" / "submit.sh"), "--master", cluster.url,
           "--conf", "spark.executor.memory=1g", "--conf", "spark.task.maxFailures=8",
           f"jobs/{job}.py", "--env", "test", "--lake", str(lake), "--set", f"mlflow.dir={mlruns}", *args]
    env = dict(cluster.env, SUBMIT_EXTRA="--driver-memory 2g", CLINLAKE_JARS_LOCAL="1")
    log = open(cluster.tmp / f"{job}.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True,
                            start_new_session=True)
    acted = False
    try:
        if wait is not None:
            acted = wait(proc)
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == 0, f"{job} failed:\n{(cluster.tmp / f'{job}.log').read_text()[-4000:]}"
    line = next(x for x in out.splitlines() if x.startswith(f"{job}: {{"))
    return json.loads(line.split(": ", 1)[1]), acted


def test_chain_on_standalone_cluster_survives_a_lost_worker(spark, tmp_path):
    from pyspark.sql import functions as F

    from jobs import build_vocabulary, train_ner
    from tests.conftest import test_config

    # Inputs built in local mode: synthetic notes, vocabulary tables and the registered gazetteer model.
    gen = load_script("make_synthetic_lake")
    gen.write_lake(gen.generate(spark, N_NOTES, seed=5, partitions=2), str(tmp_path / "raw"))
    cfg = test_config(tmp_path)
    for name in [n for n in cfg.vocabulary.sources if n not in VOCAB_SOURCES]:
        del cfg.vocabulary.sources[name]
    build_vocabulary.run(spark, cfg, argparse.Namespace())
    train_ner.run(spark, cfg, argparse.Namespace(model="gazetteer"))
    lake, mlruns = tmp_path / "lake", tmp_path / "mlruns"
    subprocess.run(["bash", str(ROOT / "scripts" / "submit.sh"), "build"], cwd=ROOT, check=True)

    cluster = Cluster(tmp_path)
    try:
        cluster.start(workers=2)
        ing, _ = _submit(cluster, "ingest_notes", lake, mlruns, "--input", str(tmp_path / "raw" / "notes"),
                         "--format", "parquet")
        assert ing["accepted"] == N_NOTES and ing["reconciled"]

        def kill_worker_when_busy(proc: subprocess.Popen) -> bool:
            # worker1's executor has started running this job's tasks (its log says so): kill the worker then,
            # so running tasks and cached blocks on it are lost and must be recomputed on worker0.
            deadline = time.time() + 240
            while time.time() < deadline and proc.poll() is None:
                logs = list((tmp_path / "work_worker1").glob("app-*/*/stderr"))
                if logs and sum(p.read_text(errors="replace").count("Running task") for p in logs) >= 3:
                    cluster.kill("worker1")
                    return proc.poll() is None
                time.sleep(0.2)
            return False

        deid, killed = _submit(cluster, "deidentify_notes", lake, mlruns, wait=kill_worker_when_busy)
        assert killed, "worker1 was never killed while de-identification ran"
        deadline = time.time() + 90  # the master drops a worker when its connection breaks (or after a timeout)
        while sum(w["state"] == "ALIVE" for w in cluster.state()["workers"]) != 1 and time.time() < deadline:
            time.sleep(1)
        assert sum(w["state"] == "ALIVE" for w in cluster.state()["workers"]) == 1
        assert deid["notes_processed"] == N_NOTES and deid["reconciled"]
        # The lost node is replaced (as operations would) so extraction runs on two cores again.
        cluster.add_worker("worker2")
        cluster.wait_workers(2)
        ext, _ = _submit(cluster, "extract_concepts", lake, mlruns)
        assert ext["notes_processed"] == deid["deidentified"]
    finally:
        cluster.stop()

    read = lambda t: spark.read.format("delta").load(str(lake / t))  # noqa: E731
    assert read("note").count() == N_NOTES
    note_deid = read("note_deid")
    assert note_deid.count() == note_deid.select("note_id").distinct().count() == deid["deidentified"]
    nlp = read("note_nlp")
    assert nlp.count() == nlp.select("note_nlp_id").distinct().count() == ext["concepts_written"] > 0
    processed = read("nlp_processed")
    assert processed.count() == note_deid.count()
    assert note_deid.join(processed, "note_id", "left_anti").count() == 0
    assert nlp.filter(F.col("offset_end") <= F.col("offset_start")).count() == 0
