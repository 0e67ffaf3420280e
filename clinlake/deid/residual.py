"""Regexes for identifiers that must never remain in de-identified text, and the GX suite built from them.

The patterns run in two engines: Python ``re`` (tests, local checks) and Java regex (Spark ``rlike``, which Great
Expectations uses on Spark), so they use only syntax both share (no named groups, fixed-width look-behinds).
They are tight on purpose: they do not fire on the default surrogates (e-mails and URLs on the reserved
example.com/.org/.net domains, phones in the unassigned 5xx range, masks like ``[TELEFONO]``) nor on clinical
numbers (doses, lab values, blood pressure, dilutions, decimals).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

RESIDUAL_PATTERNS: dict[str, str] = {
    # local@domain.tld, except the reserved example domains used by surrogates
    "email": r"[A-Za-z0-9._%+-]+@(?!example\.(?:com|org|net)\b)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    # Spanish phone: optional +34/0034, 9 digits starting 6/7/8/9, groups split by single space, dot or dash
    "phone": r"(?<![\w.,/+-])(?:(?:\+|00)34[ .-]?)?[6789](?:[ .-]?[0-9]){8}(?![0-9]|[.,][0-9])",
    # DNI (8 digits) or NIE (X/Y/Z + 7 digits) and one of the 23 check letters
    "dni_nie": r"(?<![\w-])(?:[XYZ]-?[0-9]{7}|[0-9]{8})[- ]?[TRWAGMYFPDXBNJZSQVHLCKE](?![\w])",
    # social security number: NASS/NSS cue + digits, or the 2-8-2 grouped shape
    "nss": r"(?i)(?:\bN\.?A\.?S\.?S\b|\bNSS\b|seguridad social)[^0-9\n]{0,12}[0-9]{2}[ /-]?[0-9]{6,8}"
    r"|(?<![0-9/.,-])[0-9]{2}[ /-][0-9]{8}[ /-][0-9]{2}(?![0-9])",
    # IBAN: country, 2 check digits, 3..8 groups of 4 (ES: 5 groups of 4 digits after the check digits)
    "iban": r"\b[A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){3,7}(?:[ -]?[A-Z0-9]{1,4})?\b",
    # http(s)/ftp/www URL, except the reserved example domains
    "url": r"(?i)(?:\b(?:https?|ftp)://|\bwww\.)(?!(?:www\.)?example\.(?:com|org|net)\b)[^\s<>\"']+",
}

COMPILED: dict[str, re.Pattern[str]] = {name: re.compile(p) for name, p in RESIDUAL_PATTERNS.items()}


def find_residual(text: str) -> dict[str, list[str]]:
    """Pattern name -> matches of that pattern in text (empty dict when clean)."""
    out: dict[str, list[str]] = {}
    for name, rx in COMPILED.items():
        hits = [m.group(0) for m in rx.finditer(text or "")]
        if hits:
            out[name] = hits
    return out


def expectation_suite(text_column: str = "note_text", id_column: str = "note_id") -> dict:
    """The GX 1.x suite (as a dict) for note_deid: no residual identifier pattern, note id never null."""
    expectations = [
        {
            "type": "expect_column_values_to_not_match_regex",
            "kwargs": {"column": text_column, "regex": regex},
            "meta": {"residual_pattern": name},
        }
        for name, regex in RESIDUAL_PATTERNS.items()
    ]
    expectations.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": id_column}, "meta": {}})
    return {
        "name": "note_deid",
        "expectations": expectations,
        "meta": {"source": "clinlake/deid/residual.py (regenerate with write_expectation_suite)"},
    }


def write_expectation_suite(path: str | Path) -> None:
    """Write expectations/note_deid.json from RESIDUAL_PATTERNS (the test checks the file is up to date)."""
    Path(path).write_text(json.dumps(expectation_suite(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
