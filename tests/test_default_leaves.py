"""Default leaves of header codes (clinlake.resolver.leaves), their Spark table and their use on ranked candidates."""

from __future__ import annotations

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from clinlake import resolve
from clinlake.resolver.leaves import RULE_TRAINING, RULE_UNSPECIFIED, default_leaves

ICD = [  # ICD-10-CM codes and names as the 2025 tabular writes them
    ("K26", "Duodenal ulcer"),
    ("K26.0", "Acute duodenal ulcer with hemorrhage"),
    ("K26.9", "Duodenal ulcer, unspecified as acute or chronic, without hemorrhage or perforation"),
    ("G43", "Migraine"),
    ("G43.0", "Migraine without aura"),
    ("G43.9", "Migraine, unspecified"),
    ("G43.90", "Migraine, unspecified, not intractable"),
    ("G43.91", "Migraine, unspecified, intractable"),
    ("G43.901", "Migraine, unspecified, not intractable, with status migrainosus"),
    ("G43.909", "Migraine, unspecified, not intractable, without status migrainosus"),
    ("C91.1", "Chronic lymphocytic leukemia of B-cell type"),
    ("C91.10", "Chronic lymphocytic leukemia of B-cell type not having achieved remission"),
    ("C91.11", "Chronic lymphocytic leukemia of B-cell type in remission"),
    ("H35.6", "Retinal hemorrhage"),
    ("H35.60", "Retinal hemorrhage, unspecified eye"),
    ("H35.61", "Retinal hemorrhage, right eye"),
    ("S31.4", "Open wound of vagina and vulva"),
    ("S31.40", "Unspecified open wound of vagina and vulva"),
    ("S31.40XA", "Unspecified open wound of vagina and vulva, initial encounter"),
    ("S31.40XS", "Unspecified open wound of vagina and vulva, sequela"),
    ("S31.41", "Laceration without foreign body of vagina and vulva"),
    ("S31.41XA", "Laceration without foreign body of vagina and vulva, initial encounter"),
    ("R51", "Headache"),
    ("R51.0", "Headache with orthostatic component, not elsewhere classified"),
    ("R51.9", "Headache, unspecified"),
    ("F14.1", "Cocaine abuse"),
    ("F14.10", "Cocaine abuse, uncomplicated"),
    ("F14.12", "Cocaine abuse with intoxication"),
    ("I10", "Essential (primary) hypertension"),
    ("S85.1", "Injury of tibial artery"),
    ("S85.10", "Unspecified injury of unspecified tibial artery"),
    ("S85.11", "Laceration of unspecified tibial artery"),
    ("S85.13", "Unspecified injury of anterior tibial artery"),
    ("S85.101", "Unspecified injury of unspecified tibial artery, right leg"),
    ("S85.109", "Unspecified injury of unspecified tibial artery, unspecified leg"),
]


def test_headers_get_the_unspecified_or_default_leaf():
    got = default_leaves(ICD, {})
    assert got["K26"] == ("K26.9", RULE_UNSPECIFIED)
    # down three levels: unspecified, then "not intractable", then "without"
    assert got["G43"] == ("G43.909", RULE_UNSPECIFIED) and got["G43.90"] == ("G43.909", RULE_UNSPECIFIED)
    # the unspecified eye, not the right one; and the 7th character is never reached: S31.40XA is written S31.40X,
    # the only child of S31.40
    assert got["H35.6"] == ("H35.60", RULE_UNSPECIFIED)
    assert got["S31.4"] == ("S31.40X", RULE_UNSPECIFIED) and got["S31.40"] == ("S31.40X", RULE_UNSPECIFIED)
    # "not having achieved remission" is not a default, and nothing says which cocaine abuse: both stay
    assert "C91.1" not in got and "F14.1" not in got
    assert "I10" not in got and "K26.9" not in got          # leaves map nowhere
    # three children add an "unspecified": the one ending in 0, then the unspecified leg
    assert got["S85.1"] == ("S85.109", RULE_UNSPECIFIED)


def test_training_annotations_come_first():
    counts = {"R51": 40.0, "F14.10": 2.0, "F14.12": 1.0, "K26.0": 1.0, "K26.9": 3.0}
    got = default_leaves(ICD, counts)
    assert "R51" not in got                                  # annotated itself: the site codes the header
    assert got["F14.1"] == ("F14.10", RULE_TRAINING)          # the descendant annotated most
    assert got["K26"] == ("K26.9", RULE_TRAINING)
    # a gazetteer code the vocabulary lacks is part of its family (the 7th character dropped)
    assert default_leaves(ICD + [("S31.41X", None)], {"S31.41X": 1.0})["S31.41"] == ("S31.41X", RULE_TRAINING)


def test_leaf_map_table_and_ranked_candidates(spark):
    concept = spark.createDataFrame(
        [(i, "ICD10CM", code, name, None) for i, (code, name) in enumerate(ICD)]
        + [(900, "ICD10CM", "K00-K95", "Diseases of the digestive system", None),
           (901, "ICD10CM", "K27", "Peptic ulcer, site unspecified", "D"),
           (902, "ICD10CM", "K27.9", "Peptic ulcer, site unspecified, unspecified as acute or chronic", "D"),
           (903, "ICD9CM", "532", "Duodenal ulcer", None),
           (904, "ICD9CM", "532.9", "Duodenal ulcer, unspecified", None)],
        "concept_id int, vocabulary_id string, concept_code string, concept_name string, invalid_reason string")
    gaz = spark.createDataFrame([("abuso de cocaína", "DIAGNOSTICO", "ICD10CM", "f14.10", 2)],
                                "mention string, label string, vocabulary_id string, concept_code string, count long")
    table = resolve.leaf_map(concept, gaz, ["ICD10CM"])
    got_map = {r["concept_code"]: (r["leaf_code"], r["rule"]) for r in table.collect()}
    assert got_map == default_leaves(ICD, {"F14.10": 2.0}) and got_map["F14.1"] == ("F14.10", RULE_TRAINING)
    assert set(r["vocabulary_id"] for r in table.collect()) == {"ICD10CM"}   # ICD-9-CM not asked for; no invalid K27

    ranked = spark.createDataFrame([
        ("DIAGNOSTICO", "ulcera duodenal", 1, "ICD10CM", "K26", 0.6, 0),
        ("DIAGNOSTICO", "ulcera duodenal", 2, "ICD10CM", "K26.9", 0.2, 0),       # the leaf again: its rank goes
        ("DIAGNOSTICO", "ulcera duodenal", 3, "ICD10CM", "K26.0", 0.1, 0),
        ("DIAGNOSTICO", "migrana", 1, "ICD10CM", "g43", 0.5, 1),                 # reviewed: stays as accepted
        ("DIAGNOSTICO", "migrana", 2, "ICD10CM", "g43.9", 0.3, 0),               # case of the index ignored
        ("DIAGNOSTICO", "cefalea", 1, "ICD10CM", None, None, None),
    ], "label string, mention_norm string, rank int, vocabulary_id string, concept_code string, p double, review int")
    want = spark.createDataFrame([
        ("DIAGNOSTICO", "ulcera duodenal", 1, "ICD10CM", "K26.9", 0.6, 0),
        ("DIAGNOSTICO", "ulcera duodenal", 2, "ICD10CM", "K26.0", 0.1, 0),
        ("DIAGNOSTICO", "migrana", 1, "ICD10CM", "g43", 0.5, 1),
        ("DIAGNOSTICO", "migrana", 2, "ICD10CM", "G43.909", 0.3, 0),
        ("DIAGNOSTICO", "cefalea", 1, "ICD10CM", None, None, None),
    ], ranked.schema)
    got = resolve.with_default_leaves(ranked, table).select(*ranked.columns)
    assertDataFrameEqual(got.withColumn("rank", F.col("rank").cast("int")), want)
