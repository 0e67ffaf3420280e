"""clinlake.ner on Spark: shared tokenisation, and the whole train -> log -> register -> load by alias -> predict path."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from pyspark.sql import functions as F

from clinlake.ner import nerdl_stages
from clinlake.ner.settings import with_model_defaults
from clinlake.ner.tokens import CHUNK_COL, fit_text_pipeline

MEDDOCAN_TYPES = ["NOMBRE_SUJETO_ASISTENCIA", "NOMBRE_PERSONAL_SANITARIO", "FECHAS", "EDAD_SUJETO_ASISTENCIA",
                  "SEXO_SUJETO_ASISTENCIA", "CALLE", "TERRITORIO", "PAIS", "CORREO_ELECTRONICO",
                  "ID_SUJETO_ASISTENCIA", "ID_ASEGURAMIENTO", "ID_CONTACTO_ASISTENCIAL", "NUMERO_TELEFONO",
                  "NUMERO_FAX", "PROFESION", "HOSPITAL", "INSTITUCION", "CENTRO_SALUD", "FAMILIARES_SUJETO_ASISTENCIA",
                  "ID_TITULACION_PERSONAL_SANITARIO", "OTROS_SUJETO_ASISTENCIA"]


def _text_cfg():
    from tests.conftest import test_config

    return with_model_defaults(test_config()).models.text


def test_tokenizer_splits_run_together_words_with_exact_offsets(spark):
    text = "Nombre: Juan FerrándezCorreo electrónico: jf@hosp.es. NHC:1234 y 28016-Madrid, pH 7 IgG."
    model = fit_text_pipeline(spark, _text_cfg())
    toks = model.transform(spark.createDataFrame([(text,)], "note_text string")).select("token").first()[0]
    words = [t.result for t in toks]
    assert "Ferrández" in words and "Correo" in words and "1234" in words and "Madrid" in words
    assert "pH" in words and "IgG" in words  # one lower-case letter before a capital is not a run-together word
    assert all(text[t.begin:t.end + 1] == t.result for t in toks)


def test_sentence_length_is_bounded_for_huge_notes(spark):
    text = " ".join(["palabra"] * 20000)  # 160 kB without a full stop
    model = fit_text_pipeline(spark, _text_cfg())
    sents, toks = model.transform(spark.createDataFrame([(text,)], "note_text string")).select(
        "sentence", "token").first()
    limit = int(_text_cfg().sentence_max_chars)
    assert len(sents) > 100 and max(s.end - s.begin + 1 for s in sents) <= limit
    assert len(toks) == 20000  # cut, not dropped: every word is still seen by the recogniser


def test_sentence_bounds_keep_identifiers_and_addresses_whole(spark):
    # Spark NLP's default detector ends a sentence before "02." (a list item) and after "Avda." (a period).
    text = ("NASS: 47 39047534 02.\nDomicilio: Avda. Gaspar Aguilar, 90. Remitido por: Dra. Ana Ruiz.\n"
            "Refiere dolor desde hace 3 meses. El TAC. Se pauta tratamiento? No.")
    model = fit_text_pipeline(spark, _text_cfg())
    sents = [s.result for s in model.transform(spark.createDataFrame([(text,)], "note_text string")).first()[
        "sentence"]]
    assert sents == ["NASS: 47 39047534 02.", "Domicilio: Avda. Gaspar Aguilar, 90.", "Remitido por: Dra. Ana Ruiz.",
                     "Refiere dolor desde hace 3 meses.", "El TAC.", "Se pauta tratamiento?", "No."]
    default = OmegaConf.merge(_text_cfg(), {"sentence_bounds": None, "detect_lists": True})
    legacy = [s.result for s in fit_text_pipeline(spark, default).transform(
        spark.createDataFrame([(text,)], "note_text string")).first()["sentence"]]
    assert legacy[0] == "NASS: 47 39047534"  # the detector's own list rule, which the configured bounds replace


def _synthetic_meddocan(folder, n_docs: int, seed: int):
    """Brat docs with every MEDDOCAN type (so BIO needs the generated 43-tag graph)."""
    folder.mkdir(parents=True)
    for d in range(n_docs):
        parts, spans = [], []
        pos = 0
        for k in range(3):
            typ = MEDDOCAN_TYPES[(d * 3 + k + seed) % len(MEDDOCAN_TYPES)]
            prefix = f"Consta dato {k} del tipo {typ.lower()} como "
            value = f"valor{(d + k) % 7} extra{d % 5}"
            sentence = f"{prefix}{value} en la nota.\n"
            spans.append((typ, pos + len(prefix), pos + len(prefix) + len(value)))
            parts.append(sentence)
            pos += len(sentence)
        text = "".join(parts)
        (folder / f"doc{d:03d}.txt").write_text(text, encoding="utf-8")
        (folder / f"doc{d:03d}.ann").write_text(
            "".join(f"T{i + 1}\t{t} {s} {e}\t{text[s:e]}\n" for i, (t, s, e) in enumerate(spans)), encoding="utf-8")


def _deid_config(tmp_path):
    """24 synthetic MEDDOCAN train notes and 6 dev notes, and a test config that trains on them (1 epoch)."""
    from tests.conftest import test_config

    _synthetic_meddocan(tmp_path / "corpora" / "train", 24, 0)
    _synthetic_meddocan(tmp_path / "corpora" / "dev", 6, 1)
    cfg = test_config(tmp_path, [
        f"models.embeddings.corpora_root={tmp_path / 'corpora'}", "models.embeddings.text_dirs=[train,dev]",
        "models.embeddings.conll_files=[]", "models.embeddings.min_count=1",
        f"models.deid.train={tmp_path / 'corpora' / 'train'}", f"models.deid.dev={tmp_path / 'corpora' / 'dev'}",
        "models.ner.defaults.max_epochs=1", "models.ner.defaults.batch_size=8", "models.deid.max_epochs=1",
    ])
    return cfg


def _train_vote_members(spark, cfg) -> None:
    """deid-ner-es versions 2 and 3 (aliases seed7, seed13) beside version 1, for the votes."""
    from mlflow import MlflowClient

    from clinlake.ner.lifecycle import train_embeddings, train_recogniser

    cfg.models.deid.max_epochs = 25         # one epoch of 24 notes finds little; 25 find enough for votes to agree
    # Version 3 is trained on a second embeddings version (Word2Vec seed 7): every member runs its own pipeline, its
    # own Word2Vec stage included, so one vote may mix embeddings (docs/ner.md "... a member on other embeddings").
    cfg.models.embeddings.seed, cfg.models.embeddings.alias = 7, "seed7"
    assert train_embeddings(spark, cfg)["version"] == "2"
    for version, seed, embeddings_alias, embeddings in (("2", 7, "champion", "1"), ("3", 13, "seed7", "2")):
        cfg.models.ner.defaults.seed, cfg.models.ner.embeddings_alias = seed, embeddings_alias
        member = train_recogniser(spark, cfg, "deid")
        assert member["version"] == version and member["embeddings"] == f"embeddings-clinical-es@{embeddings}"
        MlflowClient().set_registered_model_alias("deid-ner-es", f"seed{seed}", version)
    cfg.models.ner.embeddings_alias = "champion"


def _vote_notes(spark, tmp_path):
    """The 6 dev notes and an empty one, as (doc_id, text)."""
    docs = sorted((tmp_path / "corpora" / "dev").glob("*.txt"))
    return docs, spark.createDataFrame([(p.stem, p.read_text(encoding="utf-8")) for p in docs] + [("empty", "")],
                                       "doc_id string, text string")


def _vote_frame(spark, notes):
    """The notes as the deidentify stage reads them, and a null text."""
    frame = notes.select(F.col("doc_id").alias("note_id"), F.col("text").alias("note_text"),
                         F.lit(1).alias("person_id"))
    frame = frame.unionByName(spark.createDataFrame([("null", None, 1)], frame.schema))
    return frame


def test_train_embeddings_then_deid_register_and_serve_by_alias(spark, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    from clinlake import tracking
    from clinlake.ner.lifecycle import train_embeddings, train_recogniser

    cfg = _deid_config(tmp_path)
    emb = train_embeddings(spark, cfg)
    assert emb["version"] == "1" and emb["alias_set"] and emb["vocabulary"] > 20

    out = train_recogniser(spark, cfg, "deid")
    assert out["model"] == "deid-ner-es" and out["version"] == "1" and out["champion"] is True
    assert out["embeddings"] == "embeddings-clinical-es@1" and out["epochs"] == 1
    assert out["alignment"]["spans"] == 72 and out["alignment"]["spans_aligned"] == 72

    tracking.configure(cfg)
    run = MlflowClient().get_run(out["run_id"])
    assert run.data.params["tags"] == "43" and run.data.params["graph_dir"].endswith("graphs")
    assert run.data.params["seed"] == "42"
    assert "dev_subtrack1_strict_f1" in run.data.metrics
    assert len(MlflowClient().get_metric_history(out["run_id"], "train_loss")) == 1
    assert any(a.path == "training_logs" for a in MlflowClient().list_artifacts(out["run_id"]))
    assert mlflow.models.get_model_info(f"models:/deid-ner-es/{out['version']}").signature is not None

    model, ref = tracking.load_spark_model(cfg, "deid-ner-es", "champion")
    assert ref == "deid-ner-es@1"
    text = (tmp_path / "corpora" / "dev" / "doc000.txt").read_text(encoding="utf-8")
    pred = model.transform(spark.createDataFrame([(text,)], "note_text string"))
    assert {"document", "sentence", "token", "embeddings", "ner", CHUNK_COL} <= set(pred.columns)
    row = pred.select("ner", CHUNK_COL).first()
    assert row["ner"] and {a.result.split("-", 1)[-1] for a in row["ner"]} <= set(MEDDOCAN_TYPES) | {"O"}
    for chunk in row[CHUNK_COL]:
        assert chunk.metadata["entity"] in MEDDOCAN_TYPES and text[chunk.begin:chunk.end + 1] == chunk.result
    # Served with scale.ner_batch_size sentences per TensorFlow batch (tracking.for_serving), not the training batch
    # of 8; the batch changes the padding, not the tags.
    ner = nerdl_stages(model)[0]
    assert ner.getBatchSize() == cfg.scale.ner_batch_size == 4
    dev_notes = spark.createDataFrame([(p.stem, p.read_text(encoding="utf-8"))
                                       for p in sorted((tmp_path / "corpora" / "dev").glob("*.txt"))],
                                      "doc_id string, note_text string")
    tags_at = {}
    for size in (4, 8):
        ner.setBatchSize(size)
        tags_at[size] = {r["doc_id"]: [a.result for a in r["ner"]] for r in model.transform(dev_notes).collect()}
    assert tags_at[4] == tags_at[8] and len(tags_at[4]) == 6
    ner.setBatchSize(cfg.scale.ner_batch_size)
    # scripts/bench_nerdl.py on this version: every size timed on the 6 notes, chunks compared, a JSON and a plot
    import json

    from tests.script_modules import load_script

    bench = load_script("bench_nerdl")
    bench.main(["--env", "test", "--lake", str(tmp_path / "lake"), "--set", f"mlflow.dir={tmp_path / 'mlruns'}",
                "--models", "deid-ner-es@champion", "--data", str(tmp_path / "corpora" / "dev"),
                "--batch-sizes", "8", "4", "--partitions", "2", "--out", str(tmp_path / "bench")])
    result = json.loads((tmp_path / "bench" / "nerdl.json").read_text(encoding="utf-8"))["results"]
    assert [(r["model"], r["notes"]) for r in result] == [("deid-ner-es@1", 6)]
    assert [t["batch_size"] for t in result[0]["timings"]] == [8, 4]
    assert result[0]["timings"][1]["chunks_not_in_both"] == 0 and result[0]["timings"][1]["seconds"] > 0
    assert (tmp_path / "bench" / "nerdl.png").stat().st_size > 0

    # Two more versions (other seeds) and the evaluation predictor scoring the configured vote of the three: its
    # mentions are the spans two of them give, counted here from each version's own predictions.
    from clinlake.ner.predict import predict_with

    _train_vote_members(spark, cfg)
    docs, notes = _vote_notes(spark, tmp_path)
    votes: dict = {}
    for alias in ("champion", "seed7", "seed13"):
        one = predict_with(spark, cfg, notes, "deid-ner-es", alias)
        for doc, ms in one.mentions.items():
            for m in ms:
                votes[(doc, m.label, m.start, m.end)] = votes.get((doc, m.label, m.start, m.end), 0) + 1
    cfg.extract.recognisers = [{"name": "deid-ner-es", "vote": {"members": ["seed7", "seed13"], "min_votes": 2}}]
    voted = predict_with(spark, cfg, notes, "deid-ner-es", "champion")
    assert voted.model_versions == {"deid-ner-es": "1+2+3"} and set(voted.mentions) == {p.stem for p in docs} | {"empty"}
    got = {(doc, m.label, m.start, m.end) for doc, ms in voted.mentions.items() for m in ms}
    assert 1 in votes.values() and got == {k for k, n in votes.items() if n >= 2} and got   # they disagree, and agree
    assert all(m.text == (tmp_path / "corpora" / "dev" / f"{doc}.txt").read_text(encoding="utf-8")[m.start:m.end]
               for doc, ms in voted.mentions.items() for m in ms)

    # The deidentify stage serves the same vote from `deid.vote`: model_spans are the spans two versions give; an
    # empty note gets none, a null text stays null (the UDF quarantines it); a member alias not registered is an error.
    from clinlake.deid.job import with_model_spans
    from clinlake.errors import UserError
    from jobs.deidentify_notes import load_model

    cfg.extract.recognisers = []
    cfg.deid.vote = {"members": ["seed7", "seed13"], "min_votes": 2}
    ensemble, ref = load_model(cfg)
    assert ref == "deid-ner-es@1+2+3"
    frame = _vote_frame(spark, notes)
    spans = {r["note_id"]: r["model_spans"] for r in frame.transform(with_model_spans, ensemble).collect()}
    assert spans["null"] is None and spans["empty"] == [] and len(spans) == len(docs) + 2
    assert {(doc, s["label"], s["start"], s["end"]) for doc, ss in spans.items() for s in ss or []} == got
    cfg.deid.vote = {"members": ["seed7", "no-such-alias"], "min_votes": 2}
    with pytest.raises(UserError, match="no-such-alias"):
        load_model(cfg)


@pytest.mark.extended
def test_deid_token_votes_crf_voter_its_promotion_and_seeded_starts(spark, tmp_path):
    """The deid vote's token combinations, a CRF as a voter and its promotion gate, and seeded first weights.

    `make test-all` only: the CI suite serves the spans vote of the same three versions (the test above); this one
    trains them again (about 1.5 minutes alone, 3 in the suite) and goes on from there.
    """
    import mlflow
    from mlflow import MlflowClient

    from clinlake import tracking
    from clinlake.deid.job import with_model_spans
    from clinlake.errors import UserError
    from clinlake.ner.lifecycle import train_embeddings, train_recogniser
    from jobs.deidentify_notes import load_model

    cfg = _deid_config(tmp_path)
    assert train_embeddings(spark, cfg)["version"] == "1"
    assert train_recogniser(spark, cfg, "deid")["version"] == "1"
    _train_vote_members(spark, cfg)
    docs, notes = _vote_notes(spark, tmp_path)
    frame = _vote_frame(spark, notes)
    cfg.extract.recognisers = []
    # The token vote (`combine: tokens`): model_spans are what udfs.tag_vote decodes from the three versions' own
    # per-token scores, collected here from each pipeline; another system name, so notes re-run when it is switched
    # on. A long note goes through in pieces: the doubled note cut at its paragraph gets the spans of each copy.
    from clinlake.deid.job import ner_stage
    from udfs.tag_vote import decode_tokens

    cfg.deid.vote = {"members": ["seed7", "seed13"], "combine": "tokens"}
    ensemble, ref = load_model(cfg)
    assert ref == "deid-ner-es@1+2+3#tokens" and ensemble.combine == "tokens"
    tok_spans = {r["note_id"]: r["model_spans"] for r in frame.transform(with_model_spans, ensemble).collect()}
    assert tok_spans["null"] is None and tok_spans["empty"] == [] and len(tok_spans) == len(docs) + 2
    tags = sorted(ner_stage(ensemble.members[0][0])._java_obj.getClasses())
    per_member = []
    for model, _ in ensemble.members:
        rows = model.transform(frame.filter(F.col("note_text").isNotNull())).select("note_id", "ner").collect()
        per_member.append({r["note_id"]: r["ner"] for r in rows})
    expected = {}
    for doc in per_member[0]:
        anns = [m[doc] for m in per_member]
        expected[doc] = decode_tokens([[a.begin for a in ann] for ann in anns], [a.end + 1 for a in anns[0]],
                                      [[[float(a.metadata.get(t, 0.0)) for t in tags] for a in ann] for ann in anns],
                                      tags)
    as_keys = lambda ss: [(s["start"], s["end"], s["label"]) for s in ss]  # noqa: E731
    assert {d: as_keys(ss) for d, ss in tok_spans.items() if d != "null"} == {d: as_keys(ss) for d, ss in expected.items()}
    assert any(tok_spans.values()) and all(0 < s["score"] <= 1 for ss in expected.values() for s in ss)
    first = (tmp_path / "corpora" / "dev" / "doc000.txt").read_text(encoding="utf-8").rstrip("\n") + "\n\n"
    doubled = spark.createDataFrame([("long", first + first, 1)], frame.schema)
    cut = doubled.transform(with_model_spans, ensemble, len(first)).first()["model_spans"]
    half = [k for k in as_keys(tok_spans["doc000"]) if k[1] <= len(first)]
    assert half and as_keys(cut) == half + [(s + len(first), e + len(first), label) for s, e, label in half]
    # `combine: spans+tokens`: the chunks two versions give exactly (read off each version's own tags), then the token
    # vote where none of them lies.
    from udfs.tag_vote import member_chunks, vote_then_fill

    cfg.deid.vote = {"members": ["seed7", "seed13"], "min_votes": 2, "combine": "spans+tokens"}
    ensemble, ref = load_model(cfg)
    assert ref == "deid-ner-es@1+2+3#spans+tokens"
    both = {r["note_id"]: r["model_spans"] for r in frame.transform(with_model_spans, ensemble).collect()}
    assert both["null"] is None and both["empty"] == []
    for doc, token_spans in expected.items():
        anns = [m[doc] for m in per_member]
        begins, ends = [a.begin for a in anns[0]], [a.end + 1 for a in anns[0]]
        want = vote_then_fill(token_spans, member_chunks(begins, ends, [[a.result for a in ann] for ann in anns]), 2)
        assert as_keys(both[doc]) == as_keys(want), doc
        assert [s["score"] for s in both[doc]] == pytest.approx([s["score"] for s in want], abs=1e-9), doc
    # where the versions agree the spans come from the exact vote (its score is the share of versions that gave it)
    assert any(s["score"] in (2 / 3, 1.0) for ss in both.values() for s in ss or [])

    # A CRF as a fourth voter (`crf: <alias>` of deid-crf-es, jobs/train_deid_crf.py): trained, scored and registered
    # like the NerDL versions; served, its log-marginals on the first version's tokens join the mean and its own tags
    # the exact vote (udfs.crf_tag), which the spans must equal when recomputed here note by note.
    import numpy as np

    from clinlake.crf import train as train_crf
    from udfs.crf_tag import crf_log_probs, tagger_for
    from udfs.tag_vote import FLOOR, decode_mean_log_probs

    OmegaConf.update(cfg, "models.deid_crf.max_iterations", 30)
    crf_out = train_crf(spark, cfg)
    assert (crf_out["model"], crf_out["version"], crf_out["champion"]) == ("deid-crf-es", "1", True)
    crf_run = MlflowClient().get_run(crf_out["run_id"])
    assert crf_run.data.params["features"] == "shape-1" and crf_run.data.params["train_documents"] == "24"
    assert crf_run.data.metrics["train_tokens"] > 0 and "dev_subtrack1_strict_f1" in crf_run.data.metrics
    assert 0 < crf_out["iterations"] <= 30 and crf_out["active_features"] > 0
    # the registered pyfunc tags tokens on its own (its signature: note_text, token begins and exclusive ends)
    import pandas as pd

    pyfunc = mlflow.pyfunc.load_model("models:/deid-crf-es/1")
    dev_text = (tmp_path / "corpora" / "dev" / "doc000.txt").read_text(encoding="utf-8")
    dev_tokens = per_member[0]["doc000"]
    tagged = pyfunc.predict(pd.DataFrame({"note_text": [dev_text], "begins": [[a.begin for a in dev_tokens]],
                                          "ends": [[a.end + 1 for a in dev_tokens]]}))
    assert len(tagged) == 1 and len(tagged[0]) == len(dev_tokens) and any(t != "O" for t in tagged[0])
    cfg.deid.vote = {"members": ["seed7", "seed13"], "min_votes": 2, "combine": "spans+tokens", "crf": "champion"}
    ensemble, ref = load_model(cfg)
    assert ref == "deid-ner-es@1+2+3:2#spans+tokens,deid-crf-es@1" and ensemble.voters == 4
    with_crf = {r["note_id"]: r["model_spans"] for r in frame.transform(with_model_spans, ensemble).collect()}
    assert with_crf["null"] is None and with_crf["empty"] == []
    tagger = tagger_for(ensemble.crf.model)
    texts = {r["note_id"]: r["note_text"] for r in frame.filter(F.col("note_text").isNotNull()).collect()}
    for doc in expected:
        anns = [m[doc] for m in per_member]
        begins, ends = [a.begin for a in anns[0]], [a.end + 1 for a in anns[0]]
        crf_lp, crf_tags = crf_log_probs(tagger, texts[doc], begins, ends, tags, FLOOR)
        lps = [np.log(np.maximum([[float(a.metadata.get(t, 0.0)) for t in tags] for a in ann], FLOOR)) for ann in anns]
        mean = (sum(lps) + crf_lp) / 4 if begins else np.zeros((0, len(tags)))
        owns = [[a.result for a in ann] for ann in anns] + [crf_tags]
        want = vote_then_fill(decode_mean_log_probs(begins, ends, mean, tags), member_chunks(begins, ends, owns), 2)
        assert as_keys(with_crf[doc]) == as_keys(want), doc
    assert any(with_crf.values())
    # A second CRF version goes through the promotion gate as a voter: both evaluations run the configured vote, one
    # with each CRF version (alias_key: deid.vote.crf), and the alias moves only if the gate says so.
    import argparse

    from clinlake.promotion import decide
    from jobs import promote_model

    OmegaConf.update(cfg, "models.deid_crf.max_iterations", 3)
    assert train_crf(spark, cfg)["version"] == "2"
    cfg.promotion.models["deid-crf-es"].data = str(tmp_path / "corpora" / "dev")
    decision = promote_model.run(spark, cfg, argparse.Namespace(model="deid-crf-es", version="2", margin=None))
    evals = MlflowClient().search_runs(
        [crf_run.info.experiment_id], "tags.`clinlake.job` = 'evaluate' and params.task = 'deid'",
        order_by=["attributes.start_time ASC"])[-2:]
    assert [r.data.params["model.deid-crf-es"] for r in evals] == ["1", "2"]
    assert {r.data.params["model.deid-ner-es"] for r in evals} == {"1+2+3:2#spans+tokens"}
    promoted, _ = decide(evals[0].data.metrics, evals[1].data.metrics, "subtrack1_strict_f1",
                         ["subtrack2_strict_recall"], float(cfg.promotion.margin))
    assert decision["promoted"] is promoted
    champion = str(MlflowClient().get_model_version_by_alias("deid-crf-es", "champion").version)
    assert champion == ("2" if promoted else "1")
    assert "challenger" not in MlflowClient().get_registered_model("deid-crf-es").aliases
    cfg.deid.vote = None
    with pytest.raises(UserError, match="needs deid.vote configured"):
        promote_model.run(spark, cfg, argparse.Namespace(model="deid-crf-es", version="1" if promoted else "2",
                                                         margin=None))
    cfg.deid.vote = {"members": ["seed7"], "combine": "spans", "crf": "champion"}
    with pytest.raises(UserError, match="votes per token"):
        load_model(cfg)
    cfg.deid.vote = {"members": ["seed7"], "combine": "tokens", "crf": "no-such-alias"}
    with pytest.raises(UserError, match="deid-crf-es@no-such-alias"):
        load_model(cfg)
    cfg.deid.vote = {"members": ["seed7"], "combine": "words"}
    with pytest.raises(UserError, match="combine must be one of spans, tokens"):
        load_model(cfg)
    cfg.deid.vote = None

    # One seed, one starting point: two untrained (0-epoch) versions of seed 13 score every token alike, because the
    # graph's initialisers carry the seed (clinlake/ner/seeding.py); unseeded, each TensorFlow session drew its own
    # first weights. Scores, not tags: a random start ties tags, and which of two tied tags wins is float noise.
    cfg.extract.recognisers = []
    cfg.models.deid.max_epochs = 0
    scored = []
    for alias in ("init1", "init2"):
        out = train_recogniser(spark, cfg, "deid")
        assert MlflowClient().get_run(out["run_id"]).data.params["seed_graphs"] == "True"
        MlflowClient().set_registered_model_alias("deid-ner-es", alias, out["version"])
        model, _ = tracking.load_spark_model(cfg, "deid-ner-es", alias)
        rows = model.transform(notes.select("doc_id", F.col("text").alias("note_text"))).orderBy("doc_id").collect()
        scored.append([[(a.metadata["word"], a.metadata["confidence"]) for a in r["ner"]] for r in rows])
    assert scored[0] == scored[1] and any(scored[0])


def test_training_is_rejected_without_registered_embeddings(spark, tmp_path):
    from clinlake.errors import UserError
    from clinlake.ner.lifecycle import train_recogniser
    from tests.conftest import test_config

    _synthetic_meddocan(tmp_path / "train", 2, 0)
    cfg = test_config(tmp_path, [f"models.deid.train={tmp_path / 'train'}", f"models.deid.dev={tmp_path / 'train'}"])
    with pytest.raises(UserError, match="embeddings-clinical-es"):
        train_recogniser(spark, cfg, "deid")


FULL = [("deid", "subtrack1_strict_f1", 0.93), ("morphology", "ner_f1", 0.75), ("drug", "ner_f1", 0.85),
        ("diagnosis_procedure", "mention_f1", 0.52), ("diagnosis", "mention_f1", 0.60), ("procedure", "mention_f1", 0.48)]


@pytest.mark.training
@pytest.mark.parametrize("model,metric,floor", FULL)
def test_full_training_on_the_shared_corpora(spark, tmp_path, shared_dir, model, metric, floor):
    """Full corpora, configured epochs: guards against regressions (floors sit below the issue's targets)."""
    from clinlake.ner.lifecycle import train_embeddings, train_recogniser
    from tests.conftest import test_config

    cfg = test_config(tmp_path, [f"models.embeddings.corpora_root={shared_dir / 'corpora'}"])
    train_embeddings(spark, cfg)
    out = train_recogniser(spark, cfg, model)
    assert out["dev"][metric] >= floor, OmegaConf.to_yaml(OmegaConf.create(out["dev"]))
