"""The PHI phrase list (loading, whole-word longest-first matching, its place in the UDF and in the system name) and
the propagation of detected mentions to their other occurrences."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from clinlake.deid import job as deid
from clinlake.deid.phrases import (
    DETECTOR,
    PROPAGATE_DETECTOR,
    find_phrases,
    fingerprint,
    load_phrases,
    propagate_mentions,
)
from clinlake.deid.replace import DeidPolicy
from clinlake.deid.surrogates import DeidSecret
from clinlake.deid.types import Span
from clinlake.errors import UserError
from udfs.deid import deidentify_text

PHRASES = (("Hospital La Paz", "HOSPITAL"), ("La Paz", "TERRITORIO"), ("Madrid", "TERRITORIO"), ("Pfizer", "INSTITUCION"))


def test_whole_words_longest_first_case_sensitive():
    text = "Ingresó en el Hospital La Paz de Madrid (Pfizer, Madrid). Madridejos, madrid y La Paz."
    got = find_phrases(text, PHRASES)
    want = [Span(14, 29, "HOSPITAL", DETECTOR, 0.9), Span(33, 39, "TERRITORIO", DETECTOR, 0.9),
            Span(41, 47, "INSTITUCION", DETECTOR, 0.9), Span(49, 55, "TERRITORIO", DETECTOR, 0.9),
            Span(79, 85, "TERRITORIO", DETECTOR, 0.9)]
    assert got == want
    assert find_phrases(text, ()) == [] and find_phrases("", PHRASES) == []


def test_load_phrases_reads_tsv_and_refuses_bad_files(tmp_path):
    good = tmp_path / "p.tsv"
    good.write_text("phrase\tlabel\tgold\toccurrences\nMadrid\tTERRITORIO\t9\t9\n\"Clínica\" Sur\tHOSPITAL\t1\t1\n"
                    "\tPAIS\t0\t0\n", encoding="utf-8")
    assert load_phrases(good) == (('"Clínica" Sur', "HOSPITAL"), ("Madrid", "TERRITORIO"))
    bad = tmp_path / "bad.tsv"
    bad.write_text("Madrid\tTERRITORIO\n", encoding="utf-8")
    with pytest.raises(UserError, match="header"):
        load_phrases(bad)
    with pytest.raises(UserError, match="not found"):
        load_phrases(tmp_path / "missing.tsv")


def test_udf_masks_listed_phrases_only_when_the_policy_has_them():
    text = "Remitida desde el Hospital La Paz."
    secret = DeidSecret("phrases-test-secret-0123456789abcdef")
    without = deidentify_text(text, "p1", None, DeidPolicy(), secret)
    with_list = deidentify_text(text, "p1", None, DeidPolicy(phrases=PHRASES), secret)
    assert without["deid_text"] == text and without["spans"] == []
    assert [(s["start"], s["end"], s["label"], s["detector"]) for s in with_list["spans"]] == [
        (18, 33, "HOSPITAL", DETECTOR)]
    assert "La Paz" not in with_list["deid_text"]


def test_policy_and_system_name_follow_the_configured_list(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("phrase\tlabel\nMadrid\tTERRITORIO\n", encoding="utf-8")
    cfg = OmegaConf.create({"project_root": str(tmp_path), "deid": {"rules_version": "rules-2", "policy": {},
                                                                   "phrases": str(path)}})
    policy = deid.policy_for(cfg)
    assert policy.phrases == (("Madrid", "TERRITORIO"),)
    assert deid.rules_system(cfg, policy) == f"rules-2+phrases-{fingerprint(policy.phrases)}"
    path.write_text("phrase\tlabel\nMadrid\tTERRITORIO\nBilbao\tTERRITORIO\n", encoding="utf-8")
    assert deid.rules_system(cfg, deid.policy_for(cfg)) != deid.rules_system(cfg, policy)  # a new list reruns notes
    cfg.deid.phrases = ""
    assert deid.policy_for(cfg).phrases == () and deid.rules_system(cfg, deid.policy_for(cfg)) == "rules-2"


def test_shipped_sample_loads_and_has_no_bare_numbers():
    from pathlib import Path

    phrases = load_phrases(Path(__file__).resolve().parents[1] / "sample" / "deid" / "phi_phrases.tsv")
    assert len(phrases) > 100
    assert not [p for p, _ in phrases if p.isdigit()]  # postal codes are left to the context rules


def test_propagation_adds_uncovered_whole_word_repeats_with_the_majority_label():
    text = "Dr. Gómez Ruiz vio a Ana. Gómez Ruiz pidió TAC. Gómez Ruizo no. Ana Gómez Ruiz firma. Ana, 2016, 2016."
    spans = [Span(4, 14, "NOMBRE_PERSONAL_SANITARIO", "model:ner", 0.7),   # Gómez Ruiz
             Span(21, 24, "NOMBRE_SUJETO_ASISTENCIA", "model:ner", 0.7),   # Ana: shorter than min_chars
             Span(64, 78, "NOMBRE_SUJETO_ASISTENCIA", "model:ner", 0.7),   # Ana Gómez Ruiz
             Span(91, 95, "FECHAS", "rule:date", 1.0)]                     # 2016: no letter
    got = propagate_mentions(spans, text)
    # the second "Gómez Ruiz" only: "Gómez Ruizo" is another word, the fourth lies inside a detected span
    assert got == [Span(26, 36, "NOMBRE_PERSONAL_SANITARIO", PROPAGATE_DETECTOR, 0.8)]
    assert propagate_mentions(spans, text, min_chars=0) == [] and propagate_mentions([], text) == []
    assert propagate_mentions(spans, text, min_chars=3) == [
        Span(26, 36, "NOMBRE_PERSONAL_SANITARIO", PROPAGATE_DETECTOR, 0.8),
        Span(86, 89, "NOMBRE_SUJETO_ASISTENCIA", PROPAGATE_DETECTOR, 0.8)]
    votes = [Span(0, 6, "TERRITORIO", "model:ner"), Span(7, 13, "TERRITORIO", "model:ner"),
             Span(14, 20, "HOSPITAL", "model:ner")]
    assert propagate_mentions(votes, "Getafe Getafe Getafe Getafe") == [
        Span(21, 27, "TERRITORIO", PROPAGATE_DETECTOR, 0.8)]


def test_udf_masks_every_occurrence_of_a_detected_name_unless_turned_off():
    text = "Remitida desde el Hospital La Paz. Alta del Hospital La Paz el día 3."
    secret = DeidSecret("phrases-test-secret-0123456789abcdef")
    model = [{"start": 18, "end": 33, "label": "HOSPITAL", "score": 0.9}]
    on = deidentify_text(text, "p1", model, DeidPolicy(), secret)
    off = deidentify_text(text, "p1", model, DeidPolicy(propagate_min_chars=0), secret)
    assert [(s["start"], s["label"], s["detector"]) for s in on["spans"]] == [
        (18, "HOSPITAL", "model:ner"), (44, "HOSPITAL", PROPAGATE_DETECTOR)]
    assert "La Paz" not in on["deid_text"] and off["deid_text"].count("Hospital La Paz") == 1
