"""The ICD-O-3 code classifier for unseen tumour mentions (udfs/icdo_classify.py): plain functions, no Spark."""

from __future__ import annotations

import pickle

import pytest

from clinlake.vocab.normalize import normalize
from udfs import icdo_classify as ic

TRAIN = [  # mention, code, annotations
    ("carcinoma escamoso", "8070/3", 6), ("carcinoma epidermoide", "8070/3", 4),
    ("carcinoma escamoso de cérvix", "8070/3", 2), ("adenocarcinoma de pulmón", "8140/3", 5),
    ("adenocarcinoma", "8140/3", 9), ("adenocarcinoma de colon", "8140/3", 3),
    ("carcinoma de pulmón", "8010/3", 2), ("metástasis", "8000/6", 8),
    ("metástasis óseas", "8000/6", 4), ("adenocarcinoma metastásico", "8140/6", 2),
]


SITES = ["de pulmón", "de mama", "de colon", "de cérvix", "de piel", "de recto", "de vejiga", "de ovario"]
WORDS = {"8070": "carcinoma escamoso", "8140": "adenocarcinoma", "8500": "carcinoma ductal",
         "8520": "carcinoma lobulillar", "8720": "melanoma", "8010": "carcinoma"}
# histology word x site, primary (/3) or metastatic (/6); "tumor" is coded either way: the held-out folds get it wrong
CALIBRATION = [(f"{w} {s}", f"{h}/3", 2) for h, w in WORDS.items() for s in SITES] \
    + [(f"metástasis de {w} {s}", f"{h}/6", 1) for h, w in WORDS.items() for s in SITES] \
    + [(f"tumor {s} {k}", ("8000/3", "8001/3", "8010/3")[(i + j) % 3], 1) for i, s in enumerate(SITES)
       for j, k in enumerate("abc")]


def _model(rows=TRAIN):
    fitted = ic.fit_model([normalize(m) for m, _, _ in rows], [c for _, c, _ in rows], [n for _, _, n in rows], 3.0)
    return ic.model_for(pickle.dumps(fitted))


def test_split_code_keeps_grade_and_flag_in_the_rest():
    assert ic.split_code("8140/32") == ("8140", "32")
    assert ic.split_code("8000/6/H") == ("8000", "6/H")
    assert ic.split_code("8000") == ("8000", "")


def test_the_deciding_word_names_the_histology_of_an_unseen_mention():
    # "carcinoma escamoso de pulmón" shares most of its grams with "carcinoma de pulmón" (8010) and "adenocarcinoma
    # de pulmón" (8140); "escamoso" is what decides
    got = ic.predict_codes(_model(), [normalize("carcinoma escamoso de pulmón"), normalize("metástasis hepáticas"),
                                      None, ""])
    assert got == ["8070/3", "8000/6", None, None]


def test_one_behaviour_for_every_example_is_kept_as_a_constant():
    rows = [r for r in TRAIN if r[1].endswith("/3")]
    model = _model(rows)
    assert model["rest"] == "3"
    assert ic.predict_codes(model, [normalize("adenocarcinoma de recto")]) == ["8140/3"]


def test_scores_are_calibrated_on_held_out_folds_and_rank_a_clear_mention_above_a_vague_one():
    model = _model(CALIBRATION)
    # held out, every histology-word mention is coded right and no "tumor" one: 96 of the 120 distinct mentions
    assert model["calibrator"] is not None and model["held_out_accuracy"] == pytest.approx(96 / 120)
    got = ic.predict_scored(model, [normalize("adenocarcinoma de páncreas"), normalize("tumor de páncreas"), None])
    (clear, p_clear), (vague, p_vague), none = got
    assert clear == "8140/3" and vague is not None and none == (None, None)
    assert 0 < p_vague < p_clear < 1 and p_clear > 0.5
    assert ic.predict_codes(model, [normalize("adenocarcinoma de páncreas")]) == [clear]
    # too few mentions for held-out folds (10): codes without a probability, and the score stays the ranker's
    assert _model()["calibrator"] is None and _model()["held_out_accuracy"] is None
    assert ic.predict_scored(_model(), [normalize("adenocarcinoma de recto")]) == [("8140/3", None)]


def test_the_model_is_read_once_per_worker_and_names_its_features():
    blob = pickle.dumps(ic.fit_model(["carcinoma escamoso", "adenocarcinoma"], ["8070/3", "8140/3"], [1, 1], 1.0))
    assert ic.model_for(blob) is ic.model_for(bytes(blob))
    assert ic.model_for(blob)["features"] == ic.FEATURES_VERSION


def test_the_fit_depends_on_the_examples_not_their_order():
    import random

    import numpy as np

    rows = list(CALIBRATION)
    random.Random(7).shuffle(rows)
    first, second = _model(CALIBRATION), _model(rows)   # the gazetteer's rows reach the fit in Spark's order
    for part in ("hist", "rest", "calibrator"):
        assert np.array_equal(first[part].coef_, second[part].coef_), part
    assert first["held_out_accuracy"] == second["held_out_accuracy"]
