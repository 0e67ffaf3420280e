"""Resolver index: searchable terms (gazetteer mentions + vocabulary names/synonyms) and char 3-gram postings,
and candidate generation over them (normalised exact match + n-gram nearest neighbours), joins only.

Tables (all small enough to live as one Delta snapshot each, see clinlake.resolve.save_index):
- terms:    label, term_norm, vocabulary_id, concept_code, gaz_count (annotated mentions), syn (1 = vocabulary
            name or synonym), review (1 = accepted by a terminologist)
- postings: label, gram, term_norm  (only grams with document frequency <= max_df)
- grams:    label, gram, df         (the same grams with their document frequency)
and the aggregates of `terms` that every call needs (`derived_parts`, stored with the version since session 44):
- term_set:      label, mention_norm                      (the distinct indexed terms)
- stem_postings: label, term_norm, gram                   (every word stem of every distinct term)
- stem_grams:    label, gram, df                          (stems in at most STEM_MAX_DF terms, with that count)
- code_counts:   label, vocabulary_id, concept_code, code_count
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from clinlake.vocab.normalize import normalize_col

# ICD-10 chapter/section ranges ("A00-B99") are concepts but never codes a coder assigns.
NON_CODE_CLASSES = ("ICD10 Chapter", "ICD10 SubChapter")

# The n-gram neighbours' evidence per candidate: 0 for an exact match, the best over both sources otherwise.
SIMILARITY_COLS = ["sim_gaz", "sim_syn", "wsim_gaz", "wsim_syn", "sum_sim", "cat_sim", "head"]
CANDIDATE_COLS = ["label", "mention_norm", "vocabulary_id", "concept_code", "exact_gaz_count", "exact_syn",
                  "review", *SIMILARITY_COLS]

# Relational adjectives whose noun shares no 5-letter prefix with them -> the noun's stem (normalised: no accents,
# ñ -> n; a noun's stem is its first 5 letters, as word_stems gives it). Mentions
# say "absceso renal", vocabulary names "absceso del riñón"; the other pairs (pulmonar / pulmón, ovárico / ovario,
# testicular / testículo) already meet in their stems.
ADJECTIVE_STEMS: dict[str, str] = {
    **dict.fromkeys(["renal", "renales"], "rinon"),
    **dict.fromkeys(["hepatico", "hepatica", "hepaticos", "hepaticas"], "higad"),
    **dict.fromkeys(["vesical", "vesicales"], "vejig"),
    **dict.fromkeys(["gastrico", "gastrica", "gastricos", "gastricas"], "estom"),
    **dict.fromkeys(["cutaneo", "cutanea", "cutaneos", "cutaneas", "dermico", "dermica"], "piel"),
    **dict.fromkeys(["ocular", "oculares"], "ojo"),
    **dict.fromkeys(["cardiaco", "cardiaca", "cardiacos", "cardiacas"], "coraz"),
    **dict.fromkeys(["oseo", "osea", "oseos", "oseas"], "hueso"),
    **dict.fromkeys(["mamario", "mamaria", "mamarios", "mamarias"], "mama"),
    **dict.fromkeys(["cerebral", "cerebrales", "encefalico", "encefalica"], "cereb"),
    **dict.fromkeys(["vertebral", "vertebrales"], "verte"),
    **dict.fromkeys(["uterino", "uterina"], "utero"),
    **dict.fromkeys(["lingual"], "lengu"),
    **dict.fromkeys(["dental", "dentales", "dentario", "dentaria"], "dient"),
}


# Stems found in more terms than this do not retrieve ("lesio", "tumor"): like max_df for the 3-grams.
STEM_MAX_DF = 2000
# What stored stem postings were computed with: a version whose tag differs derives them again, since stems
# stored by another word_stems would not meet the stems this code gives its mentions. "prefix-5" names word_stems'
# rule: change it with the rule.
STEMS_FINGERPRINT = hashlib.sha256(json.dumps(["prefix-5", ADJECTIVE_STEMS, STEM_MAX_DF], sort_keys=True)
                                   .encode()).hexdigest()[:16]
STEM_PARTS = ("stem_postings", "stem_grams")


def word_stems(col: Column | str) -> Column:
    """Distinct word stems of a normalised text: a relational adjective's noun, else the word's first 5 letters."""
    c = F.col(col) if isinstance(col, str) else col
    table = F.create_map(*[F.lit(x) for kv in ADJECTIVE_STEMS.items() for x in kv])
    words = F.filter(F.split(c, " "), lambda w: F.length(w) > 0)
    return F.array_distinct(F.transform(words, lambda w: F.coalesce(table[w], F.substring(w, 1, 5))))


def char_grams(col: Column | str) -> Column:
    """Distinct character 3-grams of ' ' + text + ' ' (built-ins only; '' gives an empty array)."""
    c = F.col(col) if isinstance(col, str) else col
    padded = F.concat(F.lit(" "), c, F.lit(" "))
    grams = F.transform(F.sequence(F.lit(1), F.greatest(F.length(padded) - 2, F.lit(1))),
                        lambda i: padded.substr(i, F.lit(3)))
    return F.when(F.length(c) > 0, F.array_distinct(grams)).otherwise(F.array().cast("array<string>"))


def dice(a: Column, b: Column) -> Column:
    """Dice coefficient of two gram arrays: 2 |a ∩ b| / (|a| + |b|)."""
    return (2.0 * F.size(F.array_intersect(a, b))) / F.greatest(F.size(a) + F.size(b), F.lit(1))


def _label_vocab(spark, label_vocabularies: Mapping[str, str]) -> DataFrame:
    """(label, vocabulary_id) pairs from conf extract.label_vocabularies (a label may list several, comma-separated)."""
    rows = [(lab, v.strip()) for lab, vs in label_vocabularies.items() for v in str(vs).split(",") if v.strip()]
    return spark.createDataFrame(rows, "label string, vocabulary_id string")


def build_terms(gazetteer: DataFrame, concept: DataFrame, synonym: DataFrame,
                label_vocabularies: Mapping[str, str]) -> DataFrame:
    """Every searchable (label, normalised term, code): gazetteer mentions with counts + all names/synonyms."""
    lv = _label_vocab(gazetteer.sparkSession, label_vocabularies)
    gaz = gazetteer.join(F.broadcast(lv), ["label", "vocabulary_id"]).select(
        "label", normalize_col(F.col("mention")).alias("term_norm"), "vocabulary_id", "concept_code",
        F.col("count").cast("long").alias("gaz_count"), F.lit(0).alias("syn"),
        (F.col("source") == "review").cast("int").alias("review"))
    codes = concept.filter(F.col("invalid_reason").isNull() & ~F.col("concept_class_id").isin(*NON_CODE_CLASSES)) \
        .join(F.broadcast(lv.select("vocabulary_id").distinct()), "vocabulary_id") \
        .select("concept_id", "vocabulary_id", "concept_code", "concept_name")
    names = codes.select("concept_id", F.col("concept_name").alias("name")).unionByName(
        synonym.select("concept_id", F.col("concept_synonym_name").alias("name")))
    syn = names.join(codes.drop("concept_name"), "concept_id")
    # build_vocabulary also writes gazetteer mentions as synonyms: they must not count as vocabulary evidence,
    # or the ranker's leave-one-out training would see every mention's own entry through the synonym table.
    syn = syn.join(gazetteer.select("vocabulary_id", "concept_code", F.col("mention").alias("name")).distinct(),
                   ["vocabulary_id", "concept_code", "name"], "left_anti")
    syn = syn.join(F.broadcast(lv), "vocabulary_id").select(
        "label", normalize_col(F.col("name")).alias("term_norm"), "vocabulary_id", "concept_code",
        F.lit(0).cast("long").alias("gaz_count"), F.lit(1).alias("syn"), F.lit(0).alias("review"))
    return gaz.unionByName(syn).filter(F.col("term_norm") != "") \
        .groupBy("label", "term_norm", "vocabulary_id", "concept_code") \
        .agg(F.sum("gaz_count").alias("gaz_count"), F.max("syn").alias("syn"), F.max("review").alias("review"))


def build_grams(terms: DataFrame, max_df: int) -> tuple[DataFrame, DataFrame]:
    """(postings, grams): 3-gram -> term postings per label, without grams in more than max_df terms."""
    exploded = terms.select("label", "term_norm").distinct() \
        .select("label", "term_norm", F.explode(char_grams("term_norm")).alias("gram"))
    grams = exploded.groupBy("label", "gram").agg(F.count("*").alias("df")).filter(F.col("df") <= max_df)
    postings = exploded.join(grams.select("label", "gram"), ["label", "gram"])
    return postings, grams


def indexed_mentions(terms: DataFrame) -> DataFrame:
    """(label, mention_norm) of every indexed term: the mentions the index knows verbatim."""
    return terms.select("label", F.col("term_norm").alias("mention_norm")).distinct()


def exact_candidates(mentions: DataFrame, terms: DataFrame) -> DataFrame:
    """Codes whose gazetteer mention or vocabulary synonym normalises to the mention itself."""
    return mentions.join(terms.withColumnRenamed("term_norm", "mention_norm"), ["label", "mention_norm"]).select(
        "label", "mention_norm", "vocabulary_id", "concept_code", F.col("gaz_count").alias("exact_gaz_count"),
        F.col("syn").alias("exact_syn"), "review", *[F.lit(0.0).alias(c) for c in SIMILARITY_COLS])


def _pool_by_rarest(mentions: DataFrame, terms: DataFrame, keys_of: Callable[[str], Column], df: DataFrame,
                    postings: DataFrame, rare: int, pool: int, term_set: DataFrame | None = None) -> DataFrame:
    """(label, mention_norm, term_norm, hits): the `pool` other terms sharing most of the mention's `rare` rarest
    keys (3-grams or word stems; `keys_of` gives a text's, `df` and `postings` are per (label, gram))."""
    keys = ["label", "mention_norm"]
    # A mention that is itself an indexed term counts in its keys' df: discount it, so the keys only it has
    # (df 1) are not taken as "rare" ones that retrieve nothing else.
    own = (indexed_mentions(terms) if term_set is None else term_set).withColumn("own", F.lit(1))
    mk = mentions.join(own, keys, "left").select(*keys, F.coalesce("own", F.lit(0)).alias("own"),
                                                 F.explode(keys_of("mention_norm")).alias("gram")) \
        .join(df, ["label", "gram"]).withColumn("df", F.col("df") - F.col("own")).filter(F.col("df") > 0)
    # Only the rarest keys of a mention go into the join: common ones ("ion", " de") would multiply it.
    mk = mk.withColumn("r", F.row_number().over(Window.partitionBy(*keys).orderBy("df", "gram"))) \
        .filter(F.col("r") <= rare)
    hits = mk.join(postings, ["label", "gram"]).filter(F.col("term_norm") != F.col("mention_norm")) \
        .groupBy(*keys, "term_norm").agg(F.count("*").alias("hits"))
    return hits.withColumn("r", F.row_number().over(Window.partitionBy(*keys).orderBy(F.desc("hits"), "term_norm"))) \
        .filter(F.col("r") <= pool).drop("r")


def stem_postings(terms: DataFrame) -> DataFrame:
    """(label, term_norm, gram): every word stem of every distinct term."""
    return terms.select("label", "term_norm").distinct() \
        .select("label", "term_norm", F.explode(word_stems("term_norm")).alias("gram"))


def stem_grams(postings: DataFrame) -> DataFrame:
    """(label, gram, df): the stems of at most STEM_MAX_DF terms, with their number of terms."""
    return postings.groupBy("label", "gram").agg(F.count("*").alias("df")).filter(F.col("df") <= STEM_MAX_DF)


def derived_parts(terms: DataFrame) -> dict[str, DataFrame]:
    """The aggregates of `terms` that candidate generation needs in every call. A version stores them beside its
    postings (clinlake.resolve.train), so that serving reads them instead of aggregating the whole terms table
    again in each call."""
    postings = stem_postings(terms)
    return {"term_set": indexed_mentions(terms), "stem_postings": postings, "stem_grams": stem_grams(postings),
            "code_counts": code_counts(terms)}


def stem_neighbours(mentions: DataFrame, terms: DataFrame, rare: int = 2, pool: int = 300,
                    top_n: int = 10, derived: Mapping[str, DataFrame] | None = None) -> DataFrame:
    """(label, mention_norm, term_norm, sim) of the terms nearest by word stems, retrieved by the rarest stems.

    The second retrieval channel beside the character one: "carcinoma ovarico" shares too few 3-grams with "tumor
    maligno del ovario" to be among its character neighbours, but meets it in the stem "ovari". The stem postings
    come from `derived` (derived_parts, stored with the version) or, without them, from `terms` in this call.
    """
    keys = ["label", "mention_norm"]
    d = dict(derived or {})
    tstems = d["stem_postings"] if "stem_postings" in d else stem_postings(terms)
    sdf = d["stem_grams"] if "stem_grams" in d else stem_grams(tstems)
    hits = _pool_by_rarest(mentions, terms, word_stems, sdf, tstems, rare, pool, d.get("term_set"))
    # character Dice (arrays of 3-grams) is the dear part: only for the terms whose stem Dice can still make the
    # top_n (rank() keeps the ties at the boundary, which the character Dice then orders)
    scored = hits.withColumn("wsim", dice(word_stems("mention_norm"), word_stems("term_norm"))) \
        .withColumn("r", F.rank().over(Window.partitionBy(*keys).orderBy(F.desc("wsim")))) \
        .filter(F.col("r") <= top_n).withColumn("sim", dice(char_grams("mention_norm"), char_grams("term_norm")))
    w = Window.partitionBy(*keys).orderBy(F.desc("wsim"), F.desc("sim"), "term_norm")
    return scored.withColumn("r", F.row_number().over(w)).filter(F.col("r") <= top_n) \
        .select(*keys, "term_norm", "sim")


def ngram_candidates(mentions: DataFrame, terms: DataFrame, postings: DataFrame, grams: DataFrame,
                     rare_grams: int = 8, pool: int = 50, top_n: int = 10, stem_top_n: int = 0,
                     stem_rare: int = 2, stem_pool: int = 300,
                     derived: Mapping[str, DataFrame] | None = None) -> DataFrame:
    """Nearest other terms by char 3-gram Dice: retrieve by the mention's rarest grams, re-score the pool exactly;
    with stem_top_n > 0, also the nearest by word stems (stem_neighbours)."""
    keys = ["label", "mention_norm"]
    hits = _pool_by_rarest(mentions, terms, char_grams, grams, postings, rare_grams, pool,
                           (derived or {}).get("term_set"))
    scored = hits.withColumn("sim", dice(char_grams("mention_norm"), char_grams("term_norm")))
    best = scored.withColumn("r", F.row_number().over(Window.partitionBy(*keys).orderBy(F.desc("sim"), "term_norm"))) \
        .filter(F.col("r") <= top_n).select(*keys, "term_norm", "sim")
    if stem_top_n > 0:
        best = best.unionByName(stem_neighbours(mentions.select(*keys), terms, stem_rare, stem_pool, stem_top_n,
                                                derived)).distinct()
    # word-stem Dice beside the character one: "absceso pulmonar" is nearer "absceso del pulmon" (both words) than
    # "absceso cutaneo" (one), which 3-grams alone barely tell apart
    best = best.withColumn("_ms", word_stems("mention_norm")).withColumn("_ts", word_stems("term_norm"))
    # the mention's first word is its head in Spanish ("absceso" in "absceso pulmonar"): does the term have it?
    best = best.withColumn("wsim", dice(F.col("_ms"), F.col("_ts"))) \
        .withColumn("head", F.coalesce(F.array_contains("_ts", F.get("_ms", 0)), F.lit(False)).cast("double")) \
        .drop("_ms", "_ts")
    coded = best.join(terms, ["label", "term_norm"])
    # the neighbours' vote: summed similarity of the nearest terms per code and per 3-character category
    cat = Window.partitionBy(*keys, "vocabulary_id", F.substring("concept_code", 1, 3))
    coded = coded.withColumn("cat_sim", F.sum("sim").over(cat))
    return coded.groupBy(*keys, "vocabulary_id", "concept_code").agg(
        F.lit(0).cast("long").alias("exact_gaz_count"), F.lit(0).alias("exact_syn"), F.lit(0).alias("review"),
        F.max(F.when(F.col("gaz_count") > 0, F.col("sim")).otherwise(0.0)).alias("sim_gaz"),
        F.max(F.when(F.col("syn") > 0, F.col("sim")).otherwise(0.0)).alias("sim_syn"),
        F.max(F.when(F.col("gaz_count") > 0, F.col("wsim")).otherwise(0.0)).alias("wsim_gaz"),
        F.max(F.when(F.col("syn") > 0, F.col("wsim")).otherwise(0.0)).alias("wsim_syn"),
        F.sum("sim").alias("sum_sim"), F.max("cat_sim").alias("cat_sim"), F.max("head").alias("head"))


def candidates(mentions: DataFrame, terms: DataFrame, postings: DataFrame, grams: DataFrame,
               rare_grams: int = 8, pool: int = 50, top_n: int = 10, stem_top_n: int = 0,
               stem_rare: int = 2, stem_pool: int = 300,
               derived: Mapping[str, DataFrame] | None = None) -> DataFrame:
    """Distinct (label, mention_norm) -> candidate codes with exact and n-gram evidence (CANDIDATE_COLS); `derived`:
    the version's stored aggregates of `terms` (derived_parts), else they are computed here."""
    mentions = mentions.select("label", "mention_norm").distinct()
    both = exact_candidates(mentions, terms).unionByName(
        ngram_candidates(mentions, terms, postings, grams, rare_grams, pool, top_n, stem_top_n, stem_rare, stem_pool,
                         derived))
    return both.groupBy("label", "mention_norm", "vocabulary_id", "concept_code").agg(
        F.sum("exact_gaz_count").alias("exact_gaz_count"), F.max("exact_syn").alias("exact_syn"),
        F.max("review").alias("review"), *[F.max(c).alias(c) for c in SIMILARITY_COLS])


def code_counts(terms: DataFrame) -> DataFrame:
    """Gazetteer count per (label, code): the code prior."""
    return terms.groupBy("label", "vocabulary_id", "concept_code").agg(F.sum("gaz_count").alias("code_count"))
