"""Executor-side assertion: a plain batch function (unit-tested) and a thin pandas_udf returning a struct."""

from __future__ import annotations

import pandas as pd
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import BooleanType, StringType, StructField, StructType

from clinlake.assertion import assert_spans, term_exists, term_modifiers, term_temporal
from clinlake.assertion.lexicon import LANGS

FIELDS = (
    ("negated", "boolean"),
    ("certainty", "string"),
    ("experiencer", "string"),
    ("temporality", "string"),
    ("negation_trigger", "string"),
    ("certainty_trigger", "string"),
    ("experiencer_trigger", "string"),
    ("temporality_trigger", "string"),
    ("term_exists", "string"),
    ("term_temporal", "string"),
    ("term_modifiers", "string"),
)
FIELD_NAMES = tuple(name for name, _ in FIELDS)
# an explicit StructType (not a DDL string) so importing this module needs no SparkSession
RETURN_TYPE = StructType([StructField(n, BooleanType() if t == "boolean" else StringType(), True) for n, t in FIELDS])


def _valid(text, start, end) -> bool:
    """A row is scored only with a text and integral offsets inside it."""
    if not isinstance(text, str) or pd.isna(start) or pd.isna(end):
        return False
    s, e = int(start), int(end)
    return 0 <= s <= e <= len(text)


def assert_batch(texts: pd.Series, starts: pd.Series, ends: pd.Series, langs: pd.Series) -> pd.DataFrame:
    """Assertion columns for a batch of (note text, span, lang) rows; invalid rows and unknown languages give nulls.

    Rows are grouped by (lang, text) so each note is sentence-split and trigger-matched once however many
    of its chunks are in the batch.
    """
    n = len(texts)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (text, start, end, lang) in enumerate(zip(texts, starts, ends, langs)):
        code = (lang or "").lower()[:2] if isinstance(lang, str) else ""
        if code in LANGS and _valid(text, start, end):
            groups.setdefault((code, text), []).append(i)
    cols: dict[str, list] = {name: [None] * n for name in FIELD_NAMES}
    for (code, text), rows in groups.items():
        spans = [(int(starts.iat[i]), int(ends.iat[i])) for i in rows]
        for i, a in zip(rows, assert_spans(text, spans, code)):
            cols["negated"][i] = a.negated
            cols["certainty"][i] = a.certainty
            cols["experiencer"][i] = a.experiencer
            cols["temporality"][i] = a.temporality
            cols["negation_trigger"][i] = a.negation_trigger
            cols["certainty_trigger"][i] = a.certainty_trigger
            cols["experiencer_trigger"][i] = a.experiencer_trigger
            cols["temporality_trigger"][i] = a.temporality_trigger
            cols["term_exists"][i] = term_exists(a)
            cols["term_temporal"][i] = term_temporal(a)
            cols["term_modifiers"][i] = term_modifiers(a)
    out = pd.DataFrame(cols, index=texts.index)
    out["negated"] = out["negated"].astype("boolean")  # nullable, so null rows stay null in Arrow
    return out


@pandas_udf(RETURN_TYPE)
def assertion_udf(texts: pd.Series, starts: pd.Series, ends: pd.Series, langs: pd.Series) -> pd.DataFrame:
    """pandas_udf wrapper of assert_batch (one Arrow batch per call)."""
    return assert_batch(texts, starts, ends, langs)
