"""Ranked codes per note (Delta `note_code`): what CodiEsp-D/P-style coding consumes, built from NOTE_NLP.

One row per (note_id, vocabulary_id, concept_code). A code is supported by every coded mention whose resolver
ranked it in its top `candidates` codes (rank 1 is the mention's `concept_code`, ranks 2..k come from its
`candidates` array), whatever the mention's assertion. Codes are ranked within (note_id, vocabulary_id),
rank 1 = best.

Score (documented, in [0, 1]): noisy-OR over the supporting (mention, code) pairs,
``score = 1 - prod_i (1 - s_i)``, i.e. the probability that at least one mention really carries the code when
each is right with probability s_i = w * p: p the resolver's calibrated score of that code for that mention
(clipped to [0, 1]; a null score counts as `NULL_SCORE`), w the mention's `phrase_precision` (how often annotators
coded that phrase where it occurs in the training texts; 1 when unknown). More mentions and more confident mentions
both raise it, and it saturates, so one confident mention is not outranked by many doubtful ones. Ties (frequent:
unambiguous mentions score 1.0) are broken by mention count, best single score, first position in the note, then
code, so the ranking is deterministic.

Assertion: `present` says whether at least one supporting mention is present (`term_exists` not 'N': not
negated, about the patient, not hypothetical; null counts as present) and `present_score` is the same noisy-OR
over those mentions only (0 when none). Cohort questions filter ``WHERE present``; the ranking itself counts
every mention because a coder's list does: on CodiEsp dev, 277 of the 412 codes our negated diagnosis mentions
carried are gold codes of their document, and leaving them out cost 0.09 MAP-D (docs/review.md).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from clinlake.omop import CANDIDATE

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
        StructField("present", BooleanType(), False),  # some supporting mention is present (term_exists <> 'N')
        StructField("present_score", DoubleType(), False),  # noisy-OR over the present mentions only, 0 if none
        StructField("mentions", LongType(), False),
        StructField("best_score", DoubleType(), True),
        StructField("first_offset", IntegerType(), True),
        StructField("labels", ArrayType(StringType()), True),
        StructField("note_nlp_ids", ArrayType(LongType()), True),  # supporting NOTE_NLP rows, sorted
        StructField("nlp_system", StringType(), True),
    ]
)

# Columns with_note_codes reads: the required ones, and optional ones filled with nulls when a frame lacks them
# (the evaluation job's collected rows carry only the required ones plus offsets and candidates).
REQUIRED = ("note_id", "label", "concept_code", "score", "term_exists")
OPTIONAL = {
    "vocabulary_id": StringType(), "note_nlp_id": LongType(), "offset_start": IntegerType(),
    "note_nlp_source_concept_id": IntegerType(), "note_nlp_concept_id": IntegerType(), "nlp_system": StringType(),
    "candidates": ArrayType(CANDIDATE), "phrase_precision": DoubleType(),
}
DEFAULT_CANDIDATES = 3   # codes per mention that support note codes (rank 1 + the resolver's next two)


def present(term_exists: Column) -> Column:
    """Whether a mention counts as present (term_exists 'N' = negated, other experiencer or hypothetical)."""
    return term_exists.isNull() | (term_exists != F.lit("N"))


def _noisy_or(log_miss: Column, certain: Column) -> Column:
    """1 - prod(1 - s) from the summed log(1 - s) of the s < 1 and whether any s was 1 (exactly 1, no log)."""
    score = F.when(certain == 1, F.lit(1.0)).otherwise(1.0 - F.exp(F.coalesce(log_miss, F.lit(0.0))))
    # Rounded so float noise from summation order never decides a tie the tie-breakers should decide.
    return F.round(score, 9)


def explode_supported_codes(note_nlp: DataFrame, candidates: int = DEFAULT_CANDIDATES) -> DataFrame:
    """Coded NOTE_NLP rows -> one row per (mention, code in its top `candidates`) with its weighted score `_s`
    (the resolver's score of that code times the mention's phrase_precision, 1 when null).

    Rank 1 is the row's own concept_code and score (a reviewed mapping's 1.0 included) with its concept ids;
    ranks 2..k are the other codes of its `candidates` array (concept ids 0: write() looks them up).
    """
    def clip(c: Column) -> Column:
        return F.least(F.greatest(F.coalesce(c.cast("double"), F.lit(NULL_SCORE)), F.lit(0.0)), F.lit(1.0))

    coded = note_nlp.filter(F.col("note_id").isNotNull() & F.col("concept_code").isNotNull()
                            & (F.trim("concept_code") != ""))
    # How often the phrase is coded where it occurs (null = no count: no opinion, weight 1).
    coded = coded.withColumn("_w", clip(F.coalesce(F.col("phrase_precision"), F.lit(1.0))))
    keep = ["note_id", "label", "note_nlp_id", "offset_start", "nlp_system", "term_exists", "_w"]
    own = coded.select(*keep, "vocabulary_id", "concept_code", (clip(F.col("score")) * F.col("_w")).alias("_s"),
                       F.col("note_nlp_source_concept_id").alias("_cid"), F.col("note_nlp_concept_id").alias("_sid"))
    if candidates <= 1:
        return own
    alt = (
        coded.select(*keep, "vocabulary_id", "concept_code", F.explode("candidates").alias("_c"))
        .filter((F.col("_c.rank") >= 2) & (F.col("_c.rank") <= candidates) & F.col("_c.concept_code").isNotNull()
                & (F.upper("_c.concept_code") != F.upper("concept_code")))
        .select(*keep, F.coalesce("_c.vocabulary_id", "vocabulary_id").alias("vocabulary_id"),
                F.col("_c.concept_code").alias("concept_code"), (clip(F.col("_c.score")) * F.col("_w")).alias("_s"),
                F.lit(None).cast("int").alias("_cid"), F.lit(None).cast("int").alias("_sid"))
    )
    return own.unionByName(alt)


def candidates_per_mention(cfg) -> int:
    """note_code.candidates from configuration (codes per mention that support note codes; 1 = rank 1 only)."""
    return int((cfg.get("note_code") or {}).get("candidates", DEFAULT_CANDIDATES))


def with_note_codes(note_nlp: DataFrame, candidates: int = DEFAULT_CANDIDATES) -> DataFrame:
    """NOTE_NLP rows -> ranked codes per (note_id, vocabulary_id) from coded mentions (NOTE_CODE shape)."""
    missing = [c for c in REQUIRED if c not in note_nlp.columns]
    if missing:
        raise ValueError(f"with_note_codes needs columns {', '.join(missing)}")
    df = note_nlp
    for name, dtype in OPTIONAL.items():
        if name not in df.columns:
            df = df.withColumn(name, F.lit(None).cast(dtype))
    is_present = present(F.col("term_exists"))
    evidence = (
        explode_supported_codes(df, candidates)
        # log(1 - s) summed = log of the product; a certain mention (s = 1) makes the product exactly 0.
        .withColumn("_log_miss", F.when(F.col("_s") < 1.0, F.log1p(-F.col("_s"))))
        .withColumn("_certain", (F.col("_s") >= 1.0).cast("int"))
        .withColumn("_present", is_present)
    )
    when_present = lambda c: F.when(F.col("_present"), c)  # noqa: E731 - aggregate over present mentions only
    per_code = evidence.groupBy("note_id", "vocabulary_id", "concept_code").agg(
        F.max("_certain").alias("_certain"),
        F.sum("_log_miss").alias("_log_miss"),
        F.max(when_present(F.col("_certain"))).alias("_p_certain"),
        F.sum(when_present(F.col("_log_miss"))).alias("_p_log_miss"),
        F.max(F.col("_present").cast("int")).alias("_any_present"),
        F.count(F.lit(1)).alias("mentions"),
        F.max("_s").alias("best_score"),
        F.min("offset_start").alias("first_offset"),
        F.coalesce(F.max("_cid"), F.lit(0)).alias("concept_id"),
        F.coalesce(F.max("_sid"), F.lit(0)).alias("standard_concept_id"),
        F.array_sort(F.collect_set("label")).alias("labels"),
        F.array_sort(F.collect_list("note_nlp_id")).alias("note_nlp_ids"),
        F.min("nlp_system").alias("nlp_system"),
    )
    ranked = (
        per_code.withColumn("score", _noisy_or(F.col("_log_miss"), F.col("_certain")))
        .withColumn("present", F.col("_any_present") == 1)
        .withColumn("present_score", F.when(F.col("present"), _noisy_or(F.col("_p_log_miss"), F.col("_p_certain")))
                    .otherwise(F.lit(0.0)))
    )
    w = Window.partitionBy("note_id", "vocabulary_id").orderBy(
        F.col("score").desc(), F.col("mentions").desc(), F.col("best_score").desc(),
        F.col("first_offset").asc_nulls_last(), F.col("concept_code").asc())
    ranked = ranked.withColumn("rank", F.row_number().over(w))
    return ranked.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in NOTE_CODE.fields])


def with_concept_ids(codes: DataFrame, concept: DataFrame, relationship: DataFrame) -> DataFrame:
    """Fill concept_id / standard_concept_id left 0 (codes only a mention's lower candidates carried) from the
    vocabulary: the (vocabulary_id, code) concept and its "Maps to" target; 0 where the vocabulary has none."""
    from clinlake.resolve import maps_to_standard

    src = concept.groupBy("vocabulary_id", F.upper("concept_code").alias("_cu")).agg(F.min("concept_id").alias("_cid"))
    maps = maps_to_standard(relationship).select(F.col("note_nlp_source_concept_id").alias("_cid"),
                                                 F.col("note_nlp_concept_id").alias("_sid"))
    joined = codes.withColumn("_cu", F.upper("concept_code")).join(src, ["vocabulary_id", "_cu"], "left") \
        .join(maps, "_cid", "left")
    fill = F.col("concept_id") == 0
    return joined.withColumn("standard_concept_id", F.when(fill, F.coalesce("_sid", F.lit(0)))
                             .otherwise(F.col("standard_concept_id"))) \
        .withColumn("concept_id", F.when(fill, F.coalesce("_cid", F.lit(0))).otherwise(F.col("concept_id"))) \
        .select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in NOTE_CODE.fields])


def write(spark: SparkSession, cfg, rows: DataFrame, note_ids: DataFrame) -> int:
    """Replace the note_code rows of the processed notes (one atomic MERGE); returns the rows written.

    rows: the NOTE_NLP rows just computed for those notes; note_ids: a frame with their note_id (notes left
    without any coded mention lose their old rows too). Call inside the job's delta.commit_metadata block.
    """
    from clinlake import catalog, delta
    from clinlake.config import lake_path

    codes = with_note_codes(rows, candidates_per_mention(cfg))
    vocab = [lake_path(cfg, t) for t in ("concept", "concept_relationship")]
    if all(delta.exists(spark, p) for p in vocab):
        codes = with_concept_ids(codes, *[spark.read.format("delta").load(p) for p in vocab])
    codes = codes.cache()
    n = codes.count()
    delta.replace_for_keys(spark, codes, note_ids.select("note_id"), lake_path(cfg, "note_code"), key="note_id")
    codes.unpersist()
    catalog.register(spark, cfg, "note_code")
    return n
