"""Pure-Python readers for the shared-task layouts (brat, CodiEsp TSVs, CoNLL BIO) into a `Corpus`.

Every reader checks each gold span's text against the note and reports mismatches in
`Corpus.mismatches` (and logs the count); offsets are never shifted to make them fit.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from clinlake.corpora.brat import covered_text, read_brat_folder, read_text
from clinlake.corpora.types import Corpus, Fragment, Mention, Mismatch

log = logging.getLogger(__name__)

BRAT_CORPORA = ("meddocan", "cantemist", "nubes")
CANTEMIST_LABEL = "MORFOLOGIA_NEOPLASIA"


def _report(corpus: Corpus, where: str | os.PathLike) -> Corpus:
    """Log the mismatch / parse-error counts of a freshly read corpus and return it."""
    if corpus.mismatches or corpus.parse_errors:
        log.warning("%s: %d gold span mismatches, %d unparsable lines", where, len(corpus.mismatches),
                    len(corpus.parse_errors))
    return corpus


def read_brat_corpus(path: str | os.PathLike, labels: Iterable[str] | None = None,
                     recursive: bool = True) -> Corpus:
    """Read a brat folder: notes, text-bound mentions (code = AnnotatorNotes text) and span mismatches."""
    keep = set(labels) if labels is not None else None
    corpus = Corpus(mentions={})
    for doc_id, text, ann in read_brat_folder(path, recursive=recursive):
        corpus.notes[doc_id] = text
        notes = ann.notes
        mentions = []
        for tb in ann.entities.values():
            if keep is not None and tb.type not in keep:
                continue
            code = notes.get(tb.id)
            mentions.append(Mention(tb.type, tb.start, tb.end, code.strip() if code else None,
                                    tb.fragments, tb.text, tb.id))
            found = covered_text(text, tb.fragments) if tb.end <= len(text) else "<out of range>"
            if found != tb.text:
                corpus.mismatches.append(Mismatch(doc_id, tb.id, tb.fragments, tb.text, found))
        corpus.mentions[doc_id] = mentions
        corpus.parse_errors.extend(f"{doc_id}:{e.line_no}: {e.reason}" for e in ann.errors)
    return _report(corpus, path)


def parse_fragments(spec: str) -> tuple[Fragment, ...]:
    """Parse CodiEsp/brat positions `s e` or `s1 e1;s2 e2` into fragments; ValueError when malformed."""
    frags = []
    for part in spec.strip().split(";"):
        s, e = part.split()
        frags.append((int(s), int(e)))
    return tuple(frags)


def _tsv_rows(path: Path) -> list[list[str]]:
    """Rows of a header-less TSV (no quoting: CodiEsp mentions may contain quote characters)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [row for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if row and any(row)]


def read_code_tsv(path: str | os.PathLike) -> dict[str, list[str]]:
    """CodiEsp D/P file (document, code[, ...]) -> doc_id -> lower-cased codes in file (rank) order."""
    out: dict[str, list[str]] = {}
    for row in _tsv_rows(Path(path)):
        if len(row) < 2:
            raise ValueError(f"{path}: expected 'document<TAB>code', got {row!r}")
        out.setdefault(row[0].strip(), []).append(row[1].strip().lower())
    return out


def read_x_tsv(path: str | os.PathLike, gold: bool = True) -> dict[str, list[Mention]]:
    """CodiEsp-X file -> doc_id -> mentions.

    Gold layout: document, label, code, mention text, positions. Submission layout (gold=False):
    document, positions, label, code. Positions are `s e` or discontinuous `s1 e1;s2 e2`.
    """
    out: dict[str, list[Mention]] = {}
    for row in _tsv_rows(Path(path)):
        try:
            if gold:
                doc, label, code, text, pos = row[:5]
            else:
                doc, pos, label, code = row[:4]
                text = ""
            frags = parse_fragments(pos)
        except ValueError as exc:
            raise ValueError(f"{path}: bad row {row!r} ({exc})") from exc
        out.setdefault(doc.strip(), []).append(Mention(label.strip(), frags[0][0], frags[-1][1],
                                                       code.strip().lower(), frags, text))
    return out


def _split_file(folder: Path, suffix: str) -> Path | None:
    """The `<split><suffix>` file of a CodiEsp split folder (e.g. devD.tsv), or the only `*<suffix>` there."""
    exact = folder / f"{folder.name}{suffix}"
    if exact.exists():
        return exact
    found = sorted(folder.glob(f"*{suffix}"))
    return found[0] if len(found) == 1 else None


def read_codiesp_split(path: str | os.PathLike) -> Corpus:
    """Read a CodiEsp split folder (text_files/ + <split>D.tsv, P.tsv, X.tsv); sub-tracks without a file stay None."""
    folder = Path(path)
    texts = folder / "text_files"
    if not texts.is_dir():
        raise FileNotFoundError(f"CodiEsp split folder must hold text_files/: {folder}")
    corpus = Corpus()
    for txt in sorted(texts.glob("*.txt")):
        corpus.notes[txt.stem] = read_text(txt)
    d, p, x = (_split_file(folder, s) for s in ("D.tsv", "P.tsv", "X.tsv"))
    corpus.codes_d = read_code_tsv(d) if d else None
    corpus.codes_p = read_code_tsv(p) if p else None
    if x:
        corpus.mentions = read_x_tsv(x, gold=True)
        for doc_id, mentions in corpus.mentions.items():
            text = corpus.notes.get(doc_id)
            for i, m in enumerate(mentions):
                found = "<no text file>" if text is None else covered_text(text, m.frags)
                if found != m.text:
                    corpus.mismatches.append(Mismatch(doc_id, f"X{i + 1}", m.frags, m.text, found))
    return _report(corpus, folder)


def read_conll(path: str | os.PathLike) -> list[list[tuple[str, str]]]:
    """CoNLL file (token first column, BIO tag last column, blank line between sentences) -> sentences."""
    sentences: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    with open(path, encoding="utf-8") as fh:
        for no, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if current:
                    sentences.append(current)
                    current = []
                continue
            if line.startswith("-DOCSTART-"):
                continue
            cols = line.split("\t") if "\t" in line else line.split()
            if len(cols) < 2:
                raise ValueError(f"{path}:{no}: expected 'token<TAB>tag', got {line!r}")
            current.append((cols[0], cols[-1].strip()))
    if current:
        sentences.append(current)
    return sentences


def bio_entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """Entities (label, first token, last token + 1) from BIO tags, conlleval-style.

    An I-X that follows O or another type opens a new entity (as conlleval does), so a
    prediction starting with I- is not silently dropped.
    """
    out: list[tuple[str, int, int]] = []
    label, start = None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, typ = tag.partition("-")
        if prefix == "I" and label == typ:
            continue
        if label is not None:
            out.append((label, start, i))
            label = None
        if prefix in ("B", "I") and typ:
            label, start = typ, i
    return out


def conll_corpus(sentences: list[list[tuple[str, str]]]) -> Corpus:
    """Notes (tokens joined by one space) and char-offset mentions from CoNLL sentences; doc ids are `s00001`..."""
    corpus = Corpus(mentions={}, sentences=sentences)
    for n, sent in enumerate(sentences, start=1):
        doc_id = f"s{n:05d}"
        tokens = [tok for tok, _ in sent]
        offsets, pos = [], 0
        for tok in tokens:
            offsets.append(pos)
            pos += len(tok) + 1
        text = " ".join(tokens)
        corpus.notes[doc_id] = text
        corpus.mentions[doc_id] = [
            Mention(label, offsets[a], offsets[b - 1] + len(tokens[b - 1]), None, (),
                    text[offsets[a]:offsets[b - 1] + len(tokens[b - 1])], f"T{k + 1}")
            for k, (label, a, b) in enumerate(bio_entities([t for _, t in sent]))
        ]
    return corpus


def read_conll_corpus(path: str | os.PathLike) -> Corpus:
    """Read a CoNLL BIO file (PharmaCoNER) into a Corpus."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"CoNLL file not found: {path}")
    return conll_corpus(read_conll(path))


def read_corpus(corpus: str, path: str | os.PathLike) -> Corpus:
    """Read a split of a named corpus in its own layout."""
    if corpus == "cantemist":
        return read_brat_corpus(path, labels=[CANTEMIST_LABEL])
    if corpus in BRAT_CORPORA:
        return read_brat_corpus(path)
    if corpus == "codiesp":
        return read_codiesp_split(path)
    if corpus == "pharmaconer":
        return read_conll_corpus(path)
    raise ValueError(f"no reader for corpus {corpus!r}")
