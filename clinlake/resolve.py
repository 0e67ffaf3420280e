"""Resolution of recognised chunks to vocabulary codes (joins only, nothing collected).

Two modes behind one entry point, `with_codes(chunks, resolver, concept, relationship, label_vocabularies)`:
- the trained resolver `resolver-es@<alias>` (clinlake.resolver: exact + char 3-gram candidates over gazetteer
  mentions and every vocabulary synonym, ranked by a Spark ML model; top-k with calibrated scores);
- the fallback when none is registered: normalised exact gazetteer lookup, most frequent code per mention.
See docs/resolution.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from omegaconf import DictConfig
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from clinlake.recognise import first_by
from clinlake.resolver import icdo
from clinlake.resolver import index as ix
from clinlake.resolver import ranker as rk
from clinlake.resolver import values
from clinlake.vocab.normalize import normalize_col

log = logging.getLogger(__name__)

INDEX_PARTS = ("terms", "postings", "grams")
# Optional parts: aggregates of the terms that every call needs (ix.derived_parts), stored since session 44 so that
# serving reads them; older versions have none and compute them in each call. The stem postings also carry the
# fingerprint of the word_stems that made them (STEMS_TAG): another fingerprint serves without them.
DERIVED_PARTS = ("term_set", "stem_postings", "stem_grams", "code_counts")
STEMS_TAG = "index_stems"
# Optional part: phrase_key, label, annotated, occurrences of the training texts (models.recogniser.precision),
# snapshotted with the index so a version serves the counts it was trained with; older versions have none.
PHRASES = "phrases"
# Optional part: the pickled ICD-O-3 code classifier for tumour mentions the index lacks (udfs.icdo_classify), one
# row, pinned by its version like the others; versions trained before it have none and serve the n-gram neighbours.
CLASSIFIER = "icdo_classifier"
# Optional part: header code -> default leaf for the vocabularies of `resolver.default_leaves`
# (clinlake.resolver.leaves), pinned like the others; versions trained before it serve the ranker's codes as they are.
LEAVES = "leaf_map"
GEM_TO_ICD9 = ("ICD10CM - ICD9CM eq", "ICD10CM - ICD9CM apx")
DEFAULTS: dict[str, Any] = {"name": "resolver-es", "alias": "champion", "index_table": "resolver_index",
                            "top_k": 5, "max_df": 2000, "rare_grams": 8, "pool": 100, "top_n": 25,
                            "stem_top_n": 10, "stem_rare": 2, "stem_pool": 300,
                            "reg_param": 0.001, "ranker": "lr", "gbt": dict(rk.GBT_DEFAULTS), "min_score": 0.0,
                            "icdo_axes": True, "icdo_specific_histology": True,
                            "icdo_classifier": True, "icdo_classifier_c": 3.0, "top1_calibrator": True,
                            "calibrator_folds": 0, "default_leaves": ["ICD10CM"], "value_codes": True,
                            "gem_relationships": list(GEM_TO_ICD9), "cache": True, "cache_table": "resolver_cache"}
EXACT_SYSTEM = "resolver-exact"
# Candidate retrieval settings a version is trained at (tagged `retrieval_<key>`) and then served with: the ranker's
# neighbour features (summed similarity, the category vote) grow with the number of neighbours retrieved. In the
# order of ix.candidates' (and ranker.training_examples') arguments: retrieval_args passes them so.
RETRIEVAL = ("rare_grams", "pool", "top_n", "stem_top_n", "stem_rare", "stem_pool")
# What a Resolver whose params lack a retrieval setting retrieves with (the stem channel off).
RETRIEVAL_FALLBACK = {"rare_grams": 8, "pool": 50, "top_n": 10, "stem_top_n": 0, "stem_rare": 2, "stem_pool": 300}
CALIBRATOR_TAG = "top1_calibrator"


def settings(cfg: DictConfig) -> dict[str, Any]:
    """conf `resolver:` over DEFAULTS (the key may be absent in older configs)."""
    from clinlake.config import to_dict

    return {**DEFAULTS, **(to_dict(cfg).get("resolver") or {})}


@dataclass
class Resolver:
    """A loaded resolver: index tables + ranker (trained), or only the exact gazetteer index (fallback)."""

    ref: str
    ranker: Any = None
    terms: DataFrame | None = None
    postings: DataFrame | None = None
    grams: DataFrame | None = None
    exact_index: DataFrame | None = None
    params: dict[str, Any] = field(default_factory=dict)
    phrases: DataFrame | None = None
    icdo_classifier: bytes | None = None
    calibrator: dict | None = None     # top-1 calibrator (ranker.fit_top1_calibrator), from the version's tag
    leaf_map: DataFrame | None = None  # header code -> default leaf (vocabulary_id, concept_code, leaf_code, rule)
    identity: str = ""                 # what makes this version unique beyond its ref: run id, source, all its tags
    cache_path: str | None = None      # Delta table of codes already served (cached_codes); None: no cache
    derived: dict[str, DataFrame] | None = None  # the version's stored aggregates of `terms` (DERIVED_PARTS)


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


# ---------------------------------------------------------------- index build / persistence (train time)

def build_index(gazetteer: DataFrame, concept: DataFrame, synonym: DataFrame,
                label_vocabularies: Mapping[str, str], max_df: int) -> dict[str, DataFrame]:
    """terms, postings and grams DataFrames of a new index (lazy)."""
    terms = ix.build_terms(gazetteer, concept, synonym, label_vocabularies)
    postings, grams = ix.build_grams(terms, max_df)
    return {"terms": terms, "postings": postings, "grams": grams}


def save_index(spark: SparkSession, parts: dict[str, DataFrame], root: str) -> dict[str, int]:
    """Overwrite <root>/<part> as Delta tables (the parts of INDEX_PARTS and DERIVED_PARTS given); returns each
    part's new Delta version (pinned by the model)."""
    from clinlake import delta

    versions = {}
    for name in [p for p in (*INDEX_PARTS, *DERIVED_PARTS) if p in parts]:
        path = f"{root.rstrip('/')}/{name}"
        parts[name].write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        versions[name] = int(delta.version(spark, path))
    return versions


def read_index(spark: SparkSession, root: str, versions: Mapping[str, int]) -> dict[str, DataFrame]:
    """The index parts named in `versions`, exactly as trained (Delta time travel to the pinned versions)."""
    return {name: spark.read.format("delta").option("versionAsOf", int(v)).load(f"{root.rstrip('/')}/{name}")
            for name, v in versions.items()}


def save_phrases(spark: SparkSession, cfg: DictConfig, root: str) -> int | None:
    """Snapshot the phrase-precision counts (models.recogniser.precision.path) as <root>/phrases; its Delta
    version, or None when no counts are configured (mentions then get no phrase_precision)."""
    import os

    from clinlake import delta
    from clinlake.config import path_of
    from clinlake.recognise import read_phrase_precision

    conf = ((cfg.get("models") or {}).get("recogniser") or {}).get("precision") or {}
    if not conf.get("path"):
        return None
    src = path_of(cfg, str(conf["path"]))
    if "://" not in src and not os.path.exists(src):
        log.warning("phrase precision file %s not found: the resolver serves no phrase_precision", src)
        return None
    path = f"{root.rstrip('/')}/{PHRASES}"
    read_phrase_precision(spark, src).filter(F.col("phrase_key").isNotNull() & F.col("label").isNotNull()) \
        .write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
    return int(delta.version(spark, path))


def save_icdo_classifier(spark: SparkSession, gazetteer: DataFrame, label_vocabularies: Mapping[str, str],
                         root: str, c: float) -> tuple[int | None, dict[str, float]]:
    """Fit the ICD-O-3 code classifier on the gazetteer's annotated tumour mentions, saved as <root>/icdo_classifier
    (one row: the pickled model); its Delta version and metrics, or (None, {}) when there is nothing to learn."""
    from clinlake import delta
    from clinlake.vocab.normalize import normalize
    from udfs import icdo_classify

    labels = [label for label, vocab in label_vocabularies.items() if vocab == icdo.ICDO_VOCABULARY]
    # the annotated mentions of the tumour labels: thousands of rows (9,056 annotations in CANTEMIST train + dev2)
    rows = gazetteer.filter(F.col("label").isin(*labels) & (F.col("vocabulary_id") == icdo.ICDO_VOCABULARY)) \
        .groupBy("mention", "concept_code").agg(F.sum("count").alias("n")).collect() if labels else []
    examples = [(normalize(r["mention"]), str(r["concept_code"]), float(r["n"])) for r in rows]
    examples = [e for e in examples if e[0] and re.match(icdo.CODE, e[1], re.IGNORECASE)]
    if len({icdo_classify.split_code(code)[0] for _, code, _ in examples}) < 2:
        return None, {}
    t0 = time.time()
    fitted = icdo_classify.fit_model([m for m, _, _ in examples], [code for _, code, _ in examples],
                                     [n for _, _, n in examples], c)
    model = pickle.dumps(fitted)
    path = f"{root.rstrip('/')}/{CLASSIFIER}"
    spark.createDataFrame([(bytearray(model), icdo_classify.FEATURES_VERSION, len(examples))],
                          "model binary, features string, examples int") \
        .write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
    held_out = fitted["held_out_accuracy"]
    return int(delta.version(spark, path)), {"icdo_classifier_examples": float(len(examples)),
                                             # per distinct mention held out of the fit (folds), as unseen ones
                                             **({"icdo_classifier_held_out_acc": round(held_out, 4)}
                                                if held_out is not None else {}),
                                             "icdo_classifier_fit_s": round(time.time() - t0, 1),
                                             "icdo_classifier_mb": round(len(model) / 1e6, 2)}


def leaf_map(concept: DataFrame, gazetteer: DataFrame, vocabularies: list[str]) -> DataFrame:
    """(vocabulary_id, concept_code, leaf_code, rule): each header code of `vocabularies` that has a default leaf
    (clinlake.resolver.leaves), computed per vocabulary and 3-character category on the executors."""
    from udfs.leaves import LEAF_SCHEMA, leaf_rows

    code_re = r"^[A-Za-z0-9]{3}(\.[A-Za-z0-9]+)?$"   # ICD-10-style codes; chapter ranges ("J00-J99") are none
    codes = concept.filter(F.col("vocabulary_id").isin(*vocabularies) & F.col("invalid_reason").isNull()) \
        .select("vocabulary_id", F.upper("concept_code").alias("concept_code"), "concept_name")
    # training annotations per code, including the gazetteer's 7th-character-less codes the vocabulary lacks (S05.92X)
    counts = gazetteer.filter(F.col("vocabulary_id").isin(*vocabularies)) \
        .groupBy("vocabulary_id", F.upper("concept_code").alias("concept_code")).agg(F.sum("count").alias("n"))
    return codes.join(counts, ["vocabulary_id", "concept_code"], "full") \
        .filter(F.col("concept_code").rlike(code_re)) \
        .withColumn("category", F.substring(F.regexp_replace("concept_code", r"\.", ""), 1, 3)) \
        .groupBy("vocabulary_id", "category").applyInPandas(leaf_rows, LEAF_SCHEMA)


def save_leaf_map(spark: SparkSession, concept: DataFrame, gazetteer: DataFrame, label_vocabularies: Mapping[str, str],
                  vocabularies: list[str], root: str) -> tuple[int | None, dict[str, float]]:
    """Write the default leaves of the configured vocabularies that some label targets as <root>/leaf_map; its Delta
    version and the number of headers per rule, or (None, {}) when no such vocabulary is configured."""
    from clinlake import delta

    vocabs = sorted(set(vocabularies or []) & set(label_vocabularies.values()))
    if not vocabs:
        return None, {}
    path = f"{root.rstrip('/')}/{LEAVES}"
    leaf_map(concept, gazetteer, vocabs).write.format("delta").mode("overwrite") \
        .option("overwriteSchema", "true").save(path)
    per_rule = spark.read.format("delta").load(path).groupBy("rule").count().collect()   # two rows
    return int(delta.version(spark, path)), {f"leaf_map_{r['rule']}_rows": float(r["count"]) for r in per_rule}


def with_default_leaves(ranked: DataFrame, leaves: DataFrame) -> DataFrame:
    """Ranked candidates (label, mention_norm, rank, vocabulary_id, concept_code, ...) with each header code replaced
    by its default leaf, unless a terminologist reviewed the mapping; a code that then appears twice for a mention
    keeps its better rank, and ranks are numbered 1.. again."""
    m = leaves.select("vocabulary_id", F.col("concept_code").alias("_code"), "leaf_code")
    swapped = ranked.withColumn("_code", F.upper("concept_code")) \
        .join(F.broadcast(m), ["vocabulary_id", "_code"], "left") \
        .withColumn("concept_code", F.when(F.col("leaf_code").isNotNull() & (F.coalesce("review", F.lit(0)) == 0),
                                           F.col("leaf_code")).otherwise(F.col("concept_code"))) \
        .drop("_code", "leaf_code")
    kept = first_by(swapped, ["label", "mention_norm", "vocabulary_id", "concept_code"], [F.col("rank")])
    return kept.withColumn("rank", F.row_number().over(
        Window.partitionBy("label", "mention_norm").orderBy("rank", "concept_code")))


def with_phrase_precision(chunks: DataFrame, phrases: DataFrame | None) -> DataFrame:
    """phrase_precision = min(1, (annotated + 1) / (occurrences + 2)) of the mention's phrase in the training texts:
    how often annotators coded it where it occurs (Laplace-smoothed); null for a phrase never counted or no counts."""
    from clinlake.recognise import phrase_key_col

    if phrases is None:
        return chunks.withColumn("phrase_precision", F.lit(None).cast("double"))
    # At most 1: the counts come from two matchers (gold annotations vs token matches in the text), so a phrase can
    # have more annotations than counted occurrences.
    counts = phrases.groupBy("label", "phrase_key").agg(F.least(
        F.lit(1.0), (F.sum("annotated") + 1.0) / (F.sum("occurrences") + 2.0)).alias("phrase_precision"))
    return chunks.withColumn("phrase_key", phrase_key_col(F.col("lexical_variant"))) \
        .join(F.broadcast(counts), ["label", "phrase_key"], "left").drop("phrase_key")


# ---------------------------------------------------------------- training

def train(spark: SparkSession, cfg: DictConfig) -> tuple[Any, dict[str, int], dict[str, float], dict | None]:
    """Build + save the index from the lake's vocabulary tables, fit the ranker on leave-one-out gazetteer examples.

    Returns (fitted ranker PipelineModel, index Delta versions, metrics, top-1 calibrator dict or None).
    """
    from clinlake.config import lake_path

    s = settings(cfg)
    lv = dict(cfg.extract.label_vocabularies)
    vocab = {t: spark.read.format("delta").load(lake_path(cfg, t)) for t in ("gazetteer", "concept", "concept_synonym")}
    t0 = time.time()
    root = lake_path(cfg, str(s["index_table"]))
    versions = save_index(spark, build_index(vocab["gazetteer"], vocab["concept"], vocab["concept_synonym"], lv,
                                             int(s["max_df"])), root)
    # aggregated from the stored terms, not from their lazy build: the vocabulary joins are not run again
    stored_terms = read_index(spark, root, {"terms": versions["terms"]})["terms"]
    versions.update(save_index(spark, ix.derived_parts(stored_terms), root))
    phrases_v = save_phrases(spark, cfg, root)
    if phrases_v is not None:
        versions[PHRASES] = phrases_v
    index_s = time.time() - t0
    clf_metrics: dict[str, float] = {}
    if s["icdo_classifier"]:
        clf_v, clf_metrics = save_icdo_classifier(spark, vocab["gazetteer"], lv, root, float(s["icdo_classifier_c"]))
        if clf_v is not None:
            versions[CLASSIFIER] = clf_v
    leaves_v, leaf_metrics = save_leaf_map(spark, vocab["concept"], vocab["gazetteer"], lv,
                                           list(s["default_leaves"] or []), root)
    if leaves_v is not None:
        versions[LEAVES] = leaves_v
    parts = read_index(spark, root, {p: versions[p] for p in INDEX_PARTS})
    t1 = time.time()
    examples = rk.training_examples(vocab["gazetteer"], parts["terms"], parts["postings"], parts["grams"], list(lv),
                                    *retrieval_args(s)).cache()
    ranker_args = (float(s["reg_param"]), str(s["ranker"]), dict(s["gbt"] or {}))
    model = rk.fit(examples, *ranker_args)
    scored = rk.with_probability(examples, model)
    calibrator = None
    if s["top1_calibrator"]:
        folds = int(s["calibrator_folds"] or 0)
        # out-of-fold scores when asked: a ranker's scores of its own training examples are sharper than of new ones
        cal_scored = rk.out_of_fold_probability(examples, folds, *ranker_args) if folds > 1 else scored
        calibrator = rk.fit_top1_calibrator(cal_scored, sorted(lv))
    metrics = {"index_build_s": round(index_s, 1), "ranker_fit_s": round(time.time() - t1, 1),
               **{f"index_{k}_rows": float(v.count()) for k, v in parts.items()},
               **loo_metrics(scored), **clf_metrics, **leaf_metrics}
    examples.unpersist()
    return model, versions, metrics, calibrator


def loo_metrics(scored: DataFrame) -> dict[str, float]:
    """Weighted top-1 accuracy of the ranker and of the most-frequent-code baseline on the leave-one-out examples,
    per label, plus the Brier score of the top-1 probability (calibration)."""
    group = ["label", "mention_norm", "gold_code"]
    top = rk.top_k(scored, 1, group)
    base = first_by(scored, group, [F.desc("exact_gaz_count"), "concept_code"]).filter(F.col("exact_gaz_count") > 0)
    occ = scored.select(*group, "w").distinct()
    rows = occ.alias("o").join(top.select(*group, F.col("y").alias("hit"), "p"), group, "left") \
        .join(base.select(*group, F.col("y").alias("base_hit")), group, "left") \
        .groupBy("label").agg(
            F.sum("w").alias("n"),
            F.sum(F.col("w") * F.coalesce("hit", F.lit(0.0))).alias("hit"),
            F.sum(F.col("w") * F.coalesce("base_hit", F.lit(0.0))).alias("base"),
            F.sum(F.col("w") * F.pow(F.coalesce("p", F.lit(0.0)) - F.coalesce("hit", F.lit(0.0)), 2)).alias("brier"),
        ).collect()  # one row per label
    out: dict[str, float] = {}
    for r in rows:
        key = str(r["label"]).lower()
        out[f"loo_acc1_{key}"] = r["hit"] / r["n"]
        out[f"loo_acc1_exact_{key}"] = r["base"] / r["n"]
        out[f"loo_brier_{key}"] = r["brier"] / r["n"]
    return out


# ---------------------------------------------------------------- serving

def load_resolver(spark: SparkSession, cfg: DictConfig, alias: str | None = None) -> tuple[Resolver, str]:
    """The registered resolver by alias (index pinned by its model-version tags), or the exact-match fallback
    when no resolver is registered; returns (resolver, ref) with ref '<name>@<version>' or 'resolver-exact'."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from clinlake import tracking
    from clinlake.config import lake_path

    s = settings(cfg)
    name, alias = str(s["name"]), str(alias or s["alias"])
    tracking.configure(cfg)
    try:
        mv = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        log.warning("no resolver '%s@%s' registered: exact gazetteer lookup", name, alias)
        return exact_resolver(spark, cfg), EXACT_SYSTEM
    # the version just resolved, so the index tags and the ranker come from the same version
    ranker, ref = tracking.load_model_version(name, alias, mv)
    tags = mv.tags or {}
    root = tags.get("index_path") or lake_path(cfg, str(s["index_table"]))

    def at_tags(*names: str) -> dict[str, DataFrame]:
        """The named index parts at the Delta versions this version's tags pin."""
        return read_index(spark, root, {p: int(tags[f"index_version_{p}"]) for p in names})

    pinned = {k: int(tags[f"retrieval_{k}"]) for k in RETRIEVAL if f"retrieval_{k}" in tags}
    pinned.setdefault("stem_top_n", 0)   # a version trained before the stem channel was ranked without it
    if any(int(s[k]) != v for k, v in pinned.items()):
        log.info("%s serves with the retrieval settings it was trained at: %s", ref, pinned)
    s = {**s, **pinned}   # a version trained before the tags serves with the configured settings
    parts = at_tags(*INDEX_PARTS)
    derived = None
    if all(f"index_version_{p}" in tags for p in DERIVED_PARTS):   # versions trained before session 44 have none
        stored = [p for p in DERIVED_PARTS if p not in ix.STEM_PARTS or tags.get(STEMS_TAG) == ix.STEMS_FINGERPRINT]
        if len(stored) < len(DERIVED_PARTS):
            log.info("%s: stem postings stored by another word_stems (%s): derived from the terms instead", ref,
                     tags.get(STEMS_TAG))
        derived = at_tags(*stored)
    phrases = None
    if f"index_version_{PHRASES}" in tags:   # versions trained before the counts were snapshotted have none
        phrases = at_tags(PHRASES)[PHRASES]
    classifier = None
    # one small row: the model's bytes, broadcast when serving; not read when the setting turns it off
    if s.get("icdo_classifier", True) and f"index_version_{CLASSIFIER}" in tags:
        classifier = _read_icdo_classifier(spark, f"{root.rstrip('/')}/{CLASSIFIER}",
                                           int(tags[f"index_version_{CLASSIFIER}"]), ref)
    calibrator = None
    if s.get("top1_calibrator", True) and CALIBRATOR_TAG in tags:   # versions trained before it have none
        calibrator = json.loads(tags[CALIBRATOR_TAG])
    leaves = None
    if s.get("default_leaves") and f"index_version_{LEAVES}" in tags:   # an empty list at serving turns them off
        leaves = at_tags(LEAVES)[LEAVES].filter(F.col("vocabulary_id").isin(*list(s["default_leaves"])))
    cache = lake_path(cfg, str(s["cache_table"])) if s.get("cache") else None
    identity = json.dumps({"run_id": mv.run_id, "source": mv.source, "index": dict(sorted(tags.items()))},
                          sort_keys=True)
    return Resolver(ref=ref, ranker=ranker, params=s, phrases=phrases, icdo_classifier=classifier,
                    calibrator=calibrator, leaf_map=leaves, identity=identity, cache_path=cache, derived=derived,
                    **parts), ref


def _read_icdo_classifier(spark: SparkSession, path: str, version: int, ref: str) -> bytes | None:
    """The pinned classifier's bytes, or None (with a warning) when this code computes other features than it was
    fitted on: its SVM weights would then be applied to the wrong columns and code every mention wrongly."""
    from udfs.icdo_classify import FEATURES_VERSION

    row = spark.read.format("delta").option("versionAsOf", version).load(path).select("model", "features").first()
    if row is None:
        return None
    if row["features"] != FEATURES_VERSION:
        log.warning("%s: its ICD-O-3 classifier was fitted on features %r, this code computes %r: served without "
                    "it (unseen tumour mentions take their nearest terms' codes); retrain the resolver",
                    ref, row["features"], FEATURES_VERSION)
        return None
    return bytes(row["model"])


def exact_resolver(spark: SparkSession, cfg: DictConfig) -> Resolver:
    """The fallback without a trained ranker: normalised exact lookup in the lake's gazetteer table."""
    from clinlake.config import lake_path

    gaz = spark.read.format("delta").load(lake_path(cfg, "gazetteer"))
    return Resolver(ref=EXACT_SYSTEM, exact_index=gazetteer_index(gaz), params=settings(cfg))


def retrieval_args(p: Mapping[str, Any]) -> list[int]:
    """The retrieval settings of resolver settings `p`, in ix.candidates' argument order (RETRIEVAL)."""
    return [int(p.get(k, RETRIEVAL_FALLBACK[k])) for k in RETRIEVAL]


def ranked_candidates(mentions: DataFrame, resolver: Resolver, k: int) -> DataFrame:
    """Distinct (label, mention_norm) -> top-k (rank, vocabulary_id, concept_code, p, review) by the ranker."""
    derived = resolver.derived or {}
    cands = ix.candidates(mentions, resolver.terms, resolver.postings, resolver.grams,
                          *retrieval_args(resolver.params), derived=derived)
    counts = derived["code_counts"] if "code_counts" in derived else ix.code_counts(resolver.terms)
    cands = cands.join(counts, ["label", "vocabulary_id", "concept_code"], "left")
    scored = rk.with_probability(rk.with_features(cands, ["label", "mention_norm"]), resolver.ranker)
    return rk.top_k(scored, k, ["label", "mention_norm"]) \
        .select("label", "mention_norm", "rank", "vocabulary_id", "concept_code", "p", "review")


def _best_codes(mentions: DataFrame, resolver: Resolver, k: int) -> DataFrame:
    """Distinct (label, mention_norm) -> (vocabulary_id, concept_code, score, candidates): the resolver's answer."""
    top = ranked_candidates(mentions, resolver, k)
    if resolver.leaf_map is not None:
        top = with_default_leaves(top, resolver.leaf_map)
    arr = top.groupBy("label", "mention_norm").agg(F.sort_array(F.collect_list(F.struct(
        "rank", "vocabulary_id", "concept_code", F.col("p").alias("score"), "review"))).alias("c"))
    # Reviewed (terminologist-accepted) mappings rank first and are trusted: score 1. Otherwise the top code's p, or
    # where the version has a top-1 calibrator, P(top code is right) from p and its gap to the runner-up.
    top1 = F.col("c")[0]["score"]
    if resolver.calibrator:
        top1 = rk.calibrated(F.col("label"), top1, F.coalesce(F.get("c", 1)["score"], F.lit(0.0)), resolver.calibrator)
    best = arr.select("label", "mention_norm", F.col("c")[0]["vocabulary_id"].alias("vocabulary_id"),
                      F.col("c")[0]["concept_code"].alias("concept_code"),
                      F.when(F.col("c")[0]["review"] > 0, F.lit(1.0)).otherwise(top1).alias("score"),
                      F.transform("c", lambda x: x.dropFields("review")).alias("candidates"))
    if resolver.params.get("value_codes", DEFAULTS["value_codes"]):
        # weeks of gestation and BMI codes from the mention's own number (clinlake.resolver.values)
        best = best.withColumn("concept_code", values.value_code(F.col("concept_code"), F.col("vocabulary_id"),
                                                                 F.col("mention_norm")))
    if resolver.params.get("icdo_axes", DEFAULTS["icdo_axes"]):
        # icdo joins the ranked rows with a part of themselves (the unseen tumour mentions): persisted, the whole
        # ranking is computed once, not once per branch. One small row per distinct mention; released with the
        # session, as `keyed` is.
        best = best.persist(StorageLevel.MEMORY_AND_DISK)
        # unseen tumour mentions: behaviour and grade from their own words (clinlake.resolver.icdo)
        specific = resolver.params.get("icdo_specific_histology", DEFAULTS["icdo_specific_histology"])
        classify = None
        if resolver.icdo_classifier is not None and resolver.params.get("icdo_classifier", True):
            from udfs.icdo_classify import classify_udf

            classify = classify_udf(mentions.sparkSession.sparkContext.broadcast(resolver.icdo_classifier))
        best = icdo.with_composed_codes(best, resolver.terms, bool(specific), classify)
    return best


# Settings that do not change _best_codes' answer for a mention: left out of the cache key, so that changing
# them does not empty the cache (min_score is applied after the cache; the alias only finds the version).
NOT_IN_CACHE_KEY = ("alias", "min_score", "cache", "cache_table")


def cache_key(resolver: Resolver, k: int) -> str:
    """The fingerprint of what _best_codes answers with: the version (ref, run, pinned index parts) and every serving
    setting, the parts loaded with it included; a change to any of them starts a new key."""
    params = {key: v for key, v in resolver.params.items() if key not in NOT_IN_CACHE_KEY}
    state = {"ref": resolver.ref, "identity": resolver.identity, "k": k, "params": params,
             "leaf_map": resolver.leaf_map is not None, "calibrator": resolver.calibrator,
             "icdo_classifier": hashlib.sha256(resolver.icdo_classifier).hexdigest()
             if resolver.icdo_classifier is not None else None}
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cached_codes(mentions: DataFrame, resolver: Resolver, k: int) -> DataFrame:
    """_best_codes through the Delta cache at resolver.cache_path: only mentions this version and these settings have
    not coded before are resolved, appended to the cache, and every mention's codes read back from it.

    A mention's codes depend only on (label, mention_norm), the version and the settings (`cache_key`), so a cached
    answer is the answer: an incremental run over new notes resolves only the mentions no earlier run has seen. Two
    runs appending the same new mention at once write the same row twice; reading keeps one.
    """
    from clinlake import delta

    spark, path, keys = mentions.sparkSession, str(resolver.cache_path), ["label", "mention_norm"]
    key = cache_key(resolver, k)
    seen = spark.read.format("delta").load(path).filter(F.col("resolver_key") == key) \
        if delta.exists(spark, path) else None
    todo = mentions if seen is None else mentions.join(seen.select(*keys), keys, "left_anti")
    # candidate generation reads its mentions in several branches: the anti-join against the cache is done once
    todo = todo.persist(StorageLevel.MEMORY_AND_DISK)
    n_all, n_new = mentions.count(), todo.count()
    if n_new:
        # every new mention gets a row, those with no candidate too (null code): else each call would retry them
        fresh = todo.join(_best_codes(todo, resolver, k), keys, "left").select(
            F.lit(key).alias("resolver_key"), F.lit(resolver.ref).alias("resolver"), *keys, "vocabulary_id",
            "concept_code", "score", "candidates", F.current_timestamp().alias("cached_at"))
        try:
            if seen is None:   # checked above: create it partitioned by key; an existing one already has its schema
                delta.ensure_table(spark, path, fresh, ["resolver_key"])
            fresh.write.format("delta").mode("append").save(path)
        except Exception as exc:   # noqa: BLE001 - the cache only saves time: serve without it rather than fail
            log.warning("%s: resolver cache at %s not written (%s); resolving all %d mentions without it",
                        resolver.ref, path, type(exc).__name__, n_all)
            todo.unpersist()
            return _best_codes(mentions, resolver, k)
    todo.unpersist()
    log.info("%s: %d distinct mentions, %d resolved now, %d from the resolver cache (%s)", resolver.ref, n_all,
             n_new, n_all - n_new, path)
    cached = spark.read.format("delta").load(path).filter(F.col("resolver_key") == key) \
        .join(mentions, keys, "left_semi")
    return first_by(cached, keys, [F.col("cached_at"), F.col("concept_code")]) \
        .select(*keys, "vocabulary_id", "concept_code", "score", "candidates")


def _ranked_codes(keyed: DataFrame, resolver: Resolver, top_k: int | None) -> DataFrame:
    """Join each chunk to its best code (score = calibrated p) and its top-k `candidates` array."""
    k = int(top_k or resolver.params.get("top_k", 5))
    # The chunks feed two branches (their distinct mentions, and the join back): persist so the recogniser
    # upstream runs once. Released with the session or by the caller's unpersist of its final frame's inputs.
    keyed = keyed.persist(StorageLevel.MEMORY_AND_DISK)
    mentions = keyed.select("label", "mention_norm").distinct()
    best = cached_codes(mentions, resolver, k) if resolver.cache_path else _best_codes(mentions, resolver, k)
    min_score = float(resolver.params.get("min_score", 0.0) or 0.0)
    out = keyed.join(best, ["label", "mention_norm"], "left")
    if min_score > 0:
        # Too uncertain to code: the mention stays, its code is withheld (it remains in `candidates`).
        out = out.withColumn("concept_code", F.when(F.col("score") >= min_score, F.col("concept_code")))
    return out


def maps_to_standard(relationship: DataFrame) -> DataFrame:
    """note_nlp_source_concept_id -> note_nlp_concept_id: its "Maps to" standard concept (the lowest id if several)."""
    maps_to = relationship.filter(F.col("relationship_id") == "Maps to").select(
        F.col("concept_id_1").alias("note_nlp_source_concept_id"), F.col("concept_id_2").alias("note_nlp_concept_id")
    )
    return first_by(maps_to, ["note_nlp_source_concept_id"], [F.col("note_nlp_concept_id")])


def with_codes(chunks: DataFrame, resolver: Resolver | DataFrame, concept: DataFrame, relationship: DataFrame,
               label_vocabularies: Mapping[str, str], top_k: int | None = None) -> DataFrame:
    """Add vocabulary_id, concept_code, score, candidates (top-k, trained resolver only), phrase_precision (the
    resolver's snapshot of training counts, else null), note_nlp_source_concept_id, note_nlp_concept_id (0 if no
    'Maps to') and icd9cm_codes (GEMs equivalents of ICD-10-CM codes)."""
    targets = F.create_map(*[x for kv in label_vocabularies.items() for x in (F.lit(kv[0]), F.lit(kv[1]))])
    keyed = chunks.withColumn("mention_norm", normalize_col(F.col("lexical_variant")))
    if isinstance(resolver, DataFrame) or resolver.ranker is None:
        index = resolver if isinstance(resolver, DataFrame) else resolver.exact_index
        coded = keyed.join(F.broadcast(index), ["label", "mention_norm"], "left")
    else:
        coded = _ranked_codes(keyed, resolver, top_k)
    coded = coded.withColumn("vocabulary_id", F.coalesce(F.col("vocabulary_id"), targets[F.col("label")])) \
        .transform(with_phrase_precision, None if isinstance(resolver, DataFrame) else resolver.phrases)
    src = concept.select(
        "vocabulary_id", F.upper("concept_code").alias("concept_code_u"),
        F.col("concept_id").alias("note_nlp_source_concept_id"),
    )
    # An ICD-O-3 code with a grade digit or CANTEMIST's /H flag that the vocabulary lacks ("8140/62") takes the
    # concept of its histology/behaviour ("8140/6"): OMOP's ICDO3 concepts are histology/behaviour pairs.
    base = src.select("vocabulary_id", F.col("concept_code_u").alias("_base"),
                      F.col("note_nlp_source_concept_id").alias("_base_id"))
    out = (
        coded.withColumn("concept_code_u", F.upper("concept_code"))
        .join(src, ["vocabulary_id", "concept_code_u"], "left")
        .withColumn("_base", F.when(F.col("note_nlp_source_concept_id").isNull()
                                    & (F.col("vocabulary_id") == icdo.ICDO_VOCABULARY),
                                    F.regexp_extract("concept_code_u", r"^(\d{4}/\d)", 1)))
        .join(base, ["vocabulary_id", "_base"], "left")
        .withColumn("note_nlp_source_concept_id", F.coalesce("note_nlp_source_concept_id", "_base_id"))
        .drop("_base", "_base_id")
        .join(maps_to_standard(relationship), ["note_nlp_source_concept_id"], "left")
        .withColumn("note_nlp_source_concept_id", F.coalesce("note_nlp_source_concept_id", F.lit(0)).cast("int"))
        .withColumn("note_nlp_concept_id", F.coalesce("note_nlp_concept_id", F.lit(0)).cast("int"))
        .drop("concept_code_u", "mention_norm")
    )
    return with_icd9_equivalents(out, concept, relationship)


def gem_equivalents(concept: DataFrame, relationship: DataFrame,
                    relationship_ids: tuple[str, ...] = GEM_TO_ICD9) -> DataFrame:
    """ICD-10-CM source concept id -> sorted ICD-9-CM codes through the forward GEM (eq + apx by default)."""
    icd9 = concept.filter(F.col("vocabulary_id") == "ICD9CM").select(
        F.col("concept_id").alias("concept_id_2"), F.col("concept_code").alias("icd9"))
    return relationship.filter(F.col("relationship_id").isin(*relationship_ids)) \
        .select(F.col("concept_id_1").alias("note_nlp_source_concept_id"), "concept_id_2") \
        .join(icd9, "concept_id_2").groupBy("note_nlp_source_concept_id") \
        .agg(F.array_sort(F.collect_set("icd9")).alias("icd9cm_codes"))


def with_icd9_equivalents(coded: DataFrame, concept: DataFrame, relationship: DataFrame) -> DataFrame:
    """Add icd9cm_codes (array, empty when none) for ICD-10-CM rows; only the coded concepts are looked up."""
    used = coded.select("note_nlp_source_concept_id").filter("note_nlp_source_concept_id != 0").distinct()
    gem = gem_equivalents(concept, relationship).join(used, "note_nlp_source_concept_id")
    return coded.join(gem, "note_nlp_source_concept_id", "left").withColumn(
        "icd9cm_codes", F.coalesce("icd9cm_codes", F.array().cast("array<string>")))
