"""Merge overlapping PHI detections from several detectors (ML model, rules) into one non-overlapping list.

Policy (recall first; documented in docs/deid.md):

1. Spans are ranked, best first, by
   a. ``validated`` (a check digit/letter or an unambiguous syntax proved the identifier: DNI/NIE, IBAN,
      NSS with control digits, e-mail, URL, IP) - such a span beats any unvalidated one, whatever its length;
   b. length - the longer span wins (it usually holds the whole expression: "3 de marzo de 2016" over "2016");
   c. detector priority - by the family before ``:`` in ``detector`` (default: ``rule`` 2 > ``model`` 1 >
      anything else 0), because a rule's label comes from an explicit cue;
   d. score, then earlier start and label name, so the result never depends on input order.
2. Spans are placed in rank order. A span that overlaps no placed span is kept whole. A span that overlaps
   placed spans is not dropped: every maximal run of its characters that no placed span covers is kept as a
   span of its own (same label, detector and score, ``validated`` False). So every character that any detector
   flagged stays covered - merging never lowers recall - and the winner keeps the overlapped characters.
3. Identical duplicates collapse into one; empty spans (start == end) cover nothing and are dropped.

The output is sorted by start, non-overlapping, and covers exactly the union of the input spans.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping

from clinlake.deid.types import Span

DEFAULT_PRIORITY: Mapping[str, int] = {"rule": 2, "model": 1}


def rank_key(span: Span, priority: Mapping[str, int] = DEFAULT_PRIORITY) -> tuple:
    """Sort key, smallest = best: validated, longer, detector priority, score, then position for determinism."""
    return (
        not span.validated,
        -span.length,
        -priority.get(span.family, 0),
        -span.score,
        span.start,
        span.label,
        span.detector,
    )


def merge_spans(
    spans: Iterable[Span],
    priority: Mapping[str, int] = DEFAULT_PRIORITY,
    text_length: int | None = None,
) -> list[Span]:
    """Resolve overlaps by the module policy; clip to text_length when given. Output: sorted, disjoint."""
    starts: list[int] = []  # starts of placed spans, kept sorted (placed spans never overlap)
    placed: list[Span] = []
    for span in sorted(set(spans), key=lambda s: rank_key(s, priority)):
        s, e = span.start, span.end
        if text_length is not None:
            s, e = min(s, text_length), min(e, text_length)
        if s >= e:
            continue
        # placed spans that may touch [s, e): the one starting before s, and all starting inside
        i = bisect.bisect_right(starts, s) - 1
        i = max(i, 0)
        pieces: list[tuple[int, int]] = []
        cursor = s
        j = i
        while j < len(placed) and placed[j].start < e:
            p = placed[j]
            if p.end > cursor:
                if p.start > cursor:
                    pieces.append((cursor, p.start))
                cursor = max(cursor, p.end)
            j += 1
        if cursor < e:
            pieces.append((cursor, e))
        whole = pieces == [(span.start, span.end)]
        for ps, pe in pieces:
            new = span if whole else Span(ps, pe, span.label, span.detector, span.score, False)
            k = bisect.bisect_left(starts, ps)
            starts.insert(k, ps)
            placed.insert(k, new)
    return placed


def has_overlaps(spans: Iterable[Span]) -> bool:
    """True when any two spans share a character."""
    ordered = sorted(spans)
    return any(a.end > b.start for a, b in zip(ordered, ordered[1:]))
