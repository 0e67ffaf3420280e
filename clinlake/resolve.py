"""Resolution of recognised chunks to vocabulary codes (gazetteer lookup; joins only, nothing collected)."""

from __future__ import annotations

from typing import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from clinlake.recognise import first_by
from clinlake.vocab.normalize import normalize_col


def gazetteer_index(gazetteer: DataFrame) -> DataFrame:
    """(label, mention_norm) -> best (vocabulary_id, concept_code) by training frequency, with a score."""
    agg = (
        gazetteer.withColumn("mention_norm", normalize_col(F.col("mention")))
        .groupBy("label", "mention_norm", "vocabulary_id", "concept_code")
        .agg(F.sum("count").alias("n"))
    )
    total = agg.groupBy("label", "mention_norm").agg(F.sum("n").alias("total"))
    best = first_by(agg, ["label", "mention_norm"], [F.col("n").desc(), F.col("concept_code")])
    return best.join(total, ["label", "mention_norm"]).withColumn("score", F.col("n") / F.col("total")) \
        .select("label", "mention_norm", "vocabulary_id", "concept_code", "score")


def with_codes(chunks: DataFrame, index: DataFrame, concept: DataFrame, relationship: DataFrame,
               label_vocabularies: Mapping[str, str]) -> DataFrame:
    """Add vocabulary_id, concept_code, score, note_nlp_source_concept_id and note_nlp_concept_id (0 if no 'Maps to')."""
    targets = F.create_map(*[x for kv in label_vocabularies.items() for x in (F.lit(kv[0]), F.lit(kv[1]))])
    keyed = chunks.withColumn("mention_norm", normalize_col(F.col("lexical_variant")))
    coded = keyed.join(F.broadcast(index), ["label", "mention_norm"], "left") \
        .withColumn("vocabulary_id", F.coalesce(F.col("vocabulary_id"), targets[F.col("label")]))
    src = concept.select(
        "vocabulary_id", F.upper("concept_code").alias("concept_code_u"),
        F.col("concept_id").alias("note_nlp_source_concept_id"),
    )
    maps_to = relationship.filter(F.col("relationship_id") == "Maps to").select(
        F.col("concept_id_1").alias("note_nlp_source_concept_id"), F.col("concept_id_2").alias("note_nlp_concept_id")
    )
    maps_to = first_by(maps_to, ["note_nlp_source_concept_id"], [F.col("note_nlp_concept_id")])
    return (
        coded.withColumn("concept_code_u", F.upper("concept_code"))
        .join(src, ["vocabulary_id", "concept_code_u"], "left")
        .join(maps_to, ["note_nlp_source_concept_id"], "left")
        .withColumn("note_nlp_source_concept_id", F.coalesce("note_nlp_source_concept_id", F.lit(0)).cast("int"))
        .withColumn("note_nlp_concept_id", F.coalesce("note_nlp_concept_id", F.lit(0)).cast("int"))
        .drop("concept_code_u", "mention_norm")
    )
