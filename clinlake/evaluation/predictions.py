"""Parse system output in each shared task's submission format into a `Corpus` of predictions.

MEDDOCAN / CANTEMIST / NUBes: a brat folder of .ann files (texts optional). CodiEsp: a folder with any of
predD.tsv, predP.tsv (document, code; best first) and predX.tsv (document, position, label, code).
PharmaCoNER: a CoNLL file whose sentences and tokens match the gold file, tag in the last column.
"""

from __future__ import annotations

import os
from pathlib import Path

from clinlake.corpora.brat import read_ann_folder
from clinlake.corpora.readers import CANTEMIST_LABEL, conll_corpus, read_code_tsv, read_conll, read_x_tsv
from clinlake.corpora.types import Corpus, Mention
from clinlake.errors import UserError


def read_brat_predictions(path: str | os.PathLike, labels: list[str] | None = None) -> Corpus:
    """A brat submission folder -> Corpus with mentions (code from AnnotatorNotes) per document."""
    keep = set(labels) if labels else None
    corpus = Corpus(mentions={})
    for doc_id, ann in read_ann_folder(path).items():
        notes = ann.notes
        corpus.mentions[doc_id] = [
            Mention(tb.type, tb.start, tb.end, (notes.get(tb.id) or "").strip() or None, tb.fragments, tb.text, tb.id)
            for tb in ann.entities.values() if keep is None or tb.type in keep
        ]
        corpus.parse_errors.extend(f"{doc_id}:{e.line_no}: {e.reason}" for e in ann.errors)
    return corpus


def read_codiesp_predictions(path: str | os.PathLike) -> Corpus:
    """A CodiEsp submission folder -> Corpus with codes_d / codes_p / mentions for the files present."""
    folder = Path(path)
    files = {name: folder / f"pred{name}.tsv" for name in ("D", "P", "X")}
    if not any(f.exists() for f in files.values()):
        raise UserError(f"no predD.tsv, predP.tsv or predX.tsv in {folder}")
    try:
        return Corpus(
            codes_d=read_code_tsv(files["D"]) if files["D"].exists() else None,
            codes_p=read_code_tsv(files["P"]) if files["P"].exists() else None,
            mentions=read_x_tsv(files["X"], gold=False) if files["X"].exists() else None,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def read_conll_predictions(path: str | os.PathLike, gold: Corpus) -> Corpus:
    """A CoNLL submission aligned to the gold sentences; UserError when sentences or tokens differ."""
    try:
        sentences = read_conll(path)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    gold_sents = gold.sentences or []
    if len(sentences) != len(gold_sents):
        raise UserError(f"{path}: {len(sentences)} sentences, gold has {len(gold_sents)}")
    for n, (ps, gs) in enumerate(zip(sentences, gold_sents), start=1):
        if [t for t, _ in ps] != [t for t, _ in gs]:
            raise UserError(f"{path}: tokens of sentence {n} differ from the gold file")
    return conll_corpus(sentences)


def read_predictions(task: str, corpus: str, path: str | os.PathLike, gold: Corpus) -> Corpus:
    """Parse the submission at `path` for (task, corpus); UserError for a missing or malformed submission."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"predictions not found: {p}")
    if corpus in ("meddocan", "cantemist"):
        if not p.is_dir():
            raise UserError(f"{corpus} predictions must be a brat folder: {p}")
        return read_brat_predictions(p, [CANTEMIST_LABEL] if corpus == "cantemist" else None)
    if corpus == "codiesp":
        if not p.is_dir():
            raise UserError(f"codiesp predictions must be a folder with predD/predP/predX.tsv: {p}")
        return read_codiesp_predictions(p)
    if corpus == "pharmaconer":
        if not p.is_file():
            raise UserError(f"pharmaconer predictions must be a CoNLL file: {p}")
        return read_conll_predictions(p, gold)
    raise UserError(f"no prediction format for task {task} / corpus {corpus}")
