"""deidentify_text on bad input, residual-identifier patterns, and the GX suite file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clinlake.deid.replace import DeidPolicy
from clinlake.deid.residual import COMPILED, RESIDUAL_PATTERNS, expectation_suite, find_residual
from clinlake.deid.surrogates import DeidSecret, surrogate
from clinlake.deid.types import MEDDOCAN_TYPES
from udfs.deid import deidentify_text

ROOT = Path(__file__).resolve().parent.parent
SECRET = DeidSecret("udf-test-secret-0123456789abcdef")
POLICY = DeidPolicy()
NOTE = (
    "Nombre: Ernesto.\nNHC: 368503.\nNASS: 26 63514095.\nDNI 12345678Z.\nFecha de Ingreso: 12/12/2016.\n"
    "Tel.: 612 345 678. E-mail: nnavcu@hotmail.com. Web: http://www.clinica-ejemplo.es/a. IBAN ES91 2100 0418 4502 0005 1332\n"
)


def test_plain_function_deidentifies_and_reports_spans():
    out = deidentify_text(NOTE, "p1", [{"start": 0, "end": 6, "label": "OTROS_SUJETO_ASISTENCIA", "score": 0.5}], POLICY, SECRET)
    assert out["error"] is None
    for real in ("Ernesto", "368503", "63514095", "12345678Z", "12/12/2016", "612 345 678", "nnavcu", "clinica-ejemplo", "ES91"):
        assert real not in out["deid_text"]
    assert find_residual(out["deid_text"]) == {}
    assert {s["detector"] for s in out["spans"]} >= {"model:ner", "rule:nhc"}
    for s in out["spans"]:
        assert out["deid_text"][s["new_start"] : s["new_end"]] == s["replacement"]


def test_model_pieces_are_tidied_before_the_merge_as_the_policy_says():
    text = "Vive en Avda. Gaspar Aguilar, 90 con su madre."
    a, b = text.index("Avda."), text.index("Gaspar")
    pieces = [{"start": a, "end": a + 5, "label": "CALLE"}, {"start": b, "end": b + 18, "label": "CALLE"}]
    joined = deidentify_text(text, "p1", pieces, POLICY, SECRET)["spans"]
    assert [(s["start"], s["end"], s["label"]) for s in joined if s["label"] == "CALLE"] == [(a, b + 18, "CALLE")]
    apart = deidentify_text(text, "p1", pieces, DeidPolicy.from_dict({"join_labels": []}), SECRET)["spans"]
    # not joined: two streets, the first without its trailing period
    assert [(s["start"], s["end"]) for s in apart if s["label"] == "CALLE"] == [(a, a + 4), (b, b + 18)]


@pytest.mark.parametrize(
    ("text", "person", "error"),
    [(None, "p", "null text"), (b"\xff\xfe bad", "p", "invalid UTF-8"), ("texto", None, "null person_id")],
)
def test_bad_input_returns_error_not_exception(text, person, error):
    out = deidentify_text(text, person, None, POLICY, SECRET)
    assert out["deid_text"] is None and error in out["error"]


@pytest.mark.parametrize("text", ["", "   \n\t  "])
def test_empty_and_whitespace_pass_through(text):
    assert deidentify_text(text, "p", [], POLICY, SECRET) == {"deid_text": text, "spans": [], "error": None}


def test_bad_model_span_and_too_long_text_are_errors():
    out = deidentify_text("hola", "p", [{"start": 3, "end": 1, "label": "X"}], POLICY, SECRET)
    assert out["deid_text"] is None and out["error"].startswith("de-identification failed")
    out = deidentify_text("x" * 20, "p", [], DeidPolicy(max_chars=10), SECRET)
    assert out["deid_text"] is None and "longer than" in out["error"]


def test_one_megabyte_note_with_markup():
    chunk = "<p>Paciente <b>varón de 45 años</b>, NHC: 1234567. Tel: 912 345 678 &amp; <a href='x'>ver</a></p>\n"
    text = (chunk * (1_000_000 // len(chunk) + 1))[:1_000_000]
    out = deidentify_text(text, "p", [], POLICY, SECRET)
    assert out["error"] is None
    assert "912 345 678" not in out["deid_text"] and "1234567" not in out["deid_text"]


# ------------------------------------------------------------------------------------------------- residual
@pytest.mark.parametrize(
    ("name", "text"),
    [("email", "escribir a juan.perez@gmail.com"), ("phone", "móvil 612 34 56 78"), ("phone", "+34 912345678"),
     ("dni_nie", "DNI 12345678Z"), ("dni_nie", "NIE X-1234567L"), ("nss", "NASS: 28 12345678 40"),
     ("nss", "afiliación 08/12345678/12"), ("iban", "ES91 2100 0418 4502 0005 1332"), ("url", "ver www.hospital.es/x")],
)  # fmt: skip
def test_residual_patterns_fire_on_identifiers(name, text):
    assert name in find_residual(text)


@pytest.mark.parametrize(
    "text",
    ["PSA de 1.16 ng/ml, glucemia 169 mg/dl, triglicéridos 456 mg/dl", "Plaquetas 150.000/mm3; leucocitos 12.100",
     "TA 120/80 mmHg, FC 72 lpm, Sat O2 98%", "1.000.000 UI de penicilina", "dilución 1/2000, 0,5 mg/kg/día",
     "CD4 350 cél/µl, carga viral 125000 copias/ml", "Hb 12,5 g/dl; VSG 40 mm/h", "peso 3450 g al nacer",
     "NHC: [ID_PACIENTE]. NASS: [ID_ASEGURAMIENTO]. Tel: [TELEFONO]", "fecha 12/12/2016, CIE-10 C61"],
)  # fmt: skip
def test_residual_patterns_quiet_on_clinical_text_and_masks(text):
    assert find_residual(text) == {}


@pytest.mark.parametrize("label", ["CORREO_ELECTRONICO", "URL_WEB", "NUMERO_TELEFONO", "NUMERO_FAX", *MEDDOCAN_TYPES])
def test_residual_patterns_quiet_on_default_surrogates(label):
    originals = {"CORREO_ELECTRONICO": "a.b@hotmail.com", "URL_WEB": "http://x.es", "NUMERO_TELEFONO": "612 345 678",
                 "NUMERO_FAX": "+34 912-345-678"}  # fmt: skip
    for person in range(40):
        if POLICY.action(label) != "surrogate" and label not in originals:
            continue
        value = surrogate(SECRET, f"p{person}", label, originals.get(label, "Valor Real"))
        assert find_residual(value) == {}, (label, value)


def test_patterns_are_java_compatible_subset():
    for name, p in RESIDUAL_PATTERNS.items():
        assert "(?P<" not in p and "(?P=" not in p, name  # Python-only named groups
        re.compile(p)
    assert set(COMPILED) == {"email", "phone", "dni_nie", "nss", "iban", "url"}


def test_expectation_file_matches_generated_suite():
    on_disk = json.loads((ROOT / "expectations" / "note_deid.json").read_text(encoding="utf-8"))
    assert on_disk == expectation_suite()
    types = [e["type"] for e in on_disk["expectations"]]
    assert types.count("expect_column_values_to_not_match_regex") == len(RESIDUAL_PATTERNS)
    assert {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "note_id"}, "meta": {}} in on_disk["expectations"]


def test_suite_loads_in_great_expectations():
    gx = pytest.importorskip("great_expectations")
    suite = gx.ExpectationSuite(**expectation_suite())
    assert len(suite.expectations) == len(RESIDUAL_PATTERNS) + 1
