"""udfs.crf_tag and clinlake.crf without Spark: features, marginals, training and tagging on tiny data."""

from __future__ import annotations

import re

import numpy as np
import pytest

from clinlake.corpora.types import Corpus
from clinlake.crf import fit, predict_mentions, sequences
from clinlake.ner.data import LabelledSplit
from udfs.crf_tag import crf_log_probs, crf_spans, shape, tagger_for, token_features
from udfs.tag_vote import FLOOR

NAMES = ["Juan", "Ana", "Luis", "Marta", "Pedro", "Rosa", "Carlos", "Elena"]


def _tokens(text: str) -> tuple[list[int], list[int]]:
    """Word and punctuation tokens with exclusive ends (a stand-in for the Spark NLP tokenizer)."""
    found = [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]
    return [b for b, _ in found], [e for _, e in found]


def _split(n: int) -> LabelledSplit:
    """Notes whose 'Nombre:' line holds a patient name and whose 'Fecha:' line a date."""
    texts, spans = {}, {}
    for i in range(n):
        name, day = NAMES[i % len(NAMES)], f"{1 + i % 28:02d}/0{1 + i % 9}/20{10 + i % 9}"
        text = f"Nombre: {name} Gómez\nFecha: {day}\nRefiere dolor torácico desde hace {i % 5 + 2} días.\n"
        s = text.index(name)
        d = text.index(day)
        texts[f"d{i:02d}"] = text
        spans[f"d{i:02d}"] = [("NOMBRE_SUJETO_ASISTENCIA", s, s + len(name) + 6), ("FECHAS", d, d + len(day))]
    return LabelledSplit(texts, spans, Corpus(notes=texts))


def test_shape_collapses_letter_and_digit_runs():
    assert [shape(w) for w in ("Calle", "28.034", "DNI:", "ñandú", "")] == ["Xx", "d.d", "X:", "x", ""]


def test_features_see_the_line_header_line_ends_and_a_window():
    text = "Nombre: Juan\nEdad 45"
    begins, ends = _tokens(text)
    feats = token_features(text, begins, ends)
    assert len(feats) == 5
    juan = feats[2]
    assert juan["w=juan"] == juan["line0=nombre"] == juan["eol"] == juan["title"] == 1.0
    assert juan["-1w=:"] == juan["-2w=nombre"] == juan["1w=edad"] == juan["3w=<pad>"] == 1.0
    assert "bol" in feats[0] and "line0=nombre" not in feats[0]      # the header word has no header of its own
    assert feats[3]["bol"] == 1.0 and "line0=nombre" not in feats[4]  # the next line has its own first word
    assert feats[4]["line0=edad"] == feats[4]["digit"] == 1.0
    assert token_features("", [], []) == []


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> bytes:
    split = _split(40)
    tokens = {d: _tokens(t) for d, t in split.texts.items()}
    seqs = sequences(split, tokens)
    assert len(seqs) == 40 and seqs[0][1][:4] == ["O", "O", "B-NOMBRE_SUJETO_ASISTENCIA", "I-NOMBRE_SUJETO_ASISTENCIA"]
    path = tmp_path_factory.mktemp("crf") / "model.crfsuite"
    stats = fit(seqs, type("S", (), {"c1": 0.05, "c2": 0.01, "max_iterations": 50})(), path)
    assert 0 < stats["iterations"] <= 50 and stats["active_features"] > 0 and stats["train_loss"] >= 0
    return path.read_bytes()


def test_a_trained_crf_finds_the_header_values_of_a_new_note(model):
    text = "Nombre: Elena Ruiz\nFecha: 03/04/2021\nRefiere tos.\n"
    got = predict_mentions(model, {"n": text, "empty": ""}, {"n": _tokens(text), "empty": ([], [])})
    assert [(m.label, text[m.start:m.end]) for m in got["n"]] == [
        ("NOMBRE_SUJETO_ASISTENCIA", "Elena Ruiz"), ("FECHAS", "03/04/2021")]
    assert got["empty"] == []


def test_a_recognisers_crf_voter_gives_its_chunks_with_exclusive_ends(model):
    text = "Nombre: Elena Ruiz\nFecha: 03/04/2021\nRefiere tos.\n"
    begins, ends = _tokens(text)
    assert [(c["label"], text[c["s"]:c["e"]]) for c in crf_spans(tagger_for(model), text, begins, ends)] == [
        ("NOMBRE_SUJETO_ASISTENCIA", "Elena Ruiz"), ("FECHAS", "03/04/2021")]
    assert crf_spans(tagger_for(model), "", [], []) == []


def test_marginals_in_the_votes_tag_order_with_the_floor_for_unknown_tags(model):
    text = "Nombre: Ana Gómez\nFecha: 02/02/2012\n"
    begins, ends = _tokens(text)
    tags = ["B-FECHAS", "B-NOMBRE_SUJETO_ASISTENCIA", "B-PAIS", "I-FECHAS", "I-NOMBRE_SUJETO_ASISTENCIA", "O"]
    lp, own = crf_log_probs(tagger_for(model), text, begins, ends, tags, FLOOR)
    assert lp.shape == (len(begins), len(tags)) and len(own) == len(begins)
    assert np.allclose(lp[:, 2], np.log(FLOOR))                     # B-PAIS: never seen in training
    known = np.exp(lp[:, [0, 1, 3, 4, 5]])
    assert np.allclose(known.sum(axis=1), 1.0, atol=1e-3)           # a distribution over the tags it knows
    assert [tags[j] for j in lp.argmax(axis=1)] == own              # its own tags are its most likely ones here
    assert own[2] == "B-NOMBRE_SUJETO_ASISTENCIA"
    assert crf_log_probs(tagger_for(model), "", [], [], tags, FLOOR)[0].shape == (0, len(tags))


def test_the_tagger_is_opened_once_per_model_and_keeps_its_bytes(model, monkeypatch):
    import gc

    import udfs.crf_tag

    assert tagger_for(model) is tagger_for(bytes(bytearray(model)))
    monkeypatch.setattr(udfs.crf_tag, "_TAGGERS", {})
    copy = bytes(bytearray(model))                 # a buffer nobody else holds (a worker's broadcast value)
    tagger = tagger_for(copy)
    del copy
    gc.collect()
    filler = [b"\xa7" * len(model) for _ in range(64)]   # same-sized blocks take the freed memory, if it was freed
    assert "B-FECHAS" in tagger.labels() and filler


def test_no_training_documents_is_a_user_error(tmp_path):
    from clinlake.errors import UserError

    with pytest.raises(UserError, match="no training documents"):
        fit([], type("S", (), {"c1": 0.1, "c2": 0.1, "max_iterations": 5})(), tmp_path / "m.crfsuite")
