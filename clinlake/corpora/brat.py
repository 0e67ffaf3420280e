"""Brat standoff (.ann) parser: text-bound spans, relations, attributes, events, normalizations and notes.

Hand-written on purpose. The maintained PyPI candidates were checked: ``bratly`` (0.1.4) raises on any
line its label regex ``[\\w_/-]+`` rejects, *rewrites* annotations whose text length disagrees with the
offsets (it glues the next line on), pulls in pydantic and only globs one folder level; ``brat-peek`` and
``bratutils`` are unmaintained or corpus-specific. This project needs the opposite behaviour: never alter
an offset, keep every malformed line as a reported error, and check span text against the note. The
format itself is small (https://brat.nlplab.org/standoff.html), so ~200 lines of stdlib code are cheaper
than adapting a library.

Offsets are Python ``str`` indices (Unicode code points) into the text read as UTF-8 with newlines kept
as they are in the file (``newline=""``), which is how brat counts them; a discontinuous span is
``T1<TAB>TYPE s1 e1;s2 e2<TAB>text`` whose text column joins the fragment texts with one space.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

Fragment = tuple[int, int]


@dataclass(frozen=True)
class TextBound:
    """A ``T`` line: an entity (or event trigger) over one or more character fragments."""

    id: str
    type: str
    fragments: tuple[Fragment, ...]
    text: str

    @property
    def start(self) -> int:
        """First start offset (the span's left edge)."""
        return min(s for s, _ in self.fragments)

    @property
    def end(self) -> int:
        """Last end offset (the span's right edge)."""
        return max(e for _, e in self.fragments)


@dataclass(frozen=True)
class Relation:
    """An ``R`` line: a typed binary relation, e.g. NUBes ``Scope Arg1:T1 Arg2:T2``."""

    id: str
    type: str
    arg1_role: str
    arg1: str
    arg2_role: str
    arg2: str


@dataclass(frozen=True)
class Attribute:
    """An ``A``/``M`` line: a binary (value None) or multi-valued attribute of an annotation."""

    id: str
    type: str
    target: str
    value: str | None


@dataclass(frozen=True)
class Event:
    """An ``E`` line: a trigger plus (role, annotation id) arguments."""

    id: str
    type: str
    trigger: str
    args: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Normalization:
    """An ``N`` line: a link from an annotation to an external resource entry."""

    id: str
    type: str
    target: str
    resource: str
    entry: str
    text: str


@dataclass(frozen=True)
class Equivalence:
    """A ``*`` line: annotations declared equivalent."""

    type: str
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Note:
    """A ``#`` line: an AnnotatorNotes comment attached to another annotation."""

    id: str
    type: str
    target: str
    text: str


@dataclass(frozen=True)
class ParseError:
    """A line that could not be parsed; kept so callers can report it instead of losing it."""

    line_no: int
    line: str
    reason: str


@dataclass(frozen=True)
class SpanMismatch:
    """A text-bound annotation whose text column differs from the note text at its offsets."""

    ann_id: str
    type: str
    fragments: tuple[Fragment, ...]
    expected: str
    found: str


@dataclass
class BratDocument:
    """All annotations of one .ann file, keyed by id where brat has ids."""

    entities: dict[str, TextBound] = field(default_factory=dict)
    relations: dict[str, Relation] = field(default_factory=dict)
    attributes: dict[str, Attribute] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    normalizations: dict[str, Normalization] = field(default_factory=dict)
    equivalences: list[Equivalence] = field(default_factory=list)
    note_list: list[Note] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)

    @property
    def notes(self) -> dict[str, str]:
        """Annotation id -> note text (several notes on one id are joined with a newline)."""
        out: dict[str, str] = {}
        for n in self.note_list:
            out[n.target] = f"{out[n.target]}\n{n.text}" if n.target in out else n.text
        return out

    def code(self, ann_id: str) -> str | None:
        """The code an annotation carries in its AnnotatorNotes (CANTEMIST style), stripped, or None."""
        note = self.notes.get(ann_id)
        return note.strip() if note is not None else None


def _parse_fragments(spec: str) -> tuple[Fragment, ...]:
    """Parse ``s1 e1;s2 e2`` into ((s1, e1), (s2, e2)); raise ValueError when malformed."""
    frags = []
    for part in spec.split(";"):
        s, e = part.split()
        start, end = int(s), int(e)
        if start > end or start < 0:
            raise ValueError(f"bad fragment {part!r}")
        frags.append((start, end))
    if not frags:
        raise ValueError("no fragments")
    return tuple(frags)


def _role_ref(token: str) -> tuple[str, str]:
    """Split ``Role:T3`` into (role, id)."""
    role, _, ref = token.partition(":")
    if not role or not ref:
        raise ValueError(f"bad argument {token!r}")
    return role, ref


def _parse_line(doc: BratDocument, line: str) -> None:
    """Add one non-empty .ann line to doc; raise ValueError when it does not follow the format."""
    cols = line.split("\t")
    ann_id = cols[0]
    kind = ann_id[:1]
    if kind == "T":
        if len(cols) < 3:
            raise ValueError("text-bound annotation needs 3 tab-separated columns")
        type_, _, spec = cols[1].partition(" ")
        # the text column itself may contain tabs in theory; keep everything after the 2nd tab
        doc.entities[ann_id] = TextBound(ann_id, type_, _parse_fragments(spec), "\t".join(cols[2:]))
    elif kind == "R":
        parts = cols[1].split()
        if len(parts) != 3:
            raise ValueError("relation needs TYPE Arg1:X Arg2:Y")
        (r1, a1), (r2, a2) = _role_ref(parts[1]), _role_ref(parts[2])
        doc.relations[ann_id] = Relation(ann_id, parts[0], r1, a1, r2, a2)
    elif kind in ("A", "M"):
        parts = cols[1].split()
        if len(parts) not in (2, 3):
            raise ValueError("attribute needs TYPE TARGET [VALUE]")
        doc.attributes[ann_id] = Attribute(ann_id, parts[0], parts[1], parts[2] if len(parts) == 3 else None)
    elif kind == "E":
        parts = cols[1].split()
        type_, trigger = _role_ref(parts[0])
        doc.events[ann_id] = Event(ann_id, type_, trigger, tuple(_role_ref(p) for p in parts[1:]))
    elif kind == "N":
        parts = cols[1].split()
        if len(parts) != 3:
            raise ValueError("normalization needs TYPE TARGET RESOURCE:ENTRY")
        resource, entry = _role_ref(parts[2])
        text = cols[2] if len(cols) > 2 else ""
        doc.normalizations[ann_id] = Normalization(ann_id, parts[0], parts[1], resource, entry, text)
    elif kind == "*":
        parts = cols[1].split()
        doc.equivalences.append(Equivalence(parts[0], tuple(parts[1:])))
    elif kind == "#":
        parts = cols[1].split()
        if len(parts) != 2:
            raise ValueError("note needs TYPE TARGET")
        doc.note_list.append(Note(ann_id, parts[0], parts[1], cols[2] if len(cols) > 2 else ""))
    else:
        raise ValueError(f"unknown annotation kind {kind!r}")


def parse_ann(text: str) -> BratDocument:
    """Parse the content of a .ann file; malformed lines go to ``doc.errors`` (never raised, never fixed)."""
    doc = BratDocument()
    # split on "\n" only: str.splitlines() would also break on U+2028 etc. inside a text column
    for no, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        try:
            _parse_line(doc, line)
        except (ValueError, IndexError) as exc:
            doc.errors.append(ParseError(no, line, str(exc)))
    return doc


def covered_text(text: str, fragments: tuple[Fragment, ...]) -> str:
    """The text brat writes for these fragments: each fragment's text joined by one space."""
    return " ".join(text[s:e] for s, e in fragments)


def check_spans(text: str, ann: BratDocument) -> list[SpanMismatch]:
    """Text-bound annotations whose text column differs from the note text at their offsets."""
    out = []
    for tb in ann.entities.values():
        found = covered_text(text, tb.fragments) if tb.end <= len(text) else "<out of range>"
        if found != tb.text:
            out.append(SpanMismatch(tb.id, tb.type, tb.fragments, tb.text, found))
    return out


def read_text(path: str | os.PathLike) -> str:
    """Read a note as UTF-8 keeping ``\\r\\n`` and any BOM, because brat (and MEDDOCAN's offsets) count both."""
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def _files(path: Path, suffix: str, recursive: bool) -> list[Path]:
    """Files with the suffix under path, sorted for deterministic order."""
    pattern = f"**/*{suffix}" if recursive else f"*{suffix}"
    return sorted(p for p in path.glob(pattern) if p.is_file())


def read_brat_folder(path: str | os.PathLike, recursive: bool = True) -> Iterator[tuple[str, str, BratDocument]]:
    """Yield (doc_id, text, annotations) per .txt file; doc_id is the file stem, a missing .ann means none.

    Raises FileNotFoundError for a missing folder and ValueError when two files share a stem (doc ids
    must be unique across sub-folders for scoring to be meaningful).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"brat folder not found: {root}")
    seen: dict[str, Path] = {}
    for txt in _files(root, ".txt", recursive):
        doc_id = txt.stem
        if doc_id in seen:
            raise ValueError(f"duplicate document id {doc_id!r}: {seen[doc_id]} and {txt}")
        seen[doc_id] = txt
        ann_path = txt.with_suffix(".ann")
        ann = parse_ann(read_text(ann_path)) if ann_path.exists() else BratDocument()
        if ann.errors:
            log.warning("%s: %d malformed .ann lines", ann_path, len(ann.errors))
        yield doc_id, read_text(txt), ann


def read_ann_folder(path: str | os.PathLike, recursive: bool = True) -> dict[str, BratDocument]:
    """Read every .ann file under path (no texts needed), e.g. a submission folder: doc_id -> annotations."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"brat folder not found: {root}")
    out: dict[str, BratDocument] = {}
    for ann_path in _files(root, ".ann", recursive):
        if ann_path.stem in out:
            raise ValueError(f"duplicate document id {ann_path.stem!r} under {root}")
        out[ann_path.stem] = parse_ann(read_text(ann_path))
    return out


def format_ann(doc: BratDocument) -> str:
    """Serialise entities and notes (the parts submissions use) back to .ann text."""
    lines = []
    for tb in doc.entities.values():
        spec = ";".join(f"{s} {e}" for s, e in tb.fragments)
        lines.append(f"{tb.id}\t{tb.type} {spec}\t{tb.text}")
    for r in doc.relations.values():
        lines.append(f"{r.id}\t{r.type} {r.arg1_role}:{r.arg1} {r.arg2_role}:{r.arg2}")
    for a in doc.attributes.values():
        lines.append(f"{a.id}\t{a.type} {a.target}" + (f" {a.value}" if a.value is not None else ""))
    for n in doc.note_list:
        lines.append(f"{n.id}\t{n.type} {n.target}\t{n.text}")
    return "\n".join(lines) + ("\n" if lines else "")
