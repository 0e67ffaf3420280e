"""ConText-style assertion: negation, certainty, temporality and experiencer of spans in a note.

For each sentence, every group (negation, certainty, temporality, experiencer) is matched with one token trie.
A trigger's scope runs forward and/or backward from it, bounded by the sentence, the group's termination
terms and a window of ``max_scope`` word tokens; pseudo-triggers are matched by the same trie (longest
wins) and then ignored, so "sin cambios" never negates. Inside a group the closest trigger covering a
span decides. Negation and certainty compete: a trigger contained in a longer trigger of the other group
is dropped ("no se descarta" is uncertainty, not negation), and when both cover a span the closer wins.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from clinlake.assertion.lexicon import ACCENT_STRICT, LANGS, PSEUDO, TERMINATE, TOKEN_RE, fold, matchers

CERTAINTY_VALUES = ("certain", "probable", "possible")
TEMPORALITY_VALUES = ("current", "historical", "hypothetical")
EXPERIENCER_VALUES = ("patient", "family", "other")
DEFAULTS = {"negation": False, "certainty": "certain", "temporality": "current", "experiencer": "patient"}

# Word tokens count the scope window; sentence ends are newlines or . ! ? followed by space.
_TOKEN = re.compile(r"\w+")
_SENT_END = re.compile(r"\n+|(?<=[.!?])\s+")
DEFAULT_MAX_SCOPE = 12


@dataclass(frozen=True)
class Assertion:
    """Context of one span: the four modifiers plus the trigger text that decided each (None = default)."""

    negated: bool = False
    certainty: str = "certain"
    experiencer: str = "patient"
    temporality: str = "current"
    negation_trigger: str | None = None
    certainty_trigger: str | None = None
    experiencer_trigger: str | None = None
    temporality_trigger: str | None = None

    @property
    def term_exists(self) -> str:
        """OMOP NOTE_NLP.term_exists."""
        return term_exists(self)

    @property
    def term_temporal(self) -> str:
        """OMOP NOTE_NLP.term_temporal."""
        return term_temporal(self)

    @property
    def term_modifiers(self) -> str:
        """OMOP NOTE_NLP.term_modifiers."""
        return term_modifiers(self)


def term_exists(a: Assertion) -> str:
    """'N' when negated, about someone else, hypothetical or only possible; otherwise 'Y'."""
    absent = a.negated or a.experiencer != "patient" or a.temporality == "hypothetical" or a.certainty == "possible"
    return "N" if absent else "Y"


def term_temporal(a: Assertion) -> str:
    """OMOP term_temporal: the temporality value (current, historical or hypothetical)."""
    return a.temporality


def term_modifiers(a: Assertion) -> str:
    """All four modifiers as ``negated=true,certainty=possible,experiencer=family,temporality=historical``."""
    return (
        f"negated={'true' if a.negated else 'false'},certainty={a.certainty},"
        f"experiencer={a.experiencer},temporality={a.temporality}"
    )


@dataclass(frozen=True)
class _Trigger:
    group: str
    value: str
    direction: str
    start: int
    end: int
    text: str


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: split at newlines and at . ! ? followed by whitespace."""
    bounds, pos = [], 0
    for m in _SENT_END.finditer(text):
        if m.start() > pos:
            bounds.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        bounds.append((pos, len(text)))
    return bounds or [(0, len(text))]


def _find_triggers(folded: str, original: str, start: int, end: int, lang: str) -> tuple[list[_Trigger], list[_Trigger]]:
    """Modifier triggers and termination triggers of one sentence (pseudo-triggers already dropped)."""
    mods: list[_Trigger] = []
    terms: list[_Trigger] = []
    toks, starts, ends = [], [], []
    for m in TOKEN_RE.finditer(folded, start, end):
        toks.append(m.group())
        starts.append(m.start())
        ends.append(m.end())
    for gm in matchers(lang):
        for s, e, rules in gm.finditer(toks, starts, ends):
            for r in rules:
                if r.phrase in ACCENT_STRICT and original[s:e].lower() != r.phrase:
                    continue  # "sí" (yes) is not "si" (if): folding would confuse them
                t = _Trigger(gm.group, r.value, r.direction, s, e, original[s:e])
                if r.value == TERMINATE:
                    terms.append(t)
                elif r.value != PSEUDO:
                    mods.append(t)
    # a negation cue inside a longer certainty cue (or the reverse) belongs to the longer one
    polar = [t for t in mods if t.group in ("negation", "certainty")]
    drop = set()
    for a in polar:
        for b in polar:
            if a.group != b.group and b.start <= a.start and a.end <= b.end and (b.end - b.start) > (a.end - a.start):
                drop.add(id(a))
    if drop:
        mods = [t for t in mods if id(t) not in drop]
    return mods, terms


class _NoteContext:
    """Sentence split, token index and triggers of one note, computed once and shared by all its spans."""

    def __init__(self, text: str, lang: str, max_scope: int):
        self.text = text
        self.lang = lang
        self.max_scope = max_scope
        self.folded = fold(text)
        self.sents = sentence_bounds(text)
        self.sent_starts = [s for s, _ in self.sents]
        self.tokens = [m.start() for m in _TOKEN.finditer(self.folded)]
        self._cache: dict[int, tuple[list[_Trigger], list[_Trigger]]] = {}

    def triggers(self, si: int) -> tuple[list[_Trigger], list[_Trigger]]:
        """Triggers of sentence si, matched lazily (notes with few spans only pay for their sentences)."""
        if si not in self._cache:
            s, e = self.sents[si]
            self._cache[si] = _find_triggers(self.folded, self.text, s, e, self.lang)
        return self._cache[si]

    def ntokens(self, a: int, b: int) -> int:
        """Word tokens starting in [a, b)."""
        return bisect_left(self.tokens, b) - bisect_left(self.tokens, a)

    def assert_span(self, start: int, end: int) -> Assertion:
        """Context of one span."""
        si = max(0, bisect_right(self.sent_starts, start) - 1)
        mods, terms = self.triggers(si)
        best: dict[str, tuple[int, _Trigger]] = {}
        for t in mods:
            if t.start >= start and t.end <= end:
                continue  # a cue inside the span itself does not modify it
            fwd, bwd = t.direction in ("forward", "both"), t.direction in ("backward", "both")
            if (fwd and t.start < start < t.end) or (bwd and t.start < end < t.end):
                dist = 0  # a multi-word cue running into the span ("no focal" + "focal deficits")
            elif t.end <= start and fwd:
                stop = min((x.start for x in terms if x.group == t.group and t.end <= x.start <= start), default=None)
                if stop is not None:
                    continue
                dist = self.ntokens(t.end, start)
            elif t.start >= end and bwd:
                stop = max((x.end for x in terms if x.group == t.group and end <= x.end <= t.start), default=None)
                if stop is not None:
                    continue
                dist = self.ntokens(end, t.start)
            else:
                continue
            if dist > self.max_scope:
                continue
            cur = best.get(t.group)
            if cur is None or dist < cur[0]:
                best[t.group] = (dist, t)
        neg, cert = best.get("negation"), best.get("certainty")
        if neg and cert:
            if neg[0] < cert[0]:
                cert = None
            elif cert[0] < neg[0]:
                neg = None
        temp, exp = best.get("temporality"), best.get("experiencer")
        return Assertion(
            negated=neg is not None,
            certainty=cert[1].value if cert else "certain",
            experiencer=exp[1].value if exp else "patient",
            temporality=temp[1].value if temp else "current",
            negation_trigger=neg[1].text if neg else None,
            certainty_trigger=cert[1].text if cert else None,
            experiencer_trigger=exp[1].text if exp else None,
            temporality_trigger=temp[1].text if temp else None,
        )


def assert_spans(
    text: str, spans: list[tuple[int, int]], lang: str = "es", max_scope: int = DEFAULT_MAX_SCOPE
) -> list[Assertion]:
    """Assertion of each (start, end) span of text, in order; lang is 'es' or 'en'."""
    if not spans:
        return []
    lang = (lang or "").lower()[:2]
    if lang not in LANGS:
        raise ValueError(f"unsupported language {lang!r}; expected one of {LANGS}")
    ctx = _NoteContext(text, lang, max_scope)
    return [ctx.assert_span(int(s), int(e)) for s, e in spans]
