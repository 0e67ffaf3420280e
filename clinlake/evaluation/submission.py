"""Write a `Corpus` in each shared task's submission format (the inverse of evaluation.predictions)."""

from __future__ import annotations

import os
from pathlib import Path

from clinlake.corpora.brat import BratDocument, Note, TextBound, format_ann
from clinlake.corpora.types import Corpus


def write_brat(corpus: Corpus, folder: str | os.PathLike, with_texts: bool = False) -> Path:
    """One .ann per document (codes as AnnotatorNotes); also the .txt files when asked."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for doc_id in sorted(set(corpus.notes) | set(corpus.mentions or {})):
        doc = BratDocument()
        for i, m in enumerate((corpus.mentions or {}).get(doc_id, []), start=1):
            doc.entities[f"T{i}"] = TextBound(f"T{i}", m.label, m.frags, m.text)
            if m.code:
                doc.note_list.append(Note(f"#{i}", "AnnotatorNotes", f"T{i}", m.code))
        (out / f"{doc_id}.ann").write_text(format_ann(doc), encoding="utf-8")
        if with_texts and doc_id in corpus.notes:
            with open(out / f"{doc_id}.txt", "w", encoding="utf-8", newline="") as fh:
                fh.write(corpus.notes[doc_id])
    return out


def write_codiesp(corpus: Corpus, folder: str | os.PathLike) -> Path:
    """predD.tsv / predP.tsv (document, code in rank order) and predX.tsv (document, position, label, code)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, codes in (("D", corpus.codes_d), ("P", corpus.codes_p)):
        if codes is not None:
            lines = [f"{d}\t{c}\n" for d, cs in codes.items() for c in cs]
            (out / f"pred{name}.tsv").write_text("".join(lines), encoding="utf-8")
    if corpus.mentions is not None:
        lines = [f"{d}\t{';'.join(f'{s} {e}' for s, e in m.frags)}\t{m.label}\t{m.code or ''}\n"
                 for d, ms in corpus.mentions.items() for m in ms]
        (out / "predX.tsv").write_text("".join(lines), encoding="utf-8")
    return out


def write_conll(sentences: list[list[tuple[str, str]]], path: str | os.PathLike) -> Path:
    """token<TAB>tag lines, a blank line after each sentence."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join("".join(f"{t}\t{tag}\n" for t, tag in s) + "\n" for s in sentences), encoding="utf-8")
    return p
