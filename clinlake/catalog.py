"""Persistent catalog: every Delta table of the lake registered by name (`omop.note_nlp`, `ops.phi_span`, ...).

Locally the catalog is Spark's built-in Hive metastore on embedded Derby under `<lake>/_catalog`, so a new
Spark session (job, `pyspark`, notebook) finds the tables by name. Embedded Derby admits ONE JVM at a time:
a session that finds the lake's metastore in use gets a private in-memory one instead (with a warning) and
`register_all` fills it. Clusters point `catalog.metastore: external` at a shared Hive metastore / Glue / Unity.

Tables are external (`USING DELTA LOCATION`): the Delta folder stays the source of truth, the catalog only
maps a name to it, and dropping a name never deletes data.
"""

from __future__ import annotations

import fcntl
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pyspark.sql import SparkSession

from clinlake.config import lake_path, path_of, spark_settings
from clinlake.errors import UserError

log = logging.getLogger("clinlake.catalog")

# Lake table -> schema. OMOP CDM tables (clinical + vocabulary) in `omop`; operational ones in `ops`.
OMOP_TABLES = (
    "person", "note", "note_deid", "note_nlp", "note_code", "note_code_suggestion",
    "concept", "concept_synonym", "concept_relationship", "concept_ancestor", "gazetteer",
)
OPS_TABLES = ("note_quarantine", "phi_span", "nlp_processed", "nlp_chunk", "review_queue")
DEFAULT_SCHEMA = "ops"  # anything else a job writes is operational until someone says otherwise
METASTORE_MODES = ("lake", "memory", "external")
# Test JVMs run in parallel (several pytest sessions, subprocess jobs): each gets a private in-memory
# metastore unless conf says otherwise, so no two of them ever contend for one Derby database.
ENV_METASTORE = {"test": "memory"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def settings(cfg: DictConfig) -> dict[str, Any]:
    """The `catalog:` section with defaults filled in (enabled, metastore=lake, dir=<lake>/_catalog)."""
    section = dict(cfg.get("catalog") or {})
    out = {
        "enabled": bool(section.get("enabled", True)),
        "metastore": str(section.get("metastore") or ENV_METASTORE.get(str(cfg.get("env", "")), "lake")),
        "dir": str(section.get("dir") or lake_path(cfg, "_catalog")),
        "schemas": dict(section.get("schemas") or {}),
    }
    if out["metastore"] not in METASTORE_MODES:
        raise UserError(f"catalog.metastore must be one of {', '.join(METASTORE_MODES)}, got '{out['metastore']}'")
    return out


def schema_of(cfg: DictConfig, table: str) -> str:
    """Schema a lake table is registered under (conf `catalog.schemas.<table>` overrides the default map)."""
    override = settings(cfg)["schemas"].get(table)
    if override:
        return str(override)
    return "omop" if table in OMOP_TABLES else DEFAULT_SCHEMA


def qualified_name(cfg: DictConfig, table: str) -> str:
    """`schema.table` as analysts write it."""
    return f"{schema_of(cfg, table)}.{table}"


def derby_in_use(db_dir: str | Path) -> bool:
    """Whether another process has the embedded Derby database booted (Derby holds an fcntl lock on dbex.lck)."""
    lock = Path(db_dir) / "dbex.lck"
    if not lock.exists():
        return False
    try:
        with open(lock, "a+b") as fh:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # JVM FileChannel.tryLock is a POSIX record lock
            fcntl.lockf(fh, fcntl.LOCK_UN)
    except OSError:
        return True
    return False


def session_conf(cfg: DictConfig) -> dict[str, str]:
    """Extra Spark confs for the persistent catalog (empty when catalog.enabled is false); static, set at launch."""
    s = settings(cfg)
    if not s["enabled"]:
        return {}
    conf = {"spark.sql.catalogImplementation": "hive"}
    if s["metastore"] == "external":
        # Connection (hive.metastore.uris, Glue factory, ...) comes from spark.conf, hive-site.xml or spark-submit.
        return conf
    cat_dir = path_of(cfg, s["dir"])
    mode = s["metastore"]
    db_dir = Path(cat_dir) / "metastore_db"
    if mode == "lake" and "://" in cat_dir:
        log.warning("embedded Derby needs a local folder, not %s: this session gets a private in-memory catalog "
                    "(set catalog.metastore=external, or catalog.dir to a local path)", cat_dir)
        mode = "memory"
    elif mode == "lake" and derby_in_use(db_dir):
        log.warning("catalog %s is in use by another Spark session (embedded Derby admits one); this session "
                    "gets a private in-memory catalog: tables are still readable by name after register_all()", db_dir)
        mode = "memory"
    if mode == "memory":
        # Spark's own in-memory catalog: same names and DDL, none of the Hive/Derby start-up (minutes on a busy
        # box); nothing outlives the JVM, so its managed-table warehouse lives in temp too.
        return {"spark.sql.catalogImplementation": "in-memory",
                "spark.sql.warehouse.dir": str(Path(tempfile.gettempdir()) / "clinlake-warehouse")}
    Path(cat_dir).mkdir(parents=True, exist_ok=True)
    conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = f"jdbc:derby:;databaseName={db_dir};create=true"
    conf["spark.sql.warehouse.dir"] = str(Path(cat_dir) / "warehouse")
    derby_log = Path(cat_dir) / "derby.log"
    # Keep derby.log out of the working directory; append to any driver options the configuration sets.
    existing = spark_settings(cfg.spark.get("conf") or {}).get("spark.driver.extraJavaOptions", "")
    conf["spark.driver.extraJavaOptions"] = f"{existing} -Dderby.stream.error.file={derby_log}".strip()
    return conf


def _table_location(spark: SparkSession, schema: str, table: str) -> str | None:
    """Location a registered table points at (None when the name is not registered)."""
    if not spark.catalog.tableExists(f"{schema}.{table}"):
        return None
    try:  # the session catalog knows the location without opening the Delta log (seconds per table)
        jvm = spark.sparkContext._jvm
        ident = jvm.org.apache.spark.sql.catalyst.TableIdentifier(table, jvm.scala.Some(schema))
        return str(spark._jsparkSession.sessionState().catalog().getTableMetadata(ident).location().toString())
    except Exception:  # noqa: BLE001 - internal API moved: ask Delta instead
        row = spark.sql(f"DESCRIBE DETAIL {schema}.{table}").select("location").first()
        return str(row[0]) if row else None


def _same_place(a: str, b: str) -> bool:
    """Whether two table locations name the same folder (ignores file: scheme and trailing slashes)."""
    norm = lambda p: re.sub(r"^file:(//)?", "", p).rstrip("/")  # noqa: E731
    return norm(a) == norm(b)


def _register(spark: SparkSession, cfg: DictConfig, table: str, checked: bool = False,
              schemas: set[str] | None = None) -> str | None:
    """Register one lake table; re-point the name when it points at another lake (moved or rebuilt)."""
    from clinlake import delta

    if not _NAME.match(table):
        log.warning("not registering '%s': not a plain SQL identifier", table)
        return None
    path = lake_path(cfg, table)
    if not checked and not delta.exists(spark, path):
        return None
    schema = schema_of(cfg, table)
    name = f"{schema}.{table}"
    if schemas is None or schema not in schemas:
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        if schemas is not None:
            schemas.add(schema)
    current = _table_location(spark, schema, table)
    if current is not None and not _same_place(current, path):
        log.info("%s pointed at %s; re-pointing it to %s", name, current, path)
        spark.sql(f"DROP TABLE {name}")  # external table: only the name goes, never the data
    location = path.replace("\\", "\\\\").replace("'", "\\'")
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{location}'")
    return name


def register(spark: SparkSession, cfg: DictConfig, table: str) -> str | None:
    """Register lake table `table` by name (jobs call this last); returns `schema.table`, None when off/absent/failed.

    A failure (e.g. the metastore is locked) is logged, not raised: the data is already committed and
    `register_all` (run by jobs/sql.py and the notebooks) catches up later.
    """
    if not settings(cfg)["enabled"]:
        return None
    try:
        return _register(spark, cfg, table)
    except Exception as exc:  # noqa: BLE001 - registration must never fail a job whose data is committed
        log.warning("could not register %s in the catalog: %s", table, str(exc).splitlines()[0])
        return None


def lake_tables(spark: SparkSession, cfg: DictConfig) -> list[str]:
    """Names of the Delta tables directly under the lake root (folders with a _delta_log; _* folders skipped)."""
    root = lake_path(cfg, "").rstrip("/")
    jvm = spark.sparkContext._jvm  # Hadoop FS so that s3a://, abfss:// lakes list the same way as local ones
    hpath = jvm.org.apache.hadoop.fs.Path(root)
    fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(hpath):
        return []
    names = []
    for status in fs.listStatus(hpath):
        name = status.getPath().getName()
        if status.isDirectory() and not name.startswith(("_", ".")) \
                and fs.exists(jvm.org.apache.hadoop.fs.Path(status.getPath(), "_delta_log")):
            names.append(name)
    return sorted(names)


def register_all(spark: SparkSession, cfg: DictConfig) -> dict[str, str]:
    """Register every Delta table in the lake (whatever catalog the session has); returns table -> schema.table."""
    done: dict[str, str] = {}
    schemas: set[str] = set()
    for table in lake_tables(spark, cfg):
        try:
            name = _register(spark, cfg, table, checked=True, schemas=schemas)
        except Exception as exc:  # noqa: BLE001 - one bad table must not hide the others
            log.warning("could not register %s: %s", table, str(exc).splitlines()[0])
            continue
        if name:
            done[table] = name
    return done
