"""Ingest: raw lake files -> OMOP NOTE rows, each row either accepted or quarantined with a reason."""

from __future__ import annotations

import datetime as dt
import re
from functools import reduce
from typing import Mapping

from omegaconf import DictConfig
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clinlake import omop
from clinlake.config import require_path
from clinlake.errors import UserError

FORMATS = ("parquet", "csv", "json", "text")
REASON = "quarantine_reason"
CORRUPT = "_corrupt_record"  # Spark's column for lines a permissive reader could not parse
SOURCE_FORMAT = "note_source_format"  # lake extension column of `note`: plain | html | rtf (body as received)


def read_raw(spark: SparkSession, path: str, fmt: str) -> DataFrame:
    """Read raw notes as received (all columns kept); text = a folder of .txt files, one note per file."""
    if fmt not in FORMATS:
        raise UserError(f"unknown --format '{fmt}' (expected one of {', '.join(FORMATS)})")
    require_path(path, f"input not found: {path}")
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


def _safe_names(names: set[str]) -> str:
    """Column names fit for an error message: a wrong header (e.g. JSON read as CSV) makes note text a 'name'."""
    ok = sorted(n for n in names if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,39}", n))
    hidden = len(names) - len(ok)
    return ", ".join(ok + ([f"{hidden} other name(s) not shown"] if hidden else [])) or "none"


def _as_bigint(df: DataFrame, name: str) -> Column:
    """Integer id from any input type: float ids (pandas writes int columns with gaps as float) when whole numbers."""
    dtype = df.schema[name].dataType
    if isinstance(dtype, (T.FloatType, T.DoubleType, T.DecimalType)):
        col = F.col(name)
        return F.when(~F.isnan(col.cast("double")) & (col == F.floor(col)), F.expr(f"try_cast(`{name}` as bigint)"))
    return F.expr(f"try_cast(`_raw_{name}` as bigint)")


def with_note_columns(df: DataFrame, cfg: DictConfig) -> DataFrame:
    """Typed OMOP NOTE columns (+ `_raw_*` originals) and text fingerprint; values that do not parse become null."""
    ing = cfg.ingest
    present = set(df.columns)
    # A file without a text column, or without any note identifier, is an unusable input, not N bad rows.
    if "note_text" not in present:
        raise UserError(f"input has no note_text column (found: {_safe_names(present)}; "
                        "map yours with --set ingest.column_map.<name>=note_text)")
    if "note_id" not in present and "note_source_value" not in present:
        raise UserError(f"input has no note_id column (found: {_safe_names(present)}; "
                        "map yours with --set ingest.column_map.<name>=note_id)")
    raw_json = F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]))
    out = df.withColumn("_raw", raw_json)
    for name in ("note_id", "person_id", "note_date", "note_text"):
        out = out.withColumn(f"_raw_{name}", F.col(name).cast("string") if name in present else F.lit(None).cast("string"))
    # Through bytes and back: a binary column, or a string column holding invalid UTF-8 (parquet writers do not
    # validate), becomes valid text with U+FFFD for each bad byte; unvalidated bytes crash Arrow in the Python UDFs.
    text = F.decode(F.col("note_text").cast("string").cast("binary"), "UTF-8")
    if "note_id" in present:
        note_id = _as_bigint(df, "note_id")
    else:
        # One-note-per-file inputs have no id: derive a stable positive one from the source value.
        source = F.col("note_source_value")
        note_id = F.when(source.isNotNull(), F.abs(F.xxhash64(source)) % F.lit(9_000_000_000_000_000_000 // 1000))
    person = _as_bigint(df, "person_id") if "person_id" in present \
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
    # Spark's permissive readers put a line they cannot parse (bad JSON, invalid UTF-8 in JSON) here, other fields null.
    malformed = F.col(CORRUPT).isNotNull() if CORRUPT in present else F.lit(False)
    typed = out.select(*[cols[f.name].cast(f.dataType).alias(f.name) for f in omop.NOTE.fields],
                       "_raw", "_raw_note_id", "_raw_note_date", malformed.alias("_malformed"))
    # The fingerprint is of the stored (converted) text: offsets and change detection downstream refer to it.
    return typed.transform(with_plain_text) \
        .withColumn("text_sha256", F.sha2(F.coalesce(F.col("note_text"), F.lit("")), 256))


def with_plain_text(df: DataFrame) -> DataFrame:
    """HTML/RTF bodies -> plain note_text; adds `note_source_format` (plain|html|rtf) and `_conversion_error`."""
    from udfs.convert import make_convert_udf

    # Non-deterministic only so the optimiser evaluates the Python UDF once per row, not once per field read.
    conv = make_convert_udf().asNondeterministic()
    others = [F.col(f"`{c}`") for c in df.columns if c != "note_text"]
    return (df.select(*others, conv(F.col("note_text")).alias("_conv"))
            .select(*[F.col(f"`{c}`") for c in df.columns if c != "note_text"],
                    F.col("_conv.note_text").alias("note_text"),
                    F.col("_conv.note_source_format").alias(SOURCE_FORMAT),
                    F.col("_conv.conversion_error").alias("_conversion_error")))


def with_quarantine_reason(df: DataFrame, cfg: DictConfig, today: dt.date | None = None) -> DataFrame:
    """Add `quarantine_reason`: the first per-row problem, null for a good row."""
    ing = cfg.ingest
    today = today or dt.date.today()
    max_date = today + dt.timedelta(days=int(ing.max_future_days))
    text = F.col("note_text")
    conversion_error = F.col("_conversion_error") if "_conversion_error" in df.columns else F.lit(None).cast("string")
    n = F.greatest(F.length(text), F.lit(1))
    replacement_share = (F.length(text) - F.length(F.regexp_replace(text, "\ufffd", ""))) / n
    control_share = (F.length(text) - F.length(F.regexp_replace(text, r"[\x00-\x08\x0B\x0C\x0E-\x1F]", ""))) / n
    malformed = F.col("_malformed") if "_malformed" in df.columns else F.lit(False)
    checks = [
        (malformed, F.lit("row could not be parsed (malformed record or invalid UTF-8)")),
        (F.col("note_id").isNull() & F.col("_raw_note_id").isNotNull(), F.lit("note_id is not an integer")),
        (F.col("note_id").isNull(), F.lit("note_id missing")),
        (F.col("person_id").isNull(), F.lit("person_id missing or not an integer")),
        (F.col("note_date").isNull() & F.col("_raw_note_date").isNotNull(), F.lit("note_date unparseable or impossible")),
        (F.col("note_date").isNull(), F.lit("note_date missing")),
        ((F.col("note_date") < F.lit(str(ing.min_date)).cast("date")) | (F.col("note_date") > F.lit(max_date)),
         F.lit(f"note_date outside [{ing.min_date}, today+{ing.max_future_days}d]")),
        (text.isNull() & conversion_error.isNull(), F.lit("note_text is null")),
        (conversion_error.isNotNull(), conversion_error),
        # (?U): Unicode whitespace too, so a body of no-break spaces counts as empty
        (~text.rlike(r"(?U)\S"), F.lit("note_text is empty or whitespace")),
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
    good = df.filter(F.col(REASON).isNull()).select(*omop.NOTE.fieldNames(), "text_sha256", SOURCE_FORMAT)
    bad = df.filter(F.col(REASON).isNotNull()).select(
        F.col("note_id"), F.col(REASON).alias("reason"), F.col("_raw").alias("raw_row"),
        F.sha2(F.concat_ws("|", F.col(REASON), F.col("_raw")), 256).alias("row_sha256"),
    )
    return good, bad
