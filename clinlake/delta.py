"""Delta Lake helpers: table paths, atomic merges with commit metadata, table versions for lineage."""

from __future__ import annotations

import json
from typing import Any, Iterable

from delta.tables import DeltaTable
from omegaconf import DictConfig
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from clinlake.config import lake_path


def exists(spark: SparkSession, path: str) -> bool:
    """Whether a Delta table lives at path."""
    return DeltaTable.isDeltaTable(spark, path)


def read(spark: SparkSession, cfg: DictConfig, table: str) -> DataFrame:
    """Read a lake table by name."""
    return spark.read.format("delta").load(lake_path(cfg, table))


def version(spark: SparkSession, path: str) -> int | None:
    """Latest committed version of a Delta table (None if absent)."""
    if not exists(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


class commit_metadata:
    """Context manager: Delta commits inside carry userMetadata naming job, run id and model versions."""

    def __init__(self, spark: SparkSession, **meta: Any) -> None:
        self.spark, self.meta = spark, {k: v for k, v in meta.items() if v is not None}

    def __enter__(self) -> "commit_metadata":
        self.spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", json.dumps(self.meta, default=str))
        return self

    def __exit__(self, *exc: object) -> None:
        self.spark.conf.unset("spark.databricks.delta.commitInfo.userMetadata")


def ensure_table(spark: SparkSession, path: str, df: DataFrame, partition_by: Iterable[str] = ()) -> None:
    """Create an empty Delta table with df's schema if none exists yet; add df's new columns to an older one."""
    if exists(spark, path):
        add_missing_columns(spark, path, df)
        return
    writer = df.limit(0).write.format("delta").mode("append")
    parts = list(partition_by)
    if parts:
        writer = writer.partitionBy(*parts)
    writer.save(path)


def add_missing_columns(spark: SparkSession, path: str, df: DataFrame) -> list[str]:
    """Add to the table the (nullable) columns df has and it lacks: a lake written by an older release takes the new
    columns of a newer one (old rows read them as null) instead of failing the job's MERGE."""
    have = {c.lower() for c in spark.read.format("delta").load(path).columns}
    new = [f for f in df.schema.fields if f.name.lower() not in have]
    if new:
        cols = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in new)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({cols})")
    return [f.name for f in new]


def merge_insert_new(spark: SparkSession, df: DataFrame, path: str, keys: list[str]) -> int:
    """Insert rows whose keys are not in the table yet; one atomic commit (none when nothing is new)."""
    ensure_table(spark, path, df)
    existing = spark.read.format("delta").load(path).select(*keys)
    new = df.join(existing, on=keys, how="left_anti")
    n = new.count()
    if n:
        cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        DeltaTable.forPath(spark, path).alias("t").merge(new.alias("s"), cond).whenNotMatchedInsertAll().execute()
    return n


def merge_upsert_changed(spark: SparkSession, df: DataFrame, path: str, key: str, change_col: str) -> int:
    """Insert new keys and update rows whose change_col differs; one atomic commit (none when nothing changed)."""
    ensure_table(spark, path, df)
    existing = spark.read.format("delta").load(path).select(key, change_col)
    changed = df.join(existing, on=[key, change_col], how="left_anti")
    n = changed.count()
    if n:
        (
            DeltaTable.forPath(spark, path).alias("t")
            .merge(changed.alias("s"), f"t.`{key}` = s.`{key}`")
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )
    return n


def replace_for_keys(spark: SparkSession, new_rows: DataFrame, keys: DataFrame, path: str,
                     key: str | list[str]) -> None:
    """Atomically delete every row of the given keys and insert new_rows (one MERGE, one commit).

    Delete markers (one per key, merge keys = the key columns) and inserts (merge keys NULL, never matching) travel
    in one source, so a job killed before the commit leaves the table untouched and a rerun cannot duplicate.
    """
    ensure_table(spark, path, new_rows)
    key_cols = [key] if isinstance(key, str) else list(key)
    cols = new_rows.columns
    markers = keys.select(*[F.col(k).alias(f"__mk_{k}") for k in key_cols]).distinct()
    for c in cols:
        markers = markers.withColumn(c, F.lit(None).cast(new_rows.schema[c].dataType))
    markers = markers.withColumn("__insert", F.lit(False))
    inserts = new_rows.select(*[F.lit(None).cast(new_rows.schema[k].dataType).alias(f"__mk_{k}") for k in key_cols],
                              *cols)
    inserts = inserts.withColumn("__insert", F.lit(True))
    source = markers.unionByName(inserts)
    cond = " AND ".join(f"t.`{k}` = s.`__mk_{k}`" for k in key_cols)
    (
        DeltaTable.forPath(spark, path).alias("t")
        .merge(source.alias("s"), cond)
        .whenMatchedDelete()
        .whenNotMatchedInsert(condition="s.__insert", values={c: f"s.`{c}`" for c in cols})
        .execute()
    )
