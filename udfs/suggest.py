"""Executor-side code suggestions: clinlake.suggest.suggest (a plain, unit-tested function) behind a pandas_udf."""

from __future__ import annotations

import pandas as pd  # module level: pandas_udf resolves the string type hints in these globals

from clinlake.suggest import SUGGESTION_TYPE, SuggesterIndex, as_records, suggest


def make_suggest_udf(index: SuggesterIndex):  # noqa: ANN201
    """pandas_udf(note_text) -> array<struct<vocabulary_id, concept_code, score, rank>>.

    The index travels inside the closure (a few MB for thousands of training notes); the vectorizer is rebuilt
    once per Python worker, and each Arrow batch is one sparse matrix product.
    """
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(SUGGESTION_TYPE)  # type: ignore[call-overload]
    def suggest_udf(text: pd.Series) -> pd.Series:
        rows = suggest(index, [t if isinstance(t, str) else None for t in text])
        return pd.Series([as_records(row) for row in rows])

    return suggest_udf
