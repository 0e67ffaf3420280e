"""Reader for the assertion ``pairs`` TSV: id, lang, sentence, concept, negation, temporality, experiencer."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

PAIRS_HEADER = ("id", "lang", "sentence", "concept", "negation", "temporality", "experiencer")
NEGATION = ("Affirmed", "Negated")
TEMPORALITY = ("Recent", "Historical", "Hypothetical")
EXPERIENCER = ("Patient", "Other")


@dataclass(frozen=True)
class Pair:
    """One annotated (sentence, concept) row; a label of None means not annotated."""

    id: str
    lang: str
    sentence: str
    concept: str
    negation: str | None
    temporality: str | None
    experiencer: str | None

    @property
    def span(self) -> tuple[int, int] | None:
        """First case-insensitive occurrence of the concept in the sentence, or None."""
        i = self.sentence.lower().find(self.concept.lower())
        return None if i < 0 or not self.concept else (i, i + len(self.concept))


def _label(value: str | None, allowed: tuple[str, ...], field: str, row_id: str) -> str | None:
    """Normalise a label cell; empty means not annotated, anything outside the value set is an error."""
    v = (value or "").strip()
    if not v:
        return None
    for a in allowed:
        if v.lower() == a.lower():
            return a
    raise ValueError(f"row {row_id}: {field} {v!r} not in {allowed}")


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """Read a pairs TSV (header required, extra columns ignored)."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in PAIRS_HEADER if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        out = []
        for row in reader:
            rid = row["id"]
            out.append(
                Pair(
                    rid,
                    (row["lang"] or "").strip().lower(),
                    row["sentence"],
                    row["concept"].strip(),
                    _label(row["negation"], NEGATION, "negation", rid),
                    _label(row["temporality"], TEMPORALITY, "temporality", rid),
                    _label(row["experiencer"], EXPERIENCER, "experiencer", rid),
                )
            )
    return out
