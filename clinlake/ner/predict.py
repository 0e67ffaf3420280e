"""Predictors for the evaluation job: a registered NerDL pipeline (by alias) over notes -> Corpus of mentions.

Signature expected by clinlake.evaluation.predict: (spark, cfg, notes_df[doc_id, text], model_alias) -> Corpus.
Register them in clinlake/evaluation/pipelines.py, e.g. ``register("ner", "cantemist")(predict_morphology)``.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from clinlake import recognise, recognisers, tracking
from clinlake.corpora.types import Corpus, Mention
from clinlake.ner.settings import deid_settings, model_settings, with_model_defaults
from clinlake.ner.tokens import CHUNK_COL, TEXT_COL
from clinlake.ner.training import chunk_mentions


def predict_with(spark: Any, cfg: Any, notes_df: Any, name: str, alias: str) -> Corpus:
    """Run `name@alias` over notes_df (doc_id, text); mentions carry the model's labels.

    When `extract.recognisers` serves `name` with a `vote:`, the vote is scored: `alias` and the members' aliases
    (recognisers.load_vote, with the CRF voter when the vote names one), a chunk kept when `min_votes` of them give
    its label and span (filter_votes).
    """
    notes = notes_df.select("doc_id", F.col("text").alias(TEXT_COL))
    votes = recognisers.voting(cfg)
    if name not in votes:
        model, ref = tracking.load_spark_model(cfg, name, alias)
        rows = model.transform(notes).select("doc_id", CHUNK_COL).collect()
        return Corpus(mentions=chunk_mentions(rows), model_versions={name: ref.rsplit("@", 1)[-1]})
    ensemble, ref = recognisers.load_vote(cfg, name, alias, *votes[name])
    notes = notes.cache()   # every member reads the same notes
    try:
        parts = [explode_chunks(m.transform(notes), m).withColumn("member", F.lit(i))
                 for i, (m, _) in enumerate(ensemble.members)]
        if ensemble.crf is not None:
            crf = recognisers.with_crf_spans(notes, ensemble)
            crf_parts = explode_chunks(crf, None, F.col(recognisers.CRF_SPANS))
            parts.append(crf_parts.withColumn("member", F.lit(len(parts))))
        kept = reduce(DataFrame.unionByName, parts).transform(recognisers.filter_votes, ensemble.min_votes).collect()
        mentions: dict[str, list[Mention]] = {r["doc_id"]: [] for r in notes.select("doc_id").collect()}
    finally:
        notes.unpersist()
    for r in sorted(kept, key=lambda r: (r["doc_id"], r["offset_start"], r["offset_end"], r["label"])):
        mentions[r["doc_id"]].append(Mention(r["label"], r["offset_start"], r["offset_end"], None, (), r["text"]))
    from clinlake.evaluation.pipelines import _versions

    return Corpus(mentions=mentions, model_versions=_versions(ref))   # the CRF voter's version too


def explode_chunks(annotated: DataFrame, model: Any, spans: Any = None) -> DataFrame:
    """One row per chunk the model gave (recognise.label_spans) or `spans` holds: doc_id, label,
    [offset_start, offset_end), text."""
    c = F.explode(recognise.label_spans(model, annotated.columns) if spans is None else spans).alias("c")
    return annotated.select("doc_id", TEXT_COL, c).select(
        "doc_id", F.col("c.label").alias("label"), F.col("c.s").alias("offset_start"), F.col("c.e").alias("offset_end"),
        F.col(TEXT_COL).substr(F.col("c.s") + 1, F.col("c.e") - F.col("c.s")).alias("text"))


def _named(model: str):
    """A predictor for one configured recogniser (`deid` or a models.ner.models key)."""
    def predict(spark: Any, cfg: Any, notes_df: Any, model_alias: str) -> Corpus:
        full = with_model_defaults(cfg)
        settings = deid_settings(full) if model == "deid" else model_settings(full, model)
        return predict_with(spark, full, notes_df, str(settings.name), model_alias)

    predict.__name__ = f"predict_{model}"
    predict.__doc__ = f"Evaluation predictor for the {model} recogniser."
    return predict


predict_deid = _named("deid")                      # ("deid", "meddocan")
predict_morphology = _named("morphology")          # ("ner", "cantemist")
predict_drug = _named("drug")                      # ("ner", "pharmaconer")
predict_diagnosis_procedure = _named("diagnosis_procedure")  # CodiEsp-X mentions (codes left empty)
