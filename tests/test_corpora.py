"""Readers: brat standoff, CodiEsp TSVs and CoNLL BIO, with span checks that report and never shift."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinlake.corpora.brat import check_spans, parse_ann, read_ann_folder, read_brat_folder
from clinlake.corpora.readers import (bio_entities, conll_corpus, read_brat_corpus, read_codiesp_split,
                                      read_conll, read_corpus)

TEXT = "Paciente con carcinoma ductal infiltrante de mama; niega fiebre."
ANN = (
    "T1\tMORFOLOGIA_NEOPLASIA 13 41\tcarcinoma ductal infiltrante\n"
    "#1\tAnnotatorNotes T1\t8500/3\n"
    "T2\tDISO 13 22;45 49\tcarcinoma mama\n"
    "T3\tNegLexMarker 51 56\tniega\n"
    "R1\tScope Arg1:T3 Arg2:T2\n"
    "A1\tNegated T2\n"
    "A2\tCertainty T2 High\n"
    "E1\tTreat:T3 Theme:T2\n"
    "N1\tReference T1 ICDO:8500/3\tcarcinoma\n"
    "this line is not brat\n"
)


def test_parse_ann_reads_every_kind_and_keeps_bad_lines() -> None:
    doc = parse_ann(ANN)
    assert doc.entities["T2"].fragments == ((13, 22), (45, 49))
    assert (doc.entities["T2"].start, doc.entities["T2"].end) == (13, 49)
    assert doc.code("T1") == "8500/3" and doc.notes == {"T1": "8500/3"}
    r = doc.relations["R1"]
    assert (r.type, r.arg1_role, r.arg1, r.arg2_role, r.arg2) == ("Scope", "Arg1", "T3", "Arg2", "T2")
    assert doc.attributes["A1"].value is None and doc.attributes["A2"].value == "High"
    assert doc.events["E1"].trigger == "T3" and doc.events["E1"].args == (("Theme", "T2"),)
    assert doc.normalizations["N1"].entry == "8500/3"
    assert [e.line_no for e in doc.errors] == [10]


def test_check_spans_joins_fragments_with_one_space_and_reports_mismatch() -> None:
    doc = parse_ann(ANN + "T4\tDISO 57 63\tfiebres\n")
    bad = check_spans(TEXT, doc)
    assert [(m.ann_id, m.expected, m.found) for m in bad] == [("T4", "fiebres", "fiebre")]


def _write(folder: Path, name: str, text: str, ann: str | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.txt", "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    if ann is not None:
        (folder / f"{name}.ann").write_text(ann, encoding="utf-8")


def test_read_brat_folder_recursive_keeps_crlf_offsets_and_reports(tmp_path: Path) -> None:
    _write(tmp_path / "a", "d1", "Hola\r\nJuan", "T1\tNOMBRE 6 10\tJuan\n")
    _write(tmp_path / "b" / "c", "d2", "Nada", None)
    docs = {d: (t, a) for d, t, a in read_brat_folder(tmp_path)}
    assert set(docs) == {"d1", "d2"} and docs["d1"][0] == "Hola\r\nJuan"
    assert docs["d2"][1].entities == {}
    assert [d for d, _, _ in read_brat_folder(tmp_path, recursive=False)] == []
    _write(tmp_path / "x", "d1", "dup", None)
    with pytest.raises(ValueError, match="duplicate"):
        list(read_brat_folder(tmp_path))


def test_brat_corpus_reports_shifted_span_without_fixing(tmp_path: Path) -> None:
    _write(tmp_path, "d1", TEXT, "T1\tMORFOLOGIA_NEOPLASIA 14 42\tcarcinoma ductal infiltrante\n#1\tAnnotatorNotes T1\t8500/3\n")
    corpus = read_brat_corpus(tmp_path)
    m = corpus.mentions["d1"][0]
    assert (m.start, m.end, m.code) == (14, 42, "8500/3")  # offsets kept as annotated
    assert len(corpus.mismatches) == 1 and corpus.mismatches[0].found == "arcinoma ductal infiltrante "
    assert set(read_ann_folder(tmp_path)) == {"d1"}


def test_codiesp_split_discontinuous_codes_and_mismatches(tmp_path: Path) -> None:
    split = tmp_path / "dev"
    _write(split / "text_files", "doc1", "Se hizo ecografía del riñón derecho. Dx: litiasis renal.", None)
    (split / "devD.tsv").write_text("doc1\tN20.0\ndoc1\tn20.0\n", encoding="utf-8")
    (split / "devX.tsv").write_text(
        "doc1\tPROCEDIMIENTO\tBT41ZZZ\tecografía derecho\t8 17;28 35\n"
        "doc1\tDIAGNOSTICO\tn20.0\tlitiasis renal\t41 55\n"
        "doc1\tDIAGNOSTICO\tn20.0\tlitiasis\t40 48\n", encoding="utf-8")
    c = read_codiesp_split(split)
    assert c.codes_d == {"doc1": ["n20.0", "n20.0"]} and c.codes_p is None
    proc = c.mentions["doc1"][0]
    assert (proc.start, proc.end, proc.code, proc.frags) == (8, 35, "bt41zzz", ((8, 17), (28, 35)))
    assert [(m.ann_id, m.found) for m in c.mismatches] == [("X3", " litiasi")]


def test_bio_entities_follow_conlleval() -> None:
    tags = ["B-X", "I-X", "O", "I-Y", "I-Y", "B-Y", "B-X", "I-Y"]
    assert bio_entities(tags) == [("X", 0, 2), ("Y", 3, 5), ("Y", 5, 6), ("X", 6, 7), ("Y", 7, 8)]


def test_conll_reader_and_char_offsets(tmp_path: Path) -> None:
    f = tmp_path / "dev.txt"
    f.write_text("Toma\tO\nácido\tB-NORMALIZABLES\nfólico\tI-NORMALIZABLES\n\nIgG\tB-PROTEINAS\n\n", encoding="utf-8")
    sents = read_conll(f)
    assert len(sents) == 2 and sents[1] == [("IgG", "B-PROTEINAS")]
    c = conll_corpus(sents)
    m = c.mentions["s00001"][0]
    assert c.notes["s00001"][m.start:m.end] == m.text == "ácido fólico" and m.label == "NORMALIZABLES"
    assert c.documents == 2


@pytest.mark.parametrize("corpus,split", [("meddocan", "meddocan/dev"), ("cantemist", "cantemist/dev1"),
                                          ("codiesp", "codiesp/dev"), ("pharmaconer", "pharmaconer/dev.txt")])
def test_shared_dev_splits_read_with_few_mismatches(shared_dir: Path, corpus: str, split: str) -> None:
    c = read_corpus(corpus, shared_dir / "corpora" / split)
    n = sum(len(v) for v in c.mentions.values())
    assert c.documents > 200 and n > 500
    assert len(c.mismatches) <= 0.01 * n  # CodiEsp dev has 3 genuinely misaligned gold rows


def test_gold_dataframes(spark, tmp_path: Path) -> None:
    from clinlake.corpora.frames import read_corpus_frames

    _write(tmp_path, "d1", TEXT, ANN)
    notes, gold, corpus = read_corpus_frames(spark, "nubes", tmp_path)
    assert notes.count() == 1
    rows = {r.ann_id: r for r in gold.collect()}
    assert [(f.start, f.end) for f in rows["T2"].fragments] == [(13, 22), (45, 49)]
    assert rows["T1"].code == "8500/3" and rows["T3"].code is None and len(rows) == 3
