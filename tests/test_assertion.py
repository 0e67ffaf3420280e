"""Assertion algorithm: triggers, scopes, lexicons and OMOP helpers (pure Python)."""

from __future__ import annotations

import pytest

from clinlake.assertion import Assertion, assert_spans, sentence_bounds, term_exists, term_modifiers
from clinlake.assertion.lexicon import fold, load_rules


def one(text: str, concept: str, lang: str = "es", **kw) -> Assertion:
    """Assertion of the first occurrence of concept in text."""
    i = text.lower().index(concept.lower())
    return assert_spans(text, [(i, i + len(concept))], lang, **kw)[0]


@pytest.mark.parametrize(
    "text,concept,trigger",
    [
        ("Se descarta neumonía.", "neumonía", "Se descarta"),
        ("No fiebre.", "fiebre", "No"),
        ("Niega dolor torácico.", "dolor torácico", "Niega"),
        ("Abdomen blando, sin defensa.", "defensa", "sin"),
        ("No se observa derrame pleural.", "derrame pleural", "No se observa"),
        ("Ausencia de adenopatías.", "adenopatías", "Ausencia de"),
        ("Hemocultivos negativos.", "Hemocultivos", "negativos"),
        ("No fiebre ni tos ni disnea.", "disnea", "ni"),
    ],
)
def test_spanish_negation(text, concept, trigger):
    a = one(text, concept)
    assert a.negated and a.negation_trigger == trigger
    assert a.term_exists == "N"


@pytest.mark.parametrize(
    "text,concept,certainty,trigger",
    [
        ("Sospecha de TEP.", "TEP", "possible", "Sospecha de"),
        ("Imagen compatible con neumonía.", "neumonía", "probable", "compatible con"),
        ("Probable infección urinaria.", "infección urinaria", "probable", "Probable"),
        ("Fractura probable de escafoides.", "Fractura", "probable", "probable"),
        ("No se descarta infección de herida.", "infección", "possible", "No se descarta"),
        ("Sin clara focalidad neurológica.", "focalidad", "possible", "Sin clara"),
    ],
)
def test_spanish_uncertainty_is_not_negation(text, concept, certainty, trigger):
    a = one(text, concept)
    assert not a.negated, "a negation word inside an uncertainty cue must not negate"
    assert (a.certainty, a.certainty_trigger) == (certainty, trigger)


def test_spanish_experiencer_and_history():
    fam = one("Madre con cáncer de mama.", "cáncer de mama")
    assert (fam.experiencer, fam.experiencer_trigger, fam.term_exists) == ("family", "Madre", "N")
    # de-identification masks a relative as [FAMILIAR]: the family history must stay the family's
    masked = one("Antecedentes: su [FAMILIAR] con cáncer de mama.", "cáncer de mama")
    assert (masked.experiencer, masked.experiencer_trigger, masked.term_exists) == ("family", "[FAMILIAR]", "N")
    hist = one("Antecedentes de IAM en 2015.", "IAM")
    assert (hist.temporality, hist.temporality_trigger, hist.term_exists) == ("historical", "Antecedentes de", "Y")
    hyp = one("Si presenta fiebre, acudir a urgencias.", "fiebre")
    assert hyp.temporality == "hypothetical" and hyp.term_exists == "N"


def test_accented_si_is_not_conditional():
    assert one("No dolor abdominal, pero sí diarrea.", "diarrea").temporality == "current"


def test_termination_pseudo_and_sentence_bounds():
    # "pero" ends the negation scope, a new sentence resets it, a pseudo-trigger never negates
    assert not one("No dolor abdominal, pero presenta diarrea.", "diarrea").negated
    assert not one("No fiebre. Tos productiva.", "Tos productiva").negated
    assert not one("Nódulo pulmonar sin cambios respecto a previo.", "Nódulo pulmonar").negated
    assert not one("no change in the pulmonary nodule", "pulmonary nodule", "en").negated


def test_backward_and_window():
    assert one("PCR para SARS-CoV-2 negativa.", "SARS-CoV-2").negated
    far = "No " + " ".join(["palabra"] * 20) + " fiebre."
    assert one(far, "fiebre", max_scope=30).negated
    assert not one(far, "fiebre", max_scope=5).negated


@pytest.mark.parametrize(
    "text,concept,negated,temporality,experiencer",
    [
        ("The patient denies chest pain.", "chest pain", True, "current", "patient"),
        ("No evidence of pneumonia.", "pneumonia", True, "current", "patient"),
        ("Pulmonary embolism was ruled out.", "pulmonary embolism", True, "current", "patient"),
        ("She complains of nausea but no vomiting.", "nausea", False, "current", "patient"),
        ("History of myocardial infarction.", "myocardial infarction", False, "historical", "patient"),
        ("Mother with breast cancer.", "breast cancer", False, "current", "family"),
        ("Return to the ED if you develop chest pain.", "chest pain", False, "hypothetical", "patient"),
        ("No focal neurological deficits.", "focal neurological deficits", True, "current", "patient"),
    ],
)
def test_english(text, concept, negated, temporality, experiencer):
    a = one(text, concept, "en")
    assert (a.negated, a.temporality, a.experiencer) == (negated, temporality, experiencer)


def test_rule_out_is_possible_not_negated():
    a = one("Rule out pulmonary embolism.", "pulmonary embolism", "en")
    assert not a.negated and a.certainty == "possible" and a.term_exists == "N"


def test_spans_in_order_and_each_decided_separately():
    text = "Niega fiebre. Refiere tos y dolor torácico."
    out = assert_spans(text, [(text.index("tos"), text.index("tos") + 3), (6, 12)], "es")
    assert [a.negated for a in out] == [False, True]
    assert assert_spans(text, [], "es") == []


def test_unknown_language_raises():
    with pytest.raises(ValueError):
        assert_spans("x", [(0, 1)], "fr")


def test_omop_helpers():
    a = Assertion(negated=True, certainty="possible", experiencer="family", temporality="historical")
    assert term_modifiers(a) == "negated=true,certainty=possible,experiencer=family,temporality=historical"
    assert term_exists(Assertion()) == "Y"
    assert term_exists(Assertion(certainty="probable")) == "Y"
    assert term_exists(Assertion(certainty="possible")) == "N"
    assert term_exists(Assertion(experiencer="other")) == "N"
    assert Assertion(temporality="historical").term_temporal == "historical"


def test_fold_keeps_length_and_sentences():
    text = "Cáncer\nNIÑO. Él sí"
    assert len(fold(text)) == len(text) and fold(text).startswith("cancer\nnino")
    assert [text[s:e] for s, e in sentence_bounds(text)] == ["Cáncer", "NIÑO.", "Él sí"]


def test_lexicons_load_with_upstream_and_curated_rows():
    es, en = load_rules("es"), load_rules("en")
    es_phrases = {(r.phrase, r.group) for r in es}
    assert ("ausencia de", "negation") in es_phrases  # NegEx-MES
    assert ("se descarta", "negation") in es_phrases  # curated
    assert ("motivo de", "negation") not in es_phrases  # dropped upstream row
    assert any(r.phrase == "rule out" and r.value == "possible" for r in en)  # context-en PREP
    assert all(r.value not in ("drop",) for r in es + en)
