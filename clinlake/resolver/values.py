"""ICD-10-CM codes that carry a number the mention states: weeks of gestation (Z3A) and adult body mass index (Z68).

The ranker can tell that "gestante de 27 semanas" is a Z3A code, but not which one: the names it compares differ in
one number ("27 weeks gestation of pregnancy" against "38 weeks ..."), and character 3-grams barely see it. Once the
top code is in one of these categories, the mention's first number picks the code, by the ranges of the 2025
tabular's titles:

- Z3A: Z3A.01 "less than 8 weeks", Z3A.08 ... Z3A.42 "<n> weeks gestation of pregnancy", Z3A.49 "greater than 42
  weeks";
- Z68 (adult): Z68.1 "19.9 or less", Z68.20 ... Z68.39 "<n>.0-<n>.9", Z68.41 "40.0-44.9", Z68.42 "45.0-49.9",
  Z68.43 "50.0-59.9", Z68.44 "60.0-69.9", Z68.45 "70 or greater". A paediatric top code (Z68.5x, percentiles) or
  a mention that speaks of a percentile is left alone.

A number outside the plausible range (weeks 1-45, BMI 10-100) leaves the ranker's code. Built-in Spark functions only.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

VOCABULARY = "ICD10CM"


def value_code(code: Column, vocabulary: Column, mention_norm: Column) -> Column:
    """The code the mention's number gives when `code` is a Z3A / Z68 code of ICD-10-CM, else `code`."""
    digits = F.regexp_extract(mention_norm, r"(\d+)", 1)
    # at most 3 digits: never an overflowing cast (Spark 4 runs ANSI mode)
    n = F.when((F.length(digits) > 0) & (F.length(digits) <= 3), digits.cast("int"))
    upper = F.upper(code)
    icd10cm = vocabulary == F.lit(VOCABULARY)
    weeks = F.when(n < 8, F.lit("Z3A.01")).when(n <= 42, F.concat(F.lit("Z3A."), F.lpad(n.cast("string"), 2, "0"))) \
        .otherwise(F.lit("Z3A.49"))
    bmi = F.when(n < 20, F.lit("Z68.1")).when(n < 40, F.concat(F.lit("Z68."), n.cast("string"))) \
        .when(n < 45, F.lit("Z68.41")).when(n < 50, F.lit("Z68.42")).when(n < 60, F.lit("Z68.43")) \
        .when(n < 70, F.lit("Z68.44")).otherwise(F.lit("Z68.45"))
    adult_bmi = upper.startswith("Z68") & ~upper.startswith("Z68.5") & ~mention_norm.contains("percentil")
    return F.when(icd10cm & upper.startswith("Z3A") & n.between(1, 45), weeks) \
        .when(icd10cm & adult_bmi & n.between(10, 100), bmi) \
        .otherwise(code)
