"""First recogniser: a Spark NLP TextMatcher per label over the gazetteer, as one fitted PipelineModel."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

TEXT_COL = "note_text"


def chunk_col(label: str) -> str:
    """Output column of one label's matcher."""
    return f"chunk_{label.lower()}"


def phrases_by_label(gazetteer: DataFrame, labels: Iterable[str], min_count: int, min_chars: int) -> dict[str, list[str]]:
    """Distinct mentions per label (training-time, bounded by the gazetteer size); short ones dropped.

    Short upper-case abbreviations ("SE", "CM") collide with common words once matching ignores case.
    """
    rows = (
        gazetteer.filter(F.col("label").isin(list(labels)) & (F.col("count") >= min_count))
        .filter(F.length(F.trim("mention")) >= min_chars)
        .select("label", F.trim("mention").alias("mention")).distinct()
        .groupBy("label").agg(F.sort_array(F.collect_list("mention")).alias("mentions"))
        .collect()
    )
    return {r["label"]: list(r["mentions"]) for r in rows}


def build_pipeline(phrases: dict[str, list[str]], workdir: str) -> Pipeline:
    """DocumentAssembler -> SentenceDetector -> Tokenizer -> one TextMatcher per label."""
    from sparknlp.annotator import SentenceDetector, TextMatcher, Tokenizer
    from sparknlp.base import DocumentAssembler
    from sparknlp.common import ReadAs

    stages = [
        DocumentAssembler().setInputCol(TEXT_COL).setOutputCol("document").setCleanupMode("disabled"),
        SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
        Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
    ]
    for label in sorted(phrases):
        path = Path(workdir) / f"{label}.txt"
        # The matcher reads this file at fit time and keeps the phrases inside the fitted model.
        path.write_text("\n".join(phrases[label]) + "\n", encoding="utf-8")
        stages.append(
            TextMatcher().setInputCols(["sentence", "token"]).setOutputCol(chunk_col(label))
            .setEntities(str(path), ReadAs.TEXT).setEntityValue(label).setCaseSensitive(False)
            .setBuildFromTokens(True)
        )
    return Pipeline(stages=stages)


def fit_matcher(spark: SparkSession, phrases: dict[str, list[str]]) -> PipelineModel:
    """Fit the matcher pipeline (the phrase files are only needed during fit)."""
    with tempfile.TemporaryDirectory() as tmp:
        empty = spark.createDataFrame([("",)], f"{TEXT_COL} string")
        return build_pipeline(phrases, tmp).fit(empty)


def matcher_labels(model: PipelineModel) -> list[str]:
    """Labels of a fitted matcher pipeline, read from its TextMatcher stages."""
    return [s.getOrDefault("entityValue") for s in model.stages if type(s).__name__ == "TextMatcherModel"]


def explode_chunks(annotated: DataFrame, labels: list[str], keep: list[str]) -> DataFrame:
    """One row per matched chunk: keep columns + label, offset_start, offset_end (exclusive)."""
    parts = []
    for label in labels:
        parts.append(
            annotated.select(*keep, F.explode(chunk_col(label)).alias("c")).select(
                *keep,
                F.lit(label).alias("label"),
                F.col("c.begin").alias("offset_start"),
                (F.col("c.end") + 1).alias("offset_end"),  # Spark NLP ends are inclusive
            )
        )
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def filter_contained(chunks: DataFrame) -> DataFrame:
    """Within a label, drop a chunk lying inside a longer one of the same note (longest match wins)."""
    a, b = chunks.alias("a"), chunks.alias("b")
    inside = a.join(
        b,
        (F.col("a.note_id") == F.col("b.note_id")) & (F.col("a.label") == F.col("b.label"))
        & (F.col("b.offset_start") <= F.col("a.offset_start")) & (F.col("b.offset_end") >= F.col("a.offset_end"))
        & ((F.col("b.offset_end") - F.col("b.offset_start")) > (F.col("a.offset_end") - F.col("a.offset_start"))),
        "left_semi",
    )
    dedup = chunks.dropDuplicates(["note_id", "label", "offset_start", "offset_end"])
    return dedup.join(inside.select("note_id", "label", "offset_start", "offset_end"),
                      ["note_id", "label", "offset_start", "offset_end"], "left_anti")


def with_lexical_variant(chunks: DataFrame, text_col: str = TEXT_COL) -> DataFrame:
    """lexical_variant = note_text[offset_start:offset_end] (Spark's substring is 1-based)."""
    return chunks.withColumn(
        "lexical_variant", F.expr(f"substring({text_col}, offset_start + 1, offset_end - offset_start)")
    )


def first_by(df: DataFrame, keys: list[str], order: list) -> DataFrame:
    """First row per key under an ordering."""
    w = Window.partitionBy(*keys).orderBy(*order)
    return df.withColumn("__rn", F.row_number().over(w)).filter("__rn = 1").drop("__rn")
