"""Predictors for the evaluation job: a registered NerDL pipeline (by alias) over notes -> Corpus of mentions.

Signature expected by clinlake.evaluation.predict: (spark, cfg, notes_df[doc_id, text], model_alias) -> Corpus.
Register them in clinlake/evaluation/pipelines.py, e.g. ``register("ner", "cantemist")(predict_morphology)``.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import functions as F

from clinlake import tracking
from clinlake.corpora.types import Corpus
from clinlake.ner.settings import deid_settings, model_settings, with_model_defaults
from clinlake.ner.tokens import CHUNK_COL, TEXT_COL
from clinlake.ner.training import chunk_mentions


def predict_with(spark: Any, cfg: Any, notes_df: Any, name: str, alias: str) -> Corpus:
    """Run `name@alias` over notes_df (doc_id, text); mentions carry the model's labels."""
    model, ref = tracking.load_spark_model(cfg, name, alias)
    notes = notes_df.select("doc_id", F.col("text").alias(TEXT_COL))
    rows = model.transform(notes).select("doc_id", CHUNK_COL).collect()
    version = ref.rsplit("@", 1)[-1]
    return Corpus(mentions=chunk_mentions(rows), model_versions={name: version})


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
