"""The one place that builds the SparkSession: jars, Delta, Kryo and the rest from conf/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig
from pyspark.sql import SparkSession

from clinlake import catalog
from clinlake.config import path_of, spark_settings
from clinlake.errors import UserError


def launched_by_spark_submit() -> bool:
    """True when spark-submit started the driver JVM (it hands pyspark the gateway port)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def jar_list(cfg: DictConfig) -> str:
    """Comma list of the project's jars written by `make setup` (spark.jars takes a list, not a glob)."""
    folder = Path(path_of(cfg, cfg.spark.jars_dir))
    listing = folder / "classpath.txt"
    if not listing.exists():
        raise UserError(f"Spark NLP / Delta jars not found in {folder}: run `make setup` first")
    jars = [j for j in listing.read_text().strip().split(",") if j]
    missing = [j for j in jars if not Path(j).exists()]
    if not jars or missing:
        raise UserError(f"jar set in {listing} is incomplete ({len(missing)} missing): run `make setup` again")
    return ",".join(jars)


def build_spark(cfg: DictConfig, app_name: str) -> SparkSession:
    """Build (or reuse) the SparkSession for a job; spark.master comes from conf only outside spark-submit."""
    builder = SparkSession.builder.appName(app_name)
    if not launched_by_spark_submit():
        # Python workers must run this interpreter (the .venv with pandas/pyarrow), not the system python.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        # Outside spark-submit we start the JVM ourselves, so master and jars come from configuration.
        builder = builder.config("spark.master", str(cfg.spark.master)).config("spark.jars", jar_list(cfg))
    for key, value in spark_settings(cfg.spark.get("conf") or {}).items():
        builder = builder.config(key, value)
    for key, value in catalog.session_conf(cfg).items():  # persistent table names (omop.*, ops.*)
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(str(cfg.spark.get("log_level", "WARN")))
    return spark
