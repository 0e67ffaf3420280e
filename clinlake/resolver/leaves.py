"""Default leaves: a category header code -> the code a coder assigns when the text says no more.

Spanish CIE-10 names sit on 3- and 4-character categories ("Migraña" on G43), so a mention that matches one gets the
category, while coders assign a leaf (G43.909, "Migraine, unspecified, not intractable, without status migrainosus").
A header that the training annotations never used is replaced by:

1. its descendant the training annotations used most, when they used any: they show how this site codes the
   category (cocaine abuse F14.1 -> F14.10);
2. else the default child, level by level: the one child whose name adds "unspecified" (K26 -> K26.9, F40.0 ->
   F40.00), or failing that the one that adds "without" or "not intractable" (G43.90 -> G43.909); several such children
   (right / left / unspecified side) are settled by ICD-10-CM's habit of ending the unspecified one in 9, then 0,
   and otherwise the descent stops there.

Codes longer than `max_len` characters without the dot (ICD-10-CM's 7th character: initial encounter, sequela) are
never reached: coding corpora such as CodiEsp drop it and keep the placeholder X (S31.40XA is written S31.40X, the
one child of S31.40; the vocabulary loader writes such stems for the tabular XML, an Athena bundle has none). Plain
Python over one category's codes at a time, so a Spark job can run it per group (docs/resolution.md "Default
leaves").
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable, Mapping

from clinlake.vocab.loaders import dotted_icd10

UNSPECIFIED = re.compile(r"\bunspecified\b", re.IGNORECASE)
# ICD-10-CM's defaults when the record says nothing: "without" a complication, "not intractable". Not a bare "not":
# "not having achieved remission" (C91.10) is no default, and CodiEsp codes such leukaemias by the header C91.1.
DEFAULT_WORDS = re.compile(r"\bwithout\b|\bnot intractable\b", re.IGNORECASE)
RULE_TRAINING, RULE_UNSPECIFIED = "training", "unspecified"


def code_key(code: str) -> str:
    """The code without its dot, upper case: the key whose prefixes are the code's ancestors."""
    return code.replace(".", "").upper()


def _pick(children: list[str], names: Mapping[str, str], parent: str, pattern: re.Pattern) -> str | None:
    """The one child whose name has more `pattern` words than the parent's; several: the one ending in 9, else 0."""
    base = len(pattern.findall(names.get(parent) or ""))
    found = [c for c in children if len(pattern.findall(names.get(c) or "")) > base]
    if len(found) == 1:
        return found[0]
    for last in ("9", "0"):
        ending = [c for c in found if code_key(c).endswith(last)]
        if len(ending) == 1:
            return ending[0]
    return None


def default_leaves(concepts: Iterable[tuple[str, str | None]], counts: Mapping[str, float],
                   max_len: int = 6) -> dict[str, tuple[str, str]]:
    """header code -> (leaf code, rule) for every code with descendants among `concepts` ((code, English name)
    pairs) that maps elsewhere; `counts` are training annotations per code (absent = 0)."""
    names: dict[str, str | None] = {}
    longer: dict[str, str | None] = {}
    for c, n in concepts:
        if c and len(code_key(c)) <= max_len:
            names[c] = n
        elif c:
            # S31.40XA -> S31.40X: the 7th character dropped, the placeholder X kept, as coding corpora write it
            longer.setdefault(dotted_icd10(code_key(c)[:max_len]), n)
    for c, n in longer.items():
        names.setdefault(c, n)
    by_key = {code_key(c): c for c in names}
    children: dict[str, list[str]] = defaultdict(list)
    descendants: dict[str, list[str]] = defaultdict(list)
    for code in names:
        key = code_key(code)
        for i in range(3, len(key)):
            parent = by_key.get(key[:i])
            if parent is None:
                continue
            descendants[parent].append(code)
            if i == len(key) - 1:
                children[parent].append(code)
    out: dict[str, tuple[str, str]] = {}
    for header in descendants:
        if float(counts.get(header) or 0.0) > 0:
            continue   # the annotators use the header itself (CodiEsp's R51, G35: leaves in its ICD-10 edition)
        # the most annotated descendant; ties go to the shorter, then the smaller code
        best = min(descendants[header], key=lambda c: (-float(counts.get(c) or 0.0), len(c), c))
        if float(counts.get(best) or 0.0) > 0:
            out[header] = (best, RULE_TRAINING)
            continue
        cur = header
        while children.get(cur):
            kids = sorted(children[cur])
            placeholder = len(kids) == 1 and code_key(kids[0]).endswith("X") and kids[0] in longer
            nxt = (kids[0] if placeholder else _pick(kids, names, cur, UNSPECIFIED)
                   or _pick(kids, names, cur, DEFAULT_WORDS))
            if nxt is None:
                break
            cur = nxt
        if cur != header:
            out[header] = (cur, RULE_UNSPECIFIED)
    return out
