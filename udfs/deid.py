"""Executor-side de-identification: a plain function (rules + model spans -> merged -> replaced) and its pandas_udf."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd  # module level: pandas_udf resolves the string type hints in these globals

from clinlake.deid.merge import merge_spans, tidy_model_spans
from clinlake.deid.phrases import find_phrases, propagate_mentions
from clinlake.deid.replace import DeidPolicy, replace_spans
from clinlake.deid.rules import find_all
from clinlake.deid.surrogates import DeidSecret, as_secret
from clinlake.deid.types import Span

log = logging.getLogger(__name__)

SPAN_FIELDS = ("start", "end", "new_start", "new_end", "label", "replacement", "detector")


def _model_span(s: Span | Mapping[str, Any] | Any) -> Span:
    """A model span from a Span, a dict or a Spark Row with start/end/label (score, detector optional)."""
    if isinstance(s, Span):
        return s
    get = s.get if isinstance(s, Mapping) else (lambda k, d=None: getattr(s, k, d))  # Row or object
    score = get("score", None)
    return Span(int(get("start")), int(get("end")), str(get("label")), str(get("detector", None) or "model:ner"),
                1.0 if score is None else float(score))  # fmt: skip


def _isnull(x: object) -> bool:
    """None or a pandas/NumPy NaN."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def _person_key(p: object) -> str | None:
    """person_id as the string used for HMAC keys; 123, 123.0 (a nullable long column in pandas) -> '123'."""
    if _isnull(p):
        return None
    if isinstance(p, float) and p.is_integer():
        return str(int(p))
    return str(p)


def _result(deid_text: str | None, spans: list[dict], error: str | None) -> dict:
    """The struct every call returns."""
    return {"deid_text": deid_text, "spans": spans, "error": error}


def detect_spans(text: str, model_spans: Iterable[Span], policy: DeidPolicy) -> list[Span]:
    """Rules, the phrase list and the tidied model spans, merged by the policy, plus the other occurrences of each
    detected text: the PHI spans to replace."""
    model = tidy_model_spans(model_spans, text, policy.join_labels)
    merged = merge_spans(find_all(text) + find_phrases(text, policy.phrases) + model, policy.detector_priority,
                         text_length=len(text))
    repeats = propagate_mentions(merged, text, policy.propagate_min_chars)
    return merge_spans(merged + repeats, policy.detector_priority, text_length=len(text)) if repeats else merged


def deidentify_text(
    text: str | bytes | None,
    person_id: str | int | None,
    model_spans: Iterable[Span | Mapping[str, Any]] | None,
    policy: DeidPolicy,
    secret: DeidSecret | bytes | str,
) -> dict:
    """Run the rules, merge with model_spans, replace; returns {deid_text, spans, error} and never raises.

    ``deid_text`` is None whenever ``error`` is set, so a caller can quarantine the note: a note that could not be
    de-identified must never reach note_deid. Empty or whitespace-only text is returned unchanged with no spans.
    """
    if text is None:
        return _result(None, [], "null text")
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            return _result(None, [], f"invalid UTF-8 at byte {exc.start}")
    if person_id is None or str(person_id) == "":
        return _result(None, [], "null person_id")  # no key for consistent surrogates and date shifts
    if len(text) > policy.max_chars:
        return _result(None, [], f"text longer than {policy.max_chars} characters")
    if not text.strip():
        return _result(text, [], None)
    try:
        key = as_secret(secret)
        spans = detect_spans(text, [_model_span(s) for s in (model_spans or [])], policy)
        new_text, mapping = replace_spans(text, spans, str(person_id), policy, key)
    except Exception as exc:  # noqa: BLE001 - the job quarantines the note; the message must not leak PHI
        log.warning("de-identification failed: %s", type(exc).__name__)
        return _result(None, [], f"de-identification failed: {type(exc).__name__}")
    return _result(new_text, [r._asdict() for r in mapping], None)


def deid_result_type():  # noqa: ANN201 - pyspark types are imported lazily (driver-only dependency at import)
    """Spark type of the UDF result: struct<deid_text, spans array<struct<...>>, error>."""
    from pyspark.sql import types as T

    span = T.StructType(
        [
            T.StructField("start", T.IntegerType()),
            T.StructField("end", T.IntegerType()),
            T.StructField("new_start", T.IntegerType()),
            T.StructField("new_end", T.IntegerType()),
            T.StructField("label", T.StringType()),
            T.StructField("replacement", T.StringType()),
            T.StructField("detector", T.StringType()),
        ]
    )
    return T.StructType(
        [
            T.StructField("deid_text", T.StringType()),
            T.StructField("spans", T.ArrayType(span)),
            T.StructField("error", T.StringType()),
        ]
    )


def make_deid_udf(policy: DeidPolicy, secret: DeidSecret | bytes | str):  # noqa: ANN201
    """pandas_udf(text, person_id, model_spans) -> struct; model_spans: array<struct<start,end,label[,score]>> or null.

    The secret travels to executors inside the UDF closure (pickled as a DeidSecret, whose repr is masked).
    """
    from pyspark.sql.functions import pandas_udf

    key = as_secret(secret)

    @pandas_udf(deid_result_type())  # type: ignore[call-overload]
    def deid_udf(text: pd.Series, person_id: pd.Series, model_spans: pd.Series) -> pd.DataFrame:
        rows = []
        for t, p, ms in zip(text, person_id, model_spans):
            spans = list(ms) if ms is not None and hasattr(ms, "__len__") else []
            rows.append(deidentify_text(None if _isnull(t) else t, _person_key(p), spans, policy, key))
        return pd.DataFrame(
            {
                "deid_text": [r["deid_text"] for r in rows],
                "spans": [r["spans"] for r in rows],
                "error": [r["error"] for r in rows],
            }
        )

    return deid_udf
