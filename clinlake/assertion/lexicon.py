"""Trigger lexicons for the ConText algorithm: bundled upstream lists plus curated additions, one token trie per group."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

GROUPS = ("negation", "certainty", "temporality", "experiencer")
# values that are neither a modifier nor a scope boundary
PSEUDO, TERMINATE, DROP = "pseudo", "terminate", "drop"
VALUES = {
    "negation": {"negated"},
    "certainty": {"possible", "probable"},
    "temporality": {"historical", "hypothetical"},
    "experiencer": {"family", "other"},
}
DIRECTIONS = {"forward", "backward", "both"}
LANGS = ("es", "en")
# phrases whose accented spelling is a different word ("sí" = yes, "si" = if): matched only without accent
ACCENT_STRICT = frozenset({"si"})

# context-en (pyConTextNLP-style) tags -> (value, direction) per file
_CONTEXT_EN_FILES = {
    "negex_triggers.txt": {
        "PREN": ("negation", "negated", "forward"),
        "POST": ("negation", "negated", "backward"),
        "PREP": ("certainty", "possible", "forward"),
        "POSP": ("certainty", "possible", "backward"),
        "PSEU": ("negation", PSEUDO, "forward"),
        "CONJ": ("negation", TERMINATE, "forward"),
    },
    "experiencer_triggers.txt": {
        "PREN": ("experiencer", "family", "forward"),
        "PSEU": ("experiencer", PSEUDO, "forward"),
        "CONJ": ("experiencer", TERMINATE, "forward"),
    },
    "history_triggers.txt": {
        "PREN": ("temporality", "historical", "forward"),
        "ONEW": ("temporality", "historical", "forward"),
        "PSEU": ("temporality", PSEUDO, "forward"),
        "CONJ": ("temporality", TERMINATE, "forward"),
    },
    "hypothetical_triggers.txt": {
        "PREN": ("temporality", "hypothetical", "forward"),
        "PSEU": ("temporality", PSEUDO, "forward"),
        "CONJ": ("temporality", TERMINATE, "forward"),
    },
}

# NegEx-MES (spa/without_lemma) file -> (group, value, direction)
_NEGEX_MES_FILES = {
    "neg-phrases.txt": ("negation", "negated", "forward"),
    "post-neg-phrases.txt": ("negation", "negated", "backward"),
    "pseudo-neg-phrases.txt": ("negation", PSEUDO, "forward"),
    "conjunctions.txt": ("negation", TERMINATE, "forward"),
}


@dataclass(frozen=True)
class Rule:
    """One trigger phrase of one group: what it sets (or pseudo/terminate) and which way its scope runs."""

    phrase: str
    group: str
    value: str
    direction: str


def _fold_char(ch: str) -> str:
    """Lower-case, accent-free form of one character, always exactly one character long."""
    low = ch.lower()
    if len(low) != 1:
        low = ch
    base = unicodedata.normalize("NFD", low)[0]
    return base


# Precomputed for the BMP Latin range (fast path); other characters are folded on the fly.
_FOLD_TABLE = {cp: _fold_char(chr(cp)) for cp in range(0x41, 0x250) if _fold_char(chr(cp)) != chr(cp)}


def fold(text: str) -> str:
    """Case- and accent-fold text keeping its length, so offsets into the result are offsets into text."""
    out = text.translate(_FOLD_TABLE)
    if out.isascii():
        return out
    return "".join(c if ord(c) < 0x250 else _fold_char(c) for c in out)


# Word tokens and single punctuation marks; phrases and sentences are tokenised the same way.
TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def phrase_tokens(phrase: str) -> tuple[str, ...]:
    """Folded tokens of a trigger phrase."""
    return tuple(TOKEN_RE.findall(fold(phrase)))


def _read_lines(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a bundled list."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith((":", "#")):
            lines.append(raw.rstrip("\n"))
    return lines


def lexicon_dir() -> Path:
    """Folder of the bundled lexicons (inside the installed package)."""
    return Path(str(resources.files("clinlake.assertion") / "lexicons"))


def _upstream_rules(lang: str, root: Path) -> list[Rule]:
    """Rules from the unmodified upstream lists: NegEx-MES for Spanish, ConText for English."""
    rules: list[Rule] = []
    if lang == "es":
        for name, (group, value, direction) in _NEGEX_MES_FILES.items():
            for line in _read_lines(root / "negex-mes" / name):
                rules.append(Rule(line.strip(), group, value, direction))
    else:
        for name, tags in _CONTEXT_EN_FILES.items():
            for line in _read_lines(root / "context-en" / name):
                cols = [c for c in line.split("\t") if c.strip()]
                if len(cols) < 2:
                    continue
                tag = cols[-1].strip().strip("[]")
                if tag in tags:
                    group, value, direction = tags[tag]
                    rules.append(Rule(cols[0].strip(), group, value, direction))
    return rules


def _curated_rules(path: Path) -> list[Rule]:
    """Rules from a curated TSV (phrase, group, value, direction); validated so a typo fails loudly."""
    rules = []
    for line in _read_lines(path):
        cols = line.split("\t")
        if len(cols) != 4:
            raise ValueError(f"{path.name}: expected 4 tab-separated columns: {line!r}")
        phrase, group, value, direction = (c.strip() for c in cols)
        if group not in GROUPS or direction not in DIRECTIONS:
            raise ValueError(f"{path.name}: bad group/direction in {line!r}")
        if value not in VALUES[group] | {PSEUDO, TERMINATE, DROP}:
            raise ValueError(f"{path.name}: bad value {value!r} for group {group}")
        rules.append(Rule(phrase, group, value, direction))
    return rules


def load_rules(lang: str, root: Path | None = None) -> list[Rule]:
    """All rules for a language: upstream lists, then curated rows (a curated row replaces upstream rows of the same phrase+group)."""
    if lang not in LANGS:
        raise ValueError(f"unsupported language {lang!r}; expected one of {LANGS}")
    root = root or lexicon_dir()
    merged: dict[tuple[str, str], list[Rule]] = {}
    for rule in _upstream_rules(lang, root):
        merged.setdefault((fold(" ".join(rule.phrase.split())), rule.group), []).append(rule)
    curated: dict[tuple[str, str], list[Rule]] = {}
    for rule in _curated_rules(root / f"{lang}_curated.tsv"):
        curated.setdefault((fold(" ".join(rule.phrase.split())), rule.group), []).append(rule)
    merged.update(curated)
    out = []
    for rules in merged.values():
        seen = set()
        for r in rules:
            if r.value != DROP and (r.value, r.direction) not in seen:
                seen.add((r.value, r.direction))
                out.append(r)
    return out


_END = ""  # trie key marking "a phrase ends here" (never a token)


@dataclass(frozen=True)
class GroupMatcher:
    """A token trie of one group's phrases; a terminal node holds the rules of the phrase ending there."""

    group: str
    trie: dict

    def finditer(self, tokens: list[str], starts: list[int], ends: list[int]):
        """Yield (char_start, char_end, rules) for leftmost-longest, non-overlapping phrase matches."""
        i, n = 0, len(tokens)
        while i < n:
            node, j, hit = self.trie, i, None
            while j < n:
                node = node.get(tokens[j])
                if node is None:
                    break
                j += 1
                if _END in node:
                    hit = (j, node[_END])
            if hit is None:
                i += 1
            else:
                yield starts[i], ends[hit[0] - 1], hit[1]
                i = hit[0]


def _build(group: str, rules: list[Rule]) -> GroupMatcher:
    """Build the group's trie; longest match wins, so pseudo-triggers and long cues beat their sub-phrases."""
    trie: dict = {}
    for r in rules:
        toks = phrase_tokens(r.phrase)
        if not toks:
            continue
        node = trie
        for t in toks:
            node = node.setdefault(t, {})
        node[_END] = node.get(_END, ()) + (r,)
    return GroupMatcher(group, trie)


@lru_cache(maxsize=None)
def matchers(lang: str) -> tuple[GroupMatcher, ...]:
    """The matchers of a language, one per group (cached per process, i.e. built once per executor)."""
    rules = load_rules(lang)
    return tuple(_build(g, [r for r in rules if r.group == g]) for g in GROUPS)
