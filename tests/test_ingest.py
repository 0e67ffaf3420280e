"""Unit tests of the ingest transforms (pure DataFrame -> DataFrame)."""

from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual

from clinlake import ingest


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
