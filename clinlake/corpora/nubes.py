"""NUBes / IULA+ reader: entities with gold negation and uncertainty derived from cue scopes (brat standoff)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clinlake.corpora.brat import BratDocument, read_brat_folder

# Entity types scored (annotation.conf "!Scopes" minus Phrase, OTHER and BODY, as in the NUBes papers' events).
ENTITY_TYPES = ("DISO", "PROC", "SUBS")
NEG_CUES = ("NegSynMarker", "NegLexMarker", "NegMorMarker")
UNC_CUES = ("UncertSynMarker", "UncertLexMarker")
SCOPE_RELATIONS = ("Scope", "DiscScope")


@dataclass(frozen=True)
class NubesEntity:
    """One scored entity and its gold assertion."""

    start: int
    end: int
    type: str
    text: str
    negated: bool
    uncertain: bool
    negation_cue: str | None = None
    uncertainty_cue: str | None = None


@dataclass(frozen=True)
class NubesDocument:
    """One NUBes file: its text (one sentence per line) and scored entities."""

    doc_id: str
    text: str
    entities: tuple[NubesEntity, ...]


def gold_entities(ann: BratDocument, types: tuple[str, ...] = ENTITY_TYPES) -> list[NubesEntity]:
    """Entities of the given types; gold negated/uncertain when inside the Scope/DiscScope argument of such a cue.

    annotation.conf: ``Scope Arg1:<cue> Arg2:Phrase|DISO|...``, so the scope argument is either a Phrase
    containing the entity or the entity itself; containment is by character offsets.
    """
    scopes: list[tuple[str, int, int, str]] = []
    for rel in ann.relations.values():
        if rel.type not in SCOPE_RELATIONS:
            continue
        cue, target = ann.entities.get(rel.arg1), ann.entities.get(rel.arg2)
        if cue is None or target is None:
            continue
        kind = "neg" if cue.type in NEG_CUES else "unc" if cue.type in UNC_CUES else None
        if kind:
            scopes.append((kind, target.start, target.end, cue.text))
    out = []
    for tb in sorted(ann.entities.values(), key=lambda t: (t.start, t.end)):
        if tb.type not in types:
            continue
        neg = [c for k, s, e, c in scopes if k == "neg" and s <= tb.start and tb.end <= e]
        unc = [c for k, s, e, c in scopes if k == "unc" and s <= tb.start and tb.end <= e]
        out.append(
            NubesEntity(tb.start, tb.end, tb.type, tb.text, bool(neg), bool(unc), neg[0] if neg else None, unc[0] if unc else None)
        )
    return out


def read_nubes(path: str | os.PathLike, samples: tuple[str, ...] | None = None) -> Iterator[NubesDocument]:
    """Yield NUBes documents under path (a sample folder, IULA+, or the corpus root with ``samples`` sub-folders)."""
    root = Path(path)
    folders = [root / s for s in samples] if samples else [root]
    for folder in folders:
        for doc_id, text, ann in read_brat_folder(folder):
            yield NubesDocument(doc_id, text, tuple(gold_entities(ann)))


DEV_SAMPLES = tuple(f"SAMPLE-00{i}" for i in range(1, 9))
