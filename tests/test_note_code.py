"""note_code: ranked codes per note from coded NOTE_NLP mentions and their candidates (clinlake/note_code.py)."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from clinlake.note_code import NOTE_CODE, NULL_SCORE, with_concept_ids, with_note_codes

NLP_SCHEMA = ("note_nlp_id long, note_id long, label string, vocabulary_id string, concept_code string, "
              "score double, term_exists string, offset_start int, note_nlp_source_concept_id int, "
              "note_nlp_concept_id int, nlp_system string, "
              "candidates array<struct<rank:int,vocabulary_id:string,concept_code:string,score:double>>")
DX, PX, CM = "DIAGNOSTICO", "PROCEDIMIENTO", "ICD10CM"


def _noisy_or(*scores: float) -> float:
    return 1.0 - math.prod(1.0 - s for s in scores)


@pytest.fixture(scope="module")
def nlp(spark):
    cands_1 = [(1, CM, "A", 0.6), (2, CM, "B", 0.3), (3, CM, "Z", 0.05), (4, CM, "W", 0.01)]
    rows = [
        # note 1, ICD10CM: A twice (0.6, 0.5); mention 1 also lists B, Z (ranks 2-3) and W (rank 4: beyond k = 3);
        # B once (0.9); C negated; D with null score and null assertion
        (1, 1, DX, CM, "A", 0.6, "Y", 50, 11, 0, "m@1", cands_1),
        (2, 1, DX, CM, "A", 0.5, "Y", 10, 11, 0, "m@1", None),
        (3, 1, DX, CM, "B", 0.9, "Y", 5, 12, 99, "m@1", None),
        (4, 1, DX, CM, "C", 1.0, "N", 0, 13, 0, "m@1", None),
        (5, 1, DX, CM, "D", None, None, 70, None, None, "m@1", None),
        # no code (withheld): not rankable, and neither are its candidates
        (6, 1, DX, CM, None, 0.8, "Y", 80, 0, 0, "m@1", [(1, CM, "Q", 0.8)]),
        (7, 1, PX, "ICD10PCS", "P", 1.0, "Y", 90, 21, 0, "m@1", None),
        # note 2: three certain codes; mention count, then first position, break the tie
        (8, 2, DX, CM, "E", 1.0, "Y", 30, 0, 0, "m@1", None),
        (9, 2, DX, CM, "F", 1.0, "Y", 10, 0, 0, "m@1", None),
        (10, 2, DX, CM, "G", 1.0, "Y", 40, 0, 0, "m@1", None),
        (11, 2, DX, CM, "G", 1.0, "Y", 60, 0, 0, "m@1", None),
        (None,) * 12,  # an all-null row
    ]
    return spark.createDataFrame(rows, NLP_SCHEMA)


def test_ranks_codes_by_noisy_or_over_mentions_and_candidates_then_ties(spark, nlp):
    got = with_note_codes(nlp)
    a, b = _noisy_or(0.6, 0.5), _noisy_or(0.9, 0.3)
    expected = spark.createDataFrame([
        (1, CM, "C", 13, 0, 1, 1.0, False, 0.0, 1, 1.0, 0, [DX], [4], "m@1"),
        (1, CM, "B", 12, 99, 2, b, True, b, 2, 0.9, 5, [DX], [1, 3], "m@1"),
        (1, CM, "A", 11, 0, 3, a, True, a, 2, 0.6, 10, [DX], [1, 2], "m@1"),
        (1, CM, "D", 0, 0, 4, NULL_SCORE, True, NULL_SCORE, 1, NULL_SCORE, 70, [DX], [5], "m@1"),
        (1, CM, "Z", 0, 0, 5, 0.05, True, 0.05, 1, 0.05, 50, [DX], [1], "m@1"),
        (1, "ICD10PCS", "P", 21, 0, 1, 1.0, True, 1.0, 1, 1.0, 90, [PX], [7], "m@1"),
        (2, CM, "G", 0, 0, 1, 1.0, True, 1.0, 2, 1.0, 40, [DX], [10, 11], "m@1"),
        (2, CM, "F", 0, 0, 2, 1.0, True, 1.0, 1, 1.0, 10, [DX], [9], "m@1"),
        (2, CM, "E", 0, 0, 3, 1.0, True, 1.0, 1, 1.0, 30, [DX], [8], "m@1"),
    ], NOTE_CODE)
    assertDataFrameEqual(got, expected, rtol=1e-9)
    assert got.schema.fieldNames() == NOTE_CODE.fieldNames()


def test_one_candidate_per_mention_ranks_concept_codes_only(nlp):
    got = {r["concept_code"]: (r["rank"], r["mentions"]) for r in with_note_codes(nlp, 1).collect()
           if r["note_id"] == 1 and r["vocabulary_id"] == CM}
    assert got == {"C": (1, 1), "B": (2, 1), "A": (3, 2), "D": (4, 1)}


def test_negated_code_is_ranked_but_not_present_and_uncoded_rows_are_left_out(nlp):
    rows = {r["concept_code"]: r for r in with_note_codes(nlp).collect()}
    assert not rows["C"]["present"] and rows["C"]["present_score"] == 0.0
    assert None not in rows and "Q" not in rows and "W" not in rows


def test_present_score_counts_present_mentions_only(spark):
    df = spark.createDataFrame([(1, DX, "X", 0.5, "Y"), (1, DX, "X", 0.8, "N")],
                               "note_id long, label string, concept_code string, score double, term_exists string")
    r = with_note_codes(df).first()
    assert r["present"] and math.isclose(r["score"], _noisy_or(0.5, 0.8)) and math.isclose(r["present_score"], 0.5)


def test_concept_ids_of_candidate_codes_come_from_the_vocabulary(spark, nlp):
    concept = spark.createDataFrame([(500, CM, "Z"), (501, CM, "B"), (None, None, None)],
                                    "concept_id int, vocabulary_id string, concept_code string")
    rel = spark.createDataFrame([(500, 900, "Maps to"), (501, 901, "Maps to"), (500, 902, "Is a")],
                                "concept_id_1 int, concept_id_2 int, relationship_id string")
    got = {r["concept_code"]: (r["concept_id"], r["standard_concept_id"])
           for r in with_concept_ids(with_note_codes(nlp), concept, rel).filter("note_id = 1").collect()}
    # Z was only a candidate: looked up; B already had the resolver's concept ids: kept; A has none in this vocab
    assert got["Z"] == (500, 900) and got["B"] == (12, 99) and got["A"] == (11, 0) and got["D"] == (0, 0)


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
    assert note_code.write(spark, cfg, nlp, ids) == 9
    # note 1 reprocessed: B is now negated (still ranked, not present), everything else gone; note 2 untouched
    redo = spark.createDataFrame([(3, 1, DX, CM, "B", 0.9, "N", 5, 12, 99, "m@1", None),
                                  (1, 1, DX, CM, "A", 0.6, "Y", 50, 11, 0, "m@1", None)], NLP_SCHEMA)
    assert note_code.write(spark, cfg, redo, spark.createDataFrame([(1,)], "note_id long")) == 2
    table = spark.read.format("delta").load(lake_path(cfg, "note_code"))
    got = sorted((r["note_id"], r["concept_code"], r["rank"], r["present"]) for r in table.collect())
    assert got == [(1, "A", 2, True), (1, "B", 1, False), (2, "E", 3, True), (2, "F", 2, True), (2, "G", 1, True)]


def test_a_lake_written_before_the_present_columns_takes_them(spark, cfg, nlp):
    """An older release's note_code (no present / present_score) is extended in place, not rewritten or failed."""
    from clinlake import note_code
    from clinlake.config import lake_path

    path = lake_path(cfg, "note_code")
    old = with_note_codes(nlp).filter("note_id = 2").drop("present", "present_score")
    old.write.format("delta").save(path)
    assert note_code.write(spark, cfg, nlp.filter("note_id = 1"), spark.createDataFrame([(1,)], "note_id long")) == 6
    table = spark.read.format("delta").load(path)
    assert {"present", "present_score"} <= set(table.columns)
    got = sorted((r["note_id"], r["concept_code"], r["present"]) for r in table.filter("concept_code in ('C', 'G')")
                 .collect())
    assert got == [(1, "C", False), (2, "G", None)]   # note 2's old rows read the new columns as null


def test_an_old_note_nlp_table_takes_the_nested_candidates_column(spark, tmp_path):
    """The NOTE_NLP extension column is an array of structs: its DDL must survive the additive migration."""
    from clinlake import delta, omop

    path = str(tmp_path / "note_nlp")
    spark.createDataFrame([(1, "A")], "note_nlp_id long, concept_code string").write.format("delta").save(path)
    new = spark.createDataFrame([(2, "B", [(1, "ICD10CM", "B", 0.9)])], StructType(
        [StructField("note_nlp_id", LongType()), StructField("concept_code", StringType()),
         StructField("candidates", ArrayType(omop.CANDIDATE))]))
    assert delta.add_missing_columns(spark, path, new) == ["candidates"]
    assert delta.add_missing_columns(spark, path, new) == []          # idempotent: nothing left to add
    delta.replace_for_keys(spark, new, new.select("note_nlp_id"), path, key="note_nlp_id")
    got = {r["note_nlp_id"]: r["candidates"] for r in spark.read.format("delta").load(path).collect()}
    assert got[1] is None and got[2][0]["concept_code"] == "B" and got[2][0]["score"] == 0.9


def test_phrase_precision_weighs_a_mention(spark):
    """A phrase annotators rarely code where it occurs counts for less: 0.8 * 0.25 = 0.2 ranks below 0.6 * 1."""
    df = spark.createDataFrame([(1, DX, "X", 0.8, "Y", 0.25), (1, DX, "Y", 0.6, "Y", None)],
                               "note_id long, label string, concept_code string, score double, term_exists string, "
                               "phrase_precision double")
    got = {r["concept_code"]: (r["rank"], r["score"]) for r in with_note_codes(df).collect()}
    assert got["Y"] == (1, pytest.approx(0.6)) and got["X"] == (2, pytest.approx(0.2))
