"""jobs/train_ner_crf: a NER recogniser's CRF voter trained on its own splits, scored on dev, registered."""

from __future__ import annotations

import argparse

import pytest
from omegaconf import OmegaConf

from clinlake.crf import crf_name
from clinlake.errors import UserError
from jobs import train_ner_crf

MORPH = ["carcinoma ductal infiltrante", "adenocarcinoma", "linfoma difuso de células grandes", "melanoma",
         "carcinoma epidermoide", "sarcoma de Ewing"]
ORGANS = ["mama", "colon", "pulmón", "piel", "cérvix"]


def _brat(folder, n: int, offset: int) -> str:
    """n notes each naming one tumour morphology (MORFOLOGIA_NEOPLASIA) in CANTEMIST's brat layout."""
    folder.mkdir(parents=True)
    for i in range(n):
        k = i + offset
        morph = MORPH[k % len(MORPH)]
        organ = ORGANS[k % len(ORGANS)]
        text = f"Mujer de {40 + k % 30} años.\nDiagnóstico: {morph} de {organ}. Sin otros hallazgos.\n"
        s = text.index(morph)
        (folder / f"cc{k:03d}.txt").write_text(text, encoding="utf-8")
        (folder / f"cc{k:03d}.ann").write_text(f"T1\tMORFOLOGIA_NEOPLASIA {s} {s + len(morph)}\t{morph}\n",
                                               encoding="utf-8")
    return str(folder)


def test_crf_name_puts_crf_before_the_language():
    assert crf_name("ner-morphology-es") == "ner-morphology-crf-es"
    assert crf_name("my-tagger") == "my-tagger-crf"


def test_a_nested_layer_recogniser_has_no_crf_voter(cfg):
    with pytest.raises(UserError, match="diagnosis_inner is a nested-layer recogniser"):
        train_ner_crf.run(None, cfg, argparse.Namespace(model="diagnosis_inner"))
    with pytest.raises(UserError, match="unknown NER model 'nope'"):
        train_ner_crf.run(None, cfg, argparse.Namespace(model="nope"))


def test_train_ner_crf_registers_the_recognisers_crf_and_scores_it_on_dev(spark, cfg, tmp_path):
    from mlflow import MlflowClient

    OmegaConf.update(cfg, "models.ner.models.morphology.train", _brat(tmp_path / "train", 24, 0))
    OmegaConf.update(cfg, "models.ner.models.morphology.extra_train", [_brat(tmp_path / "dev2", 6, 24)])
    OmegaConf.update(cfg, "models.ner.models.morphology.dev", _brat(tmp_path / "dev1", 8, 30))
    OmegaConf.update(cfg, "models.ner_crf.max_iterations", 40)
    out = train_ner_crf.run(spark, cfg, argparse.Namespace(model="morphology"))
    assert (out["model"], out["version"], out["champion"]) == ("ner-morphology-crf-es", "1", True)
    run = MlflowClient().get_run(out["run_id"])
    assert run.data.params["recogniser"] == "morphology" and run.data.params["train_documents"] == "30"
    assert run.data.params["extra_train"].endswith("dev2")
    # the dev notes are unseen, yet their morphologies are the training ones in the same frame: the CRF finds them
    assert run.data.metrics["dev_ner_f1"] > 0.5 and out["dev"]["ner_f1"] == pytest.approx(
        run.data.metrics["dev_ner_f1"], abs=1e-4)
    again = train_ner_crf.run(spark, cfg, argparse.Namespace(model="morphology"))
    assert (again["version"], again["champion"]) == ("2", False)     # later versions wait for the gate
    assert str(MlflowClient().get_model_version_by_alias("ner-morphology-crf-es", "champion").version) == "1"


def test_a_crf_voter_is_promoted_inside_its_recognisers_vote(cfg):
    from jobs.promote_model import served_with

    spec = cfg.promotion.models["ner-morphology-crf-es"]
    cfg.extract.recognisers = [{"name": "ner-gazetteer-es"},
                               {"name": "ner-morphology-es", "alias": "champion",
                                "vote": {"members": ["seed13"], "crf": "champion"}}]
    served, model_alias = served_with(cfg, spec, "challenger")
    assert model_alias is None            # every other model as configured
    assert served.extract.recognisers[1].vote.crf == "challenger"
    assert served.extract.recognisers[0] == cfg.extract.recognisers[0]
    assert cfg.extract.recognisers[1].vote.crf == "champion"          # the caller's configuration is untouched
    assert served_with(cfg, cfg.promotion.models["ner-morphology-es"], "challenger") == (cfg, "challenger")
    cfg.extract.recognisers = [{"name": "ner-morphology-es", "alias": "champion"}]
    with pytest.raises(UserError, match="needs ner-morphology-es served with a vote"):
        served_with(cfg, spec, "challenger")
