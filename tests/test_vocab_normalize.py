"""Matching normalisation: the Python and the Spark Column versions agree and behave as documented."""

from __future__ import annotations

import pytest

from clinlake.vocab.normalize import ABBREVIATIONS, STOP_WORDS, normalize, normalize_col

CASES = [
    "Hipertensión arterial",
    "HTA",
    "Paciente con HTA y DM2 desde 2010.",
    "  Insuficiencia   cardíaca,  congestiva ",
    "EPOC reagudizada",
    "TAC de tórax",
    "RMN cerebral: sin hallazgos",
    "Niño con fiebre (38,5 ºC)",
    "Carcinoma de células escamosas, SAI - G1",
    "8140/3",
    "Ménière",
    "sin evidencia de enfermedad",
    "SE",
    "cm",
    "",
    "—",
    "dolor en el pecho; náuseas/vómitos",
    "lesión HTAxx (no es abreviatura)",
    "Über ÇA",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hipertensión  Arterial", "hipertension arterial"),
        ("HTA", "hipertension arterial"),
        ("Dolor de la cabeza", "dolor cabeza"),  # stop words go
        ("sin fiebre", "sin fiebre"),  # negation words stay
        ("TAC toraco-abdominal", "tomografia axial computarizada toraco abdominal"),
        ("HTAxx", "htaxx"),  # only whole tokens are expanded
        ("Niño", "nino"),
        (None, ""),
    ],
)
def test_normalize_cases(text, expected):
    assert normalize(text) == expected


def test_expansions_are_fixed_points():
    # an expansion that normalised differently would make normalize() depend on how often it is applied
    for long in ABBREVIATIONS.values():
        assert normalize(long) == long
        assert not set(long.split()) & STOP_WORDS


def test_spark_column_matches_python(spark):
    df = spark.createDataFrame([(i, t) for i, t in enumerate(CASES)], "i int, text string")
    got = {r.i: r.n for r in df.select("i", normalize_col("text").alias("n")).collect()}
    assert [got[i] for i in range(len(CASES))] == [normalize(t) for t in CASES]
