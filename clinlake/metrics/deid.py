"""MEDDOCAN metrics (subtrack 1 span+type, subtrack 2 strict and merged spans) and the residual-PHI rate.

Reading of the official script (PlanTL-GOB-ES/MEDDOCAN-Evaluation-Script, classes.py):
- Each document's annotations become *sets*, so a repeated span counts once; scores are micro-averaged.
- Merged spans: the (start, end) spans are sorted and each one is joined to the previous (merged) span
  when the text between them, ``text[prev_end:start]``, has no alphanumeric character (empty, spaces,
  punctuation such as ``", "`` or ``"-"``). Overlapping spans give an empty gap and are joined too.
- Merged scoring: TP = strict matches ∪ merged matches; a strict false positive (negative) is forgiven
  when it lies inside one of those TP spans. P = TP / (TP + FP), R = TP / (TP + FN).
- The official script only scores documents present in both folders; here every gold document is
  scored and a missing prediction means "nothing found" (identical when a file exists per document).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from difflib import SequenceMatcher

from clinlake.metrics.prf import PRF, safe_div, score_sets

Span = tuple[int, int]
LabeledSpan = tuple[str, int, int]


def _no_alnum(s: str) -> bool:
    """True when the string has no alphanumeric character (Python's Unicode isalnum)."""
    return not any(ch.isalnum() for ch in s)


def merge_spans(spans: Iterable[Span], text: str) -> list[Span]:
    """Join consecutive spans separated only by non-alphanumeric characters, as the official script does."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and _no_alnum(text[merged[-1][1]:start]):
            # same expression as the official script: (prev_start, this_end), even if this span is nested
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _contained(span: Span, containers: Iterable[Span]) -> bool:
    """True when span lies within one of the containers."""
    return any(span[0] >= c[0] and span[1] <= c[1] for c in containers)


def merged_counts(gold: Iterable[Span], pred: Iterable[Span], text: str) -> PRF:
    """Subtrack 2 [merged] counts for one document."""
    gs, ps = set(gold), set(pred)
    gm, pm = set(merge_spans(gs, text)), set(merge_spans(ps, text))
    inter = (gs & ps) | (gm & pm)
    fp = {t for t in ps - gs if not _contained(t, inter)}
    fn = {t for t in gs - ps if not _contained(t, inter)}
    return PRF(len(inter), len(fp), len(fn))


def meddocan_scores(gold: Mapping[str, Iterable[LabeledSpan]], pred: Mapping[str, Iterable[LabeledSpan]],
                    texts: Mapping[str, str]) -> dict[str, float]:
    """Subtrack 1 / 2 strict P, R, F1 and subtrack 2 merged P, R, F1 over the gold documents."""
    st1 = st2 = mrg = PRF(0, 0, 0)
    for doc_id, g in gold.items():
        g = set(g)
        p = set(pred.get(doc_id, ()))
        st1 += score_sets(g, p)
        gs, ps = {(s, e) for _, s, e in g}, {(s, e) for _, s, e in p}
        st2 += score_sets(gs, ps)
        mrg += merged_counts(gs, ps, texts.get(doc_id, ""))
    out = {}
    out.update(st1.as_dict("subtrack1_strict_"))
    out.update(st2.as_dict("subtrack2_strict_"))
    out.update(mrg.as_dict("subtrack2_merged_"))
    return out


def mask_text(text: str, spans: Iterable[Span], template: str = "[PHI]") -> tuple[str, list[tuple[Span, str]]]:
    """Replace (merged, overlapping-joined) spans by a placeholder; return the new text and the replacements."""
    joined: list[list[int]] = []
    for s, e in sorted(spans):
        if joined and s <= joined[-1][1]:
            joined[-1][1] = max(joined[-1][1], e)
        else:
            joined.append([s, e])
    out, pos, repl = [], 0, []
    for s, e in joined:
        out.append(text[pos:s])
        out.append(template)
        repl.append(((s, e), template))
        pos = e
    out.append(text[pos:])
    return "".join(out), repl


def leaked_chars(gold: Iterable[Span], original: str, deid_text: str | None = None,
                 replacements: Iterable[tuple[Span, str]] | None = None, min_match: int = 3) -> tuple[int, int]:
    """(gold PHI characters still present, gold PHI characters) for one document.

    With `replacements` ((orig_start, orig_end), new_text): a PHI character leaks when no replacement
    covers it, or the replacement wrote back the very same text. Without them, `deid_text` is aligned
    to the original (difflib, no junk heuristic) and a PHI character leaks when it falls in a common
    block of at least `min_match` characters (single letters shared by chance with a surrogate do not
    count). No de-identified text and no replacements means nothing was changed: everything leaks.
    """
    phi = {i for s, e in gold for i in range(s, min(e, len(original)))}
    if not phi:
        return 0, 0
    if replacements is not None:
        covered = {i for (s, e), new in replacements if new != original[s:e] for i in range(s, e)}
        return len(phi - covered), len(phi)
    if deid_text is None:
        return len(phi), len(phi)
    kept: set[int] = set()
    matcher = SequenceMatcher(None, original, deid_text, autojunk=False)
    for a, _, size in matcher.get_matching_blocks():
        if size >= min_match:
            kept.update(range(a, a + size))
    return len(phi & kept), len(phi)


def residual_phi_rate(gold: Mapping[str, Iterable[Span]], originals: Mapping[str, str],
                      deid_texts: Mapping[str, str] | None = None,
                      replacements: Mapping[str, Iterable[tuple[Span, str]]] | None = None) -> float:
    """Share of all gold PHI characters still present after de-identification (1.0 = unchanged, 0.0 = all gone)."""
    leaked = total = 0
    for doc_id, spans in gold.items():
        repl = replacements.get(doc_id) if replacements is not None else None
        deid = deid_texts.get(doc_id) if deid_texts is not None else None
        if repl is None and deid is None and (replacements is not None or deid_texts is not None):
            # the de-identifier produced nothing for this document: its text went out as it was
            deid = originals[doc_id]
        lk, tot = leaked_chars(spans, originals[doc_id], deid, repl)
        leaked, total = leaked + lk, total + tot
    return safe_div(leaked, total)
