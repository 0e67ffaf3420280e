"""ICD-O-3 codes composed from their axes (clinlake.resolver.icdo): cues, the Column twin, unseen mentions only."""

from __future__ import annotations

import pickle

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from clinlake import resolve
from clinlake.resolver import icdo
from clinlake.vocab.normalize import normalize

CASES = [  # raw mention, ranked code, composed code
    ("metástasis de adenocarcinoma", "8140/3", "8140/6"),
    ("Carcinoma ductal in situ", "8500/3", "8500/2"),
    ("carcinoma ductal infiltrante con componente in situ", "8500/3", "8500/3"),   # invasion vetoes in situ
    ("adenocarcinoma moderadamente diferenciado", "8140/3", "8140/32"),
    ("adenocarcinoma de colon grado II", "8140/31", "8140/32"),                    # a cued grade replaces the ranked
    ("carcinoma urotelial pTa GII", "8120/3", "8120/32"),
    ("carcinoma renal de células claras, grado nuclear de Fuhrman 3", "8310/3", "8310/33"),
    ("carcinoma de colon grado IV", "8010/3", "8010/34"),                          # IV is not I
    ("linfoma de alto grado", "9591/3", "9591/34"),
    ("neoplasia de alto grado pobremente diferenciada", "8000/3", "8000/3"),       # two grades cued: left as ranked
    ("carcinoma escamoso de pulmón T4N2M1b", "8070/3", "8070/6"),
    ("carcinoma urotelial infiltrante de alto grado", "8120/3/H", "8120/34/H"),   # CANTEMIST's /H flag kept
    ("carcinomatosis peritoneal", "8010/6", "8010/9"),
    ("adenocarcinoma", "8140/3", "8140/3"),                                       # nothing cued
    ("metástasis", "J18.9", "J18.9"),                                             # not an ICD-O-3 code
    ("metástasis", None, None),
]


@pytest.mark.parametrize("mention, code, expected", CASES)
def test_compose_takes_behaviour_and_grade_from_the_mention(mention, code, expected):
    assert icdo.compose(code, normalize(mention)) == expected


def test_the_column_twin_agrees_with_the_python_function(spark):
    rows = [(m, c) for m, c, _ in CASES] + [(None, "8140/3")]
    df = spark.createDataFrame([(normalize(m) if m else None, c) for m, c in rows], "mention_norm string, code string")
    got = df.select("mention_norm", "code", icdo.compose_col(F.col("code"), F.col("mention_norm")).alias("out"))
    # a null mention states nothing, as an empty one does: the code passes unchanged
    want = [(n, c, icdo.compose(c, n or "")) for n, c in df.collect()]
    assertDataFrameEqual(got, spark.createDataFrame(want, got.schema))


def _terms(spark):
    gaz = spark.createDataFrame([
        ("carcinoma lobulillar", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8520/3", 7, "cantemist"),
        ("carcinoma indiferenciado", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8020/3", 4, "cantemist"),
        ("metástasis", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8000/6", 9, "cantemist"),
        ("carcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/3", 9, "cantemist"),
    ], "mention string, label string, vocabulary_id string, concept_code string, count long, source string")
    concept = spark.createDataFrame([(1, "ICDO3", "8520/3", "Carcinoma lobulillar, SAI", "ICDO Histology")],
                                    "concept_id int, vocabulary_id string, concept_code string, concept_name string, "
                                    "concept_class_id string").withColumn("invalid_reason", F.lit(None).cast("string"))
    syn = spark.createDataFrame([], "concept_id int, concept_synonym_name string")
    return resolve.build_index(gaz, concept, syn, {"MORFOLOGIA_NEOPLASIA": "ICDO3", "DIAGNOSTICO": "ICD10CM"},
                               max_df=1000)["terms"]


BEST = [  # label, mention (raw; normalised below), vocabulary, ranked code
    ("MORFOLOGIA_NEOPLASIA", "carcinoma indiferenciado", "ICDO3", "8020/3"),          # known: kept
    ("MORFOLOGIA_NEOPLASIA", "metástasis orbitaria por carcinoma lobulillar", "ICDO3", "8000/6"),
    ("MORFOLOGIA_NEOPLASIA", "carcinoma sólido pobremente diferenciado", "ICDO3", "8230/3"),
    ("MORFOLOGIA_NEOPLASIA", "metástasis hepáticas", "ICDO3", "8000/6"),              # NOS, nothing specific inside
    ("DIAGNOSTICO", "metástasis hepáticas", "ICD10CM", "C78.7"),                      # another vocabulary
    ("MORFOLOGIA_NEOPLASIA", "tumoración rara", "ICDO3", None),                       # no code
]


@pytest.mark.parametrize("specific, expected", [
    (True, ["8020/3", "8520/6", "8230/33", "8000/6", "C78.7", None]),
    (False, ["8020/3", "8000/6", "8230/33", "8000/6", "C78.7", None]),
])
def test_unseen_tumour_mentions_get_a_specific_histology_and_their_cued_axes(spark, specific, expected):
    best = spark.createDataFrame([(lab, normalize(m), v, c, 0.5) for lab, m, v, c in BEST],
                                 "label string, mention_norm string, vocabulary_id string, concept_code string, "
                                 "score double")
    got = icdo.with_composed_codes(best, _terms(spark), specific)
    want = spark.createDataFrame([(lab, normalize(m), v, e, 0.5) for (lab, m, v, _), e in zip(BEST, expected)],
                                 best.schema)
    assertDataFrameEqual(got.select(*best.columns), want)


def test_a_graded_code_missing_from_the_vocabulary_takes_its_histology_behaviour_concept(spark):
    concept = spark.createDataFrame([(7, "ICDO3", "8140/6", "Adenocarcinoma metastásico", "ICDO Histology")],
                                    "concept_id int, vocabulary_id string, concept_code string, concept_name string, "
                                    "concept_class_id string").withColumn("invalid_reason", F.lit(None).cast("string"))
    rel = spark.createDataFrame([], "concept_id_1 int, concept_id_2 int, relationship_id string")
    index = spark.createDataFrame([
        ("MORFOLOGIA_NEOPLASIA", normalize("metástasis de adenocarcinoma grado II"), "ICDO3", "8140/62"),
        ("MORFOLOGIA_NEOPLASIA", normalize("metástasis de adenocarcinoma"), "ICDO3", "8140/6"),
        ("MORFOLOGIA_NEOPLASIA", normalize("adenocarcinoma mucinoso"), "ICDO3", "8480/3"),
    ], "label string, mention_norm string, vocabulary_id string, concept_code string")
    chunks = spark.createDataFrame([(1, "MORFOLOGIA_NEOPLASIA", "metástasis de adenocarcinoma grado II"),
                                    (1, "MORFOLOGIA_NEOPLASIA", "metástasis de adenocarcinoma"),
                                    (2, "MORFOLOGIA_NEOPLASIA", "adenocarcinoma mucinoso")],
                                   "note_id long, label string, lexical_variant string")
    out = resolve.with_codes(chunks, index, concept, rel, {"MORFOLOGIA_NEOPLASIA": "ICDO3"})
    got = {r["lexical_variant"]: (r["concept_code"], r["note_nlp_source_concept_id"]) for r in out.collect()}
    assert got == {"metástasis de adenocarcinoma grado II": ("8140/62", 7),   # the code stays, the concept is 8140/6
                   "metástasis de adenocarcinoma": ("8140/6", 7),
                   "adenocarcinoma mucinoso": ("8480/3", 0)}                   # no concept for 8480/3 at all: 0


def test_a_classifier_codes_the_unseen_tumour_mentions_before_their_cues(spark):
    from udfs import icdo_classify

    train = [("carcinoma lobulillar", "8520/3"), ("carcinoma sólido", "8230/3"), ("metástasis", "8000/6"),
             ("carcinoma", "8010/3"), ("carcinoma indiferenciado", "8020/3")]
    blob = pickle.dumps(icdo_classify.fit_model([normalize(m) for m, _ in train], [c for _, c in train],
                                                [1.0] * len(train), 3.0))
    classify = icdo_classify.classify_udf(spark.sparkContext.broadcast(blob))
    # the nearest neighbour gave "carcinoma sólido" (8230, not NOS: nothing would replace it); "lobulillar" decides
    rows = BEST + [("MORFOLOGIA_NEOPLASIA", "carcinoma lobulillar infiltrante", "ICDO3", "8230/3")]
    best = spark.createDataFrame([(lab, normalize(m), v, c, 0.5) for lab, m, v, c in rows],
                                 "label string, mention_norm string, vocabulary_id string, concept_code string, "
                                 "score double")
    got = icdo.with_composed_codes(best, _terms(spark), True, classify)
    model = icdo_classify.model_for(blob)
    # unseen ICD-O-3 mentions with a code: the classifier's code, then the mention's own behaviour and grade; known
    # mentions, other vocabularies and mentions without a code pass unchanged
    unseen = {normalize(m) for lab, m, v, c in rows if v == "ICDO3" and c and m != "carcinoma indiferenciado"}
    expected = [icdo.compose(icdo_classify.predict_codes(model, [normalize(m)])[0], normalize(m))
                if normalize(m) in unseen and v == "ICDO3" else c for lab, m, v, c in rows]
    assert expected[2] == "8230/33"   # "carcinoma sólido pobremente diferenciado": the classifier's 8230, grade cued
    assert expected[-1] == "8520/3"
    want = spark.createDataFrame([(lab, normalize(m), v, e, 0.5) for (lab, m, v, _), e in zip(rows, expected)],
                                 best.schema)
    assertDataFrameEqual(got.select(*best.columns), want)


def test_the_classifier_s_calibrated_probability_becomes_the_score_of_the_codes_it_gives(spark):
    from udfs import icdo_classify

    # enough mentions for held-out folds, so the model carries a calibrator; "tumor" is coded three ways
    sites = ["de pulmón", "de mama", "de colon", "de cérvix", "de piel", "de recto"]
    words = {"8520": "carcinoma lobulillar", "8230": "carcinoma sólido", "8140": "adenocarcinoma"}
    train = [(f"{w} {s}", f"{h}/3") for h, w in words.items() for s in sites] \
        + [(f"metástasis de {w} {s}", f"{h}/6") for h, w in words.items() for s in sites] \
        + [(f"tumor {s}", ("8000/3", "8001/3", "8010/3")[i % 3]) for i, s in enumerate(sites)]
    blob = pickle.dumps(icdo_classify.fit_model([normalize(m) for m, _ in train], [c for _, c in train],
                                                [1.0] * len(train), 3.0))
    model = icdo_classify.model_for(blob)
    assert model["calibrator"] is not None
    rows = BEST + [("MORFOLOGIA_NEOPLASIA", "carcinoma lobulillar infiltrante", "ICDO3", "8230/3")]
    best = spark.createDataFrame([(lab, normalize(m), v, c, 0.5) for lab, m, v, c in rows],
                                 "label string, mention_norm string, vocabulary_id string, concept_code string, "
                                 "score double")
    got = icdo.with_composed_codes(best, _terms(spark), True,
                                   icdo_classify.classify_udf(spark.sparkContext.broadcast(blob)))
    # the unseen ICD-O-3 mentions with a code: the classifier's code (then the cues) and its probability; the known
    # mention, the other vocabulary and the mention without a code keep their code and the ranker's score
    unseen = {normalize(m) for _, m, v, c in rows if v == "ICDO3" and c and m != "carcinoma indiferenciado"}
    expected = []
    for lab, m, v, c in rows:
        if v == "ICDO3" and normalize(m) in unseen:
            code, p = icdo_classify.predict_scored(model, [normalize(m)])[0]
            expected.append((lab, normalize(m), v, icdo.compose(code, normalize(m)), p))
        else:
            expected.append((lab, normalize(m), v, c, 0.5))
    assert len({e[4] for e in expected}) > 2 and all(0 < e[4] < 1 for e in expected)
    assertDataFrameEqual(got.select(*best.columns), spark.createDataFrame(expected, best.schema))
