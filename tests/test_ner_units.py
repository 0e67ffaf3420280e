"""Pure-Python parts of clinlake.ner: tagging, overlap policy, corpus views, embeddings corpus, log parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from clinlake.corpora.types import Corpus, Mention
from clinlake.errors import UserError
from clinlake.ner import embeddings as emb
from clinlake.ner.data import LabelledSplit, labelled_split, mention_spans, merge_splits
from clinlake.ner.lifecycle import _splits, nested_layer
from clinlake.ner.settings import deid_settings, model_settings, with_model_defaults
from clinlake.ner.tokens import aligned, resolve_overlaps, tag_set, tags_for_tokens
from clinlake.ner.training import GRAPH_DIR, chunk_mentions, dev_scores, graph_folder, label_rows, parse_epoch_log


def test_bio_tags_mark_first_token_b_and_rest_i():
    tokens = [(0, 4), (5, 10), (11, 15), (16, 22)]
    tags = tags_for_tokens(tokens, [("NOMBRE", 5, 15)], "BIO")
    assert tags == ["O", "B-NOMBRE", "I-NOMBRE", "O"]


def test_io_tags_have_no_b_prefix_and_adjacent_same_type_spans_merge():
    tokens = [(0, 4), (5, 10)]
    assert tags_for_tokens(tokens, [("X", 0, 4), ("X", 5, 10)], "IO") == ["I-X", "I-X"]
    assert tags_for_tokens(tokens, [("X", 0, 4), ("X", 5, 10)], "BIO") == ["B-X", "B-X"]


def test_span_inside_a_token_still_labels_that_token():
    # "FerrándezCorreo" left as one token: the name span [0, 9) must not vanish from training
    assert tags_for_tokens([(0, 15)], [("NOMBRE", 0, 9)]) == ["B-NOMBRE"]
    assert not aligned([(0, 15)], ("NOMBRE", 0, 9))
    assert aligned([(0, 9), (9, 15)], ("NOMBRE", 0, 9))


def test_unknown_scheme_is_rejected():
    with pytest.raises(ValueError):
        tags_for_tokens([(0, 1)], [], "BIOES")


def test_overlaps_keep_the_longest_span_and_report_the_rest():
    kept, dropped = resolve_overlaps([("A", 0, 10), ("B", 5, 8), ("C", 12, 14), ("A", 0, 10)])
    assert kept == [("A", 0, 10), ("C", 12, 14)]
    assert dropped == [("B", 5, 8)]


def test_inner_layer_keeps_the_nested_spans_its_container_hid():
    spans = [("D", 0, 20), ("D", 0, 5), ("D", 8, 20), ("D", 30, 40), ("D", 35, 45)]
    kept, dropped = resolve_overlaps(spans, "inner")
    assert kept == [("D", 0, 5), ("D", 8, 20), ("D", 30, 40)]   # shortest first, then leftmost
    assert dropped == [("D", 0, 20), ("D", 35, 45)]
    assert resolve_overlaps(spans)[0] == [("D", 0, 20), ("D", 30, 40)]   # the default outer layer
    with pytest.raises(ValueError):
        resolve_overlaps(spans, "middle")
    gold = Corpus(notes={"a": "x" * 50})
    split = LabelledSplit({"a": "x" * 50}, {"a": spans}, gold, {"other_label": 1})
    tokens = [("a", [0, 8, 30, 35, 40], [4, 19, 34, 39, 44], ["w"] * 5)]   # inclusive ends
    rows, stats = label_rows(tokens, split, "BIO", "inner")
    assert [a[3] for a in rows[0][1]] == ["B-D", "B-D", "B-D", "I-D", "O"]   # the inner layer's tags
    assert stats["spans"] == 5 and stats["spans_overlap_dropped"] == 2       # the containers are counted
    assert [a[3] for a in label_rows(tokens, split, "BIO")[0][0][1]] == ["B-D", "I-D", "B-D", "I-D", "O"]
    assert split.spans["a"] == spans   # the input split is left as it was


def test_nested_setting_picks_the_training_layer_and_rejects_unknown_values(tmp_path):
    root = tmp_path / "codiesp"
    for split in ("train", "dev"):
        (root / split / "text_files").mkdir(parents=True)
        (root / split / "text_files" / f"{split}1.txt").write_text("dolor en HCD y fiebre", encoding="utf-8")
        (root / split / f"{split}X.tsv").write_text(
            f"{split}1\tDIAGNOSTICO\tr10.31\tdolor en HCD\t0 12\n{split}1\tDIAGNOSTICO\tr52\tdolor\t0 5\n",
            encoding="utf-8")
    cfg = OmegaConf.create({"project_root": str(tmp_path)})
    settings = {"corpus": "codiesp", "train": str(root / "train"), "dev": str(root / "dev"), "labels": ["DIAGNOSTICO"]}
    outer, dev = _splits(cfg, OmegaConf.create(settings), False)
    inner, _ = _splits(cfg, OmegaConf.create({**settings, "nested": "inner"}), False)
    assert outer.spans["train1"] == [("DIAGNOSTICO", 0, 5), ("DIAGNOSTICO", 0, 12)]   # both kept; BIO drops one
    # "dolor en HCD y fiebre" as the tokenizer cuts it (inclusive ends); the layer is chosen where tags are made
    tokens = [("train1", [0, 6, 9, 13, 15], [4, 7, 11, 13, 20], ["dolor", "en", "HCD", "y", "fiebre"])]
    inner_rows, inner_stats = label_rows(tokens, inner, "BIO", nested_layer(OmegaConf.create({"nested": "inner"})))
    outer_rows, _ = label_rows(tokens, outer, "BIO", nested_layer(OmegaConf.create(settings)))
    assert [a[3] for a in inner_rows[0][1]] == ["B-DIAGNOSTICO", "O", "O", "O", "O"]
    assert [a[3] for a in outer_rows[0][1]] == ["B-DIAGNOSTICO", "I-DIAGNOSTICO", "I-DIAGNOSTICO", "O", "O"]
    assert inner_stats["spans_overlap_dropped"] == 1
    assert dev.spans["dev1"] == [("DIAGNOSTICO", 0, 5), ("DIAGNOSTICO", 0, 12)]       # dev gold stays whole
    with pytest.raises(UserError, match="nested"):
        _splits(cfg, OmegaConf.create({**settings, "nested": "both"}), False)


def test_tag_set_counts_match_the_graph_arithmetic():
    labels = [f"T{i}" for i in range(21)]
    assert len(tag_set(labels, "BIO")) == 43  # MEDDOCAN: more than the 38 of the bundled graphs
    assert len(tag_set(labels, "IO")) == 22


def test_graph_folder_is_the_configured_one_else_the_jar_else_ours_past_38_tags(tmp_path):
    assert graph_folder(None, 7) is None
    assert graph_folder("", 38) is None
    assert graph_folder("", 43) == str(GRAPH_DIR)
    assert graph_folder(str(tmp_path), 7) == str(tmp_path)
    assert graph_folder(str(tmp_path), 43) == str(tmp_path)
    assert list(GRAPH_DIR.glob("blstm_43_*.pb")), "the deid graph must ship with the package"


def test_discontinuous_mentions_span_or_fragments():
    m = Mention("DIAGNOSTICO", 10, 40, "n44.8", ((10, 15), (30, 40)), "a b")
    assert mention_spans(m, "span") == [("DIAGNOSTICO", 10, 40)]
    assert mention_spans(m, "fragments") == [("DIAGNOSTICO", 10, 15), ("DIAGNOSTICO", 30, 40)]
    with pytest.raises(ValueError):
        mention_spans(m, "glue")


def _brat(tmp_path, docs: dict[str, tuple[str, list[tuple[str, int, int]]]]):
    folder = tmp_path / "brat"
    folder.mkdir()
    for doc_id, (text, spans) in docs.items():
        (folder / f"{doc_id}.txt").write_text(text, encoding="utf-8")
        lines = [f"T{i + 1}\t{lab} {s} {e}\t{text[s:e]}" for i, (lab, s, e) in enumerate(spans)]
        (folder / f"{doc_id}.ann").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_labelled_split_filters_labels_and_caps_documents(tmp_path):
    folder = _brat(tmp_path, {"b": ("Juan vive en Soria.", [("NOMBRE", 0, 4), ("TERRITORIO", 13, 18)]),
                              "a": ("Ana vive en Lugo.", [("NOMBRE", 0, 3)])})
    split = labelled_split("meddocan", folder, ["NOMBRE"])
    assert split.spans == {"a": [("NOMBRE", 0, 3)], "b": [("NOMBRE", 0, 4)]}
    assert split.skipped["other_label"] == 1
    assert [m.label for m in split.gold.mentions["b"]] == ["NOMBRE"]
    capped = labelled_split("meddocan", folder, max_docs=1)
    assert list(capped.texts) == ["a"]
    with pytest.raises(UserError):
        labelled_split("meddocan", tmp_path / "missing")
    with pytest.raises(UserError):
        merge_splits(split, split)


def test_label_rows_align_tags_to_the_tokenizer_offsets(tmp_path):
    folder = _brat(tmp_path, {"d": ("Dr. FerrándezCorreo", [("NOMBRE", 4, 13)])})
    split = labelled_split("meddocan", folder)
    # tokens as the Spark NLP tokenizer returns them: inclusive ends
    rows, stats = label_rows([("d", [0, 2, 4, 13], [1, 2, 12, 18], ["Dr", ".", "Ferrández", "Correo"])], split, "BIO")
    (doc_id, anns), = rows
    assert doc_id == "d"
    assert [a[3] for a in anns] == ["O", "O", "B-NOMBRE", "O"]
    assert [(a[1], a[2]) for a in anns] == [(0, 1), (2, 2), (4, 12), (13, 18)]
    assert stats["spans_aligned"] == 1 and stats["entity_tokens"] == 1


def test_parse_epoch_log_reads_spark_nlp_lines():
    text = ("Training started - total epochs: 2 - lr: 0.001 - batch size: 4 - labels: 43\n\n"
            "Epoch 1/2 started, lr: 0.001, dataset size: 42\n\n"
            "Epoch 1/2 - 6.68s - loss: 201.34637 - batches: 11\n\n"
            "Epoch 2/2 - 0.71s - loss: 163.7568 - batches: 11\n")
    assert parse_epoch_log(text) == [{"epoch": 1, "seconds": 6.68, "loss": 201.34637},
                                     {"epoch": 2, "seconds": 0.71, "loss": 163.7568}]


def test_chunk_mentions_turn_inclusive_ends_into_exclusive():
    rows = [{"doc_id": "d", "ner_chunk": [{"begin": 4, "end": 12, "result": "Ferrández",
                                            "metadata": {"entity": "NOMBRE"}}]},
            {"doc_id": "e", "ner_chunk": None}]
    out = chunk_mentions(rows)
    assert out["d"][0].label == "NOMBRE" and (out["d"][0].start, out["d"][0].end) == (4, 13)
    assert out["e"] == []


def test_codiesp_dev_score_ignores_codes_but_not_labels():
    gold = Corpus(notes={"d": "x" * 50}, mentions={"d": [Mention("DIAGNOSTICO", 0, 5, "n44.8"),
                                                          Mention("PROCEDIMIENTO", 10, 20, "bw03zzz", ((10, 12), (18, 20)))]})
    pred = {"d": [Mention("DIAGNOSTICO", 0, 5), Mention("DIAGNOSTICO", 10, 20)]}
    metrics, table = dev_scores("codiesp", gold, pred)
    assert metrics["mention_precision"] == 0.5 and metrics["mention_recall"] == 0.5
    assert {r["label"] for r in table} == {"DIAGNOSTICO", "PROCEDIMIENTO"}


def test_cantemist_dev_score_is_span_exact():
    gold = Corpus(notes={"d": "x" * 30}, mentions={"d": [Mention("MORFOLOGIA_NEOPLASIA", 0, 9, "8000/3")]})
    metrics, _ = dev_scores("cantemist", gold, {"d": [Mention("MORFOLOGIA_NEOPLASIA", 0, 8)]})
    assert metrics["ner_f1"] == 0.0 and not any(k.startswith("norm_") for k in metrics)
    metrics, _ = dev_scores("cantemist", gold, {"d": [Mention("MORFOLOGIA_NEOPLASIA", 0, 9)]})
    assert metrics["ner_f1"] == 1.0


def test_embeddings_corpus_reads_folders_and_conll_and_drops_duplicates(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "a" / "1.txt").write_text("Paciente con fiebre.", encoding="utf-8")
    (tmp_path / "a" / "sub" / "2.txt").write_text("Paciente con fiebre.", encoding="utf-8")  # same case twice
    (tmp_path / "a" / "3.txt").write_text("   ", encoding="utf-8")
    (tmp_path / "c.conll").write_text("Toma\tO\nibuprofeno\tB-NORMALIZABLES\n\nOtra\tO\n", encoding="utf-8")
    cfg = OmegaConf.create({"corpora_root": str(tmp_path), "text_dirs": ["a"], "conll_files": ["c.conll"]})
    texts = emb.corpus_texts(cfg)
    assert [t for _, t in texts] == ["Paciente con fiebre.", "Toma ibuprofeno", "Otra"]
    with pytest.raises(UserError):
        emb.corpus_texts(OmegaConf.create({"corpora_root": str(tmp_path), "text_dirs": ["nope"]}))


def test_vector_size_must_match_a_bundled_graph():
    assert emb.check_vector_size(100) == 100
    with pytest.raises(UserError):
        emb.check_vector_size(200)


def test_model_defaults_sit_under_the_loaded_config():
    from tests.conftest import test_config

    cfg = with_model_defaults(test_config(sets=["models.ner.defaults.max_epochs=3",
                                                 "models.ner.models.drug.lr=0.01"]))
    drug = model_settings(cfg, "drug")
    assert drug.lr == 0.01 and drug.name == "ner-drug-es"
    # a recogniser's own setting wins over the shared defaults: drug keeps its 16 epochs, the joint CodiEsp tagger
    # takes the 3
    assert drug.max_epochs == 16 and model_settings(cfg, "diagnosis_procedure").max_epochs == 3
    assert deid_settings(cfg).name == "deid-ner-es"
    assert cfg.models.recogniser.name  # the lead's keys survive
    with pytest.raises(UserError):
        model_settings(cfg, "nope")


def test_codiesp_has_one_tagger_per_label_besides_the_joint_one():
    from tests.conftest import test_config

    cfg = with_model_defaults(test_config())
    diag, proc = model_settings(cfg, "diagnosis"), model_settings(cfg, "procedure")
    assert (list(diag.labels), list(proc.labels)) == (["DIAGNOSTICO"], ["PROCEDIMIENTO"])
    assert len({diag.name, proc.name, model_settings(cfg, "diagnosis_procedure").name}) == 3


def test_train_ner_refuses_an_unconfigured_model_before_touching_spark():
    import argparse

    from jobs import train_ner
    from tests.conftest import test_config

    with pytest.raises(UserError, match="unknown NER model 'nope'.*diagnosis"):
        train_ner.run(None, test_config(), argparse.Namespace(model="nope"))


def test_extra_train_splits_join_training_and_never_the_dev_split(tmp_path):
    for sub in "tdex":
        (tmp_path / sub).mkdir()
    train = _brat(tmp_path / "t", {"t1": ("Carcinoma ductal.", [("MORFOLOGIA_NEOPLASIA", 0, 16)])})
    dev = _brat(tmp_path / "d", {"d1": ("Adenoma tubular.", [("MORFOLOGIA_NEOPLASIA", 0, 15)])})
    dev2 = _brat(tmp_path / "e", {"e1": ("Linfoma difuso.", [("MORFOLOGIA_NEOPLASIA", 0, 14)]),
                                  "e2": ("Sin tumor.", [])})
    cfg = OmegaConf.create({"project_root": str(tmp_path)})
    settings = OmegaConf.create({"corpus": "cantemist", "train": str(train), "dev": str(dev),
                                 "labels": ["MORFOLOGIA_NEOPLASIA"], "extra_train": [str(dev2)]})
    tr, dv = _splits(cfg, settings, include_dev=False)
    assert sorted(tr.texts) == ["e1", "e2", "t1"] and tr.spans["e1"] == [("MORFOLOGIA_NEOPLASIA", 0, 14)]
    assert list(dv.texts) == ["d1"]
    settings.extra_train = []  # train alone
    assert sorted(_splits(cfg, settings, include_dev=False)[0].texts) == ["t1"]
    settings.extra_train = str(dev)  # the held-out split cannot be training data by this door
    with pytest.raises(UserError, match="dev split"):
        _splits(cfg, settings, include_dev=False)
    # a copy of a dev document in another folder is refused too
    settings.extra_train = [str(_brat(tmp_path / "x", {"d1": ("Adenoma tubular.", [("MORFOLOGIA_NEOPLASIA", 0, 15)])}))]
    with pytest.raises(UserError, match="also dev documents"):
        _splits(cfg, settings, include_dev=False)


def test_the_morphology_tagger_trains_on_cantemist_dev2_and_is_measured_on_dev1():
    from tests.conftest import test_config

    morph = model_settings(with_model_defaults(test_config()), "morphology")
    assert Path(str(morph.dev)).parts[-2:] == ("cantemist", "dev1")
    assert [Path(str(p)).parts[-2:] for p in morph.extra_train] == [("cantemist", "dev2")]
