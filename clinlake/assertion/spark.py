"""Spark transform: assertion columns for recognised chunks, computed on the executors by a pandas_udf."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from udfs.assertion import FIELD_NAMES, assertion_udf

ASSERTION_COLUMNS = FIELD_NAMES


def with_assertion(
    df: DataFrame,
    text_col: str = "note_text",
    start_col: str = "offset_start",
    end_col: str = "offset_end",
    lang_col: str | None = None,
    default_lang: str = "es",
) -> DataFrame:
    """Add (or replace) negated, certainty, experiencer, temporality, their *_trigger columns and OMOP term_* columns.

    One row per chunk with the full note text alongside; rows with null text/offsets or an unsupported
    language get nulls. Keep the text column in the same partition as its chunks (e.g. join chunks to notes
    before calling) so the UDF can reuse one sentence split per note inside each Arrow batch.
    """
    lang: Column = F.coalesce(F.col(lang_col), F.lit(default_lang)) if lang_col else F.lit(default_lang)
    tmp = "__assertion"
    out = df.withColumn(tmp, assertion_udf(F.col(text_col), F.col(start_col).cast("long"), F.col(end_col).cast("long"), lang))
    return out.withColumns({name: F.col(f"{tmp}.{name}") for name in FIELD_NAMES}).drop(tmp)
