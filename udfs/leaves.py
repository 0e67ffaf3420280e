"""Executor-side default leaves: one vocabulary category's codes -> its headers' default leaves.

`leaf_rows` is the pandas function `clinlake.resolve.leaf_map` applies per (vocabulary, 3-character category) group
with `applyInPandas`; the rule itself is the plain, unit-tested `clinlake.resolver.leaves.default_leaves`.
"""

from __future__ import annotations

import pandas as pd

from clinlake.resolver.leaves import default_leaves

LEAF_SCHEMA = "vocabulary_id string, concept_code string, leaf_code string, rule string"


def leaf_rows(group: pd.DataFrame) -> pd.DataFrame:
    """Rows (vocabulary_id, concept_code, leaf_code, rule) for one group of (vocabulary_id, concept_code,
    concept_name, n) rows; n is the training annotation count (null = none)."""
    columns = ["vocabulary_id", "concept_code", "leaf_code", "rule"]
    if group.empty:
        return pd.DataFrame(columns=columns)
    names = [None if pd.isna(n) else str(n) for n in group["concept_name"]]
    counts = {str(c): float(n) for c, n in zip(group["concept_code"], group["n"]) if not pd.isna(n)}
    leaves = default_leaves(zip(group["concept_code"].astype(str), names), counts)
    vocabulary = str(group["vocabulary_id"].iloc[0])
    return pd.DataFrame([(vocabulary, header, leaf, rule) for header, (leaf, rule) in sorted(leaves.items())],
                        columns=columns)
