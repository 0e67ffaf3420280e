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
import re
from collections.abc import Iterable, Mapping

from clinlake.deid.rules import NON_NAME_WORD
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


# Same-line spaces only: a line break or any other character between two pieces means two mentions.
_JOIN_GAP = re.compile(r"[ \t]*")
# Labels whose model pieces are one mention when only spaces separate them. The NER pipeline's sentence detector
# ends a sentence at an abbreviation's period ("Avda. Gaspar Aguilar, 90", "NºCol: 28 28 12345"), so the model
# returns pieces that MEDDOCAN annotates as one span (dev: CALLE strict F1 0.69 -> 0.87).
DEFAULT_JOIN_LABELS: frozenset[str] = frozenset({"CALLE", "ID_TITULACION_PERSONAL_SANITARIO"})


def join_adjacent(spans: Iterable[Span], text: str, labels: Iterable[str] = DEFAULT_JOIN_LABELS) -> list[Span]:
    """Join consecutive disjoint spans of one of `labels` whose gap in `text` is only spaces or tabs.

    Meant for one detector's spans (the model's), before merge_spans; the joined span keeps the later piece's
    detector and the lower score. Spans of other labels, and overlapping spans, pass through unchanged.
    """
    wanted = frozenset(labels)
    out: list[Span] = []
    for span in sorted(spans, key=lambda x: (x.start, x.end)):
        last = out[-1] if out else None
        if (last is not None and span.label in wanted and span.label == last.label and last.end <= span.start
                and _JOIN_GAP.fullmatch(text, last.end, span.start)):
            out[-1] = Span(last.start, span.end, span.label, span.detector, min(last.score, span.score))
        else:
            out.append(span)
    return out


# A leading title is not part of a name in MEDDOCAN ("Dr. [Jorge Subirá]"); the tokenizer keeps "Dr.Jorge" as one
# token, so the model's span starts at the title.
_TITLE_PREFIX = re.compile(r"(?i:doctora|doctor|dra|dr|dña|dª)(?:\.[ \t]*|[ \t]+)(?=[A-ZÁÉÍÓÚÑÜ])")
NAME_LABELS: frozenset[str] = frozenset({"NOMBRE_PERSONAL_SANITARIO", "NOMBRE_SUJETO_ASISTENCIA"})


def strip_titles(spans: Iterable[Span], text: str, labels: Iterable[str] = NAME_LABELS) -> list[Span]:
    """Name spans of `labels` that start with a title ('Dr.', 'Dra ', 'Doctor ') start after it instead."""
    wanted = frozenset(labels)
    out = []
    for span in spans:
        m = _TITLE_PREFIX.match(text, span.start, span.end) if span.label in wanted else None
        if m and m.end() < span.end:
            span = Span(m.end(), span.end, span.label, span.detector, span.score, span.validated)
        out.append(span)
    return out


TRAILING_PERIOD_LABELS: frozenset[str] = frozenset({"CALLE"})


def strip_trailing_periods(spans: Iterable[Span], text: str,
                           labels: Iterable[str] = TRAILING_PERIOD_LABELS) -> list[Span]:
    """Spans of `labels` end before trailing periods and spaces: the model takes 'C/ Vitruvio, 2..' whole."""
    wanted = frozenset(labels)
    out = []
    for span in spans:
        end = span.end
        while span.label in wanted and span.start + 1 < end <= len(text) and text[end - 1] in ". ":
            end -= 1
        out.append(span if end == span.end else Span(span.start, end, span.label, span.detector, span.score))
    return out


_EDGE_PUNCT = ",;:"
_OPENERS = {")": "(", "]": "["}


def strip_edge_punctuation(spans: Iterable[Span], text: str) -> list[Span]:
    """Spans end before a trailing comma, semicolon or colon and before a ')' or ']' they did not open (the
    tokenizer keeps "EE.UU.)," as one token; MEDDOCAN train has 1 such ending in 11,333 spans)."""
    out = []
    for span in spans:
        end = span.end
        while end - span.start > 1 and end <= len(text):
            last = text[end - 1]
            opener = _OPENERS.get(last)
            if not (last in _EDGE_PUNCT or last.isspace() or (opener and text.find(opener, span.start, end) < 0)):
                break
            end -= 1
        out.append(span if end == span.end else Span(span.start, end, span.label, span.detector, span.score))
    return out


PHONE_LABELS: frozenset[str] = frozenset({"NUMERO_TELEFONO", "NUMERO_FAX"})
_LEADING_PLUS = re.compile(r"\+[+\s]*")


def strip_leading_plus(spans: Iterable[Span], text: str, labels: Iterable[str] = PHONE_LABELS) -> list[Span]:
    """Phone and fax spans start after the "+" of an international prefix and the spaces after it ("+34 945 ..."
    is "34 945 ..."): none of MEDDOCAN train's 73 phone and fax spans starts with it, nor does the phone rule's."""
    wanted, out = frozenset(labels), []
    for span in spans:
        # the match stops before the span's last character, so a span is never emptied
        m = _LEADING_PLUS.match(text, span.start, span.end - 1) if span.label in wanted else None
        out.append(Span(m.end(), span.end, span.label, span.detector, span.score) if m else span)
    return out


# A number followed by a dose, volume, size or duration unit is a quantity ("cefepime 2000 mg", "1500-2000 ml/día"),
# never a date: MEDDOCAN train has no such FECHAS span, the model tags a few.
_NUMBER = re.compile(r"[\d.,/-]+")
_UNIT_AFTER = re.compile(r"[ \t]*(?:mg|mcg|µg|ug|g|kg|ml|mL|l|L|cc|UI|U|mmol|mEq|cm|mm|m|%|h|horas|min)\b")


def drop_quantities(spans: Iterable[Span], text: str) -> list[Span]:
    """Drop FECHAS spans that are a bare number followed by a unit."""
    return [s for s in spans
            if not (s.label == "FECHAS" and _NUMBER.fullmatch(text, s.start, s.end) and _UNIT_AFTER.match(text, s.end))]


# MEDDOCAN annotates each relative on its own ("su [madre] y su [padre]"); the model often takes the list whole.
_RELATIVE_LIST_SEP = re.compile(r"\s*[,;()]?\s*\b(?:y|e|como)\s+(?:(?:sus?|la|el|los|las)\s+)?|\s*[,;()]\s*")
RELATIVE_LABELS: frozenset[str] = frozenset({"FAMILIARES_SUJETO_ASISTENCIA"})


def split_relatives(spans: Iterable[Span], text: str, labels: Iterable[str] = RELATIVE_LABELS) -> list[Span]:
    """Spans of `labels` cut at 'y su', 'como su', commas and parentheses into one span per relative."""
    wanted = frozenset(labels)
    out: list[Span] = []
    for span in spans:
        if span.label not in wanted:
            out.append(span)
            continue
        pos = span.start
        for m in _RELATIVE_LIST_SEP.finditer(text, span.start, span.end):
            if m.start() > pos:
                out.append(Span(pos, m.start(), span.label, span.detector, span.score))
            pos = max(pos, m.end())
        if pos < span.end:
            out.append(Span(pos, span.end, span.label, span.detector, span.score))
    return out


# "médico de familia", "medicina familiar": a family doctor, not a relative. The model tags "familia" there as a
# relative (MEDDOCAN dev 6 times); train annotates its one occurrence as nothing.
_FAMILY_DOCTOR_BEFORE = re.compile(r"(?i:\b(?:m[ée]dic[oa]s?|medicina|equipo|consulta)\s+(?:de\s+)?)$")
_FAMILY_WORD = re.compile(r"(?i:familia|familiar)")


def drop_family_doctors(spans: Iterable[Span], text: str, labels: Iterable[str] = RELATIVE_LABELS) -> list[Span]:
    """Drop spans of `labels` that are the 'familia' of 'médico de familia' (or 'familiar' of 'medicina familiar')."""
    wanted = frozenset(labels)
    return [s for s in spans
            if not (s.label in wanted and _FAMILY_WORD.fullmatch(text, s.start, s.end)
                    and _FAMILY_DOCTOR_BEFORE.search(text, max(0, s.start - 40), s.start))]


def cut_names_at_non_names(spans: Iterable[Span], text: str, labels: Iterable[str] = NAME_LABELS) -> list[Span]:
    """A name that runs on into a word no MEDDOCAN train name holds ("Alberto Palacios Hernández Residente", "...
    Dorado Servicio de Urología"; rules.NON_NAME_WORD, the signature-line list of the header rule) ends before it.

    The rest stays a span of its own with the same label, so that its characters stay covered: on MEDDOCAN dev each
    such rest was PHI of another type ("Residente de 5° año", "Institut de Medicina Legal de Catalunya").
    """
    wanted, out = frozenset(labels), []
    for s in spans:
        first = text.find(" ", s.start, s.end)  # never cut at the first word
        hit = NON_NAME_WORD.search(text, first, s.end) if s.label in wanted and first > 0 else None
        end = s.start + len(text[s.start:hit.start()].rstrip(" \t\n,.;:-")) if hit else s.end
        if hit and end > s.start:
            out += [Span(s.start, end, s.label, s.detector, s.score),
                    Span(hit.start(), s.end, s.label, s.detector, s.score)]
        else:
            out.append(s)
    return out


def tidy_model_spans(spans: Iterable[Span], text: str, join_labels: Iterable[str] = DEFAULT_JOIN_LABELS) -> list[Span]:
    """A NER model's spans in MEDDOCAN's span conventions, before merge_spans: pieces joined, titles, trailing
    periods, unopened brackets and a phone's "+" left out, quantities not dates, lists of relatives cut, a family
    doctor not a relative, a name ended before a word no name holds (docs/deid.md "Model spans")."""
    joined = join_adjacent(spans, text, join_labels)
    tidied = strip_leading_plus(strip_edge_punctuation(strip_trailing_periods(strip_titles(joined, text), text), text),
                                text)
    return cut_names_at_non_names(drop_family_doctors(split_relatives(drop_quantities(tidied, text), text), text),
                                  text)


def has_overlaps(spans: Iterable[Span]) -> bool:
    """True when any two spans share a character."""
    ordered = sorted(spans)
    return any(a.end > b.start for a, b in zip(ordered, ordered[1:]))
