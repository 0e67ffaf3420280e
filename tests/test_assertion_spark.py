"""with_assertion on a small inline DataFrame (local Spark)."""

from __future__ import annotations

import pandas as pd

from clinlake.assertion.spark import ASSERTION_COLUMNS, with_assertion
from udfs.assertion import assert_batch

NOTE = "Niega fiebre. Madre con cáncer de mama. Probable neumonía."


def _span(word: str) -> tuple[int, int]:
    i = NOTE.index(word)
    return i, i + len(word)


def test_assert_batch_groups_notes_and_nulls_bad_rows():
    texts = pd.Series([NOTE, NOTE, None, NOTE, NOTE])
    starts = pd.Series([_span("fiebre")[0], _span("neumonía")[0], 0, 5, 0], dtype="Int64")
    ends = pd.Series([_span("fiebre")[1], _span("neumonía")[1], 3, 999, 3], dtype="Int64")
    out = assert_batch(texts, starts, ends, pd.Series(["es", "es", "es", "es", "fr"]))
    assert out["negated"].tolist()[:2] == [True, False]
    assert out.loc[1, "certainty"] == "probable"
    assert out.iloc[2:].isna().all().all(), "null text, offsets past the text and unknown language give nulls"


def test_with_assertion_on_dataframe(spark):
    rows = [
        (1, NOTE, *_span("fiebre"), "es"),
        (2, NOTE, *_span("cáncer de mama"), "es"),
        (3, NOTE, *_span("neumonía"), None),
        (4, None, 0, 3, "es"),
        (5, "No evidence of pneumonia.", 15, 24, "en"),
    ]
    df = spark.createDataFrame(rows, "id int, note_text string, offset_start int, offset_end int, lang string")
    out = with_assertion(df, lang_col="lang").orderBy("id")
    assert out.columns[:5] == df.columns and set(ASSERTION_COLUMNS) <= set(out.columns)
    assert dict(out.dtypes)["negated"] == "boolean"
    got = {r["id"]: r for r in out.collect()}
    assert got[1]["negated"] is True and got[1]["negation_trigger"] == "Niega" and got[1]["term_exists"] == "N"
    assert got[2]["experiencer"] == "family" and got[2]["experiencer_trigger"] == "Madre"
    assert got[3]["certainty"] == "probable" and got[3]["term_exists"] == "Y"  # null lang -> default 'es'
    assert got[3]["term_modifiers"] == "negated=false,certainty=probable,experiencer=patient,temporality=current"
    assert all(got[4][c] is None for c in ASSERTION_COLUMNS)
    assert got[5]["negated"] is True
