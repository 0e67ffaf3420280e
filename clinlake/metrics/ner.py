"""NER metrics: CANTEMIST NER / NORM and PharmaCoNER exact entity match, with per-label tables.

CANTEMIST (TeMU-BSC/cantemist-evaluation-library, cantemist_ner_norm.py): NER counts (document,
offsets) pairs of MORFOLOGIA_NEOPLASIA mentions, NORM counts (document, offsets, code); a duplicate
counts once and predictions for documents outside the gold folder are ignored. Gold mentions without
a code are left out of NORM, as the official parser does. When one offset carries two gold codes the
official merge can count above 1.0; set semantics are used here instead.
PharmaCoNER: exact (sentence, label, start, end) entity match, micro-averaged, plus per label.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from clinlake.corpora.types import Mention
from clinlake.metrics.prf import PRF, per_label_table, score_sets


def _frags(m: Mention) -> tuple[tuple[int, int], ...]:
    """Offsets identity of a mention (all fragments: exact span match)."""
    return tuple(m.frags)


def span_sets(gold: Mapping[str, Iterable[Mention]], pred: Mapping[str, Iterable[Mention]],
              labels: Iterable[str] | None = None, with_label: bool = True,
              with_code: bool = False) -> tuple[set[tuple], set[tuple]]:
    """Gold and predicted identity tuples (doc, label, fragments[, code]) over the gold documents."""
    keep = set(labels) if labels is not None else None

    def key(d: str, m: Mention) -> tuple:
        k: tuple = (d, m.label if with_label else "", _frags(m))
        return k + ((m.code or "").strip(),) if with_code else k

    def items(src: Mapping[str, Iterable[Mention]]) -> set[tuple]:
        return {key(d, m) for d, ms in src.items() if d in gold for m in ms
                if (keep is None or m.label in keep) and (not with_code or m.code)}

    return items(gold), items(pred)


def cantemist_scores(gold: Mapping[str, Iterable[Mention]], pred: Mapping[str, Iterable[Mention]],
                     label: str = "MORFOLOGIA_NEOPLASIA") -> tuple[dict[str, float], list[dict[str, object]]]:
    """ner_precision / ner_recall / ner_f1 and norm_* metrics, plus a per-code-free per-label table."""
    g, p = span_sets(gold, pred, [label])
    ner = score_sets(g, p)
    gn, pn = span_sets(gold, pred, [label], with_code=True)
    norm = score_sets(gn, pn)
    out = {**ner.as_dict("ner_"), **norm.as_dict("norm_")}
    return out, per_label_table(g, p, lambda k: k[1])


def entity_scores(gold: Mapping[str, Iterable[Mention]],
                  pred: Mapping[str, Iterable[Mention]]) -> tuple[PRF, list[dict[str, object]]]:
    """Exact (doc, label, span) match over all labels, and the per-label table."""
    g, p = span_sets(gold, pred)
    return score_sets(g, p), per_label_table(g, p, lambda k: k[1])
