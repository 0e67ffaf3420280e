"""note_code: ranked codes per note from present NOTE_NLP mentions (clinlake/note_code.py)."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from clinlake.note_code import NOTE_CODE, NULL_SCORE, with_note_codes

NLP_SCHEMA = ("note_nlp_id long, note_id long, label string, vocabulary_id string, concept_code string, "
              "score double, term_exists string, offset_start int, note_nlp_source_concept_id int, "
              "note_nlp_concept_id int, nlp_system string")
DX, PX = "DIAGNOSTICO", "PROCEDIMIENTO"


def _noisy_or(*scores: float) -> float:
    return 1.0 - math.prod(1.0 - s for s in scores)


@pytest.fixture(scope="module")
def nlp(spark):
    rows = [
        # note 1, ICD10CM: A twice (0.6, 0.5), B once (0.9), C negated, D with null score and null assertion
        (1, 1, DX, "ICD10CM", "A", 0.6, "Y", 50, 11, 0, "m@1"),
        (2, 1, DX, "ICD10CM", "A", 0.5, "Y", 10, 11, 0, "m@1"),
        (3, 1, DX, "ICD10CM", "B", 0.9, "Y", 5, 12, 99, "m@1"),
        (4, 1, DX, "ICD10CM", "C", 1.0, "N", 0, 13, 0, "m@1"),
        (5, 1, DX, "ICD10CM", "D", None, None, 70, None, None, "m@1"),
        (6, 1, DX, "ICD10CM", None, 0.8, "Y", 80, 0, 0, "m@1"),  # no code: not rankable
        (7, 1, PX, "ICD10PCS", "P", 1.0, "Y", 90, 21, 0, "m@1"),
        # note 2: three certain codes; mention count, then first position, break the tie
        (8, 2, DX, "ICD10CM", "E", 1.0, "Y", 30, 0, 0, "m@1"),
        (9, 2, DX, "ICD10CM", "F", 1.0, "Y", 10, 0, 0, "m@1"),
        (10, 2, DX, "ICD10CM", "G", 1.0, "Y", 40, 0, 0, "m@1"),
        (11, 2, DX, "ICD10CM", "G", 1.0, "Y", 60, 0, 0, "m@1"),
        (None, None, None, None, None, None, None, None, None, None, None),  # an all-null row
    ]
    return spark.createDataFrame(rows, NLP_SCHEMA)


def test_ranks_present_codes_by_noisy_or_then_ties(spark, nlp):
    got = with_note_codes(nlp)
    a = _noisy_or(0.6, 0.5)
    expected = spark.createDataFrame([
        (1, "ICD10CM", "B", 12, 99, 1, 0.9, 1, 0.9, 5, [DX], [3], "m@1"),
        (1, "ICD10CM", "A", 11, 0, 2, a, 2, 0.6, 10, [DX], [1, 2], "m@1"),
        (1, "ICD10CM", "D", 0, 0, 3, NULL_SCORE, 1, NULL_SCORE, 70, [DX], [5], "m@1"),
        (1, "ICD10PCS", "P", 21, 0, 1, 1.0, 1, 1.0, 90, [PX], [7], "m@1"),
        (2, "ICD10CM", "G", 0, 0, 1, 1.0, 2, 1.0, 40, [DX], [10, 11], "m@1"),
        (2, "ICD10CM", "F", 0, 0, 2, 1.0, 1, 1.0, 10, [DX], [9], "m@1"),
        (2, "ICD10CM", "E", 0, 0, 3, 1.0, 1, 1.0, 30, [DX], [8], "m@1"),
    ], NOTE_CODE)
    assertDataFrameEqual(got, expected, rtol=1e-9)
    assert got.schema.fieldNames() == NOTE_CODE.fieldNames()


def test_negated_only_code_and_uncoded_rows_are_left_out(nlp):
    codes = {r["concept_code"] for r in with_note_codes(nlp).collect()}
    assert "C" not in codes and None not in codes


def test_optional_columns_may_be_absent(spark):
    """The evaluation job's collected rows carry no vocabulary, ids or system: ranking still works."""
    df = spark.createDataFrame([(1, DX, "X", 0.2, "Y"), (1, DX, "Y", 0.7, "Y"), (1, DX, "X", 0.7, "Y")],
                               "note_id long, label string, concept_code string, score double, term_exists string")
    got = with_note_codes(df).select("concept_code", "rank", "mentions", "note_nlp_ids")
    x = _noisy_or(0.2, 0.7)
    assert x > 0.7  # two mentions outrank one equally good mention
    assertDataFrameEqual(got, spark.createDataFrame([("X", 1, 2, []), ("Y", 2, 1, [])],
                                                    "concept_code string, rank int, mentions long, note_nlp_ids array<long>"))


def test_missing_required_column_is_named(spark):
    df = spark.createDataFrame([(1, DX, "X")], "note_id long, label string, concept_code string")
    with pytest.raises(ValueError, match="score, term_exists"):
        with_note_codes(df)


def test_ranks_are_contiguous_and_scores_bounded(nlp):
    got = with_note_codes(nlp)
    bad = got.groupBy("note_id", "vocabulary_id").agg(F.count("*").alias("n"), F.max("rank").alias("m")) \
        .filter("n != m").count()
    assert bad == 0
    assert got.filter("score < 0 or score > 1").count() == 0


def test_write_replaces_only_the_processed_notes(spark, cfg, nlp):
    from clinlake import note_code
    from clinlake.config import lake_path

    ids = nlp.select("note_id").filter("note_id is not null").distinct()
    assert note_code.write(spark, cfg, nlp, ids) == 7
    # note 1 reprocessed: B is now negated, everything else gone; note 2 untouched
    redo = spark.createDataFrame([(3, 1, DX, "ICD10CM", "B", 0.9, "N", 5, 12, 99, "m@1"),
                                  (1, 1, DX, "ICD10CM", "A", 0.6, "Y", 50, 11, 0, "m@1")], NLP_SCHEMA)
    assert note_code.write(spark, cfg, redo, spark.createDataFrame([(1,)], "note_id long")) == 1
    table = spark.read.format("delta").load(lake_path(cfg, "note_code"))
    got = sorted((r["note_id"], r["concept_code"], r["rank"]) for r in table.collect())
    assert got == [(1, "A", 1), (2, "E", 3), (2, "F", 2), (2, "G", 1)]
