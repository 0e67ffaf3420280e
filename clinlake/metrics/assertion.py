"""Assertion metrics: entity-level negation/uncertainty F1 on NUBes and accuracies on the ``pairs`` TSV format."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from clinlake.assertion import Assertion, assert_spans
from clinlake.corpora.nubes import DEV_SAMPLES, read_nubes
from clinlake.corpora.pairs import read_pairs

PredictFn = Callable[[str, Sequence[tuple[int, int]], str], Sequence[Assertion]]

_TEMPORALITY = {"current": "Recent", "historical": "Historical", "hypothetical": "Hypothetical"}


def is_uncertain(a: Assertion) -> bool:
    """What counts as an uncertainty prediction on NUBes: any certainty below 'certain'."""
    return a.certainty != "certain"


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 (0.0 where undefined)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _nubes_folders(data_path: str | os.PathLike) -> tuple[Path, tuple[str, ...] | None]:
    """The NUBes root with its dev samples, or a single brat folder (one sample, IULA+)."""
    root = Path(data_path)
    present = tuple(s for s in DEV_SAMPLES if (root / s).is_dir())
    return root, (present or None)


def evaluate_nubes(data_path: str | os.PathLike, predict_fn: PredictFn | None = None) -> dict:
    """Entity-level negation and uncertainty P/R/F1 on NUBes (root = samples 001-008, or one brat folder)."""
    predict = predict_fn or assert_spans
    root, samples = _nubes_folders(data_path)
    counts = {"neg": [0, 0, 0], "unc": [0, 0, 0]}  # tp, fp, fn
    docs = ents = 0
    for doc in read_nubes(root, samples):
        docs += 1
        if not doc.entities:
            continue
        preds = predict(doc.text, [(e.start, e.end) for e in doc.entities], "es")
        for gold, pred in zip(doc.entities, preds, strict=True):
            ents += 1
            for key, g, p in (("neg", gold.negated, pred.negated), ("unc", gold.uncertain, is_uncertain(pred))):
                c = counts[key]
                c[0] += g and p
                c[1] += p and not g
                c[2] += g and not p
    out: dict = {"documents": docs, "entities": ents}
    for key, name in (("neg", "negation"), ("unc", "uncertainty")):
        p, r, f = prf(*counts[key])
        out.update({f"{name}_precision": p, f"{name}_recall": r, f"{name}_f1": f, f"{name}_support": counts[key][0] + counts[key][2]})
    return out


def evaluate_pairs(tsv_path: str | os.PathLike, predict_fn: PredictFn | None = None) -> dict:
    """Negation F1 (Negated = positive) and accuracies of negation, temporality, experiencer on a pairs TSV."""
    predict = predict_fn or assert_spans
    pairs = read_pairs(tsv_path)
    neg = [0, 0, 0]
    correct = {"negation": 0, "temporality": 0, "experiencer": 0}
    total = {"negation": 0, "temporality": 0, "experiencer": 0}
    not_found = 0
    for pair in pairs:
        span = pair.span
        if span is None:
            not_found += 1
            pred = Assertion()  # an unfound concept gets the default (affirmed, recent, patient) and is still scored
        else:
            pred = predict(pair.sentence, [span], pair.lang or "en")[0]
        if pair.negation is not None:
            g, p = pair.negation == "Negated", pred.negated
            neg[0] += g and p
            neg[1] += p and not g
            neg[2] += g and not p
            total["negation"] += 1
            correct["negation"] += g == p
        if pair.temporality is not None:
            total["temporality"] += 1
            correct["temporality"] += _TEMPORALITY[pred.temporality] == pair.temporality
        if pair.experiencer is not None:
            total["experiencer"] += 1
            correct["experiencer"] += ("Patient" if pred.experiencer == "patient" else "Other") == pair.experiencer
    p, r, f = prf(*neg)
    out: dict = {"documents": len(pairs), "concept_not_found": not_found}
    out.update({"negation_precision": p, "negation_recall": r, "negation_f1": f})
    for k in correct:
        out[f"{k}_accuracy"] = correct[k] / total[k] if total[k] else 0.0
        out[f"{k}_support"] = total[k]
    return out
