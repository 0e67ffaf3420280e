"""The promotion gate's rule, on hand-made metric sets."""

from __future__ import annotations

from clinlake.promotion import decide, side_by_side


def test_better_main_metric_promotes():
    ok, why = decide({"f1": 0.80, "p": 0.7}, {"f1": 0.82, "p": 0.7}, "f1", ["p"], 0.005)
    assert ok and "f1" in why


def test_equal_everywhere_keeps_champion():
    assert decide({"f1": 0.8, "p": 0.7}, {"f1": 0.8, "p": 0.7}, "f1", ["p"], 0.005) == (
        False, "no tracked metric is better than the champion's")


def test_within_margin_and_better_elsewhere_promotes():
    ok, _ = decide({"f1": 0.800, "p": 0.70}, {"f1": 0.797, "p": 0.75}, "f1", ["p"], 0.005)
    assert ok


def test_worse_beyond_margin_blocks_even_if_other_metric_better():
    ok, why = decide({"f1": 0.800, "p": 0.70}, {"f1": 0.790, "p": 0.95}, "f1", ["p"], 0.005)
    assert not ok and "worse" in why


def test_missing_metric_blocks():
    assert not decide({"f1": 0.8}, {"p": 0.9}, "f1", [], 0.0)[0]


def test_side_by_side_only_shared_numeric_metrics():
    rows = side_by_side({"f1": 0.5, "task": "ner", "x": 1}, {"f1": 0.75, "task": "ner"})
    assert rows == [{"metric": "f1", "champion": 0.5, "challenger": 0.75, "delta": 0.25}]
