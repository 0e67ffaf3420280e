"""ICD-10-CM codes from the mention's number: weeks of gestation (Z3A) and adult BMI (Z68)."""

from __future__ import annotations

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from clinlake.resolver.values import value_code


def test_weeks_and_bmi_come_from_the_mention(spark):
    rows = [  # vocabulary_id, concept_code (the ranker's), mention_norm, expected
        ("ICD10CM", "Z3A.38", "gestante 27 semanas", "Z3A.27"),
        ("ICD10CM", "Z3A.20", "19 6 semanas gestacion", "Z3A.19"),       # "19,6" normalised: the whole weeks
        ("ICD10CM", "z3a.20", "semana 5 gestacion", "Z3A.01"),          # under 8 weeks; the index's case ignored
        ("ICD10CM", "Z3A.20", "43 semanas gestacion", "Z3A.49"),
        ("ICD10CM", "Z3A.20", "gestacion avanzada", "Z3A.20"),          # no number: the ranker's code
        ("ICD10CM", "Z3A.20", "120 semanas", "Z3A.20"),                 # implausible: unchanged
        ("ICD10CM", "Z68.26", "imc 13", "Z68.1"),
        ("ICD10CM", "Z68.36", "indice masa corporal 22", "Z68.22"),
        ("ICD10CM", "Z68.26", "imc 24 5", "Z68.24"),
        ("ICD10CM", "Z68.36", "imc 52", "Z68.43"),
        ("ICD10CM", "Z68.36", "imc 75", "Z68.45"),
        ("ICD10CM", "Z68.52", "imc percentil 90", "Z68.52"),            # paediatric: left alone
        ("ICD10CM", "Z68.53", "imc 18 nino", "Z68.53"),
        ("ICD10CM", "Z68.30", "imc percentil 85", "Z68.30"),
        ("ICD10CM", "Z3A", "gestante 30 semanas", "Z3A.30"),             # the category itself
        ("ICD10CM", "Z68.26", "imc 123456789012345", "Z68.26"),         # no overflowing cast
        ("ICD10CM", "R50.9", "fiebre 39", "R50.9"),                     # other codes keep theirs
        ("ICD10PCS", "Z3A.20", "27 semanas", "Z3A.20"),                 # another vocabulary
        ("ICD10CM", None, "27 semanas", None),
        (None, None, None, None),
    ]
    df = spark.createDataFrame(rows, "vocabulary_id string, concept_code string, mention_norm string, want string")
    got = df.select("vocabulary_id", value_code(F.col("concept_code"), F.col("vocabulary_id"),
                                                F.col("mention_norm")).alias("concept_code"), "mention_norm")
    want = df.select("vocabulary_id", F.col("want").alias("concept_code"), "mention_norm")
    assertDataFrameEqual(got, want)
