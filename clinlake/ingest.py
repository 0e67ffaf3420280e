"""Ingest: raw lake files -> OMOP NOTE rows, each row either accepted or quarantined with a reason."""

from __future__ import annotations

import datetime as dt
from functools import reduce
from pathlib import Path
from typing import Mapping

from omegaconf import DictConfig
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from clinlake import omop
from clinlake.errors import UserError

FORMATS = ("parquet", "csv", "json", "text")
REASON = "quarantine_reason"


def read_raw(spark: SparkSession, path: str, fmt: str) -> DataFrame:
    """Read raw notes as received (all columns kept); text = a folder of .txt files, one note per file."""
    if fmt not in FORMATS:
        raise UserError(f"unknown --format '{fmt}' (expected one of {', '.join(FORMATS)})")
    if "://" not in path and not Path(path).exists():
        raise UserError(f"input not found: {path}")
    if fmt == "parquet":
        return spark.read.parquet(path)
    if fmt == "csv":
        return spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(path)
    if fmt == "json":
        # Read every field as string first: a mistyped value must be quarantined, not fail the whole read.
        return spark.read.option("primitivesAsString", True).json(path)
    raw = spark.read.option("wholetext", True).option("recursiveFileLookup", True).text(path)
    name = F.regexp_extract(F.input_file_name(), r"([^/]+?)(\.txt)?$", 1)
    return raw.select(name.alias("note_source_value"), F.col("value").alias("note_text"))


def with_omop_names(df: DataFrame, column_map: Mapping[str, str]) -> DataFrame:
    """Rename input columns to OMOP NOTE names (OMOP-named columns are taken as they are)."""
    omop_names = set(omop.NOTE.fieldNames())
    for src, dst in column_map.items():
        if src in df.columns and dst not in df.columns and src not in omop_names:
            df = df.withColumnRenamed(src, dst)
    return df


def _parse_date(col: Column, formats: list[str]) -> Column:
    """First format that parses; null when none does (try_to_timestamp never raises, whatever ANSI mode says)."""
    as_text = col.cast("string")
    return F.coalesce(*[F.to_date(F.call_function("try_to_timestamp", as_text, F.lit(f))) for f in formats])


def with_note_columns(df: DataFrame, cfg: DictConfig) -> DataFrame:
    """Typed OMOP NOTE columns (+ `_raw_*` originals) and text fingerprint; values that do not parse become null."""
    ing = cfg.ingest
    present = set(df.columns)
    raw_json = F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]))
    out = df.withColumn("_raw", raw_json)
    for name in ("note_id", "person_id", "note_date", "note_text"):
        out = out.withColumn(f"_raw_{name}", F.col(name).cast("string") if name in present else F.lit(None).cast("string"))
    text = F.col("note_text").cast("string") if "note_text" in present else F.lit(None).cast("string")
    if "note_id" in present:
        note_id = F.expr("try_cast(`_raw_note_id` as bigint)")
    else:
        # One-note-per-file inputs have no id: derive a stable positive one from the source value.
        note_id = F.abs(F.xxhash64(F.col("note_source_value"))) % F.lit(9_000_000_000_000_000_000 // 1000)
    person = F.expr("try_cast(`_raw_person_id` as bigint)") if "person_id" in present \
        else F.lit(int(ing.get("default_person_id", 0))).cast("bigint")
    date = _parse_date(F.col("_raw_note_date"), list(ing.date_formats)) if "note_date" in present \
        else F.lit(None).cast("date")
    cols = {
        "note_id": note_id.cast("bigint"),
        "person_id": person,
        "note_date": date,
        "note_datetime": F.expr("try_cast(note_datetime as timestamp)") if "note_datetime" in present
        else date.cast("timestamp"),
        "note_type_concept_id": F.expr("try_cast(note_type_concept_id as int)") if "note_type_concept_id" in present
        else F.lit(int(ing.note_type_concept_id)),
        "note_class_concept_id": F.expr("try_cast(note_class_concept_id as int)") if "note_class_concept_id" in present
        else F.lit(omop.NOTE_CLASS_DEFAULT),
        "note_title": F.col("note_title").cast("string") if "note_title" in present else F.lit(None).cast("string"),
        "note_text": text,
        "encoding_concept_id": F.lit(int(ing.encoding_concept_id)),
        "language_concept_id": F.expr("try_cast(language_concept_id as int)") if "language_concept_id" in present
        else F.lit(int(ing.language_concept_id)),
    }
    for f in omop.NOTE.fields:
        if f.name not in cols:
            cols[f.name] = F.col(f.name).cast(f.dataType) if f.name in present else F.lit(None).cast(f.dataType)
    typed = out.select(*[cols[f.name].cast(f.dataType).alias(f.name) for f in omop.NOTE.fields],
                       "_raw", "_raw_note_id", "_raw_note_date")
    return typed.withColumn("text_sha256", F.sha2(F.coalesce(F.col("note_text"), F.lit("")), 256))


def with_quarantine_reason(df: DataFrame, cfg: DictConfig, today: dt.date | None = None) -> DataFrame:
    """Add `quarantine_reason`: the first per-row problem, null for a good row."""
    ing = cfg.ingest
    today = today or dt.date.today()
    max_date = today + dt.timedelta(days=int(ing.max_future_days))
    text = F.col("note_text")
    n = F.greatest(F.length(text), F.lit(1))
    replacement_share = (F.length(text) - F.length(F.regexp_replace(text, "\ufffd", ""))) / n
    control_share = (F.length(text) - F.length(F.regexp_replace(text, r"[\x00-\x08\x0B\x0C\x0E-\x1F]", ""))) / n
    checks = [
        (F.col("note_id").isNull() & F.col("_raw_note_id").isNotNull(), F.lit("note_id is not an integer")),
        (F.col("note_id").isNull(), F.lit("note_id missing")),
        (F.col("person_id").isNull(), F.lit("person_id missing or not an integer")),
        (F.col("note_date").isNull() & F.col("_raw_note_date").isNotNull(), F.lit("note_date unparseable or impossible")),
        (F.col("note_date").isNull(), F.lit("note_date missing")),
        ((F.col("note_date") < F.lit(str(ing.min_date)).cast("date")) | (F.col("note_date") > F.lit(max_date)),
         F.lit(f"note_date outside [{ing.min_date}, today+{ing.max_future_days}d]")),
        (text.isNull(), F.lit("note_text is null")),
        (~text.rlike(r"\S"), F.lit("note_text is empty or whitespace")),
        (F.length(text) > int(ing.max_text_chars), F.lit(f"note_text longer than {ing.max_text_chars} chars")),
        (replacement_share > 0.01, F.lit("note_text is not valid UTF-8 (undecodable bytes)")),
        (control_share > 0.01, F.lit("note_text looks binary (control characters)")),
    ]
    reason = reduce(lambda acc, c: acc.when(c[0], c[1]), checks[1:], F.when(checks[0][0], checks[0][1]))
    return df.withColumn(REASON, reason)


def with_duplicate_reason(df: DataFrame) -> DataFrame:
    """Among otherwise-good rows sharing a note_id: all copies quarantined when texts differ; extra exact copies too."""
    by_id = Window.partitionBy("note_id")
    good = F.col(REASON).isNull()
    texts = F.size(F.collect_set(F.when(good, F.col("text_sha256"))).over(by_id))
    rank = F.row_number().over(Window.partitionBy("note_id", good).orderBy("text_sha256", "_raw"))
    return df.withColumn(
        REASON,
        F.when(~good, F.col(REASON))
        .when(texts > 1, F.lit("duplicate note_id with different text"))
        .when(rank > 1, F.lit("exact duplicate of another row"))
    )


def split_good_bad(df: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(NOTE rows to merge, quarantine rows with reason and the row as received)."""
    good = df.filter(F.col(REASON).isNull()).select(*omop.NOTE.fieldNames(), "text_sha256")
    bad = df.filter(F.col(REASON).isNotNull()).select(
        F.col("note_id"), F.col(REASON).alias("reason"), F.col("_raw").alias("raw_row"),
        F.sha2(F.concat_ws("|", F.col(REASON), F.col("_raw")), 256).alias("row_sha256"),
    )
    return good, bad
