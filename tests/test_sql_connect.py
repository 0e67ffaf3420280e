"""Spark Connect: `jobs/sql.py --serve` starts a server with the project's jars and catalog; a remote client
queries a Delta table by name. Needs the spark-connect_2.12 jar (jvm/pom.xml, or $SPARK_CONNECT_JAR)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_catalog import sql_job
from tests.test_catalog_fixtures import small_lake  # noqa: F401 - shared session fixture

ROOT = Path(__file__).resolve().parent.parent
CLIENT = """
import json, sys
from pyspark.sql import SparkSession
s = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
n = s.sql("SELECT count(*) AS n FROM omop.note_nlp").first()["n"]
hist = [r["userMetadata"] for r in s.sql("DESCRIBE HISTORY omop.note_nlp").orderBy("version").collect()]
v0 = s.read.format("delta").option("versionAsOf", 0).table("omop.note_nlp").count()
print(json.dumps({"n": int(n), "history": hist, "v0": int(v0)}))
s.stop()
"""


def connect_jar() -> str | None:
    """The spark-connect jar: $SPARK_CONNECT_JAR, else jars/connect/ (make setup), else jars/classpath.txt."""
    if os.environ.get("SPARK_CONNECT_JAR"):
        return os.environ["SPARK_CONNECT_JAR"]
    found = sorted((ROOT / "jars" / "connect").glob("spark-connect_*.jar"))
    if found:
        return str(found[0])
    listing = ROOT / "jars" / "classpath.txt"
    jars = listing.read_text().strip().split(",") if listing.exists() else []
    return next((j for j in jars if Path(j).name.startswith("spark-connect_")), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"connect server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(2)
    raise AssertionError(f"connect server not listening on {port} after {seconds}s")


@pytest.mark.slow
def test_remote_client_queries_a_delta_table_by_name(small_lake, tmp_path):
    jar = connect_jar()
    if not jar:
        pytest.skip("spark-connect_2.12 jar not in jars/ (add it to jvm/pom.xml) and $SPARK_CONNECT_JAR unset")
    pytest.importorskip("grpc", reason="Spark Connect client needs grpcio, grpcio-status, googleapis-common-protos")
    reg = sql_job(small_lake.root, "--query", "SELECT 1")  # tables into the lake's persistent catalog
    assert reg.returncode == 0, reg.stderr[-2000:]
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "jobs" / "sql.py"), "--env", "test", "--lake", str(small_lake.root),
         "--set", "catalog.metastore=lake", "--serve", "--port", str(port), "--connect-jar", jar],
        cwd=ROOT, env=dict(os.environ, CLINLAKE_HOME=str(ROOT)), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)  # its own process group: we stop exactly what we started
    try:
        wait_for_port(port, server, 300)
        out = subprocess.run([sys.executable, "-c", CLIENT, f"sc://127.0.0.1:{port}"], capture_output=True,
                             text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        assert out.returncode == 0, out.stderr[-3000:]
        got = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    rows = small_lake.rows["note_nlp"]
    assert got["n"] == len(rows)
    assert [json.loads(h)["run_id"] for h in got["history"]] == ["run-1", "run-2"]
    first_notes = sorted({r["note_id"] for r in rows})[:8]
    assert got["v0"] == sum(r["note_id"] in first_notes for r in rows)
