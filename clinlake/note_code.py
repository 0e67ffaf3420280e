"""Ranked codes per note (Delta `note_code`): what CodiEsp-D/P-style coding consumes, built from NOTE_NLP.

One row per (note_id, vocabulary_id, concept_code) over the note's *present* mentions (`term_exists` not 'N':
not negated, about the patient, not hypothetical; a null `term_exists` counts as present, as when no assertion
stage ran). Codes are ranked within (note_id, vocabulary_id), rank 1 = best.

Score (documented, in [0, 1]): noisy-OR of the resolver scores of the code's mentions,
``score = 1 - prod_i (1 - s_i)``, i.e. the probability that at least one mention really carries the code when
each mention is right with probability s_i (its resolver score, clipped to [0, 1]; a null score counts as
`NULL_SCORE`). More mentions and more confident mentions both raise it, and it saturates, so one confident
mention is not outranked by many doubtful ones. Ties (frequent: unambiguous mentions score 1.0) are broken by
mention count, best single score, first position in the note, then code, so the ranking is deterministic.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

NULL_SCORE = 0.5  # a coded mention without a resolver score: as likely right as wrong

NOTE_CODE = StructType(
    [
        StructField("note_id", LongType(), False),
        StructField("vocabulary_id", StringType(), True),
        StructField("concept_code", StringType(), False),
        StructField("concept_id", IntegerType(), True),  # source concept (note_nlp_source_concept_id), 0 if unknown
        StructField("standard_concept_id", IntegerType(), True),  # its "Maps to" standard concept, 0 if none
        StructField("rank", IntegerType(), False),
        StructField("score", DoubleType(), False),
        StructField("mentions", LongType(), False),
        StructField("best_score", DoubleType(), True),
        StructField("first_offset", IntegerType(), True),
        StructField("labels", ArrayType(StringType()), True),
        StructField("note_nlp_ids", ArrayType(LongType()), True),  # supporting NOTE_NLP rows, sorted
        StructField("nlp_system", StringType(), True),
    ]
)

# Columns with_note_codes reads: the required ones, and optional ones filled with nulls when a frame lacks them
# (the evaluation job's collected rows carry only the required ones plus offsets).
REQUIRED = ("note_id", "label", "concept_code", "score", "term_exists")
OPTIONAL = {
    "vocabulary_id": StringType(), "note_nlp_id": LongType(), "offset_start": IntegerType(),
    "note_nlp_source_concept_id": IntegerType(), "note_nlp_concept_id": IntegerType(), "nlp_system": StringType(),
}


def present(term_exists: Column) -> Column:
    """Whether a mention counts as present (term_exists 'N' = negated, other experiencer or hypothetical)."""
    return term_exists.isNull() | (term_exists != F.lit("N"))


def with_note_codes(note_nlp: DataFrame) -> DataFrame:
    """NOTE_NLP rows -> ranked codes per (note_id, vocabulary_id) from present, coded mentions (NOTE_CODE shape)."""
    missing = [c for c in REQUIRED if c not in note_nlp.columns]
    if missing:
        raise ValueError(f"with_note_codes needs columns {', '.join(missing)}")
    df = note_nlp
    for name, dtype in OPTIONAL.items():
        if name not in df.columns:
            df = df.withColumn(name, F.lit(None).cast(dtype))
    s = F.least(F.greatest(F.coalesce(F.col("score").cast("double"), F.lit(NULL_SCORE)), F.lit(0.0)), F.lit(1.0))
    mentions = (
        df.filter(F.col("note_id").isNotNull() & F.col("concept_code").isNotNull() & (F.trim("concept_code") != "")
                  & present(F.col("term_exists")))
        .withColumn("_s", s)
        # log(1 - s) summed = log of the product; a certain mention (s = 1) makes the product exactly 0.
        .withColumn("_log_miss", F.when(F.col("_s") < 1.0, F.log1p(-F.col("_s"))))
        .withColumn("_certain", (F.col("_s") >= 1.0).cast("int"))
    )
    per_code = mentions.groupBy("note_id", "vocabulary_id", "concept_code").agg(
        F.max("_certain").alias("_certain"),
        F.sum("_log_miss").alias("_log_miss"),
        F.count(F.lit(1)).alias("mentions"),
        F.max("_s").alias("best_score"),
        F.min("offset_start").alias("first_offset"),
        F.coalesce(F.max("note_nlp_source_concept_id"), F.lit(0)).alias("concept_id"),
        F.coalesce(F.max("note_nlp_concept_id"), F.lit(0)).alias("standard_concept_id"),
        F.array_sort(F.collect_set("label")).alias("labels"),
        F.array_sort(F.collect_list("note_nlp_id")).alias("note_nlp_ids"),
        F.min("nlp_system").alias("nlp_system"),
    )
    score = F.when(F.col("_certain") == 1, F.lit(1.0)).otherwise(1.0 - F.exp(F.coalesce("_log_miss", F.lit(0.0))))
    # Rounded so float noise from summation order never decides a tie the tie-breakers should decide.
    score = F.round(score, 9)
    ranked = per_code.withColumn("score", score)
    w = Window.partitionBy("note_id", "vocabulary_id").orderBy(
        F.col("score").desc(), F.col("mentions").desc(), F.col("best_score").desc(),
        F.col("first_offset").asc_nulls_last(), F.col("concept_code").asc())
    ranked = ranked.withColumn("rank", F.row_number().over(w))
    return ranked.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in NOTE_CODE.fields])


def write(spark: SparkSession, cfg, rows: DataFrame, note_ids: DataFrame) -> int:
    """Replace the note_code rows of the processed notes (one atomic MERGE); returns the rows written.

    rows: the NOTE_NLP rows just computed for those notes; note_ids: a frame with their note_id (notes left
    without any present code lose their old rows too). Call inside the job's delta.commit_metadata block.
    """
    from clinlake import catalog, delta
    from clinlake.config import lake_path

    codes = with_note_codes(rows).cache()
    n = codes.count()
    delta.replace_for_keys(spark, codes, note_ids.select("note_id"), lake_path(cfg, "note_code"), key="note_id")
    codes.unpersist()
    catalog.register(spark, cfg, "note_code")
    return n
