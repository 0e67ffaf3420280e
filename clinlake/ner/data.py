"""Training views of the corpora: note texts and (label, start, end) spans per document, via clinlake.corpora."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from clinlake.corpora.readers import read_corpus
from clinlake.corpora.types import Corpus, Mention
from clinlake.errors import UserError
from clinlake.ner.tokens import Span

DISCONTINUOUS = ("span", "fragments")


@dataclass
class LabelledSplit:
    """Texts and gold spans of one split, plus the reader's Corpus (the gold the metrics score against)."""

    texts: dict[str, str]
    spans: dict[str, list[Span]]
    gold: Corpus
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Labels present in the spans."""
        return sorted({lab for spans in self.spans.values() for lab, _, _ in spans})


def mention_spans(m: Mention, discontinuous: str = "span") -> list[Span]:
    """Spans to tag for one mention: its first start..last end, or each fragment on its own."""
    if discontinuous not in DISCONTINUOUS:
        raise ValueError(f"discontinuous must be one of {DISCONTINUOUS}, got {discontinuous!r}")
    if discontinuous == "fragments":
        return [(m.label, s, e) for s, e in m.frags]
    return [(m.label, m.start, m.end)]


def labelled_split(corpus: str, path: str | os.PathLike, labels: Iterable[str] | None = None,
                   discontinuous: str = "span", max_docs: int = 0) -> LabelledSplit:
    """Read a split with the shared readers and keep the mentions of `labels` (all when empty)."""
    if not Path(path).exists():
        raise UserError(f"{corpus} split not found: {path}")
    try:
        gold = read_corpus(corpus, path)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"cannot read {corpus} split {path}: {exc}") from exc
    keep = set(labels or ())
    doc_ids = sorted(gold.notes)
    if max_docs and max_docs > 0:
        doc_ids = doc_ids[:max_docs]
    texts = {d: gold.notes[d] for d in doc_ids}
    spans: dict[str, list[Span]] = {}
    skipped = {"other_label": 0, "outside_text": 0}
    for d in doc_ids:
        out: set[Span] = set()
        for m in (gold.mentions or {}).get(d, []):
            if keep and m.label not in keep:
                skipped["other_label"] += 1
                continue
            for lab, s, e in mention_spans(m, discontinuous):
                if 0 <= s < e <= len(texts[d]):
                    out.add((lab, s, e))
                else:
                    skipped["outside_text"] += 1
        spans[d] = sorted(out, key=lambda x: (x[1], x[2], x[0]))
    # the gold the metrics see: the same documents (a subset when max_docs is set)
    sub = Corpus(notes=texts, mentions={d: [m for m in (gold.mentions or {}).get(d, []) if not keep or m.label in keep]
                                        for d in doc_ids},
                 sentences=gold.sentences if not max_docs else None, mismatches=gold.mismatches)
    return LabelledSplit(texts, spans, sub, skipped)


def merge_splits(a: LabelledSplit, b: LabelledSplit) -> LabelledSplit:
    """Two splits as one training set (train + dev for a final model); doc ids must not collide."""
    clash = set(a.texts) & set(b.texts)
    if clash:
        raise UserError(f"{len(clash)} document ids occur in both splits, e.g. {sorted(clash)[0]}")
    gold = Corpus(notes={**a.gold.notes, **b.gold.notes},
                  mentions={**(a.gold.mentions or {}), **(b.gold.mentions or {})})
    skipped = {k: a.skipped.get(k, 0) + b.skipped.get(k, 0) for k in set(a.skipped) | set(b.skipped)}
    return LabelledSplit({**a.texts, **b.texts}, {**a.spans, **b.spans}, gold, skipped)
