"""Spark DataFrame views of a `Corpus`: notes (doc_id, text) and gold annotations, for training jobs too."""

from __future__ import annotations

import os

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from clinlake.corpora.readers import read_corpus
from clinlake.corpora.types import Corpus

NOTES_SCHEMA = T.StructType([T.StructField("doc_id", T.StringType(), False), T.StructField("text", T.StringType(), False)])

FRAGMENT = T.StructType([T.StructField("start", T.IntegerType(), False), T.StructField("end", T.IntegerType(), False)])

GOLD_SCHEMA = T.StructType([
    T.StructField("doc_id", T.StringType(), False),
    T.StructField("ann_id", T.StringType(), True),
    T.StructField("label", T.StringType(), False),
    T.StructField("start", T.IntegerType(), False),
    T.StructField("end", T.IntegerType(), False),
    T.StructField("fragments", T.ArrayType(FRAGMENT, False), False),
    T.StructField("text", T.StringType(), True),
    T.StructField("code", T.StringType(), True),
])


def notes_df(spark: SparkSession, corpus: Corpus, num_partitions: int = 2) -> DataFrame:
    """One row per document: doc_id, text."""
    rows = sorted(corpus.notes.items())
    return spark.createDataFrame(rows, NOTES_SCHEMA).repartition(num_partitions)


def gold_rows(corpus: Corpus) -> list[tuple]:
    """Plain tuples in GOLD_SCHEMA order (mentions only; CodiEsp D/P codes are not spans)."""
    rows = []
    for doc_id, mentions in sorted((corpus.mentions or {}).items()):
        for i, m in enumerate(mentions):
            rows.append((doc_id, m.ann_id or f"X{i + 1}", m.label, m.start, m.end,
                         [(s, e) for s, e in m.frags], m.text, m.code))
    return rows


def gold_df(spark: SparkSession, corpus: Corpus) -> DataFrame:
    """One row per gold mention: doc_id, ann_id, label, start, end, fragments, text, code."""
    return spark.createDataFrame(gold_rows(corpus), GOLD_SCHEMA)


def read_corpus_frames(spark: SparkSession, corpus: str, path: str | os.PathLike) -> tuple[DataFrame, DataFrame, Corpus]:
    """Read a split in its own layout; returns (notes_df, gold_df, the pure-Python Corpus with mismatches)."""
    c = read_corpus(corpus, path)
    return notes_df(spark, c), gold_df(spark, c), c
