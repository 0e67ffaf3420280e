"""Persistent catalog: schemas, session confs, registration by name, re-pointing, time travel and lineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from clinlake import catalog
from clinlake.config import load_config
from tests.test_catalog_fixtures import small_lake  # noqa: F401 - shared session fixture

ROOT = Path(__file__).resolve().parent.parent


def conf(tmp_path: Path, env: str = "local", **catalog_keys) -> object:
    """A config whose lake is tmp_path/lake, with catalog keys set."""
    sets = [f"catalog.{k}={v}" for k, v in catalog_keys.items()]
    return load_config(env, sets, lake=str(tmp_path / "lake"))


def test_schema_of_puts_cdm_tables_in_omop_and_the_rest_in_ops(tmp_path):
    cfg = conf(tmp_path)
    assert [catalog.schema_of(cfg, t) for t in ("note_nlp", "concept_ancestor", "note", "gazetteer")] == ["omop"] * 4
    assert [catalog.schema_of(cfg, t) for t in ("phi_span", "note_quarantine", "whatever_new")] == ["ops"] * 3
    assert catalog.schema_of(conf(tmp_path, **{"schemas.concept": "vocab"}), "concept") == "vocab"


def test_session_conf_lake_mode_puts_derby_and_warehouse_under_the_lake(tmp_path):
    cfg = conf(tmp_path, metastore="lake")
    c = catalog.session_conf(cfg)
    db = tmp_path / "lake" / "_catalog" / "metastore_db"
    assert c["spark.sql.catalogImplementation"] == "hive"
    assert c["spark.hadoop.javax.jdo.option.ConnectionURL"] == f"jdbc:derby:;databaseName={db};create=true"
    assert c["spark.sql.warehouse.dir"] == str(tmp_path / "lake" / "_catalog" / "warehouse")
    assert "-Dderby.stream.error.file=" in c["spark.driver.extraJavaOptions"]


def test_session_conf_off_external_and_test_env(tmp_path):
    assert catalog.session_conf(conf(tmp_path, enabled="false")) == {}
    assert catalog.session_conf(conf(tmp_path, metastore="external")) == {"spark.sql.catalogImplementation": "hive"}
    # test JVMs run in parallel: private in-memory metastore unless told otherwise
    assert catalog.session_conf(conf(tmp_path, env="test"))["spark.sql.catalogImplementation"] == "in-memory"
    remote = load_config("local", ["catalog.metastore=lake"], lake="s3a://bucket/lake")
    assert catalog.session_conf(remote)["spark.sql.catalogImplementation"] == "in-memory"  # no Derby on S3
    with pytest.raises(Exception, match="metastore must be one of"):
        catalog.session_conf(conf(tmp_path, metastore="derby"))


def test_session_conf_keeps_configured_driver_options(tmp_path):
    cfg = conf(tmp_path, metastore="lake")
    OmegaConf.update(cfg, "spark.conf", {"spark.driver.extraJavaOptions": "-Dfoo=1"}, merge=True)
    assert catalog.session_conf(cfg)["spark.driver.extraJavaOptions"].startswith("-Dfoo=1 -Dderby")
    nested = conf(tmp_path, metastore="lake")   # what `--set spark.conf.spark.driver.extraJavaOptions=...` builds
    OmegaConf.update(nested, "spark.conf", {"spark": {"driver": {"extraJavaOptions": "-Dbar=2"}}}, merge=True)
    assert catalog.session_conf(nested)["spark.driver.extraJavaOptions"].startswith("-Dbar=2 -Dderby")


def test_a_locked_derby_sends_the_session_to_a_private_memory_catalog(tmp_path):
    cfg = conf(tmp_path, metastore="lake")
    db = tmp_path / "lake" / "_catalog" / "metastore_db"
    db.mkdir(parents=True)
    (db / "dbex.lck").write_bytes(b"")
    assert not catalog.derby_in_use(db)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+b'); fcntl.lockf(f, fcntl.LOCK_EX); "
        "print('locked', flush=True); time.sleep(30)"), str(db / "dbex.lck")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert catalog.derby_in_use(db)
        assert catalog.session_conf(cfg)["spark.sql.catalogImplementation"] == "in-memory"
    finally:
        holder.kill()
        holder.wait()
    assert not catalog.derby_in_use(db)


def test_register_all_makes_every_lake_table_queryable_by_name(spark, small_lake):
    names = catalog.register_all(spark, small_lake.cfg)
    assert set(names) == set(small_lake.rows)  # every Delta folder, nothing else (no _catalog, no _secrets)
    assert names["note_nlp"] == "omop.note_nlp" and names["phi_span"] == "ops.phi_span"
    n = spark.sql("SELECT count(*) FROM omop.note_nlp").first()[0]
    assert n == len(small_lake.rows["note_nlp"])
    assert spark.sql("SELECT count(*) FROM ops.note_quarantine").first()[0] == len(small_lake.rows["note_quarantine"])
    assert catalog.register_all(spark, small_lake.cfg) == names  # idempotent


def test_register_repoints_a_name_when_the_lake_moved(spark, small_lake, tmp_path):
    cfg = load_config("test", [], lake=str(tmp_path / "other"))
    spark.range(3).withColumnRenamed("id", "concept_id").write.format("delta").save(str(tmp_path / "other" / "gazetteer"))
    assert catalog.register(spark, cfg, "gazetteer") == "omop.gazetteer"
    assert spark.sql("SELECT count(*) FROM omop.gazetteer").first()[0] == 3
    catalog.register(spark, small_lake.cfg, "gazetteer")  # back to the shared lake, data of both untouched
    assert spark.sql("SELECT count(*) FROM omop.gazetteer").first()[0] == len(small_lake.rows["gazetteer"])
    assert spark.read.format("delta").load(str(tmp_path / "other" / "gazetteer")).count() == 3


def test_register_is_a_no_op_when_off_or_absent(spark, tmp_path):
    cfg = load_config("test", ["catalog.enabled=false"], lake=str(tmp_path / "lake"))
    spark.range(1).write.format("delta").save(str(tmp_path / "lake" / "review_queue"))
    spark.sql("DROP TABLE IF EXISTS ops.review_queue")  # other tests in this session (review loop) register it
    assert catalog.register(spark, cfg, "review_queue") is None
    assert not spark.catalog.tableExists("ops.review_queue")
    on = load_config("test", [], lake=str(tmp_path / "lake"))
    assert catalog.register(spark, on, "not_there") is None
    assert catalog.register(spark, on, "review_queue") == "ops.review_queue"


def test_history_shows_the_job_metadata_and_time_travel_reads_old_versions(spark, small_lake):
    catalog.register_all(spark, small_lake.cfg)
    history = spark.sql("DESCRIBE HISTORY omop.note_nlp").orderBy("version").collect()
    assert [h["version"] for h in history] == small_lake.note_nlp_versions
    metas = [json.loads(h["userMetadata"]) for h in history]
    assert [m["run_id"] for m in metas] == ["run-1", "run-2"]
    assert {m["job"] for m in metas} == {"extract_concepts"} and metas[0]["models"].startswith("ner-gazetteer-es@")
    v0 = spark.sql("SELECT count(*) FROM omop.note_nlp VERSION AS OF 0").first()[0]
    first_notes = sorted({r["note_id"] for r in small_lake.rows["note_nlp"]})[:8]
    assert v0 == sum(r["note_id"] in first_notes for r in small_lake.rows["note_nlp"])


def test_commit_metadata_lands_in_describe_history(spark, tmp_path):
    from clinlake import delta

    path = str(tmp_path / "t")
    with delta.commit_metadata(spark, job="unit_job", run_id="abc123", models="m@3"):
        spark.range(2).write.format("delta").save(path)
    spark.range(1).write.format("delta").mode("append").save(path)  # outside: no metadata
    rows = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").orderBy("version").collect()
    assert json.loads(rows[0]["userMetadata"]) == {"job": "unit_job", "run_id": "abc123", "models": "m@3"}
    assert rows[1]["userMetadata"] is None


def sql_job(lake: Path, *args: str) -> subprocess.CompletedProcess:
    """jobs/sql.py in its own JVM with the lake's persistent (embedded Derby) catalog."""
    env = dict(os.environ, CLINLAKE_HOME=str(ROOT))
    cmd = [sys.executable, str(ROOT / "jobs" / "sql.py"), "--env", "test", "--lake", str(lake),
           "--set", "catalog.metastore=lake", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_new_jvm_finds_the_tables_by_name_without_registering(small_lake):
    first = sql_job(small_lake.root, "--query", "SELECT 1 AS ok")
    assert first.returncode == 0, first.stderr[-2000:]
    assert (small_lake.root / "_catalog" / "metastore_db").is_dir()
    started = time.time()
    second = sql_job(small_lake.root, "--no-register", "--query",
                     "SELECT count(*) AS n FROM omop.note_nlp")
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"\n{len(small_lake.rows['note_nlp'])}" in second.stdout
    print(f"second JVM answered in {time.time() - started:.0f}s")
