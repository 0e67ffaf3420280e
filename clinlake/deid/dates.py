"""Parse Spanish date expressions and shift them by whole days, keeping the original surface format.

A shift replaces only the day, month and year parts of the expression (``"3 de marzo de 2016"`` keeps ``"de"``,
case and spacing; ``"03/03/2016"`` stays ``dd/mm/yyyy``; ``"3-3-16"`` stays ``d-m-yy``). Expressions that lack a
day are shifted through an anchor (the 15th of the month, 2 July of the year) so a patient's month/year dates move
consistently with their full dates; intervals between full dates of one patient are kept exactly.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from clinlake.deid.rules import _MON_ANY, _MONTH, MONTH_ABBR, MONTH_NUMBER, MONTHS

I = re.IGNORECASE  # noqa: E741
TWO_DIGIT_YEAR_PIVOT = 30  # "16" -> 2016, "46" -> 1946; fixed so a rerun next year gives the same output
_SEP = r"\s?[/.-]\s?"

# each form: (regex over the whole expression, granularity); named groups d, m (numeric), mon (name), y
_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?P<d>\d{1,2})" + _SEP + r"(?P<m>\d{1,2})" + _SEP + r"(?P<y>\d{4}|\d{2})"), "day"),
    (re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"), "day"),
    (re.compile(r"(?P<m>\d{2})/(?P<y>\d{4})"), "month"),
    (re.compile(r"(?P<d>\d{1,2})(?:\.?º)?\s+de\s+(?P<mon>" + _MONTH + r")(?:\s+(?:de|del)\s+(?:año\s+)?(?P<y>\d{4}))?",
                I), "day"),  # fmt: skip
    (re.compile(r"(?P<d>\d{1,2})(?:\s+|\s?[-/]\s?)(?P<mon>" + _MON_ANY + r")\.?(?:\s+|\s?[-/]\s?)(?P<y>\d{4}|\d{2})",
                I), "day"),  # fmt: skip
    (re.compile(r"(?P<mon>" + _MONTH + r")(?:\s+(?:de|del)(?:\s+año)?)?\s+(?P<y>\d{4})", I), "month"),
    (re.compile(r"(?P<mon>" + _MONTH + r")-(?P<y>\d{4}|\d{2})", I), "month"),
    (re.compile(r"año\s+(?P<y>\d{4})", I), "year"),
    (re.compile(r"(?P<y>\d{4})"), "year"),
    (re.compile(r"(?P<mon>" + _MONTH + r")", I), "month"),
)


@dataclass(frozen=True)
class ParsedDate:
    """A date expression: the match over it, its anchor date and what it states (day, month or year)."""

    match: re.Match[str]
    date: dt.date
    granularity: str  # day | month | year
    has_year: bool


def _year(text: str) -> int:
    """Four-digit year as is; two digits through the fixed pivot."""
    y = int(text)
    if len(text) == 2:
        y += 2000 if y < TWO_DIGIT_YEAR_PIVOT else 1900
    return y


def parse_date(text: str) -> ParsedDate | None:
    """Parse a whole date expression (as found by rules.find_dates); None when unknown or impossible."""
    t = text.strip()
    for rx, gran in _FORMS:
        m = rx.fullmatch(t)
        if m is None:
            continue
        g = m.groupdict()
        has_year = g.get("y") is not None
        year = _year(g["y"]) if has_year else 2000  # 2000 is a leap year, so "29 de febrero" parses
        if g.get("mon"):
            month = MONTH_NUMBER.get(g["mon"].lower())
            if month is None:
                return None
        elif g.get("m"):
            month = int(g["m"])
        else:
            month = 7
        day = int(g["d"]) if g.get("d") else (15 if gran == "month" else 2)
        try:
            return ParsedDate(m, dt.date(year, month, day), gran, has_year)
        except ValueError:
            return None
    return None


def _month_name(new_month: int, original: str) -> str:
    """Spanish month name for new_month in the original's case and length (full name or 3-letter abbreviation)."""
    low = original.lower()
    full = low in MONTHS or low == "setiembre"
    name = MONTHS[new_month - 1] if full else MONTH_ABBR[new_month - 1]
    if original.isupper():
        return name.upper()
    if original[:1].isupper():
        return name.capitalize()
    return name


def _num(value: int, original: str) -> str:
    """value with the original's zero padding (width kept when the original had a leading zero)."""
    return str(value).zfill(len(original)) if original.startswith("0") else str(value)


def shift_date_text(text: str, days: int) -> str | None:
    """The expression with its date moved by ``days``, same format; None when it cannot be parsed."""
    parsed = parse_date(text)
    if parsed is None:
        return None
    try:
        new = parsed.date + dt.timedelta(days=days)
    except OverflowError:
        return None
    m = parsed.match
    g = m.groupdict()
    # numeric day/month are padded alike when both were written with two digits ("03/03" or "12/11")
    pad = g.get("d") is not None and g.get("m") is not None and len(g["d"]) == 2 and len(g["m"]) == 2
    repl: dict[str, str] = {}
    if g.get("d") is not None:
        repl["d"] = str(new.day).zfill(2) if pad else _num(new.day, g["d"])
    if g.get("m") is not None:
        repl["m"] = str(new.month).zfill(2) if pad or len(g["m"]) == 2 else str(new.month)
    if g.get("mon") is not None:
        repl["mon"] = _month_name(new.month, g["mon"])
    if g.get("y") is not None:
        repl["y"] = str(new.year) if len(g["y"]) == 4 else str(new.year % 100).zfill(2)
    stripped = text.strip()
    lead = text[: len(text) - len(text.lstrip())]
    out, pos = [], 0
    for name in sorted(repl, key=lambda n: m.start(n)):
        out.append(stripped[pos : m.start(name)])
        out.append(repl[name])
        pos = m.end(name)
    out.append(stripped[pos:])
    return lead + "".join(out) + text[len(lead) + len(stripped) :]
