"""Cohort query on one site's lake (Spark): the only place that touches person-level rows.

Everything here ends in small aggregates (``Aggregates``); suppression and writing happen on those.
Cohort entry (the index event) is a person's first qualifying mention (earliest note_date, then note_id),
so every person falls in exactly one stratum and strata counts add up to the total exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from omegaconf import DictConfig
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from clinlake.config import lake_path
from clinlake.errors import UserError
from clinlake.study.definition import Assertion, Cohort, Study, TopConcepts, period_bounds

GENDER_MALE, GENDER_FEMALE = 8507, 8532  # OMOP gender concepts
UNKNOWN = "unknown"
DIMENSIONS = ("age_band", "sex", "year", "month", "note_type")  # month is only used by monthly counts over time


@dataclass
class SiteTables:
    """The site tables a study reads; person and concept_ancestor may be absent."""

    note: DataFrame  # note_deid (NOTE shape)
    note_nlp: DataFrame
    concept: DataFrame
    concept_ancestor: DataFrame | None = None
    person: DataFrame | None = None


@dataclass
class Aggregates:
    """Unsuppressed aggregates for one site (never written as they are)."""

    index: pd.DataFrame  # persons per (age_band, sex, year, month, note_type) of their index event
    top: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> vocabulary_id, concept_code, concept_name, n
    model_versions: list[str] = field(default_factory=list)
    has_person: bool = False


def _load(spark: SparkSession, path: str) -> DataFrame | None:
    """A Delta table, or None when the folder holds none."""
    from delta.tables import DeltaTable

    return spark.read.format("delta").load(path) if DeltaTable.isDeltaTable(spark, path) else None


def load_site_tables(spark: SparkSession, cfg: DictConfig) -> SiteTables:
    """Read note_deid, note_nlp, concept (required) and concept_ancestor, person (optional) from the lake."""
    names = dict(cfg.get("study", {}).get("tables", {}) or {})
    found = {}
    for key, default in (("note", "note_deid"), ("note_nlp", "note_nlp"), ("concept", "concept"),
                         ("concept_ancestor", "concept_ancestor"), ("person", "person")):
        path = lake_path(cfg, str(names.get(key, default)))
        found[key] = _load(spark, path)
        if found[key] is None and key in ("note", "note_nlp", "concept"):
            raise UserError(f"table {names.get(key, default)} not found at {path}: run the pipeline first")
    return SiteTables(**found)


def resolve_concepts(tables: SiteTables, cohort: Cohort) -> DataFrame:
    """concept_id of every cohort code, plus descendants through concept_ancestor where asked."""
    spark = tables.concept.sparkSession
    refs = spark.createDataFrame(
        [(i, c.vocabulary_id, c.concept_code, c.include_descendants) for i, c in enumerate(cohort.concepts)],
        "ref int, vocabulary_id string, concept_code string, descendants boolean",
    )
    hits = refs.join(tables.concept.select("concept_id", "vocabulary_id", "concept_code"),
                     ["vocabulary_id", "concept_code"], "left")
    missing = hits.filter(F.col("concept_id").isNull()).orderBy("ref").collect()
    if missing:
        what = ", ".join(f"cohort.concepts[{r.ref}] {r.vocabulary_id} '{r.concept_code}'" for r in missing)
        raise UserError(f"not in this site's concept table: {what} (is that vocabulary loaded?)")
    ids = hits.select("concept_id")
    wants_tree = hits.filter("descendants")
    if any(c.include_descendants for c in cohort.concepts):
        if tables.concept_ancestor is None:
            raise UserError("the study asks for descendants but this site has no concept_ancestor table")
        below = wants_tree.join(tables.concept_ancestor, F.col("concept_id") == F.col("ancestor_concept_id")).select(
            F.col("descendant_concept_id").alias("concept_id"))
        ids = ids.unionByName(below)
    return ids.distinct()


def filter_assertion(nlp: DataFrame, assertion: Assertion) -> DataFrame:
    """Mentions passing the study's assertion filters (null columns fail a filter that is switched on)."""
    cond = F.lit(True)
    if assertion.term_exists is not None:
        cond &= F.col("term_exists") == assertion.term_exists
    if assertion.negated is not None:
        cond &= F.col("negated") == F.lit(assertion.negated)
    if assertion.experiencer is not None:
        cond &= F.col("experiencer").isin(list(assertion.experiencer))
    if assertion.certainty is not None:
        cond &= F.col("certainty").isin(list(assertion.certainty))
    if assertion.exclude_temporality:
        # a mention with no temporality is kept: "not historical" is the default reading
        cond &= ~F.coalesce(F.col("temporality").isin(list(assertion.exclude_temporality)), F.lit(False))
    return nlp.filter(cond)


def filter_time_window(note: DataFrame, study: Study) -> DataFrame:
    """Notes with a person and a note_date inside the study window (inclusive, whole periods)."""
    out = note.filter(F.col("person_id").isNotNull() & F.col("note_date").isNotNull())
    if study.time_window.start:
        out = out.filter(F.col("note_date") >= F.lit(period_bounds(study.time_window.start)[0]))
    if study.time_window.end:
        out = out.filter(F.col("note_date") <= F.lit(period_bounds(study.time_window.end)[1]))
    return out


def with_mention_concept(nlp: DataFrame) -> DataFrame:
    """One concept per mention: the source (vocabulary) concept, else the standard one; 0 counts as none."""
    def real(c: str):
        return F.when(F.col(c) > 0, F.col(c))
    return nlp.withColumn("mention_concept_id", F.coalesce(real("note_nlp_source_concept_id"), real("note_nlp_concept_id")))


def qualifying_mentions(tables: SiteTables, study: Study, cohort_ids: DataFrame) -> DataFrame:
    """Mentions of a cohort concept that pass the filters, in windowed notes, with the note's person and date."""
    nlp = filter_assertion(tables.note_nlp, study.assertion)
    ids = F.broadcast(cohort_ids)
    cols = {"source": "note_nlp_source_concept_id", "standard": "note_nlp_concept_id"}
    parts = [nlp.join(ids.withColumnRenamed("concept_id", cols[m]), cols[m], "left_semi") for m in study.cohort.match_on]
    matched = parts[0]
    for p in parts[1:]:
        matched = matched.unionByName(p)
    notes = filter_time_window(tables.note, study).select(
        "note_id", "person_id", "note_date", "note_title", "note_type_concept_id")
    return matched.select("note_nlp_id", "note_id", "nlp_system").dropDuplicates(["note_nlp_id"]).join(notes, "note_id")


def index_events(qualifying: DataFrame) -> DataFrame:
    """One row per person: the note of their first qualifying mention (earliest date, then lowest note_id)."""
    first = Window.partitionBy("person_id").orderBy("note_date", "note_id")
    return (qualifying.select("person_id", "note_id", "note_date", "note_title", "note_type_concept_id").distinct()
            .withColumn("_rank", F.row_number().over(first)).filter("_rank = 1").drop("_rank"))


def age_band_col(age: F.Column, bounds: list[int]) -> F.Column:
    """Label of the band an age falls in: 0-17, 18-44, ..., 65+; negative or missing -> unknown."""
    expr = F.when(age.isNull() | (age < 0), F.lit(UNKNOWN))
    for lo, hi in zip(bounds, bounds[1:]):
        expr = expr.when(age < hi, F.lit(f"{lo}-{hi - 1}"))
    return expr.otherwise(F.lit(f"{bounds[-1]}+"))


def with_strata(index: DataFrame, person: DataFrame | None, study: Study) -> DataFrame:
    """age_band, sex (from person when present, else unknown), year, month and note_type of each index event."""
    if person is not None:
        p = person.select("person_id", "gender_concept_id", "year_of_birth").dropDuplicates(["person_id"])
        index = index.join(p, "person_id", "left")
        age = F.year("note_date") - F.col("year_of_birth")
        sex = (F.when(F.col("gender_concept_id") == GENDER_MALE, "male")
               .when(F.col("gender_concept_id") == GENDER_FEMALE, "female").otherwise(UNKNOWN))
        index = index.withColumn("age_band", age_band_col(age, study.strata.age_bands)).withColumn("sex", sex)
    else:
        index = index.withColumn("age_band", F.lit(UNKNOWN)).withColumn("sex", F.lit(UNKNOWN))
    if study.strata.note_type == "note_title":
        # free text: normalised here; labels too rare to publish become 'other' later (see tables.py)
        note_type = F.lower(F.trim(F.regexp_replace("note_title", r"\s+", " ")))
    else:
        note_type = F.col("note_type_concept_id").cast("string")
    note_type = F.when(note_type.isNull() | (note_type == ""), F.lit(UNKNOWN)).otherwise(note_type)
    return (index.withColumn("year", F.date_format("note_date", "yyyy"))
            .withColumn("month", F.date_format("note_date", "yyyy-MM"))
            .withColumn("note_type", note_type))


def top_concepts(tables: SiteTables, study: Study, out: TopConcepts, qualifying: DataFrame,
                 cohort_ids: DataFrame) -> pd.DataFrame:
    """Persons per other concept mentioned (same filters) in the cohort's qualifying notes, the top_n of them."""
    notes = qualifying.select("note_id", "person_id").distinct()
    nlp = with_mention_concept(filter_assertion(tables.note_nlp, study.assertion))
    mentions = (nlp.select("note_id", "mention_concept_id").join(notes, "note_id")
                .filter(F.col("mention_concept_id").isNotNull())
                .join(F.broadcast(cohort_ids).withColumnRenamed("concept_id", "mention_concept_id"),
                      "mention_concept_id", "left_anti"))
    concept = tables.concept.select(F.col("concept_id").alias("mention_concept_id"), "vocabulary_id", "concept_code",
                                    "concept_name")
    if out.vocabularies:
        concept = concept.filter(F.col("vocabulary_id").isin(list(out.vocabularies)))
    rows = (mentions.join(concept, "mention_concept_id").select("person_id", "vocabulary_id", "concept_code", "concept_name")
            .distinct().groupBy("vocabulary_id", "concept_code", "concept_name").agg(F.count("*").alias("n"))
            .orderBy(F.desc("n"), "vocabulary_id", "concept_code").limit(out.top_n).collect())
    return pd.DataFrame([r.asDict() for r in rows], columns=["vocabulary_id", "concept_code", "concept_name", "n"])


def compute_aggregates(tables: SiteTables, study: Study) -> Aggregates:
    """All unsuppressed aggregates a study asks for, from one site's (or a pooled) set of tables."""
    cohort_ids = resolve_concepts(tables, study.cohort).cache()
    qualifying = qualifying_mentions(tables, study, cohort_ids).cache()
    try:
        strata = with_strata(index_events(qualifying), tables.person, study)
        rows = strata.groupBy(*DIMENSIONS).agg(F.count("*").alias("n")).collect()
        index = pd.DataFrame([r.asDict() for r in rows], columns=[*DIMENSIONS, "n"])
        index["n"] = index["n"].astype("int64")
        top = {o.name: top_concepts(tables, study, o, qualifying, cohort_ids)
               for o in study.outputs if isinstance(o, TopConcepts)}
        systems = sorted(r[0] for r in qualifying.select("nlp_system").distinct().collect() if r[0])
    finally:
        qualifying.unpersist()
        cohort_ids.unpersist()
    return Aggregates(index=index, top=top, model_versions=systems, has_person=tables.person is not None)
