"""Candidate ranker: features from the index evidence, leave-one-out training examples from the gazetteer, a Spark ML
LogisticRegression (or gradient-boosted trees) pipeline giving P(candidate is the right code), and top-k selection
per mention."""

from __future__ import annotations

from functools import reduce

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from clinlake.resolver import index as ix
from clinlake.vocab.normalize import normalize_col

FEATURES = ["f_share", "f_top_share", "f_log_count", "f_known", "f_exact_syn", "f_sim_gaz", "f_sim_syn",
            "f_prior", "f_code_len", "f_tokens", "f_ngram_only", "f_wsim_gaz", "f_wsim_syn",
            "f_sum_sim", "f_cat_sim", "f_head"]


def with_features(cands: DataFrame, group: list[str]) -> DataFrame:
    """Numeric features of each candidate inside its group (one mention, or one training occurrence).

    Expects the candidate evidence columns (clinlake.resolver.index.CANDIDATE_COLS) and code_count (the prior).
    """
    w = Window.partitionBy(*group)
    df = cands.withColumn("code_count", F.greatest(F.coalesce("code_count", F.lit(0)), F.lit(0)))
    total = F.sum("exact_gaz_count").over(w)
    share = F.when(total > 0, F.col("exact_gaz_count") / total).otherwise(0.0)
    return (
        df.withColumn("f_share", share.cast("double"))
        .withColumn("f_top_share", ((F.col("f_share") > 0) & (F.col("f_share") == F.max("f_share").over(w)))
                    .cast("double"))
        .withColumn("f_log_count", F.log1p(F.col("exact_gaz_count").cast("double")))
        .withColumn("f_known", (total > 0).cast("double"))
        .withColumn("f_exact_syn", F.col("exact_syn").cast("double"))
        .withColumn("f_sim_gaz", F.col("sim_gaz").cast("double"))
        .withColumn("f_sim_syn", F.greatest(F.col("sim_syn"), F.col("exact_syn").cast("double")))
        .withColumn("f_prior", F.log1p(F.col("code_count").cast("double")))
        # CodiEsp procedure gold is often a 4-character prefix: code length is informative per label
        .withColumn("f_code_len", F.length("concept_code").cast("double"))
        .withColumn("f_tokens", F.size(F.split("mention_norm", " ")).cast("double"))
        .withColumn("f_ngram_only", ((F.col("exact_gaz_count") == 0) & (F.col("exact_syn") == 0)).cast("double"))
        # word-stem Dice of the nearest terms (clinlake.resolver.index.word_stems); an exact synonym is all words
        .withColumn("f_wsim_gaz", F.col("wsim_gaz").cast("double"))
        .withColumn("f_wsim_syn", F.greatest(F.col("wsim_syn"), F.col("exact_syn").cast("double")))
        # the nearest terms' vote for the code and for its 3-character category, and whether a term has the head
        .withColumn("f_sum_sim", F.col("sum_sim").cast("double"))
        .withColumn("f_cat_sim", F.col("cat_sim").cast("double"))
        .withColumn("f_head", F.col("head").cast("double"))
    )


def training_examples(gazetteer: DataFrame, terms: DataFrame, postings: DataFrame, grams: DataFrame,
                      labels: list[str], rare_grams: int = 8, pool: int = 50, top_n: int = 10,
                      stem_top_n: int = 0, stem_rare: int = 2, stem_pool: int = 300) -> DataFrame:
    """Leave-one-out examples: each annotated (mention, code) occurrence sees the index without itself.

    Its own count is removed from the exact gazetteer evidence and the code prior, so a mention annotated once
    looks unseen and must be resolved through synonyms and n-gram neighbours, as at serving time.
    """
    gold = gazetteer.filter(F.col("label").isin(labels)).select(
        "label", normalize_col(F.col("mention")).alias("mention_norm"), "vocabulary_id",
        F.col("concept_code").alias("gold_code"), F.col("count").cast("long").alias("w")) \
        .filter(F.col("mention_norm") != "") \
        .groupBy("label", "mention_norm", "vocabulary_id", "gold_code").agg(F.sum("w").alias("w"))
    cands = ix.candidates(gold.select("label", "mention_norm"), terms, postings, grams, rare_grams, pool, top_n,
                          stem_top_n, stem_rare, stem_pool)
    own = (F.col("concept_code") == F.col("gold_code")).cast("long")
    ex = cands.join(gold, ["label", "mention_norm", "vocabulary_id"]) \
        .withColumn("exact_gaz_count", F.col("exact_gaz_count") - own) \
        .filter((F.col("exact_gaz_count") > 0) | (F.col("exact_syn") > 0) | (F.col("sim_gaz") > 0)
                | (F.col("sim_syn") > 0)) \
        .withColumn("y", own.cast("double"))
    ex = ex.join(ix.code_counts(terms), ["label", "vocabulary_id", "concept_code"], "left") \
        .withColumn("code_count", F.coalesce("code_count", F.lit(0)) - own)
    return with_features(ex, ["label", "mention_norm", "gold_code"])


RANKERS = ("lr", "gbt")
GBT_DEFAULTS = {"max_depth": 5, "max_iter": 100, "step_size": 0.1, "seed": 42}


def gbt_settings(gbt: dict | None = None) -> dict:
    """`resolver.gbt` over GBT_DEFAULTS; a misspelt key is refused (it would otherwise train the defaults silently)."""
    unknown = sorted(set(gbt or {}) - set(GBT_DEFAULTS))
    if unknown:
        raise ValueError(f"resolver.gbt takes {', '.join(GBT_DEFAULTS)}; unknown: {', '.join(unknown)}")
    return {**GBT_DEFAULTS, **(gbt or {})}


def build_pipeline(reg_param: float = 0.001, kind: str = "lr", gbt: dict | None = None) -> Pipeline:
    """label one-hot + FEATURES -> LogisticRegression or GBTClassifier (both weighted by annotation count).

    Trees learn what a linear score cannot: that word similarity matters when the mention is unseen and the
    gazetteer share when it is seen (docs/resolution.md "Gradient-boosted trees").
    """
    if kind not in RANKERS:
        raise ValueError(f"resolver.ranker must be one of {', '.join(RANKERS)}, not {kind!r}")
    g = gbt_settings(gbt)
    if kind == "gbt":
        model = GBTClassifier(featuresCol="features", labelCol="y", weightCol="w", maxDepth=int(g["max_depth"]),
                              maxIter=int(g["max_iter"]), stepSize=float(g["step_size"]), seed=int(g["seed"]),
                              predictionCol="pred") \
            .setProbabilityCol("probability").setRawPredictionCol("raw")   # not constructor arguments of GBT
    else:
        model = LogisticRegression(featuresCol="features", labelCol="y", weightCol="w", regParam=reg_param,
                                   maxIter=100, probabilityCol="probability", rawPredictionCol="raw",
                                   predictionCol="pred")
    return Pipeline(stages=[
        StringIndexer(inputCol="label", outputCol="label_idx", handleInvalid="keep"),
        OneHotEncoder(inputCols=["label_idx"], outputCols=["label_vec"], handleInvalid="keep"),
        VectorAssembler(inputCols=["label_vec", *FEATURES], outputCol="features"),
        model,
    ])


def fit(examples: DataFrame, reg_param: float = 0.001, kind: str = "lr", gbt: dict | None = None) -> PipelineModel:
    """Fit the ranker on training examples (columns: label, FEATURES, y, w)."""
    return build_pipeline(reg_param, kind, gbt).fit(examples.select("label", *FEATURES, "y", "w"))


def with_probability(feats: DataFrame, model: PipelineModel) -> DataFrame:
    """Add p = P(candidate is the right code) from the fitted ranker; model columns dropped."""
    scored = model.transform(feats)
    return scored.withColumn("p", vector_to_array("probability")[1]) \
        .drop("label_idx", "label_vec", "features", "raw", "probability", "pred")


def out_of_fold_probability(examples: DataFrame, folds: int, reg_param: float = 0.001, kind: str = "lr",
                            gbt: dict | None = None) -> DataFrame:
    """Every example scored by a ranker fitted without its group's fold (folds by a hash of the group).

    What the top-1 calibrator is fitted on when `resolver.calibrator_folds` > 1: a ranker, trees most, scores its own
    training examples more sharply than new ones (measured, not served: docs/resolution.md).
    """
    fold = F.pmod(F.xxhash64("label", "mention_norm", "gold_code"), F.lit(folds))
    tagged = examples.withColumn("_fold", fold)
    parts = [with_probability(tagged.filter(F.col("_fold") == f),
                              fit(tagged.filter(F.col("_fold") != f), reg_param, kind, gbt))
             for f in range(folds)]
    return reduce(DataFrame.unionByName, parts).drop("_fold")


def top_k(scored: DataFrame, k: int, group: list[str]) -> DataFrame:
    """Best k candidates per group as rank 1..k (reviewed mappings first, then p, then code for determinism)."""
    w = Window.partitionBy(*group).orderBy(F.desc("review"), F.desc("p"), "concept_code")
    return scored.withColumn("rank", F.row_number().over(w)).filter(F.col("rank") <= k)


def with_second(scored: DataFrame, group: list[str]) -> DataFrame:
    """The top candidate of each group (top_k's order) with p2, the second candidate's p (0 when it is alone)."""
    ranked = top_k(scored, 2, group)
    second = ranked.filter(F.col("rank") == 2).select(*group, F.col("p").alias("p2"))
    return ranked.filter(F.col("rank") == 1).drop("rank").join(second, group, "left") \
        .withColumn("p2", F.coalesce("p2", F.lit(0.0)))


def _logit(p: Column) -> Column:
    q = F.least(F.greatest(p.cast("double"), F.lit(1e-4)), F.lit(1 - 1e-4))
    return F.log(q / (1 - q))


def fit_top1_calibrator(scored: DataFrame, labels: list[str], c: float = 100.0) -> dict | None:
    """P(top-1 code is right) from the top p, its gap to the second and the label, fitted on the leave-one-out groups
    (weighted by annotation count): `p` is per candidate and under-states a top code that shares its evidence.

    Returns {"labels", "coef", "intercept"} (JSON-able, a model-version tag), or None with one class only. The groups
    are one row each (tens of thousands at most), so they are fitted on the driver.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    group = ["label", "mention_norm", "gold_code"]
    top = with_second(scored, group).withColumn("lg", _logit(F.col("p"))) \
        .select("label", "lg", (F.col("p") - F.col("p2")).alias("gap"), "y", "w").collect()
    ys = np.array([r["y"] for r in top])
    if len(set(ys.tolist())) < 2:
        return None
    x = np.array([_calibration_row(r["label"], r["lg"], r["gap"], labels) for r in top])
    model = LogisticRegression(C=c, max_iter=5000).fit(x, ys, sample_weight=np.array([r["w"] for r in top]))
    return {"labels": list(labels), "coef": [round(float(v), 6) for v in model.coef_[0]],
            "intercept": round(float(model.intercept_[0]), 6)}


def _calibration_row(label: str, lg: float, gap: float, labels: list[str]) -> list[float]:
    """[label one-hot, logit(p), gap, label one-hot x logit(p)]: the calibrator's features (calibrated() reads them)."""
    oh = [1.0 if label == lab else 0.0 for lab in labels]
    return [*oh, lg, gap, *[o * lg for o in oh]]


def calibrated(label: Column, p: Column, p2: Column, cal: dict) -> Column:
    """The calibrator's probability for a top code with probability p and runner-up p2 (Column form of the fit)."""
    labels, coef, n = cal["labels"], cal["coef"], len(cal["labels"])
    lg = _logit(p)
    z = F.lit(float(cal["intercept"])) + F.lit(coef[n]) * lg + F.lit(coef[n + 1]) * (p - p2)
    for i, lab in enumerate(labels):
        z = z + F.when(label == lab, F.lit(coef[i]) + F.lit(coef[n + 2 + i]) * lg).otherwise(0.0)
    return 1 / (1 + F.exp(-z))
