"""Replacement: masks, consistent surrogates, date shifting that keeps format and intervals, ages, secrets."""

from __future__ import annotations

import datetime as dt
import logging
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinlake.deid.dates import parse_date, shift_date_text
from clinlake.deid.replace import DeidPolicy, replace_spans
from clinlake.deid.rules import find_all
from clinlake.deid.surrogates import DeidSecret, DeidSecretError, load_secret, offset_days, surrogate
from clinlake.deid.types import Span

SECRET = DeidSecret("unit-test-secret-0123456789abcdef")
OTHER = DeidSecret("another-secret-0123456789abcdefgh")
POLICY = DeidPolicy()


def _deid(text: str, person: str, policy: DeidPolicy = POLICY, secret: DeidSecret = SECRET):
    """De-identify with the rules only."""
    return replace_spans(text, find_all(text), person, policy, secret)


def test_mask_policy_and_offsets_map_both_texts():
    text = "NHC: 368503. Tel.: 612345678. Fin."
    policy = DeidPolicy(actions={}, default_action="mask")
    new, mapping = replace_spans(text, find_all(text), "p1", policy, SECRET)
    assert new == "NHC: [ID_PACIENTE]. Tel.: [TELEFONO]. Fin."
    for r in mapping:
        assert new[r.new_start : r.new_end] == r.replacement
        assert text[r.start : r.end] in ("368503", "612345678")
    # text between replacements is unchanged, so offsets outside spans shift by the accumulated delta
    assert new[mapping[0].new_end : mapping[1].new_start] == text[mapping[0].end : mapping[1].start]


def test_custom_mask_tag_and_keep():
    text = "Sexo: H. Nombre: Ana."
    policy = DeidPolicy.from_dict({"actions": {"NOMBRE_SUJETO_ASISTENCIA": "mask"}, "mask_tags": {"NOMBRE_SUJETO_ASISTENCIA": "NOMBRE"}})
    new, _ = replace_spans(text, [Span(17, 20, "NOMBRE_SUJETO_ASISTENCIA", "model:ner"), Span(6, 7, "SEXO_SUJETO_ASISTENCIA", "rule:sex")], "p", policy, SECRET)
    assert new == "Sexo: H. Nombre: [NOMBRE]."


def test_bad_policy_rejected():
    with pytest.raises(ValueError):
        DeidPolicy(actions={"FECHAS": "delete"})


def test_surrogate_consistent_across_notes_of_one_patient():
    note1 = "Nombre: Ernesto.\nApellidos: Rivera Bueno.\nRemitido por: Dr. Ignacio Navarro Cuéllar\n"
    note2 = "Control.\nMédico: Ignacio Navarro Cuéllar NºCol: 28 28 70973.\nNombre: ERNESTO.\n"
    m1 = {r.replacement for r in _deid(note1, "patient-1")[1] if r.label.startswith("NOMBRE")}
    m2 = {r.replacement for r in _deid(note2, "patient-1")[1] if r.label.startswith("NOMBRE")}
    # "Ignacio Navarro Cuéllar" and "Ernesto"/"ERNESTO" (same normalised value) map to the same surrogates
    assert len(m1 & m2) == 2
    assert "Ernesto" not in m1 | m2 and "Ignacio Navarro Cuéllar" not in m1 | m2


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="abcdefghijklmnñopqrstuvwxyzáé ", min_size=3, max_size=25).filter(lambda s: s.strip()),
       st.sampled_from(["NOMBRE_SUJETO_ASISTENCIA", "CALLE", "TERRITORIO", "HOSPITAL", "PROFESION"]))  # fmt: skip
def test_property_surrogate_deterministic_and_patient_specific(value, label):
    a = surrogate(SECRET, "p-1", label, value)
    assert a == surrogate(SECRET, "p-1", label, value.upper())  # normalised: case does not matter
    assert a == surrogate(DeidSecret("unit-test-secret-0123456789abcdef"), "p-1", label, value)
    others = {surrogate(SECRET, f"p-{i}", label, value) for i in range(2, 8)} | {surrogate(OTHER, "p-1", label, value)}
    assert len(others - {a}) >= 3  # other patients / another secret: unrelated values (collisions are rare)


def test_email_and_url_surrogates_use_reserved_domains():
    assert surrogate(SECRET, "p", "CORREO_ELECTRONICO", "nnavcu@hotmail.com").split("@")[1].startswith("example.")
    assert surrogate(SECRET, "p", "URL_WEB", "http://x.es").startswith("https://www.example.com/")


@pytest.mark.parametrize(
    ("text", "shape"),
    [("3 de marzo de 2016", r"\d{1,2} de [a-z]+ de \d{4}"), ("03/03/2016", r"\d\d/\d\d/\d{4}"),
     ("3-3-16", r"\d{1,2}-\d{1,2}-\d\d"), ("Marzo de 2016", r"[A-Z][a-z]+ de \d{4}"),
     ("marzo 2016", r"[a-z]+ \d{4}"), ("año 2004", r"año \d{4}"), ("2003", r"\d{4}"),
     ("12-MAR-2016", r"\d{1,2}-[A-Z]{3}-\d{4}"), ("1 de enero del año 2000", r"\d{1,2} de [a-z]+ del año \d{4}")],
)  # fmt: skip
def test_date_shift_keeps_surface_format(text, shape):
    import re

    shifted = shift_date_text(text, -200)  # enough to move even a year-only date
    assert shifted is not None and shifted != text
    assert re.fullmatch(shape, shifted), shifted


def test_date_shift_exact_on_full_dates():
    assert shift_date_text("03/03/2016", -3) == "29/02/2016"  # leap year handled by real calendar arithmetic
    assert shift_date_text("3 de marzo de 2016", 30) == "2 de abril de 2016"
    assert shift_date_text("31/02/2016", 5) is None


@settings(max_examples=100, deadline=None)
@given(st.dates(dt.date(1920, 1, 1), dt.date(2030, 12, 31)), st.dates(dt.date(1920, 1, 1), dt.date(2030, 12, 31)),
       st.text(alphabet="0123456789abcdef", min_size=1, max_size=12))  # fmt: skip
def test_property_intervals_between_a_patients_dates_are_kept(d1, d2, person):
    text = f"Ingreso el {d1:%d/%m/%Y} y alta el {d2.day} de {['enero','febrero','marzo','abril','mayo','junio','julio','agosto','septiembre','octubre','noviembre','diciembre'][d2.month-1]} de {d2.year}."
    new, mapping = _deid(text, person)
    dates = [parse_date(r.replacement).date for r in mapping if r.label == "FECHAS"]
    assert len(dates) == 2
    assert dates[1] - dates[0] == d2 - d1
    low, high = POLICY.date_shift_range
    assert low <= (dates[0] - d1).days <= high


def test_offset_is_per_patient_and_in_range():
    offs = {offset_days(SECRET, f"p{i}", -365, -30) for i in range(200)}
    assert all(-365 <= o <= -30 for o in offs) and len(offs) > 50
    assert offset_days(SECRET, "p1") == offset_days(SECRET, "p1")
    assert any(offset_days(SECRET, f"p{i}") != offset_days(OTHER, f"p{i}") for i in range(5))
    assert offset_days(SECRET, "p", 7, 7) == 7


@pytest.mark.parametrize(
    ("age", "expected"),
    [("95 años", "90 o más años"), ("90 años", "90 o más años"), ("89 años", "89 años"), ("noventa y dos años", "90 o más años"),
     ("3 meses", "3 meses"), ("91", "90 o más años")],
)  # fmt: skip
def test_ages_over_89_generalised(age, expected):
    text = f"Edad: {age}\n"
    new, mapping = replace_spans(text, [Span(6, 6 + len(age), "EDAD_SUJETO_ASISTENCIA", "rule:age")], "p", POLICY, SECRET)
    assert mapping[0].replacement == expected


def test_overlapping_input_is_merged_before_replacing():
    text = "Vive en Calle Mayor 3, Madrid."
    spans = [Span(8, 21, "CALLE", "model:ner"), Span(14, 29, "TERRITORIO", "model:ner", 0.1)]
    new, mapping = replace_spans(text, spans, "p", DeidPolicy(default_action="mask", actions={}), SECRET)
    assert new == "Vive en [CALLE][TERRITORIO]."


# ------------------------------------------------------------------------------------------------- secrets
def test_load_secret_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLAKE_DEID_SECRET", "s3cr3t-value-from-env-123456")
    assert load_secret() == DeidSecret("s3cr3t-value-from-env-123456")
    f = tmp_path / "key"
    f.write_text("file-secret-abcdefghijklmnop\n")
    assert load_secret(secret_file=f) == DeidSecret("file-secret-abcdefghijklmnop")


def test_load_secret_errors_never_show_the_secret(tmp_path, monkeypatch):
    monkeypatch.delenv("CLINLAKE_DEID_SECRET", raising=False)
    with pytest.raises(DeidSecretError, match="CLINLAKE_DEID_SECRET"):
        load_secret()
    monkeypatch.setenv("CLINLAKE_DEID_SECRET", "qzx9w")
    with pytest.raises(DeidSecretError) as exc:
        load_secret()
    assert "qzx9w" not in str(exc.value)
    with pytest.raises(DeidSecretError, match="cannot read"):
        load_secret(secret_file=tmp_path / "missing")


def test_secret_never_in_repr_str_or_logs(caplog):
    raw = "very-secret-key-do-not-print-42"
    key = DeidSecret(raw)
    assert raw not in repr(key) and raw not in str(key) and raw not in f"{key!r} {key}"
    assert raw not in repr(POLICY) and raw not in repr([key])
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("clinlake").info("key is %s", key)
        _deid("NHC: 123456. Fecha 03/03/2016.", "p", secret=key)
    assert raw not in caplog.text
    assert pickle.loads(pickle.dumps(key)) == key  # executors receive the key by pickling
