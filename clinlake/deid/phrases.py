"""A PHI phrase list: known institution, hospital and place names matched as whole words (detector rule:phrases).

Hospitals keep such lists (their own centres, the region's municipalities, the companies in their supply
records); the shipped sample is built from MEDDOCAN train by `scripts/make_deid_phrases.py`, keeping a phrase only
where the annotators marked it with its label in at least half of its occurrences in the training texts.

File format: UTF-8 TSV with a header `phrase<TAB>label`, one phrase per line; matching is case-sensitive and on
word boundaries, the longest phrase first at each position.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import re
from collections.abc import Iterable

from clinlake.deid.types import Span
from clinlake.errors import UserError

Phrase = tuple[str, str]  # (phrase, label)
DETECTOR = "rule:phrases"
SCORE = 0.9


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


@functools.lru_cache(maxsize=8)
def _compiled(phrases: tuple[Phrase, ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    """One alternation, longest phrase first (Python's re takes the first alternative that matches)."""
    labels = dict(phrases)  # a phrase listed under two labels keeps the last (sorted) one
    alternation = "|".join(re.escape(p) for p in sorted(labels, key=lambda p: (-len(p), p)))
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)"), labels


def find_phrases(text: str, phrases: tuple[Phrase, ...]) -> list[Span]:
    """Every non-overlapping whole-word occurrence of a listed phrase, as a span of its label."""
    if not phrases or not text:
        return []
    pattern, labels = _compiled(phrases)
    return [Span(m.start(), m.end(), labels[m.group()], DETECTOR, SCORE) for m in pattern.finditer(text)]
