"""Unit tests of the ingest transforms (pure DataFrame -> DataFrame)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyspark.testing import assertDataFrameEqual

from clinlake import ingest
from udfs import convert


HTML_BODY = ("<!DOCTYPE html><html><head><title>x</title><style>p {color: red}</style></head><body>"
             "<p>Var&oacute;n de 53 a&ntilde;os con <b>HTA</b>.</p><br><div>PCR &lt; 5</div></body></html>")
HTML_TEXT = "Varón de 53 años con HTA.\n\nPCR < 5"
RTF_BODY = r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Arial;}}\f0\fs20 Var\'f3n de 53 a\'f1os.\par Diabetes.\par}"
RTF_TEXT = "Varón de 53 años.\nDiabetes."
BAD_RTF = r"{\rtf1\ansi \'81 byte not in cp1252}"


def _raw(spark):
    rows = [
        ("1", "10", "2020-01-02", "Informe", "Paciente con HTA."),
        ("2", "10", "31/12/2019", None, "Diabetes."),
        ("3", "11", "2019-02-30", None, "Fecha imposible."),
        ("x", "11", "2020-01-01", None, "Id malo."),
        ("4", None, "2020-01-01", None, "Sin persona."),
        ("5", "12", "2020-01-01", None, None),
        ("6", "12", "2020-01-01", None, " \n\t "),
        ("7", "12", "1850-01-01", None, "Antigua."),
        ("8", "13", "2020-01-01", None, "A"),
        ("8", "13", "2020-01-01", None, "B"),
        ("9", "13", "2020-01-01", None, "igual"),
        ("9", "13", "2020-01-01", None, "igual"),
        ("10", "13", "2020-01-01", None, "bad \ufffd\ufffd\ufffd bytes"),
        ("11", "14", "2020-01-01", None, HTML_BODY),
        ("12", "14", "2020-01-01", None, RTF_BODY),
        ("13", "14", "2020-01-01", None, BAD_RTF),
        ("14", "14", "2020-01-01", None, "<html><body><p> </p></body></html>"),
    ]
    return spark.createDataFrame(rows, "id string, patient_id string, date string, title string, text string")


def test_reasons(spark, cfg):
    df = (_raw(spark).transform(ingest.with_omop_names, cfg.ingest.column_map)
          .transform(ingest.with_note_columns, cfg)
          .transform(ingest.with_quarantine_reason, cfg, dt.date(2024, 1, 1))
          .transform(ingest.with_duplicate_reason))
    got = df.selectExpr("_raw_note_id as id", "note_text as text", "quarantine_reason as reason")
    expected = spark.createDataFrame([
        ("1", "Paciente con HTA.", None),
        ("2", "Diabetes.", None),
        ("3", "Fecha imposible.", "note_date unparseable or impossible"),
        ("x", "Id malo.", "note_id is not an integer"),
        ("4", "Sin persona.", "person_id missing or not an integer"),
        ("5", None, "note_text is null"),
        ("6", " \n\t ", "note_text is empty or whitespace"),
        ("7", "Antigua.", "note_date outside [1900-01-01, today+1d]"),
        ("8", "A", "duplicate note_id with different text"),
        ("8", "B", "duplicate note_id with different text"),
        ("9", "igual", None),
        ("9", "igual", "exact duplicate of another row"),
        ("10", "bad \ufffd\ufffd\ufffd bytes", "note_text is not valid UTF-8 (undecodable bytes)"),
        ("11", HTML_TEXT, None),
        ("12", RTF_TEXT, None),
        ("13", None, "rtf body could not be converted to text (UnicodeDecodeError)"),
        ("14", None, "no text left after html conversion"),
    ], "id string, text string, reason string")
    assertDataFrameEqual(got, expected)


def test_typed_columns_and_split(spark, cfg):
    df = (_raw(spark).limit(2).transform(ingest.with_omop_names, cfg.ingest.column_map)
          .transform(ingest.with_note_columns, cfg)
          .transform(ingest.with_quarantine_reason, cfg, dt.date(2024, 1, 1))
          .transform(ingest.with_duplicate_reason))
    good, bad = ingest.split_good_bad(df)
    assert bad.count() == 0
    assertDataFrameEqual(
        good.select("note_id", "person_id", "note_date", "note_title", "language_concept_id"),
        spark.createDataFrame(
            [(1, 10, dt.date(2020, 1, 2), "Informe", 4182511), (2, 10, dt.date(2019, 12, 31), None, 4182511)],
            "note_id long, person_id long, note_date date, note_title string, language_concept_id int",
        ),
    )


def test_source_format_column_and_fingerprint_of_stored_text(spark, cfg):
    df = (_raw(spark).transform(ingest.with_omop_names, cfg.ingest.column_map)
          .transform(ingest.with_note_columns, cfg))
    got = {r["id"]: (r["fmt"], r["sha"]) for r in
           df.selectExpr("_raw_note_id as id", "note_source_format as fmt", "text_sha256 as sha").collect()}
    assert got["11"][0] == "html" and got["12"][0] == "rtf" and got["1"][0] == "plain"
    assert got["11"][1] == hashlib.sha256(HTML_TEXT.encode()).hexdigest()  # offsets downstream refer to this text
    good, _ = ingest.split_good_bad(df.transform(ingest.with_quarantine_reason, cfg, dt.date(2024, 1, 1))
                                    .transform(ingest.with_duplicate_reason))
    assert "note_source_format" in good.columns


@pytest.mark.parametrize("body, fmt", [
    ("Paciente con PCR < 5 mg/dl y lesión <3 cm > 2 cm.", "plain"),
    ("<p>uno</p><p>dos</p>", "html"),
    ("  <html><body>x</body></html>", "html"),
    ("{\\rtf1 hola}", "rtf"),
    ("Texto con una <b> suelta", "plain"),
    (None, "plain"),
])
def test_detect_format(body, fmt):
    assert convert.detect_format(body) == fmt


def test_conversion_keeps_visible_text_only():
    text, fmt, err = convert.to_plain_text("<div>Hb<script>alert(1)</script> 12 g/dl<!-- nota interna --></div>"
                                           "<table><tr><td>Na</td><td>140</td></tr></table>")
    assert (fmt, err) == ("html", None)
    assert "alert" not in text and "nota interna" not in text and "Hb 12 g/dl" in text and "Na\t140" in text
    assert convert.to_plain_text(RTF_BODY) == (RTF_TEXT, "rtf", None)
    assert convert.to_plain_text("sin marcas") == ("sin marcas", "plain", None)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<>{}\\&"), max_size=200))
def test_html_round_trip_keeps_prose(prose):
    """Any markup-free prose wrapped in a paragraph converts back to itself (modulo surrounding whitespace)."""
    text, fmt, err = convert.to_plain_text(f"<html><body><p>{prose}</p></body></html>")
    if prose.strip():
        assert (fmt, err) == ("html", None)
        assert " ".join(text.split()) == " ".join(prose.split())
    else:
        assert text is None and err == "no text left after html conversion"
