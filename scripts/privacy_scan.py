"""Privacy scan: search logs, exceptions, MLflow stores, GX results / Data Docs and exports for note text and PHI.

python scripts/privacy_scan.py --phi sample/corpora/meddocan --notes sample/notes/notes.jsonl PATH [PATH ...]

Needles:
  * PHI values: the gold PHI strings of the seeded notes (brat .ann files, MEDDOCAN). A value counts only when it is
    specific enough that finding it means a leak, not a coincidence (rule `usable_phi`): at least MIN_CHARS (4)
    characters after whitespace normalisation; not of a type that is a common word by nature (sex, age, country,
    profession); not a plain number shorter than 5 digits; and not present in the product's own code, configuration
    and vocabulary (the "background": a value that occurs there, e.g. a city that is also in a concept name, cannot
    prove a leak).
  * note text: every line of every seeded note of >= NOTE_LINE_CHARS (40) characters, minus background lines.
Haystacks: every file under each PATH except static assets (fonts, images) (binary files such as SQLite databases are searched as decoded bytes;
Parquet/DuckDB are searched by their cell values through DuckDB when it can read them, otherwise as bytes). Matching is case-insensitive
on whitespace-normalised text, whole words only. Exit status 1 when anything is found; the report names file, kind and the PHI type,
never the value itself (the report must not become a leak).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

ROOT = Path(__file__).resolve().parent.parent
MIN_CHARS = 4
NOTE_LINE_CHARS = 40
COMMON_TYPES = {"SEXO_SUJETO_ASISTENCIA", "EDAD_SUJETO_ASISTENCIA", "PAIS", "PROFESION", "OTROS_SUJETO_ASISTENCIA"}
BACKGROUND_DIRS = ("clinlake", "jobs", "udfs", "conf", "expectations", "sample/vocab")
TABULAR = (".parquet", ".duckdb", ".db")
ASSETS = {".otf", ".ttf", ".woff", ".woff2", ".eot", ".png", ".gif", ".jpg", ".jpeg", ".ico", ".svg"}


@dataclass(frozen=True)
class Needle:
    """A string that must not appear: kind = 'phi:<TYPE>' or 'note_text', ref = where it comes from."""

    text: str
    kind: str
    ref: str


@dataclass(frozen=True)
class Finding:
    """One needle found in one file (the value itself is not kept)."""

    path: str
    kind: str
    ref: str


def norm(text: str) -> str:
    """Case-folded, whitespace-collapsed text (logs and HTML re-wrap and re-case text)."""
    return " ".join(text.casefold().split())


def gold_phi(ann_dir: Path) -> Iterator[tuple[str, str, str]]:
    """(value, type, file) for every brat text-bound annotation under ann_dir."""
    for ann in sorted(ann_dir.glob("*.ann")):
        for line in ann.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0].startswith("T"):
                yield parts[2], parts[1].split(" ", 1)[0], ann.name


def background(root: Path = ROOT) -> str:
    """Normalised text of the product's own code, configuration and vocabulary (not note data)."""
    chunks = []
    for folder in BACKGROUND_DIRS:
        for f in (root / folder).rglob("*"):
            if f.is_file() and f.suffix in {".py", ".yaml", ".json", ".tsv", ".txt", ".csv", ".xml", ".md"} \
                    and f.stat().st_size < 50_000_000:
                chunks.append(norm(f.read_text(encoding="utf-8", errors="ignore")))
    return "\n".join(chunks)


def usable_phi(value: str, phi_type: str, bg: str) -> bool:
    """The documented rule: specific enough that finding the value means a leak (see module docstring)."""
    v = norm(value)
    if len(v) < MIN_CHARS or phi_type in COMMON_TYPES:
        return False
    if re.fullmatch(r"[\d\s./-]+", v) and len(re.sub(r"\D", "", v)) < 5:
        return False
    return v not in bg or re.search(rf"(?<!\w){re.escape(v)}(?!\w)", bg) is None


def note_lines(notes_jsonl: Path, bg: str) -> Iterator[Needle]:
    """Lines of the seeded notes long enough to be unmistakable note text."""
    for raw in notes_jsonl.read_text(encoding="utf-8").splitlines():
        row = json.loads(raw)
        for line in str(row.get("note_text") or "").splitlines():
            v = norm(line)
            if len(v) >= NOTE_LINE_CHARS and v not in bg:
                yield Needle(v, "note_text", f"note {row.get('note_id')}")


def needles(ann_dir: Path, notes_jsonl: Path | None, bg: str | None = None) -> list[Needle]:
    """PHI values (by the rule) and note-text lines to search for."""
    bg = background() if bg is None else bg
    out = {Needle(norm(v), f"phi:{t}", f) for v, t, f in gold_phi(ann_dir) if usable_phi(v, t, bg)}
    if notes_jsonl is not None:
        out |= set(note_lines(notes_jsonl, bg))
    return sorted(out, key=lambda n: (n.kind, n.text))


def _tabular_text(path: Path) -> str | None:
    """All cell values of a Parquet file or DuckDB database as text (compressed pages hide strings from a byte scan)."""
    try:
        import duckdb
    except ImportError:
        return None
    try:
        con = duckdb.connect()
        if path.suffix == ".parquet":
            rows = con.execute(f"SELECT * FROM read_parquet('{path.as_posix()}')").fetchall()
            return "\n".join(" | ".join(str(v) for v in r) for r in rows)
        con.execute(f"ATTACH '{path.as_posix()}' AS x (READ_ONLY)")
        parts = []
        for (schema, table) in con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                                           "WHERE database_name = 'x'").fetchall():
            rows = con.execute(f'SELECT * FROM x."{schema}"."{table}"').fetchall()
            parts.append("\n".join(" | ".join(str(v) for v in r) for r in rows))
        return "\n".join(parts)
    except Exception:  # noqa: BLE001 - not a DuckDB/Parquet file after all (e.g. SQLite .db): scan its bytes
        return None


def file_text(path: Path) -> str:
    """Searchable text of one file: cell values of a readable Parquet/DuckDB file, else its decoded bytes."""
    table = _tabular_text(path) if path.suffix in TABULAR else None
    # A readable Parquet/DuckDB file is searched by its cell values only: its raw bytes are compressed columns
    # in which neighbouring values run together (ICD-9 codes "780.39" and "008.3" stored side by side read as
    # "...780.39008.3...", i.e. a whole-word "39008", a postcode among the seeded PHI: a false leak seen in a
    # test run). Unreadable ones (SQLite, anything else) are still searched as decoded bytes.
    text = table if table is not None else path.read_bytes().decode("utf-8", errors="ignore")
    # HTML (Data Docs) escapes characters; undo the common entities before matching.
    if path.suffix in {".html", ".htm"}:
        import html

        text = html.unescape(text)
    return norm(text)


def files_under(paths: Iterable[Path]) -> Iterator[Path]:
    """Every regular file under the given files/folders, except static assets that hold no data (fonts, images)."""
    for p in paths:
        if p.is_file():
            yield p
        elif p.is_dir():
            yield from (f for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() not in ASSETS)


def scan(paths: Iterable[Path], found_needles: list[Needle]) -> tuple[list[Finding], int]:
    """(findings, files scanned)."""
    findings, n = [], 0
    for f in files_under(paths):
        n += 1
        text = file_text(f)
        for needle in found_needles:
            # substring first (fast), then whole words only: "Ana" inside "anastomosis" is not a leak
            if needle.text in text and re.search(rf"(?<!\w){re.escape(needle.text)}(?!\w)", text):
                findings.append(Finding(str(f), needle.kind, needle.ref))
    return findings, n


def main(argv: list[str] | None = None) -> int:
    """CLI: print a summary (never the values) and exit 1 when something leaked."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phi", type=Path, default=ROOT / "sample" / "corpora" / "meddocan",
                        help="folder of brat .ann files with the gold PHI of the seeded notes")
    parser.add_argument("--notes", type=Path, default=ROOT / "sample" / "notes" / "notes.jsonl",
                        help="the seeded notes (JSON lines with note_text)")
    parser.add_argument("--json", action="store_true", help="print findings as JSON lines")
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders to scan")
    args = parser.parse_args(argv)
    for p in [args.phi, args.notes, *args.paths]:
        if not p.exists():
            print(f"privacy_scan: error: not found: {p}", file=sys.stderr)
            return 2
    ns = needles(args.phi, args.notes)
    findings, n_files = scan(args.paths, ns)
    n_phi = sum(1 for x in ns if x.kind.startswith("phi:"))
    print(f"privacy_scan: {n_files} files, {n_phi} PHI values, {len(ns) - n_phi} note-text lines searched: "
          f"{len(findings)} finding(s)")
    for f in findings:
        print(json.dumps(f.__dict__) if args.json else f"  LEAK {f.kind} ({f.ref}) in {f.path}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
