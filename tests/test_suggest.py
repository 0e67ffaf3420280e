"""The similar-note code suggester: the plain functions, the Spark wrapper, the training job and the registry."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from clinlake import suggest

TRAIN = [
    "Paciente con insuficiencia renal crónica y anemia. Se realiza hemodiálisis.",
    "Carcinoma de mama izquierda; se practica mastectomía radical y biopsia de ganglio centinela.",
    "Insuficiencia renal aguda tras cirugía; anemia ferropénica. Hemodiálisis urgente.",
    "Fractura de cadera derecha tras caída; se realiza artroplastia.",
]
CODES = {"ICD10CM": [["N18.9", "D64.9"], ["C50.912"], ["N17.9", "D50.9"], ["S72.001A"]],
         "ICD10PCS": [["5A1D70Z"], ["0HTU0ZZ"], ["5A1D70Z"], ["0SR90JZ"]]}
PARAMS = {"neighbours": 2, "power": 1.0, "top_n": 3, "ngram_max": 2, "min_df": 1}


@pytest.fixture(scope="module")
def index() -> suggest.SuggesterIndex:
    """A four-note index: two renal notes, one breast cancer, one hip fracture."""
    return suggest.fit(TRAIN, CODES, PARAMS)


def test_the_nearest_notes_codes_come_first_with_their_share(index):
    """A renal note is nearest the two renal notes: their shared procedure scores 1.0, each diagnosis its share."""
    [out] = suggest.suggest(index, ["Insuficiencia renal con anemia; inicia hemodiálisis."])
    pcs = [(c, s, r) for v, c, s, r in out if v == "ICD10PCS"]
    assert pcs == [("5A1D70Z", 1.0, 1)]                         # both neighbours carry it
    cm = [(c, r) for v, c, s, r in out if v == "ICD10CM"]
    assert len(cm) == 3 and {c for c, _ in cm} <= {"N18.9", "D64.9", "N17.9", "D50.9"}   # top_n 3 of the 4
    assert [r for _, r in cm] == [1, 2, 3]
    scores = [s for v, c, s, r in out if v == "ICD10CM"]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] < 1
    assert "C50.912" not in {c for _, c, _, _ in out}             # not a neighbour's code


def test_null_empty_and_unknown_texts_get_no_suggestions(index):
    """No text, or only words the index never saw, gives an empty list (not an error, not a guess)."""
    assert suggest.suggest(index, [None, "", "   ", "xyzzy qwerty"]) == [[], [], [], []]
    assert suggest.suggest(index, []) == []


def test_ties_are_broken_by_code_so_every_run_agrees():
    """Two neighbours at the same similarity: equal scores are ranked by code."""
    idx = suggest.fit(["dolor torácico", "dolor torácico"], {"ICD10CM": [["R07.9"], ["R07.89"]]},
                      {**PARAMS, "neighbours": 2})
    [out] = suggest.suggest(idx, ["dolor torácico"])
    assert [(c, s, r) for _, c, s, r in out] == [("R07.89", 0.5, 1), ("R07.9", 0.5, 2)]


def test_save_and_load_give_the_same_suggestions(index, tmp_path: Path):
    """The stored index (npz + JSON) serves exactly what the fitted one does."""
    texts = ["Carcinoma de mama", "fractura de cadera tras caída", None]
    loaded = suggest.load(suggest.save(index, tmp_path / "idx"))
    assert suggest.suggest(loaded, texts) == suggest.suggest(index, texts)
    assert loaded.params == index.params


def test_bad_index_and_training_input_are_named(tmp_path: Path):
    """A folder without the index files, or code lists that do not match the notes, fail with a clear message."""
    with pytest.raises(ValueError, match="has no matrix.npz"):
        suggest.load(tmp_path)
    with pytest.raises(ValueError, match="1 code lists for 2 training notes"):
        suggest.fit(["dolor agudo", "fiebre alta"], {"ICD10CM": [["R52"]]}, PARAMS)
    with pytest.raises(ValueError, match="no training notes"):
        suggest.fit([], {"ICD10CM": []}, PARAMS)


def test_spark_rows_equal_the_plain_function(spark, index):
    """with_suggestions (the pandas_udf) gives one row per suggestion, as suggest() does; a null note gives none."""
    notes = [(1, "Insuficiencia renal y anemia, hemodiálisis."), (2, "Fractura de cadera"), (3, None)]
    out = suggest.with_suggestions(spark.createDataFrame(notes, "note_id long, note_text string"), index, "sug@1")
    expected = [(nid, v, c, r, s, "sug@1") for (nid, text) in notes
                for v, c, s, r in suggest.suggest(index, [text])[0]]
    assert expected, "the fixture should suggest something"
    assertDataFrameEqual(out, spark.createDataFrame(
        expected, "note_id long, vocabulary_id string, concept_code string, rank int, score double, "
                  "nlp_system string"))


def coded_split(folder: Path) -> Path:
    """The four training notes as a CodiEsp-layout split (text_files/ + trainD.tsv + trainP.tsv, codes lower-case)."""
    (folder / "text_files").mkdir(parents=True)
    d_rows, p_rows = [], []
    for i, text in enumerate(TRAIN):
        doc = f"doc-{i}"
        (folder / "text_files" / f"{doc}.txt").write_text(text, encoding="utf-8")
        d_rows += [f"{doc}\t{c.lower()}" for c in CODES["ICD10CM"][i]]
        p_rows += [f"{doc}\t{c.lower()}" for c in CODES["ICD10PCS"][i]]
    (folder / "trainD.tsv").write_text("\n".join(d_rows) + "\n", encoding="utf-8")
    (folder / "trainP.tsv").write_text("\n".join(p_rows) + "\n", encoding="utf-8")
    return folder


def test_train_register_and_load_by_alias(cfg, tmp_path: Path):
    """train_suggester registers v1 as champion with dev metrics; load_registered serves it by alias, with the
    codes upper-cased as concept holds them; disabled, nothing is served."""
    from jobs import train_suggester

    split = coded_split(tmp_path / "train")
    cfg.suggest.train, cfg.suggest.dev = str(split), str(split)     # dev = train only to exercise the metric path
    cfg.suggest.min_df = 1
    out = train_suggester.run(None, cfg, argparse.Namespace())
    assert (out["model"], out["version"], out["champion"], out["train_documents"]) == ("code-suggester-es", "1", True, 4)
    assert 0 < out["dev_map_d_suggestions_alone"] <= 1 and 0 < out["dev_map_p_suggestions_alone"] <= 1
    index, ref = suggest.load_registered(cfg)
    assert ref == "code-suggester-es@1"
    [row] = suggest.suggest(index, ["Carcinoma de mama; mastectomía"])
    assert ("ICD10CM", "C50.912") in {(v, c) for v, c, _, _ in row}
    assert index.params["neighbours"] == cfg.suggest.neighbours
    # the registered model is also a plain MLflow pyfunc for ML engineers: same suggestions, by alias
    import mlflow.pyfunc
    import pandas as pd

    texts = ["Carcinoma de mama; mastectomía", None]
    model = mlflow.pyfunc.load_model("models:/code-suggester-es@champion")
    assert model.predict(pd.DataFrame({"note_text": texts})) == [
        [{"vocabulary_id": v, "concept_code": c, "score": s, "rank": r} for v, c, s, r in row]
        for row in suggest.suggest(index, texts)]
    cfg.suggest.enabled = False
    assert suggest.load_registered(cfg) is None


def test_training_refuses_a_missing_split_or_an_unknown_code_list(cfg, tmp_path: Path):
    """A wrong path or a code list CodiEsp does not have is a one-line UserError, before any run is logged."""
    from clinlake.errors import UserError
    from jobs import train_suggester

    cfg.suggest.train = str(tmp_path / "nowhere")
    with pytest.raises(UserError, match="not found"):
        train_suggester.run(None, cfg, argparse.Namespace())
    cfg.suggest.vocabularies = {"X": "ICD10CM"}
    with pytest.raises(UserError, match="unknown code lists"):
        train_suggester.run(None, cfg, argparse.Namespace())
