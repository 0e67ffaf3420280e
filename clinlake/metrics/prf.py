"""Precision / recall / F1 over sets of hashable items, and the per-label table every task reports."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass


def safe_div(num: float, den: float) -> float:
    """num / den, 0.0 when den is 0 (the shared-task scripts' convention)."""
    return num / den if den else 0.0


@dataclass(frozen=True)
class PRF:
    """True-positive, false-positive and false-negative counts with the derived scores."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return safe_div(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """TP / (TP + FN)."""
        return safe_div(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (0.0 when both are 0)."""
        p, r = self.precision, self.recall
        return safe_div(2 * p * r, p + r)

    def __add__(self, other: "PRF") -> "PRF":
        return PRF(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_dict(self, prefix: str = "", suffix: str = "") -> dict[str, float]:
        """{prefix}precision{suffix}, recall and f1 as a flat dict."""
        return {f"{prefix}precision{suffix}": self.precision, f"{prefix}recall{suffix}": self.recall,
                f"{prefix}f1{suffix}": self.f1}


def score_sets(gold: Iterable[Hashable], pred: Iterable[Hashable]) -> PRF:
    """Exact-match counts between two collections, each deduplicated first (a duplicate counts once)."""
    g, p = set(gold), set(pred)
    tp = len(g & p)
    return PRF(tp, len(p) - tp, len(g) - tp)


def per_label_table(gold: Iterable[Hashable], pred: Iterable[Hashable],
                    label_of: Callable[[Hashable], str]) -> list[dict[str, object]]:
    """One row per label (label, support, tp, fp, fn, precision, recall, f1), sorted by label."""
    g, p = set(gold), set(pred)
    labels = sorted({label_of(x) for x in g | p})
    rows = []
    for label in labels:
        s = score_sets((x for x in g if label_of(x) == label), (x for x in p if label_of(x) == label))
        rows.append({"label": label, "support": s.tp + s.fn, "tp": s.tp, "fp": s.fp, "fn": s.fn,
                     "precision": s.precision, "recall": s.recall, "f1": s.f1})
    return rows
