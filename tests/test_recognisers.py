"""Several recognisers in one extraction: overlap policy, configuration, per-model incremental reprocessing."""

from __future__ import annotations

import argparse
import json

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from clinlake import recognisers
from clinlake.config import lake_path
from clinlake.errors import UserError

SCHEMA = "note_id long, label string, offset_start int, offset_end int, model_name string"


def test_overlap_policy(spark):
    chunks = spark.createDataFrame([
        (1, "DIAGNOSTICO", 0, 10, "ner-dx"),          # priority 0: kept
        (1, "DIAGNOSTICO", 5, 20, "gaz"),             # overlaps a same-label chunk of ner-dx: dropped
        (1, "DIAGNOSTICO", 10, 12, "gaz"),            # touches ner-dx's end (exclusive): no overlap, kept
        (1, "PROCEDIMIENTO", 0, 10, "gaz"),           # other label: never suppressed
        (2, "DIAGNOSTICO", 5, 20, "gaz"),             # other note: kept
        (3, "DIAGNOSTICO", 0, 4, "gaz"),              # gaz before an unlisted model: kept
        (3, "DIAGNOSTICO", 2, 6, "other"),            # unlisted model ranks last: dropped
        (4, None, 0, 3, "gaz"),                       # null label: nothing to compare with, kept
    ], SCHEMA)
    out = recognisers.filter_overlaps(chunks, ["ner-dx", "gaz"])
    expected = spark.createDataFrame([
        (1, "DIAGNOSTICO", 0, 10, "ner-dx"), (1, "DIAGNOSTICO", 10, 12, "gaz"), (1, "PROCEDIMIENTO", 0, 10, "gaz"),
        (2, "DIAGNOSTICO", 5, 20, "gaz"), (3, "DIAGNOSTICO", 0, 4, "gaz"), (4, None, 0, 3, "gaz"),
    ], SCHEMA)
    assertDataFrameEqual(out, expected)


def test_keep_overlaps_keeps_both_chunks_of_listed_labels_but_not_the_same_span_twice(spark):
    chunks = spark.createDataFrame([
        (1, "DIAGNOSTICO", 0, 10, "gaz"),             # priority 0: kept
        (1, "DIAGNOSTICO", 0, 20, "ner-dx"),          # overlaps, longer, label kept-both: kept
        (1, "DIAGNOSTICO", 0, 10, "ner-dx"),          # the very same span as gaz's: dropped
        (1, "MORFOLOGIA_NEOPLASIA", 30, 40, "gaz"),   # not listed: priority as before
        (1, "MORFOLOGIA_NEOPLASIA", 35, 45, "ner-dx"),  # overlaps gaz's, label not listed: dropped
        (2, None, 0, 3, "ner-dx"),                    # null label: kept
    ], SCHEMA)
    out = recognisers.filter_overlaps(chunks, ["gaz", "ner-dx"], ["DIAGNOSTICO"])
    expected = spark.createDataFrame([
        (1, "DIAGNOSTICO", 0, 10, "gaz"), (1, "DIAGNOSTICO", 0, 20, "ner-dx"),
        (1, "MORFOLOGIA_NEOPLASIA", 30, 40, "gaz"), (2, None, 0, 3, "ner-dx"),
    ], SCHEMA)
    assertDataFrameEqual(out, expected)


def test_single_recogniser_is_untouched(spark):
    chunks = spark.createDataFrame([(1, "A", 0, 5, "m"), (1, "A", 2, 8, "m")], SCHEMA)
    assertDataFrameEqual(recognisers.filter_overlaps(chunks, ["m"]), chunks)


def test_configured_order_alias_and_duplicates(cfg):
    cfg.extract.recognisers = [{"name": "b", "alias": "challenger"}, {"name": "a"}]
    assert recognisers.configured(cfg) == [("b", "challenger"), ("a", "champion")]
    cfg.extract.recognisers = [{"name": "a"}, {"name": "a"}]
    with pytest.raises(UserError, match="twice"):
        recognisers.configured(cfg)


def test_ner_chunks_take_the_entity_label_and_keep_the_longest(spark):
    """NerDL output (no TextMatcher stage): label = the chunk's entity, end exclusive, nested same-label dropped."""
    from pyspark.ml import PipelineModel

    from clinlake import recognise

    annotated = spark.createDataFrame(
        [(7, 100, [("chunk", 3, 9, "cáncer", {"entity": "MORFOLOGIA_NEOPLASIA"}, []),
                   ("chunk", 3, 20, "cáncer de pulmón", {"entity": "MORFOLOGIA_NEOPLASIA"}, []),
                   ("chunk", 3, 9, "cáncer", {"entity": "OTHER"}, [])]), (8, 0, []), (9, 0, None)],
        "note_id long, chunk_offset int, ner_chunk array<struct<annotatorType:string,begin:int,end:int,result:string,"
        "metadata:map<string,string>,embeddings:array<float>>>")
    out = recognise.explode_piece_chunks(annotated, PipelineModel(stages=[]), ["note_id"])
    # piece offsets + the piece's chunk_offset = note offsets
    assertDataFrameEqual(out, spark.createDataFrame([(7, "MORFOLOGIA_NEOPLASIA", 103, 121), (7, "OTHER", 103, 110)],
                                                    "note_id long, label string, offset_start int, offset_end int"))


def test_chunks_take_whole_words_and_the_closing_parenthesis(spark):
    """Spans cut inside a word widen to it; an open '(' right before ')' takes the ')'; others stay as they are."""
    from pyspark.ml import PipelineModel

    from clinlake import recognise

    text = "carcinoma grado 2 (Fuhrman) y ypT0N0M0 en (x) juicio\nMelanoma"
    # Spark NLP ends are inclusive: (begin, end) below are the model's, the expected offsets are end-exclusive
    chunk = ("struct<annotatorType:string,begin:int,end:int,result:string,metadata:map<string,string>,"
             "embeddings:array<float>>")
    annotated = spark.createDataFrame(
        [(7, 0, text, [("chunk", 0, 25, "", {"entity": "M"}, []),       # "... (Fuhrman" -> takes ")"
                       ("chunk", 31, 36, "", {"entity": "M"}, []),      # "pT0N0M" inside "ypT0N0M0"
                       ("chunk", 0, 8, "", {"entity": "O"}, []),        # a whole word: unchanged
                       ("chunk", 41, 42, "", {"entity": "O"}, []),      # " (" with no ")" next: unchanged
                       ("chunk", 53, 60, "", {"entity": "M"}, [])]),    # a word after a line break: unchanged
         (8, 100, None, [("chunk", 0, 3, "", {"entity": "M"}, [])])],   # no text: the model's span, moved
        f"note_id long, chunk_offset int, note_text string, ner_chunk array<{chunk}>")
    out = recognise.explode_piece_chunks(annotated, PipelineModel(stages=[]), ["note_id"])
    assertDataFrameEqual(out, spark.createDataFrame(
        [(7, "M", 0, 27), (7, "M", 30, 38), (7, "O", 0, 9), (7, "O", 41, 43), (7, "M", 53, 61), (8, "M", 100, 104)],
        "note_id long, label string, offset_start int, offset_end int"))


def test_chunks_end_before_punctuation_no_annotator_includes(spark):
    """A trailing comma, colon, unopened ')' or ']' and a sentence's period are left out; "Ca." and "EE.UU." keep
    theirs, an opened ')' stays, and a chunk of punctuation alone keeps its span."""
    from pyspark.ml import PipelineModel

    from clinlake import recognise

    text = ("Carcinoma de pulmón, estadio IV (cT2N2M1), con implantes peritoneales) y Ca. de mama; blastoma tipo II "
            "(sólido-quístico). Viaje a EE.UU. Nódulo M0] tumor: ,")
    cases = [("Carcinoma de pulmón, estadio IV (cT2N2M1),", "Carcinoma de pulmón, estadio IV (cT2N2M1)"),
             ("implantes peritoneales)", "implantes peritoneales"),
             ("Ca.", "Ca."),
             ("blastoma tipo II (sólido-quístico).", "blastoma tipo II (sólido-quístico)"),
             ("EE.UU.", "EE.UU."),
             ("M0]", "M0"),
             ("tumor:", "tumor"),
             (",", ",")]
    chunk = ("struct<annotatorType:string,begin:int,end:int,result:string,metadata:map<string,string>,"
             "embeddings:array<float>>")
    starts = [text.rindex(found) for found, _ in cases]          # the last "," is the lone one
    # Spark NLP ends are inclusive
    annotated = spark.createDataFrame(
        [(1, 0, text, [("chunk", s, s + len(found) - 1, "", {"entity": "M"}, [])
                       for s, (found, _) in zip(starts, cases)]),
         (2, 0, None, [("chunk", 0, 5, "", {"entity": "M"}, [])])],          # no text: the model's span
        f"note_id long, chunk_offset int, note_text string, ner_chunk array<{chunk}>")
    out = recognise.explode_piece_chunks(annotated, PipelineModel(stages=[]), ["note_id"])
    expected = [(1, "M", s, s + len(kept)) for s, (_, kept) in zip(starts, cases)] + [(2, "M", 0, 6)]
    assertDataFrameEqual(out, spark.createDataFrame(expected,
                                                    "note_id long, label string, offset_start int, offset_end int"))


def test_two_recognisers_new_champion_reprocesses_only_that_model(spark, cfg, tmp_path, vocabulary):
    """Two matcher models served together; a new version of one re-runs only it and rebuilds its notes' rows."""
    from jobs import deidentify_notes, extract_concepts, ingest_notes, train_ner

    ns = argparse.Namespace
    # 20 sample notes are plenty for the overlap and reprocessing logic and keep the four extract runs short
    from tests.conftest import sample_notes

    ingest_notes.run(spark, cfg, ns(input=str(sample_notes(tmp_path, 20)), format="json"))
    vocabulary(cfg)
    train_ner.run(spark, cfg, ns(model="gazetteer"))                          # ner-gazetteer-es v1
    cfg.models.recogniser.name = "ner-morph-gaz"
    cfg.models.recogniser.labels = ["MORFOLOGIA_NEOPLASIA"]
    train_ner.run(spark, cfg, ns(model="gazetteer"))                          # ner-morph-gaz v1
    deidentify_notes.run(spark, cfg, ns())
    cfg.extract.recognisers = [{"name": "ner-morph-gaz", "alias": "champion"},
                               {"name": "ner-gazetteer-es", "alias": "champion"}]
    first = extract_concepts.run(spark, cfg, ns(model_alias=None))
    n_notes = first["notes_in_input"]
    assert first["notes_per_model"] == {"ner-morph-gaz@1": n_notes, "ner-gazetteer-es@1": n_notes}
    nlp = spark.read.format("delta").load(lake_path(cfg, "note_nlp"))
    systems = {r[0] for r in nlp.select("nlp_system").distinct().collect()}
    assert systems == {"ner-morph-gaz@1", "ner-gazetteer-es@1"}
    # Same-label overlaps were resolved in favour of the first-listed model: none remain across systems.
    a, b = nlp.alias("a"), nlp.alias("b")
    clashes = a.join(b, (F.col("a.note_id") == F.col("b.note_id")) & (F.col("a.label") == F.col("b.label"))
                     & (F.col("a.nlp_system") != F.col("b.nlp_system"))
                     & (F.col("a.offset_start") < F.col("b.offset_end")) & (F.col("b.offset_start") < F.col("a.offset_end")))
    assert clashes.count() == 0
    gaz_rows = nlp.filter(F.col("nlp_system") == "ner-gazetteer-es@1").select("note_nlp_id").collect()

    assert extract_concepts.run(spark, cfg, ns(model_alias=None))["notes_processed"] == 0

    train_ner.run(spark, cfg, ns(model="gazetteer"))                          # ner-morph-gaz v2
    from mlflow import MlflowClient

    from clinlake import tracking
    tracking.configure(cfg)
    MlflowClient().set_registered_model_alias("ner-morph-gaz", "challenger", "2")
    # An evaluation by alias judges the challenger inside the pipeline it would join (others stay champions).
    assert recognisers.with_alias(cfg, "challenger") == [("ner-morph-gaz", "challenger"),
                                                         ("ner-gazetteer-es", "champion")]
    with pytest.raises(UserError, match="alias 'nope'"):
        recognisers.with_alias(cfg, "nope")
    MlflowClient().set_registered_model_alias("ner-morph-gaz", "champion", "2")
    again = extract_concepts.run(spark, cfg, ns(model_alias=None))
    assert again["notes_per_model"] == {"ner-morph-gaz@2": n_notes, "ner-gazetteer-es@1": 0}
    nlp = spark.read.format("delta").load(lake_path(cfg, "note_nlp"))
    systems = {r[0] for r in nlp.select("nlp_system").distinct().collect()}
    assert systems == {"ner-morph-gaz@2", "ner-gazetteer-es@1"}
    # The unchanged model's rows are rebuilt from its stored chunks: same ids, no duplicates.
    assert sorted(nlp.filter(F.col("nlp_system") == "ner-gazetteer-es@1").select("note_nlp_id").collect()) \
        == sorted(gaz_rows)
    assert nlp.count() == nlp.select("note_nlp_id").distinct().count()


def test_filter_votes_keeps_chunks_enough_members_gave(spark):
    chunks = spark.createDataFrame([
        (1, "M", 0, 10, 0), (1, "M", 0, 10, 1), (1, "M", 0, 10, 2),   # three votes: kept once
        (1, "M", 0, 12, 0), (1, "M", 0, 12, 2),                       # two votes: kept
        (1, "M", 20, 30, 1),                                          # one vote: dropped
        (1, "D", 0, 10, 1),                                           # same span, other label: its own vote
        (2, "M", 0, 12, 0), (2, "M", 0, 12, 0),                       # one member twice is still one vote
        (3, None, 0, 3, 0), (3, None, 0, 3, 1),                       # null label: compared like any value
    ], SCHEMA.replace("model_name string", "member int"))
    out = recognisers.filter_votes(chunks, 2)
    assertDataFrameEqual(out, spark.createDataFrame(
        [(1, "M", 0, 10), (1, "M", 0, 12), (3, None, 0, 3)],
        "note_id long, label string, offset_start int, offset_end int"))
    assert recognisers.filter_votes(chunks, 1).count() == 6
    # a `mean` column is averaged over the voters instead of splitting the chunk
    kept_t = "note_id long, label string, offset_start int, offset_end int, score double"
    scored = spark.createDataFrame([(1, "M", 0, 10, 0.5, 0), (1, "M", 0, 10, 0.75, 1), (2, "M", 0, 4, 0.9, 0)],
                                   kept_t + ", member int")
    assertDataFrameEqual(recognisers.filter_votes(scored, 2, ["score"]),
                         spark.createDataFrame([(1, "M", 0, 10, 0.625)], kept_t))


def test_vote_configuration(cfg):
    cfg.extract.recognisers = [{"name": "m", "alias": "champion", "vote": {"members": ["s2", "s3"]}},
                               {"name": "g", "alias": "champion"}]
    assert recognisers.voting(cfg) == {"m": (["s2", "s3"], 2, "")}        # default: a strict majority of three
    cfg.extract.recognisers = [{"name": "m", "vote": {"members": ["s2"], "min_votes": 3}}]
    with pytest.raises(UserError, match="min_votes"):
        recognisers.voting(cfg)
    cfg.extract.recognisers = [{"name": "m", "vote": {"members": []}}]
    with pytest.raises(UserError, match="members"):
        recognisers.voting(cfg)
    assert recognisers.vote_of({"members": ["s2", "s3", "s4"]}, "deid.vote") == (["s2", "s3", "s4"], 3)
    with pytest.raises(UserError, match="deid.vote needs members"):
        recognisers.vote_of({"members": ["s2"], "min_votes": 0}, "deid.vote")
    # one version and its CRF are a vote of two: by default both must give a chunk
    assert recognisers.vote_of({"members": [], "crf": "champion"}, "v") == ([], 2)
    assert recognisers.combine_of({"members": ["s2"]}, "deid.vote") == "spans"
    assert recognisers.combine_of({"members": ["s2"], "combine": "tokens"}, "deid.vote") == "tokens"
    with pytest.raises(UserError, match=r"deid.vote.combine must be one of spans, tokens, spans\+tokens, got .chars."):
        recognisers.combine_of({"members": ["s2"], "combine": "chars"}, "deid.vote")
    cfg.extract.recognisers = [{"name": "m", "vote": {"members": ["s2"], "combine": "tokens"}}]
    with pytest.raises(UserError, match="served for deid.vote only"):
        recognisers.voting(cfg)
    # a CRF voter on spans: its alias comes back, and it counts in the majority (2 of 3) and in the bound
    cfg.extract.recognisers = [{"name": "m", "vote": {"members": ["s2"], "crf": "champion"}}]
    assert recognisers.voting(cfg) == {"m": (["s2"], 2, "champion")}
    cfg.extract.recognisers = [{"name": "m", "vote": {"members": ["s2"], "min_votes": 3, "crf": "champion"}}]
    assert recognisers.voting(cfg) == {"m": (["s2"], 3, "champion")}
    cfg.extract.recognisers = [{"name": "m", "vote": {"members": ["s2"], "min_votes": 3}}]
    with pytest.raises(UserError, match=r"min_votes <= the voters \(2\)"):
        recognisers.voting(cfg)


def test_an_ensemble_names_its_versions_combination_and_a_non_majority_count():
    def ref(n: int, min_votes: int, combine: str = "spans") -> str:
        members = tuple((None, f"deid-ner-es@{v}") for v in [2, 1, 3, 4, 5][:n])
        return recognisers.Ensemble(members, min_votes, combine).ref

    assert ref(3, 2) == "deid-ner-es@2+1+3"                        # the majority: the name it always had
    assert ref(3, 1) == "deid-ner-es@2+1+3:1"                      # another count gives other spans: another system
    assert ref(5, 3, "spans+tokens") == "deid-ner-es@2+1+3+4+5#spans+tokens"
    assert ref(5, 2, "spans+tokens") == "deid-ner-es@2+1+3+4+5:2#spans+tokens"
    assert ref(3, 1, "tokens") == "deid-ner-es@2+1+3#tokens"       # the token vote counts nothing
    # deid's CRF votes too: named after the NerDL versions, and counted in the majority (4 of 6)
    from clinlake.crf import CrfMember

    members = tuple((None, f"deid-ner-es@{v}") for v in [2, 1, 3, 4, 5])
    crf = CrfMember(b"", "deid-crf-es@1")
    with_crf = lambda k: recognisers.Ensemble(members, k, "spans+tokens", crf).ref  # noqa: E731
    assert with_crf(2) == "deid-ner-es@2+1+3+4+5:2#spans+tokens,deid-crf-es@1"
    assert with_crf(4) == "deid-ner-es@2+1+3+4+5#spans+tokens,deid-crf-es@1"
    assert recognisers.vote_of({"members": ["a", "b"], "crf": "champion"}, "deid.vote") == (["a", "b"], 3)
    assert recognisers.vote_of({"members": ["a", "b"], "min_votes": 4, "crf": "champion"}, "deid.vote")[1] == 4
    with pytest.raises(UserError, match=r"min_votes <= the voters \(3\)"):
        recognisers.vote_of({"members": ["a", "b"], "min_votes": 4}, "deid.vote")


def test_versions_of_one_recogniser_vote_as_one(spark, cfg, tmp_path, vocabulary):
    """Three registered versions served as one recogniser: its chunks are those two versions give, its ref names
    all three, and aliases that share a version vote once (too few left is an error)."""
    from mlflow import MlflowClient

    from clinlake import tracking
    from jobs import train_ner
    from tests.conftest import sample_notes

    vocabulary(cfg)
    tracking.configure(cfg)
    cfg.models.recogniser.name = "ner-morph-gaz"
    cfg.models.recogniser.labels = ["MORFOLOGIA_NEOPLASIA", "DIAGNOSTICO"]
    for v, min_chars in (("1", 3), ("2", 6), ("3", 12)):       # three phrase lists: the versions disagree
        cfg.models.recogniser.min_chars = min_chars
        train_ner.run(spark, cfg, argparse.Namespace(model="gazetteer"))
        MlflowClient().set_registered_model_alias("ner-morph-gaz", f"s{v}", v)
    cfg.extract.recognisers = [{"name": "ner-morph-gaz", "alias": "champion",
                                "vote": {"members": ["s2", "s3"], "min_votes": 2}}]
    [(ensemble, ref)] = recognisers.load(cfg)
    assert ref == "ner-morph-gaz@1+2+3"
    rows = [json.loads(x) for x in sample_notes(tmp_path, 30).read_text(encoding="utf-8").splitlines()]
    notes = spark.createDataFrame([(i, r["note_text"]) for i, r in enumerate(rows)], "note_id long, note_text string") \
        .withColumn("text_sha256", F.sha2("note_text", 256))
    got = recognisers.recognise_chunks(notes, ensemble, ref)
    assert {r["nlp_system"] for r in got.select("nlp_system").distinct().collect()} == {ref}
    votes: dict = {}
    for model, member in ensemble.members:
        one = recognisers.recognise_chunks(notes, model, member).select(*recognisers.CHUNK_KEYS).distinct()
        for r in one.collect():
            votes[tuple(r)] = votes.get(tuple(r), 0) + 1
    want = {k for k, n in votes.items() if n >= 2}
    assert 1 in votes.values() and want                      # the versions disagree, and agree on something
    assert {tuple(r) for r in got.select(*recognisers.CHUNK_KEYS).collect()} == want
    MlflowClient().set_registered_model_alias("ner-morph-gaz", "s3", "1")   # s3 now names the champion's version
    cfg.extract.recognisers[0]["vote"]["min_votes"] = 3
    with pytest.raises(UserError, match="2 distinct versions"):
        recognisers.load(cfg)
    # The recogniser's CRF as a third voter (`crf: <alias>`, registered as <name>-crf): trained here on version 1's
    # chunks of half the notes, it tags the first member's tokens; a chunk two of the three voters give is kept.
    import mlflow

    from omegaconf import OmegaConf
    from pyspark.ml import PipelineModel

    from clinlake.corpora.types import Corpus
    from clinlake.crf import MODEL_FILE, fit, log_and_register, predict_mentions, sequences, tokenise
    from clinlake.ner.data import LabelledSplit

    first = ensemble.members[0][0]
    cut = [type(s).__name__ for s in first.stages].index("TokenizerModel")
    texts = {str(r["note_id"]): r["note_text"] for r in notes.collect()}
    tokens = tokenise(spark, PipelineModel(stages=first.stages[:cut + 1]), texts)
    v1 = recognisers.recognise_chunks(notes, first, "ner-morph-gaz@1").collect()
    spans: dict = {k: [] for k in texts}
    for r in v1:
        spans[str(r["note_id"])].append((r["label"], r["offset_start"], r["offset_end"]))
    half = sorted(texts)[: len(texts) // 2]
    train = LabelledSplit({k: texts[k] for k in half}, {k: spans[k] for k in half}, Corpus(notes={}))
    with mlflow.start_run():
        fit(sequences(train, tokens), OmegaConf.create({"c1": 0.1, "c2": 0.01, "max_iterations": 30}),
            tmp_path / MODEL_FILE)
        crf_version = log_and_register(tmp_path / MODEL_FILE, "ner-morph-gaz-crf")
    MlflowClient().set_registered_model_alias("ner-morph-gaz-crf", "champion", crf_version)
    cfg.extract.recognisers = [{"name": "ner-morph-gaz", "alias": "champion",
                                "vote": {"members": ["s2"], "min_votes": 2, "crf": "champion"}}]
    [(ensemble, ref)] = recognisers.load(cfg)
    assert ref == "ner-morph-gaz@1+2,ner-morph-gaz-crf@1" and ensemble.voters == 3
    crf_said = predict_mentions((tmp_path / MODEL_FILE).read_bytes(), texts, tokens)
    votes: dict = {}
    for model, member in ensemble.members:
        one = recognisers.recognise_chunks(notes, model, member).select(*recognisers.CHUNK_KEYS).distinct()
        for r in one.collect():
            votes[tuple(r)] = votes.get(tuple(r), 0) + 1
    versions_alone = dict(votes)
    for doc, found in crf_said.items():
        for m in {(int(doc), m.label, m.start, m.end) for m in found}:
            votes[m] = votes.get(m, 0) + 1
    want = {k for k, n in votes.items() if n >= 2}
    got = recognisers.recognise_chunks(notes, ensemble, ref)
    assert {tuple(r) for r in got.select(*recognisers.CHUNK_KEYS).collect()} == want
    # the CRF's vote decides some chunks: kept though only one version gave them
    assert any(versions_alone.get(k) == 1 for k in want)
    cfg.extract.recognisers[0]["vote"]["crf"] = "no-such-alias"
    with pytest.raises(UserError, match="ner-morph-gaz-crf@no-such-alias"):
        recognisers.load(cfg)
