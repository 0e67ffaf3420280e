"""A PHI phrase list: known institution, hospital and place names matched as whole words (detector rule:phrases).

Hospitals keep such lists (their own centres, the region's municipalities, the companies in their supply
records); the shipped sample is built from MEDDOCAN train by `scripts/make_deid_phrases.py`, keeping a phrase only
where the annotators marked it with its label in at least half of its occurrences in the training texts.

File format: UTF-8 TSV with a header `phrase<TAB>label`, one phrase per line; matching is case-sensitive and on
word boundaries, the longest phrase first at each position.
"""

from __future__ import annotations

import bisect
import csv
import functools
import hashlib
import itertools
import os
import re
from collections import Counter
from collections.abc import Iterable

from clinlake.deid.types import Span
from clinlake.errors import UserError

Phrase = tuple[str, str]  # (phrase, label)
LETTER = re.compile(r"[^\W\d_]")  # a phrase or propagated text must hold one
DETECTOR = "rule:phrases"
SCORE = 0.9
PROPAGATE_DETECTOR = "rule:propagate"
PROPAGATE_SCORE = 0.8


def load_phrases(path: str | os.PathLike) -> tuple[Phrase, ...]:
    """Phrases from a `phrase<TAB>label` TSV, sorted; a missing file or header is a UserError."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            if reader.fieldnames is None or not {"phrase", "label"} <= set(reader.fieldnames):
                raise UserError(f"{path}: a PHI phrase list needs a header with the columns phrase and label")
            rows = {(r["phrase"].strip(), r["label"].strip()) for r in reader}
    except FileNotFoundError as exc:
        raise UserError(f"PHI phrase list not found: {path}") from exc
    return tuple(sorted((p, lab) for p, lab in rows if p and lab))


def fingerprint(phrases: Iterable[Phrase]) -> str:
    """Short content hash, so a changed list changes the de-identification system's name (and reruns notes)."""
    digest = hashlib.sha256("\n".join(f"{p}\t{lab}" for p, lab in sorted(phrases)).encode("utf-8"))
    return digest.hexdigest()[:8]


def _whole_words(phrases: Iterable[str]) -> re.Pattern[str]:
    """One alternation, longest phrase first (Python's re takes the first alternative that matches), on word
    boundaries."""
    alternation = "|".join(re.escape(p) for p in sorted(set(phrases), key=lambda p: (-len(p), p)))
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")


@functools.lru_cache(maxsize=8)
def _compiled(phrases: tuple[Phrase, ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    """The list's pattern and each phrase's label, compiled once per list."""
    labels = dict(phrases)  # a phrase listed under two labels keeps the last (sorted) one
    return _whole_words(labels), labels


def find_phrases(text: str, phrases: tuple[Phrase, ...]) -> list[Span]:
    """Every non-overlapping whole-word occurrence of a listed phrase, as a span of its label."""
    if not phrases or not text:
        return []
    pattern, labels = _compiled(phrases)
    return [Span(m.start(), m.end(), labels[m.group()], DETECTOR, SCORE) for m in pattern.finditer(text)]


def propagate_mentions(spans: Iterable[Span], text: str, min_chars: int = 4) -> list[Span]:
    """Other whole-word occurrences of a detected span's text that no span covers yet, with that span's label.

    A note names the same person, place or institution more than once, and MEDDOCAN's annotators mark every
    occurrence: in train, of the other whole-word occurrences of an annotated text of 3+ characters, 1,491 carry
    the same label, 164 lie inside another span and 18 are unmarked. The model may find only some of them. Texts
    shorter than ``min_chars`` or without a letter are not propagated (a bare number or "Sr" means nothing alone);
    ``min_chars`` 0 turns propagation off. A text detected under several labels takes its most frequent one.
    """
    spans = list(spans)
    if min_chars <= 0 or not spans or not text:
        return []
    votes: dict[str, Counter[str]] = {}
    for s in spans:
        mention = text[s.start:s.end]
        if len(mention) >= min_chars and LETTER.search(mention) and mention == mention.strip():
            votes.setdefault(mention, Counter())[s.label] += 1
    if not votes:
        return []
    labels = {m: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for m, c in votes.items()}
    covered = sorted((s.start, s.end) for s in spans)
    starts = [a for a, _ in covered]
    reach = list(itertools.accumulate((e for _, e in covered), max))  # furthest end among spans up to i
    out: list[Span] = []
    for m in _whole_words(labels).finditer(text):
        i = bisect.bisect_left(starts, m.end()) - 1  # last span starting before this match ends
        if i >= 0 and reach[i] > m.start():
            continue  # shares a character with a detected span: the merge already decided that text
        out.append(Span(m.start(), m.end(), labels[m.group()], PROPAGATE_DETECTOR, PROPAGATE_SCORE))
    return out
