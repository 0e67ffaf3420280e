"""Merge policy: validated beats unvalidated, longer beats shorter, then detector priority and score; no coverage lost."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clinlake.deid.merge import (
    cut_names_at_non_names,
    drop_family_doctors,
    drop_quantities,
    has_overlaps,
    join_adjacent,
    merge_spans,
    strip_edge_punctuation,
    strip_leading_plus,
    strip_titles,
    tidy_model_spans,
)
from clinlake.deid.types import Span


def _cov(spans) -> set[int]:
    """Characters covered."""
    return {i for s in spans for i in range(s.start, s.end)}


def test_validated_identifier_beats_longer_model_span():
    model = Span(0, 26, "NOMBRE_SUJETO_ASISTENCIA", "model:ner", 0.99)
    rule = Span(8, 26, "CORREO_ELECTRONICO", "rule:email", validated=True)
    out = merge_spans([model, rule])
    assert rule in out
    assert [(s.start, s.end, s.label) for s in out] == [(0, 8, "NOMBRE_SUJETO_ASISTENCIA"), (8, 26, "CORREO_ELECTRONICO")]


def test_longer_span_wins_over_shorter():
    year = Span(12, 16, "FECHAS", "rule:date", 0.7)
    full = Span(0, 16, "FECHAS", "model:ner", 0.6)
    assert merge_spans([year, full]) == [full]


def test_tie_by_detector_priority_then_score():
    rule = Span(0, 5, "TERRITORIO", "rule:postal", 0.5)
    model = Span(0, 5, "ID_SUJETO_ASISTENCIA", "model:ner", 0.99)
    assert merge_spans([model, rule]) == [rule]
    assert merge_spans([model, rule], priority={"model": 5, "rule": 1}) == [model]
    low, high = Span(0, 5, "CALLE", "model:a", 0.2), Span(0, 5, "HOSPITAL", "model:b", 0.9)
    assert merge_spans([low, high]) == [high]


def _texts(text: str, spans: list[Span]) -> list[tuple[str, str]]:
    """(covered text, label) of each span, in order."""
    return [(text[s.start:s.end], s.label) for s in spans]


def test_model_pieces_follow_meddocan_conventions():
    # the sentence detector cut after "Avda.", the tokenizer kept "Dr.Jorge", the model took the final period
    text = "Remitido por: Dr.Jorge Subirá Ríos. Avda. Gaspar Aguilar, 90. C/ Vitruvio, 2..\nAvda.\nMayor"

    def at(piece: str, label: str, score: float = 1.0, after: int = 0) -> Span:
        start = text.index(piece, after)
        return Span(start, start + len(piece), label, "model:ner", score)

    model = [at("Dr.Jorge Subirá Ríos", "NOMBRE_PERSONAL_SANITARIO", 0.9), at("Avda.", "CALLE", 0.8),
             at("Gaspar Aguilar, 90", "CALLE", 0.7), at("C/ Vitruvio, 2..", "CALLE", 0.9),
             at("Avda.", "CALLE", after=70), at("Mayor", "CALLE")]  # fmt: skip
    out = tidy_model_spans(model, text)
    assert _texts(text, out) == [("Jorge Subirá Ríos", "NOMBRE_PERSONAL_SANITARIO"),
                                 ("Avda. Gaspar Aguilar, 90", "CALLE"), ("C/ Vitruvio, 2", "CALLE"),
                                 ("Avda", "CALLE"), ("Mayor", "CALLE")]  # a line break keeps two mentions apart
    assert out[1].score == 0.7  # the joined span keeps the lower score


def test_a_list_of_relatives_is_one_span_per_relative():
    text = "Destaca que tanto su madre como su abuela, y su hermano (gemelo) fallecieron."
    start = text.index("madre")
    end = text.index(") fall") + 1
    out = tidy_model_spans([Span(start, end, "FAMILIARES_SUJETO_ASISTENCIA", "model:ner")], text)
    assert [t for t, _ in _texts(text, out)] == ["madre", "abuela", "hermano", "gemelo"]


def test_a_family_doctor_is_not_a_relative():
    text = ("Su médico de familia avisó a su familia. Medicina Familiar; la familia de su médico; "
            "médicos de familiares.")
    def at(t: str, after: int = 0, label: str = "FAMILIARES_SUJETO_ASISTENCIA") -> Span:
        i = text.index(t, after)
        return Span(i, i + len(t), label, "model:ner", 0.9)
    spans = [at("familia"), at("familia", text.index("a su")), at("Familiar"), at("familia", text.index("la fam")),
             at("familiares"), at("familia", label="PROFESION")]
    assert drop_family_doctors(spans, text) == [spans[1], spans[3], spans[4], spans[5]]
    assert tidy_model_spans(spans[:2], text) == [spans[1]]   # part of the model spans' tidying


def test_a_name_ends_before_a_word_no_name_holds():
    text = "Remitido por: Alberto Palacios Hernández Residente de 5° año. Dra. Ana Ruiz, Servicio de Urología. Centro"
    def at(t: str, label: str = "NOMBRE_PERSONAL_SANITARIO") -> Span:
        return Span(text.index(t), text.index(t) + len(t), label, "model:ner", 0.9)
    spans = [at("Alberto Palacios Hernández Residente"), at("Ana Ruiz, Servicio de Urología"),
             at("Servicio de Urología", "INSTITUCION"), at("Centro"), at("Ana Ruiz")]
    out = cut_names_at_non_names(spans, text)
    assert [text[s.start:s.end] for s in out] == ["Alberto Palacios Hernández", "Residente", "Ana Ruiz",
                                                "Servicio de Urología", "Servicio de Urología", "Centro", "Ana Ruiz"]
    assert {s.label for s in out[:4]} == {"NOMBRE_PERSONAL_SANITARIO"} and out[1].score == 0.9  # the rest stays covered
    assert out[4:] == spans[2:]   # other labels, a one-word span and a clean name pass
    assert [text[s.start:s.end] for s in tidy_model_spans(spans[:1], text)] == ["Alberto Palacios Hernández",
                                                                                "Residente"]  # part of the tidying


def test_spans_end_before_trailing_commas_and_brackets_they_did_not_open():
    text = "(Allergan, California, EE.UU.), y (Hospital (HUVR), Sevilla); ok"
    def at(t: str, label: str = "PAIS") -> Span:
        return Span(text.index(t), text.index(t) + len(t), label, "model:ner", 0.8)
    spans = [at("EE.UU.),"), at("Allergan,", "INSTITUCION"), at("Hospital (HUVR)", "HOSPITAL"), at(", "), at("ok")]
    out = strip_edge_punctuation(spans, text)
    assert [text[s.start:s.end] for s in out] == ["EE.UU.", "Allergan", "Hospital (HUVR)", ",", "ok"]
    assert out[2] is spans[2] and out[0].score == 0.8  # unchanged spans pass through; a one-character span stays


def test_phone_and_fax_spans_start_after_the_plus_of_the_prefix():
    text = "Fax: +34 945007359. Tfno: + 34 600 111 222. +C. Ref +5"
    def at(t: str, label: str = "NUMERO_FAX") -> Span:
        return Span(text.index(t), text.index(t) + len(t), label, "model:ner", 0.7)
    spans = [at("+34 945007359"), at("+ 34 600 111 222", "NUMERO_TELEFONO"), at("+C", "ID_SUJETO_ASISTENCIA"),
             at("+5", "NUMERO_TELEFONO")]
    out = strip_leading_plus(spans, text)
    assert [(text[s.start:s.end], s.label, s.score) for s in out] == [
        ("34 945007359", "NUMERO_FAX", 0.7), ("34 600 111 222", "NUMERO_TELEFONO", 0.7),
        ("+C", "ID_SUJETO_ASISTENCIA", 0.7), ("5", "NUMERO_TELEFONO", 0.7)]  # other types keep theirs
    assert out[2] is spans[2]
    assert [text[s.start:s.end] for s in tidy_model_spans(spans[:1], text)] == ["34 945007359"]


def test_a_number_before_a_unit_is_a_quantity_not_a_date():
    text = "Cefepime 2000 mg/12 h, diuresis 1500-2000 ml/día desde 2000, en 2004 5 mg."
    def at(t: str, label: str = "FECHAS", after: int = 0) -> Span:
        i = text.index(t, after)
        return Span(i, i + len(t), label, "model:ner")
    spans = [at("2000"), at("1500-2000"), at("2000", after=text.index("desde")), at("2004"), at("5 mg", "EDAD")]
    assert drop_quantities(spans, text) == spans[2:]  # a year before ", en" or a number before a digit stays


def test_join_leaves_other_labels_and_non_space_gaps_alone():
    text = "Ana Pérez Luis Gómez; Calle Mayor, 3"
    names = [Span(0, 9, "NOMBRE_SUJETO_ASISTENCIA", "model:ner"), Span(10, 20, "NOMBRE_SUJETO_ASISTENCIA", "model:ner")]
    assert join_adjacent(names, text) == names
    street = [Span(22, 33, "CALLE", "model:ner"), Span(35, 36, "CALLE", "model:ner")]
    assert join_adjacent(street, text) == street  # ", " is not a space-only gap
    assert strip_titles([Span(0, 9, "CALLE", "model:ner")], "Dr. Fleming") == [Span(0, 9, "CALLE", "model:ner")]


def test_loser_keeps_its_uncovered_characters():
    winner = Span(5, 15, "HOSPITAL", "model:ner", 0.9)
    loser = Span(0, 8, "NOMBRE_PERSONAL_SANITARIO", "rule:header", 0.8)
    out = merge_spans([winner, loser])
    assert [(s.start, s.end, s.label) for s in out] == [(0, 5, "NOMBRE_PERSONAL_SANITARIO"), (5, 15, "HOSPITAL")]


def test_order_independent_and_idempotent():
    spans = [Span(0, 4, "A", "rule:x"), Span(2, 9, "B", "model:y", 0.3), Span(2, 9, "C", "model:z", 0.3)]
    once = merge_spans(spans)
    assert merge_spans(list(reversed(spans))) == once
    assert merge_spans(once) == once


def test_clip_to_text_and_drop_empty():
    out = merge_spans([Span(3, 3, "A", "rule:x"), Span(8, 20, "B", "rule:x")], text_length=10)
    assert [(s.start, s.end) for s in out] == [(8, 10)]


span_st = st.builds(
    lambda s, n, lab, det, score, val: Span(s, s + n, lab, det, score, val),
    st.integers(0, 200),
    st.integers(0, 40),
    st.sampled_from(["FECHAS", "CALLE", "NOMBRE_SUJETO_ASISTENCIA", "ID_SUJETO_ASISTENCIA"]),
    st.sampled_from(["rule:a", "rule:b", "model:ner", "other:x"]),
    st.floats(0, 1, allow_nan=False),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(span_st, max_size=40))
def test_property_sorted_disjoint_and_coverage_preserved(spans):
    out = merge_spans(spans)
    assert out == sorted(out, key=lambda s: s.start)
    assert not has_overlaps(out)
    assert _cov(out) == _cov(spans)
    # every output span comes from an input span (same label and detector, inside its extent)
    for o in out:
        assert any(i.label == o.label and i.detector == o.detector and i.start <= o.start and o.end <= i.end
                   for i in spans)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(span_st, max_size=30))
def test_property_validated_characters_go_to_validated_spans(spans):
    out = merge_spans(spans)
    validated = [s for s in spans if s.validated and s.length > 0]  # an empty span claims no character
    for o in out:
        if any(o.start < v.end and v.start < o.end for v in validated):
            # the owner of characters a validated span claimed is itself a (piece of a) validated input span
            assert any(v.start <= o.start and o.end <= v.end and v.label == o.label and v.detector == o.detector
                       for v in validated)  # fmt: skip
