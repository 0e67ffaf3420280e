"""Trained resolver: candidate generation (exact + char 3-gram neighbours), leave-one-out ranker training, serving
through with_codes (top-k, calibrated score, ICD-9-CM via GEMs), registry round trip and exact-match fallback."""

from __future__ import annotations

import argparse
import logging

import pytest
from pyspark.sql import functions as F

from clinlake import resolve
from clinlake.resolver import index as ix
from clinlake.resolver import ranker as rk

LV = {"DIAGNOSTICO": "ICD10CM", "MORFOLOGIA_NEOPLASIA": "ICDO3"}

GAZ = [  # mention, label, vocabulary_id, code, count, source
    ("carcinoma ductal infiltrante", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8500/3", 5, "cantemist"),
    ("adenocarcinoma", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8140/3", 4, "cantemist"),
    ("metástasis", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8000/6", 6, "cantemist"),
    ("metástasis", "MORFOLOGIA_NEOPLASIA", "ICDO3", "8010/6", 1, "cantemist"),
    ("neumonía", "DIAGNOSTICO", "ICD10CM", "J18.9", 3, "codiesp"),
    ("neumonía bilateral", "DIAGNOSTICO", "ICD10CM", "J18.9", 1, "codiesp"),
    ("hipertensión arterial", "DIAGNOSTICO", "ICD10CM", "I10", 4, "codiesp"),
    ("fiebre", "DIAGNOSTICO", "ICD10CM", "R50.9", 3, "codiesp"),
]
CONCEPTS = [  # concept_id, vocabulary_id, code, name, class
    (1, "ICDO3", "8500/3", "Carcinoma ductal infiltrante, SAI", "ICDO Histology"),
    (2, "ICDO3", "8140/3", "Adenocarcinoma, SAI", "ICDO Histology"),
    (3, "ICDO3", "8000/6", "Neoplasia metastásica", "ICDO Histology"),
    (4, "ICDO3", "8010/6", "Carcinoma metastásico, SAI", "ICDO Histology"),
    (5, "ICDO3", "8720/3", "Melanoma maligno, SAI", "ICDO Histology"),          # never annotated in training
    (10, "ICD10CM", "J18.9", "Pneumonia, unspecified organism", "4-char billing code"),
    (11, "ICD10CM", "I10", "Essential (primary) hypertension", "3-char billing code"),
    (12, "ICD10CM", "R50.9", "Fever, unspecified", "4-char billing code"),
    (13, "ICD10CM", "N39.0", "Urinary tract infection, site not specified", "4-char billing code"),
    (14, "ICD10CM", "J00-J99", "Diseases of the respiratory system", "ICD10 Chapter"),
    (15, "ICD10CM", "K26", "Duodenal ulcer", "3-char nonbill code"),                  # a header: coders use a leaf
    (16, "ICD10CM", "K26.9", "Duodenal ulcer, unspecified as acute or chronic, without hemorrhage or perforation",
     "4-char billing code"),
    (20, "ICD9CM", "486", "Pneumonia, organism unspecified", "3-dig billing code"),
    (21, "ICD9CM", "401.9", "Unspecified essential hypertension", "4-dig billing code"),
]
SYNONYMS = [  # concept_id, name (Spanish WHO names + one gazetteer-derived synonym, as build_vocabulary writes)
    (13, "Infección de vías urinarias, sitio no especificado"),
    (15, "Úlcera duodenal"),
    (10, "Neumonía, no especificada"),
    (5, "Melanoma maligno"),
    (1, "carcinoma ductal infiltrante"),
]
GEMS = [(10, 20, "ICD10CM - ICD9CM eq"), (11, 21, "ICD10CM - ICD9CM apx"), (10, 11, "Is a")]


@pytest.fixture()
def vocab(spark):
    """Inline gazetteer, concept, concept_synonym and concept_relationship frames."""
    gaz = spark.createDataFrame(GAZ, "mention string, label string, vocabulary_id string, concept_code string, "
                                     "count long, source string")
    concept = spark.createDataFrame(CONCEPTS, "concept_id int, vocabulary_id string, concept_code string, "
                                              "concept_name string, concept_class_id string") \
        .withColumn("invalid_reason", F.lit(None).cast("string"))
    syn = spark.createDataFrame(SYNONYMS, "concept_id int, concept_synonym_name string")
    rel = spark.createDataFrame(GEMS, "concept_id_1 int, concept_id_2 int, relationship_id string")
    return {"gazetteer": gaz, "concept": concept, "concept_synonym": syn, "concept_relationship": rel}


@pytest.fixture()
def index(vocab):
    """Index parts over the inline vocabulary (max_df high: every gram retrievable)."""
    return resolve.build_index(vocab["gazetteer"], vocab["concept"], vocab["concept_synonym"], LV, max_df=1000)


def _mentions(spark, rows):
    return spark.createDataFrame(rows, "label string, mention_norm string")


def test_char_grams_and_dice(spark):
    row = spark.range(1).select(ix.char_grams(F.lit("abca")).alias("g"), ix.char_grams(F.lit("")).alias("e"),
                                ix.dice(ix.char_grams(F.lit("fiebre")), ix.char_grams(F.lit("fiebre"))).alias("same"),
                                ix.dice(ix.char_grams(F.lit("fiebre")), ix.char_grams(F.lit("xyz"))).alias("none")
                                ).first()
    assert sorted(row["g"]) == sorted([" ab", "abc", "bca", "ca "])
    assert row["e"] == []
    assert row["same"] == pytest.approx(1.0) and row["none"] == 0.0


def test_terms_keep_vocabulary_evidence_but_not_gazetteer_synonyms(index):
    terms = {(r["label"], r["term_norm"], r["concept_code"]): (r["gaz_count"], r["syn"])
             for r in index["terms"].collect()}
    # the synonym row that build_vocabulary derived from the gazetteer is not vocabulary evidence
    assert terms[("MORFOLOGIA_NEOPLASIA", "carcinoma ductal infiltrante", "8500/3")] == (5, 0)
    assert terms[("MORFOLOGIA_NEOPLASIA", "melanoma maligno", "8720/3")] == (0, 1)
    assert terms[("DIAGNOSTICO", "neumonia", "J18.9")] == (3, 0)
    assert not any(code == "J00-J99" for _, _, code in terms)       # chapter ranges are not codes
    assert not any(code == "486" for _, _, code in terms)           # ICD-9 is not a target of any label


def test_candidates_reach_codes_never_seen_in_training(spark, index):
    ments = _mentions(spark, [("MORFOLOGIA_NEOPLASIA", "melanomas malignos"), ("DIAGNOSTICO", "neumonia"),
                              ("DIAGNOSTICO", "infeccion vias urinarias")])
    got = {(r["mention_norm"], r["concept_code"]): r for r in
           ix.candidates(ments, index["terms"], index["postings"], index["grams"], rare_grams=8, pool=20, top_n=5)
           .collect()}
    assert got[("melanomas malignos", "8720/3")]["sim_syn"] > 0.5            # unseen code through a WHO-style name
    assert got[("infeccion vias urinarias", "N39.0")]["sim_syn"] > 0.5
    exact = got[("neumonia", "J18.9")]
    assert exact["exact_gaz_count"] == 3 and exact["sim_gaz"] > 0           # exact + neighbour "neumonia bilateral"
    assert all(lab != "neumonia" or code != "8720/3" for lab, code in got)  # labels never mix vocabularies


def test_word_stems_meet_an_adjective_and_its_noun(spark):
    row = spark.range(1).select(*[ix.word_stems(F.lit(t)).alias(a) for a, t in (
        ("adj", "absceso pulmonar"), ("noun", "absceso pulmon"), ("renal", "colico renal"), ("rinon", "colico rinon"),
        ("empty", ""))]).first()
    assert row["adj"] == row["noun"] == ["absce", "pulmo"]
    assert row["renal"] == row["rinon"] == ["colic", "rinon"]          # no shared prefix: the adjective table
    assert row["empty"] == []


def test_neighbour_features_prefer_the_term_with_every_word(spark):
    gaz = spark.createDataFrame([("absceso cutáneo", "DIAGNOSTICO", "ICD10CM", "L02.91", 6, "codiesp"),
                                 ("absceso cutáneo abdominal", "DIAGNOSTICO", "ICD10CM", "L02.211", 1, "codiesp"),
                                 ("absceso de pulmón", "DIAGNOSTICO", "ICD10CM", "J85.2", 1, "codiesp"),
                                 ("neumonía", "DIAGNOSTICO", "ICD10CM", "J18.9", 3, "codiesp")],
                                "mention string, label string, vocabulary_id string, concept_code string, "
                                "count long, source string")
    empty = spark.createDataFrame([], "concept_id int, vocabulary_id string, concept_code string, concept_name string, "
                                      "concept_class_id string, invalid_reason string")
    idx = resolve.build_index(gaz, empty, spark.createDataFrame([], "concept_id int, concept_synonym_name string"),
                              {"DIAGNOSTICO": "ICD10CM"}, max_df=1000)
    got = {r["concept_code"]: r for r in ix.candidates(_mentions(spark, [("DIAGNOSTICO", "absceso pulmonar")]),
                                                       idx["terms"], idx["postings"], idx["grams"], 8, 20, 5).collect()}
    assert got["J85.2"]["wsim_gaz"] == pytest.approx(1.0) and got["L02.91"]["wsim_gaz"] == pytest.approx(0.5)
    assert got["J85.2"]["head"] == got["L02.91"]["head"] == 1.0
    # the category vote: L02.91 and L02.211 share "L02", so each carries the other's similarity
    both = got["L02.91"]["sum_sim"] + got["L02.211"]["sum_sim"]
    assert got["L02.91"]["cat_sim"] == pytest.approx(both) and got["L02.211"]["cat_sim"] == pytest.approx(both)
    assert got["J85.2"]["sum_sim"] > 0 and got["J85.2"]["cat_sim"] == pytest.approx(got["J85.2"]["sum_sim"])
    assert "J18.9" not in got or got["J18.9"]["head"] == 0.0


def test_training_examples_leave_the_occurrence_out(spark, vocab, index):
    ex = rk.training_examples(vocab["gazetteer"], index["terms"], index["postings"], index["grams"], list(LV),
                              rare_grams=8, pool=20, top_n=5)
    rows = {(r["mention_norm"], r["gold_code"], r["concept_code"]): r for r in ex.collect()}
    # metastasis: 6 x 8000/6, 1 x 8010/6. The 8010/6 occurrence no longer sees its own count:
    minority = rows[("metastasis", "8010/6", "8000/6")]
    assert minority["exact_gaz_count"] == 6 and minority["y"] == 0.0 and minority["w"] == 1
    assert ("metastasis", "8010/6", "8010/6") not in rows or rows[("metastasis", "8010/6", "8010/6")]["exact_gaz_count"] == 0
    major = rows[("metastasis", "8000/6", "8000/6")]
    assert major["exact_gaz_count"] == 5 and major["y"] == 1.0 and major["f_share"] == pytest.approx(5 / 6)
    # annotated once: after leave-one-out the mention is unknown and only vocabulary/neighbour evidence remains
    once = [r for k, r in rows.items() if k[0] == "neumonia bilateral"]
    assert once and all(r["f_known"] == 0.0 for r in once)
    assert any(r["y"] == 1.0 and r["sim_gaz"] > 0 for r in once)


@pytest.mark.parametrize("kind", ["lr", "gbt"])
def test_ranker_orders_candidates_and_scores_are_probabilities(spark, vocab, index, kind):
    # cached as resolve.train caches them for train_resolver: each stage of the ML pipeline's fit re-reads its input
    ex = rk.training_examples(vocab["gazetteer"], index["terms"], index["postings"], index["grams"], list(LV),
                              rare_grams=8, pool=20, top_n=5).cache()
    model = rk.fit(ex, kind=kind, gbt={"max_iter": 10})
    assert type(model.stages[-1]).__name__ == {"lr": "LogisticRegressionModel", "gbt": "GBTClassificationModel"}[kind]
    res = resolve.Resolver(ref="t@1", ranker=model, params={**resolve.DEFAULTS, "pool": 20, "top_n": 5}, **index)
    top = resolve.ranked_candidates(_mentions(spark, [("MORFOLOGIA_NEOPLASIA", "metastasis"),
                                                      ("MORFOLOGIA_NEOPLASIA", "melanoma maligno")]), res, 3)
    by = {}
    for r in top.collect():
        by.setdefault(r["mention_norm"], []).append(r)
    for rows in by.values():
        rows.sort(key=lambda r: r["rank"])
        assert all(0.0 <= r["p"] <= 1.0 for r in rows)
        assert [r["p"] for r in rows] == sorted((r["p"] for r in rows), reverse=True)
    if kind == "lr":   # 18 examples: enough for a linear score's signs, too few for trees to learn the same rules
        assert by["metastasis"][0]["concept_code"] == "8000/6"           # the majority annotation wins
        assert by["melanoma maligno"][0]["concept_code"] == "8720/3"     # exact vocabulary synonym, never annotated
    ex.unpersist()


def test_unknown_ranker_kind_is_refused():
    with pytest.raises(ValueError, match="resolver.ranker must be one of lr, gbt"):
        rk.build_pipeline(kind="svm")
    with pytest.raises(ValueError, match="unknown: max_dept"):
        rk.build_pipeline(kind="gbt", gbt={"max_dept": 3})


def test_out_of_fold_scores_do_not_remember_their_own_examples(spark):
    import random

    from sklearn.metrics import roc_auc_score

    rnd = random.Random(5)   # features with no signal: whatever a ranker learns of y here is memory
    rows = [("DIAGNOSTICO" if i % 2 else "MORFOLOGIA_NEOPLASIA", f"m{i}", "G", *[rnd.random() for _ in rk.FEATURES],
             float(rnd.random() < 0.5), 1) for i in range(240)]
    ex = spark.createDataFrame(rows, ["label", "mention_norm", "gold_code", *rk.FEATURES, "y", "w"]).cache()
    gbt = {"max_depth": 5, "max_iter": 10}
    own = rk.with_probability(ex, rk.fit(ex, kind="gbt", gbt=gbt)).select("mention_norm", "y", "p").collect()
    oof = rk.out_of_fold_probability(ex, 2, kind="gbt", gbt=gbt).select("mention_norm", "y", "p").collect()
    assert sorted(r["mention_norm"] for r in oof) == sorted(r["mention_norm"] for r in own)   # each scored once
    in_sample = roc_auc_score([r["y"] for r in own], [r["p"] for r in own])
    held_out = roc_auc_score([r["y"] for r in oof], [r["p"] for r in oof])
    assert in_sample > 0.75 and held_out < 0.65                         # trees remember; other folds cannot
    ex.unpersist()


def test_top1_calibrator_fits_the_groups_and_its_column_form_agrees(spark):
    import math
    import random

    rnd = random.Random(3)
    rows = []   # one group per (mention, gold): a right top code is likelier the wider its lead over the runner-up
    for i in range(400):
        lab = "DIAGNOSTICO" if i % 2 else "MORFOLOGIA_NEOPLASIA"
        p1, gap = rnd.uniform(0.05, 0.95), rnd.uniform(0.0, 0.9)
        right = rnd.random() < 1 / (1 + math.exp(-(4 * gap - 1)))
        rows += [(lab, f"m{i}", "G", "G" if right else "X", p1, 1.0 if right else 0.0, 1, 0),
                 (lab, f"m{i}", "G", "Z", max(p1 - gap, 0.0), 0.0, 1, 0)]
    scored = spark.createDataFrame(rows, "label string, mention_norm string, gold_code string, concept_code string, "
                                         "p double, y double, w long, review int")
    cal = rk.fit_top1_calibrator(scored, sorted(LV))
    assert cal["labels"] == sorted(LV) and len(cal["coef"]) == 2 * len(LV) + 2
    assert cal["coef"][len(LV) + 1] > 0                                 # the gap counts for the top code
    probe = spark.createDataFrame([("DIAGNOSTICO", 0.6, 0.55), ("DIAGNOSTICO", 0.6, 0.0), ("OTRA", 0.6, 0.0),
                                   ("MORFOLOGIA_NEOPLASIA", None, None)], "label string, p double, p2 double")
    got = probe.select(rk.calibrated(F.col("label"), F.col("p"), F.col("p2"), cal).alias("q")).collect()
    near, wide, other, null = (r["q"] for r in got)
    assert 0 < near < wide < 1 and 0 < other < 1 and null is None
    lg = math.log(0.6 / 0.4)    # the Column form is the fitted logistic: recompute the wide row by hand
    x = rk._calibration_row("DIAGNOSTICO", lg, 0.6, sorted(LV))
    z = cal["intercept"] + sum(c * v for c, v in zip(cal["coef"], x))
    assert wide == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-6)
    one_class = scored.withColumn("y", F.lit(0.0)).withColumn("gold_code", F.lit("none"))
    assert rk.fit_top1_calibrator(one_class, sorted(LV)) is None


def test_with_codes_fallback_index_and_icd9_equivalents(spark, vocab):
    chunks = spark.createDataFrame([(1, "DIAGNOSTICO", "Neumonía"), (1, "DIAGNOSTICO", "HTA"),
                                    (2, "DIAGNOSTICO", "algo raro")], "note_id long, label string, lexical_variant string")
    index = resolve.gazetteer_index(vocab["gazetteer"])
    out = {r["lexical_variant"]: r for r in resolve.with_codes(
        chunks, index, vocab["concept"], vocab["concept_relationship"], LV).collect()}
    assert out["Neumonía"]["concept_code"] == "J18.9" and out["Neumonía"]["note_nlp_source_concept_id"] == 10
    assert out["Neumonía"]["icd9cm_codes"] == ["486"]
    assert out["HTA"]["concept_code"] == "I10" and out["HTA"]["icd9cm_codes"] == ["401.9"]   # abbreviation expanded
    assert out["algo raro"]["concept_code"] is None and out["algo raro"]["icd9cm_codes"] == []
    assert out["algo raro"]["vocabulary_id"] == "ICD10CM" and out["algo raro"]["note_nlp_source_concept_id"] == 0


def test_train_register_and_serve_by_alias(spark, cfg, vocab, monkeypatch, caplog):
    from clinlake.config import lake_path
    from jobs import train_resolver

    for name, df in vocab.items():
        df.write.format("delta").mode("overwrite").save(lake_path(cfg, name))
    none, ref0 = resolve.load_resolver(spark, cfg)
    assert ref0 == resolve.EXACT_SYSTEM and none.ranker is None          # nothing registered yet: fallback
    summary = train_resolver.run(spark, cfg, argparse.Namespace())
    assert summary["version"] == "1" and summary["champion"] is True
    assert summary["loo_acc1_morfologia_neoplasia"] >= summary["loo_acc1_exact_morfologia_neoplasia"]
    res, ref = resolve.load_resolver(spark, cfg)
    assert ref == "resolver-es@1" and res.ranker is not None
    # the terms' aggregates that every call needs are stored with the version and served from there
    assert set(resolve.DERIVED_PARTS) <= set(summary["index_versions"])
    assert set(res.derived) == set(resolve.DERIVED_PARTS)
    chunks = spark.createDataFrame([(1, "MORFOLOGIA_NEOPLASIA", "melanoma maligno"),
                                    (1, "MORFOLOGIA_NEOPLASIA", "adenocarcinoma ductal metastásico"),
                                    (1, "DIAGNOSTICO", "neumonía"), (1, "DIAGNOSTICO", "úlcera duodenal")],
                                   "note_id long, label string, lexical_variant string")
    out = {r["lexical_variant"]: r for r in resolve.with_codes(
        chunks, res, vocab["concept"], vocab["concept_relationship"], LV).collect()}
    # the Spanish name sits on the header K26; the version's leaf map serves its unspecified leaf, once
    assert summary["index_versions"]["leaf_map"] >= 0 and summary["leaf_map_unspecified_rows"] == 1
    ulcer = out["úlcera duodenal"]
    assert ulcer["concept_code"] == "K26.9" and ulcer["note_nlp_source_concept_id"] == 16
    assert [c["concept_code"] for c in ulcer["candidates"]].count("K26.9") == 1
    assert [c["rank"] for c in ulcer["candidates"]] == list(range(1, len(ulcer["candidates"]) + 1))
    assert out["melanoma maligno"]["concept_code"] == "8720/3" and out["melanoma maligno"]["note_nlp_source_concept_id"] == 5
    # the version's ICD-O-3 classifier (the four tumour mention/code pairs) codes the unseen tumour mention
    from clinlake.resolver.icdo import compose
    from clinlake.vocab.normalize import normalize, normalize_col
    from udfs.icdo_classify import model_for, predict_codes

    assert summary["index_versions"]["icdo_classifier"] >= 0 and summary["icdo_classifier_examples"] == 4
    unseen = normalize("adenocarcinoma ductal metastásico")
    assert out["adenocarcinoma ductal metastásico"]["concept_code"] == compose(
        predict_codes(model_for(res.icdo_classifier), [unseen])[0], unseen)
    assert 0 < out["neumonía"]["score"] <= 1 and out["neumonía"]["icd9cm_codes"] == ["486"]
    cands = out["neumonía"]["candidates"]
    assert cands[0]["concept_code"] == "J18.9" and [c["rank"] for c in cands] == list(range(1, len(cands) + 1))
    # the phrase counts of conf models.recogniser.precision (sample/vocab/gazetteer_precision.tsv) travel with the
    # version: "melanoma maligno" annotated 19 of 19 times (CANTEMIST train + dev2) -> 20/21; "neumonía" counts 18/8
    # -> capped at 1
    assert summary["index_versions"]["phrases"] >= 0
    assert out["melanoma maligno"]["phrase_precision"] == pytest.approx(20 / 21)
    assert out["neumonía"]["phrase_precision"] == 1.0
    # what was served is cached under this version's and settings' key; the next call resolves only its new
    # mentions, and a cached row is served as it stands (tampered with here, to show it is read back, not recomputed)
    from delta.tables import DeltaTable

    cache, key = lake_path(cfg, "resolver_cache"), resolve.cache_key(res, int(res.params["top_k"]))
    cached = lambda: spark.read.format("delta").load(cache).filter(F.col("resolver_key") == key)  # noqa: E731
    assert cached().count() == 4 and {r["resolver"] for r in cached().collect()} == {"resolver-es@1"}
    DeltaTable.forPath(spark, cache).update(F.col("mention_norm") == "neumonia", {"concept_code": F.lit("J99")})
    cached().filter(F.col("mention_norm") == "melanoma maligno").write.format("delta").mode("append").save(cache)
    # "qqqq" has no candidate at all: cached as such (null code), so the next call does not try it again
    more = chunks.unionByName(spark.createDataFrame([(2, "DIAGNOSTICO", "fiebre"), (2, "DIAGNOSTICO", "qqqq")],
                                                    chunks.schema))
    served = resolve.with_codes(more, res, vocab["concept"], vocab["concept_relationship"], LV).collect()
    assert len(served) == 6 and cached().count() == 7   # two new mentions resolved; a duplicate row read once
    assert cached().filter(F.col("mention_norm") == "qqqq").first()["concept_code"] is None
    again = {r["lexical_variant"]: r for r in served}
    assert again["neumonía"]["concept_code"] == "J99" and again["fiebre"]["concept_code"] is not None
    assert again["qqqq"]["concept_code"] is None
    assert {v: r["concept_code"] for v, r in again.items() if v not in ("neumonía", "fiebre", "qqqq")} == \
        {v: r["concept_code"] for v, r in out.items() if v != "neumonía"}
    with caplog.at_level(logging.INFO, logger="clinlake.resolve"):
        assert resolve.with_codes(more, res, vocab["concept"], vocab["concept_relationship"], LV).count() == 6
    assert cached().count() == 7 and "6 distinct mentions, 0 resolved now, 6 from the resolver cache" in caplog.text
    DeltaTable.forPath(spark, cache).update(F.col("mention_norm") == "neumonia", {"concept_code": F.lit("J18.9")})
    from omegaconf import OmegaConf

    assert resolve.load_resolver(spark, OmegaConf.merge(cfg, {"resolver": {"cache": False}}))[0].cache_path is None
    # a retrain overwrites the index tables, but version 1 still serves its own pinned snapshot
    vocab["gazetteer"].filter(F.col("mention") != "fiebre").write.format("delta").mode("overwrite") \
        .save(lake_path(cfg, "gazetteer"))
    assert train_resolver.run(spark, cfg, argparse.Namespace())["champion"] is False
    # the alias is resolved once: index tags and ranker come from that one version (no second lookup by alias)
    from clinlake import tracking

    from mlflow import MlflowClient

    monkeypatch.setattr(tracking, "resolve_alias", lambda *a: pytest.fail(f"alias resolved again: {a}"))
    again, ref1 = resolve.load_resolver(spark, cfg)
    assert ref1 == "resolver-es@1"
    assert again.terms.filter(F.col("term_norm") == "fiebre").count() == 1
    assert again.icdo_classifier == res.icdo_classifier
    # the version serves with the retrieval settings it was trained at, whatever the configuration says now
    assert {k: int(v) for k, v in MlflowClient().get_model_version("resolver-es", "1").tags.items()
            if k.startswith("retrieval_")} == {f"retrieval_{k}": int(resolve.settings(cfg)[k])
                                               for k in resolve.RETRIEVAL}
    narrow = OmegaConf.merge(cfg, {"resolver": {"pool": 3, "top_n": 1, "rare_grams": 2}})
    assert {k: resolve.load_resolver(spark, narrow)[0].params[k] for k in resolve.RETRIEVAL} == \
        {k: int(resolve.settings(cfg)[k]) for k in resolve.RETRIEVAL}
    # a version trained before the stem channel (no tag) was ranked without it and is served without it
    assert int(resolve.settings(cfg)["stem_top_n"]) > 0
    MlflowClient().delete_model_version_tag("resolver-es", "1", "retrieval_stem_top_n")
    assert resolve.load_resolver(spark, cfg)[0].params["stem_top_n"] == 0
    MlflowClient().set_model_version_tag("resolver-es", "1", "retrieval_stem_top_n",
                                         str(resolve.settings(cfg)["stem_top_n"]))
    # stem postings stored by another word_stems are not served (derived in the call again); a version trained
    # before the aggregates were stored serves without them
    MlflowClient().set_model_version_tag("resolver-es", "1", resolve.STEMS_TAG, "another")
    assert set(resolve.load_resolver(spark, cfg)[0].derived) == {"term_set", "code_counts"}
    MlflowClient().set_model_version_tag("resolver-es", "1", resolve.STEMS_TAG, ix.STEMS_FINGERPRINT)
    stored = MlflowClient().get_model_version("resolver-es", "1").tags["index_version_term_set"]
    MlflowClient().delete_model_version_tag("resolver-es", "1", "index_version_term_set")
    assert resolve.load_resolver(spark, cfg)[0].derived is None
    MlflowClient().set_model_version_tag("resolver-es", "1", "index_version_term_set", stored)
    # the version's top-1 calibrator scores its top codes; turned off, the ranker's p does
    assert summary["top1_calibrator"] is True and res.calibrator["labels"] == sorted(cfg.extract.label_vocabularies)
    plain = OmegaConf.merge(cfg, {"resolver": {"top1_calibrator": False}})
    raw, _ = resolve.load_resolver(spark, plain)
    assert raw.calibrator is None
    pneumonia = chunks.filter(F.col("lexical_variant") == "neumonía")
    ranked = {r["rank"]: r["p"] for r in resolve.ranked_candidates(pneumonia.select("label", normalize_col(
        F.col("lexical_variant")).alias("mention_norm")), raw, 5).collect()}
    expected = spark.range(1).select(rk.calibrated(F.lit("DIAGNOSTICO"), F.lit(ranked[1]), F.lit(ranked.get(2, 0.0)),
                                                   res.calibrator).alias("q")).first()["q"]
    assert out["neumonía"]["score"] == pytest.approx(expected)
    unscored = {r["lexical_variant"]: r for r in resolve.with_codes(
        chunks, raw, vocab["concept"], vocab["concept_relationship"], LV).collect()}
    assert unscored["neumonía"]["score"] == pytest.approx(ranked[1])
    assert unscored["neumonía"]["concept_code"] == out["neumonía"]["concept_code"]
    # default leaves off at serving: the ranker's header code comes back
    headers = OmegaConf.merge(cfg, {"resolver": {"default_leaves": []}})
    as_ranked = resolve.load_resolver(spark, headers)[0]
    assert as_ranked.leaf_map is None
    assert resolve.with_codes(chunks.filter(F.col("lexical_variant") == "úlcera duodenal"), as_ranked,
                              vocab["concept"], vocab["concept_relationship"], LV).first()["concept_code"] == "K26"
    # the setting off: the version's classifier is not even read

    off = OmegaConf.merge(cfg, {"resolver": {"icdo_classifier": False}})
    with monkeypatch.context() as m:
        m.setattr(resolve, "_read_icdo_classifier", lambda *a: pytest.fail("classifier read with the setting off"))
        assert resolve.load_resolver(spark, off)[0].icdo_classifier is None
    # a classifier fitted on other features than this code computes is not served: its weights would misread them
    from clinlake import delta

    client = MlflowClient()
    path = f"{client.get_model_version('resolver-es', '1').tags['index_path']}/icdo_classifier"
    spark.createDataFrame([(bytearray(res.icdo_classifier), "words-0", 4)],
                          "model binary, features string, examples int") \
        .write.format("delta").mode("overwrite").save(path)
    client.set_model_version_tag("resolver-es", "1", "index_version_icdo_classifier", str(delta.version(spark, path)))
    with caplog.at_level(logging.WARNING, logger="clinlake.resolve"):
        stale, _ = resolve.load_resolver(spark, cfg)
    assert stale.icdo_classifier is None and "fitted on features 'words-0'" in caplog.text
    # the run that trained version 1 names the classifier's settings
    params = client.get_run(summary["run_id"]).data.params
    assert (params["icdo_classifier"], params["icdo_classifier_c"]) == ("True", "3.0")


def test_stem_channel_reaches_a_name_the_character_neighbours_miss(spark):
    gaz = spark.createDataFrame([("carcinoma orofaríngeo", "DIAGNOSTICO", "ICD10CM", "C10.9", 3, "codiesp"),
                                 ("carcinoma oral", "DIAGNOSTICO", "ICD10CM", "C06.9", 2, "codiesp")],
                                "mention string, label string, vocabulary_id string, concept_code string, "
                                "count long, source string")
    concept = spark.createDataFrame([(1, "ICD10CM", "C56.9", "Malignant neoplasm of unspecified ovary",
                                      "4-char billing code", None)],
                                    "concept_id int, vocabulary_id string, concept_code string, concept_name string, "
                                    "concept_class_id string, invalid_reason string")
    synonym = spark.createDataFrame([(1, "Tumor maligno del ovario")], "concept_id int, concept_synonym_name string")
    idx = resolve.build_index(gaz, concept, synonym, {"DIAGNOSTICO": "ICD10CM"}, max_df=1000)
    ments = _mentions(spark, [("DIAGNOSTICO", "carcinoma ovarico"), ("DIAGNOSTICO", None)])

    def codes(stem_top_n: int) -> dict:
        return {r["concept_code"]: r for r in ix.candidates(ments, idx["terms"], idx["postings"], idx["grams"], 8, 20,
                                                            1, stem_top_n=stem_top_n).collect()}
    chars, both = codes(0), codes(3)
    assert "C56.9" not in chars and len(chars) == 1                  # one character neighbour: a carcinoma
    assert set(both) == {"C10.9", "C06.9", "C56.9"}
    assert both["C56.9"]["wsim_syn"] == pytest.approx(0.4)          # stems {carci, ovari} vs {tumor, malig, ovari}
    assert both["C56.9"]["sim_syn"] > 0 and both["C56.9"]["head"] == 0.0


def test_stored_term_aggregates_give_the_same_candidates(spark, index):
    from pyspark.testing import assertDataFrameEqual

    # mentions that are terms themselves (their own keys are discounted through the term set), unseen ones, a null
    ments = _mentions(spark, [("DIAGNOSTICO", "neumonia"), ("DIAGNOSTICO", "neumonia bilateral derecha"),
                              ("MORFOLOGIA_NEOPLASIA", "melanomas malignos"), ("MORFOLOGIA_NEOPLASIA", "metastasis"),
                              ("DIAGNOSTICO", None)])
    derived = ix.derived_parts(index["terms"])
    assert set(derived) == set(resolve.DERIVED_PARTS)
    counts = {(r["label"], r["concept_code"]): r["code_count"] for r in derived["code_counts"].collect()}
    assert counts[("MORFOLOGIA_NEOPLASIA", "8000/6")] == 6 and counts[("DIAGNOSTICO", "J18.9")] == 4
    assert {"neumo", "bilat"} <= {r["gram"] for r in derived["stem_postings"]
                                  .filter(F.col("term_norm") == "neumonia bilateral").collect()}
    args = dict(rare_grams=8, pool=20, top_n=5, stem_top_n=3)
    assertDataFrameEqual(ix.candidates(ments, index["terms"], index["postings"], index["grams"], **args,
                                       derived=derived),
                         ix.candidates(ments, index["terms"], index["postings"], index["grams"], **args))


def test_bench_resolver_reads_a_tsv_of_mentions_and_refuses_bad_input(tmp_path, capsys):
    from tests.script_modules import load_script

    bench = load_script("bench_resolver")
    tsv = tmp_path / "mentions.tsv"
    tsv.write_text("label\ttext\nDIAGNOSTICO\tneumonía\nMORFOLOGIA_NEOPLASIA\tmelanoma maligno\nDIAGNOSTICO\t\n",
                   encoding="utf-8")
    assert bench.read_mentions(tsv, None) == [("DIAGNOSTICO", "neumonía"), ("MORFOLOGIA_NEOPLASIA", "melanoma maligno")]
    bad = tmp_path / "bad.tsv"
    bad.write_text("mention\tcode\nfiebre\tR50.9\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="label and text"):
        bench.read_mentions(bad, None)
    with pytest.raises(SystemExit, match="--corpus"):
        bench.read_mentions(tmp_path, None)
    with pytest.raises(SystemExit, match="no such file"):
        bench.read_mentions(tmp_path / "missing.tsv", None)
    with pytest.raises(SystemExit):
        bench.main(["--data", str(tsv), "--sizes", "-1"])
    assert "sizes must be >= 0" in capsys.readouterr().err
