"""Gazetteer from annotated corpora, its synonyms, and the reviewed-corrections overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import functions as F

from clinlake import omop
from clinlake.vocab.gazetteer import (
    GAZETTEER,
    apply_corrections,
    build_gazetteer,
    gazetteer_synonyms,
    load_corrections,
    read_gazetteer,
)
from clinlake.vocab.normalize import normalize

ROOT = Path(__file__).resolve().parent.parent
CODIESP_X = (
    "D1\tDIAGNOSTICO\tn44.8\tteste derecho aumentado de tamaño\t1343 1376\n"
    "D1\tDIAGNOSTICO\tr60.9\tedemas\t1250 1256\n"
    "D1\tDIAGNOSTICO\tr60.9\tedemas\t1250 1256\n"  # verbatim duplicate row, as in CodiEsp-X
    "D2\tDIAGNOSTICO\tr60.9\tedemas\t10 16\n"
    "D2\tPROCEDIMIENTO\tbw03zzz\tRx tórax\t2163 2171\n"
    "D2\tPROCEDIMIENTO\t3e02329\tEstreptomicina intramuscular\t2787 2801;2810 2823\n"
)
BRAT = "T1\tMORFOLOGIA_NEOPLASIA 0 21\tCarcinoma microcítico\n#1\tAnnotatorNotes T1\t8041/3\nT2\tMORFOLOGIA_NEOPLASIA 30 32\tM0\n"


@pytest.fixture()
def corpus(tmp_path):
    x = tmp_path / "trainX.tsv"
    x.write_text(CODIESP_X, encoding="utf-8")
    brat = tmp_path / "cantemist"
    brat.mkdir()
    (brat / "cc1.txt").write_text("Carcinoma microcítico y M0", encoding="utf-8")
    (brat / "cc1.ann").write_text(BRAT, encoding="utf-8")
    return x, brat


def test_build_gazetteer_counts_and_codes(spark, corpus):
    x, brat = corpus
    gaz = build_gazetteer(spark, [x], [brat])
    assert gaz.schema == GAZETTEER
    rows = {(r.mention, r.concept_code): r for r in gaz.collect()}
    assert rows[("edemas", "R60.9")]["count"] == 2  # duplicate row counted once, two documents
    assert rows[("edemas", "R60.9")].mention_norm == normalize("edemas")
    assert rows[("Rx tórax", "BW03ZZZ")].vocabulary_id == "ICD10PCS"
    assert rows[("Rx tórax", "BW03ZZZ")].mention_norm == "radiografia torax"
    assert rows[("Carcinoma microcítico", "8041/3")].source == "cantemist"
    assert not any(m == "M0" for m, _ in rows)  # no code note: not in the gazetteer


def test_gazetteer_synonyms_only_for_known_concepts(spark, corpus):
    x, brat = corpus
    gaz = build_gazetteer(spark, [x], [brat])
    concept = spark.createDataFrame(
        [(2000000001, "ICD10CM", "R60.9"), (2000000002, "ICDO3", "8041/3")], "concept_id int, vocabulary_id string, concept_code string")
    syn = gazetteer_synonyms(gaz, concept, "train")
    assert syn.schema == omop.CONCEPT_SYNONYM
    got = {(r.concept_id, r.concept_synonym_name, r.language_concept_id) for r in syn.collect()}
    assert got == {(2000000001, "edemas", omop.LANGUAGE_SPANISH), (2000000002, "Carcinoma microcítico", omop.LANGUAGE_SPANISH)}


def test_corrections_override_the_gazetteer(spark, corpus, tmp_path):
    x, brat = corpus
    gaz = build_gazetteer(spark, [x], [brat])
    csv_path = tmp_path / "reviewed.csv"
    csv_path.write_text(
        "mention,label,code,decision\n"
        "Edemas,DIAGNOSTICO,r60.9,rejected\n"  # normalised key matches the gazetteer's 'edemas'
        "edema en piernas,DIAGNOSTICO,r60.0,accept\n"
        "\"tumor, SAI\",MORFOLOGIA_NEOPLASIA,8000/1,Approved\n"
        "ruido,DIAGNOSTICO,r68.8,maybe\n",  # unknown decision: dropped
        encoding="utf-8",
    )
    corr = load_corrections(spark, csv_path)
    assert {r.decision for r in corr.collect()} == {"accept", "reject"}
    out = apply_corrections(gaz, corr)
    assert out.schema == GAZETTEER
    rows = {(r.mention_norm, r.concept_code): r for r in out.collect()}
    assert ("edemas", "R60.9") not in rows
    assert rows[("edema piernas", "R60.0")].source == "review"
    assert rows[("tumor sai", "8000/1")].vocabulary_id == "ICDO3"
    assert ("ruido", "R68.8") not in rows
    assert rows[("radiografia torax", "BW03ZZZ")]["count"] == 1  # untouched rows survive


def test_sample_gazetteer_matches_build_gazetteer(spark, shared_dir):
    sample = read_gazetteer(spark, ROOT / "sample" / "vocab" / "gazetteer.tsv")
    assert sample.schema == GAZETTEER
    corpora = shared_dir / "corpora"
    built = build_gazetteer(spark, [corpora / "codiesp" / "train" / "trainX.tsv"],
                            [corpora / "cantemist" / "train", corpora / "cantemist" / "dev2"])  # dev1 held out
    cols = ["mention", "label", "vocabulary_id", "concept_code", "count", "source"]
    assert sample.select(cols).exceptAll(built.select(cols)).count() == 0
    assert built.select(cols).exceptAll(sample.select(cols)).count() == 0
    assert sample.filter(F.col("mention_norm") == "").count() == 0


def test_phrase_precision_counts_longest_matches_only():
    from clinlake.vocab.gazetteer import phrase_key, phrase_precision

    texts = ["Masa renal derecha. Función renal normal; riñón: masa renal.", "Sin masa, RENAL."]
    counts = phrase_precision(texts, annotated=["masa renal", "Masa  Renal", "renal"],
                              phrases=["masa renal", "renal", "masa", "fiebre"])
    # "renal" inside the two "masa renal" occurrences is not an occurrence of its own (the matcher takes the longest);
    # "masa, RENAL" is no "masa renal" (the comma is a token)
    assert counts == {"masa renal": (2, 2), "renal": (1, 2), "masa": (0, 1), "fiebre": (0, 0)}
    assert phrase_key("  Síndrome de LYNCH, ") == "síndrome de lynch ," and phrase_key("  ") == ""


def test_phrases_by_label_drops_low_precision_phrases(spark):
    from clinlake.recognise import phrase_key_col, phrases_by_label
    from clinlake.vocab.gazetteer import phrase_key

    gaz = spark.createDataFrame(
        [("Renal", "DIAGNOSTICO", 5), ("Carcinoma, NOS", "DIAGNOSTICO", 0), ("masa renal", "DIAGNOSTICO", 2),
         ("Síndrome de Lynch", "DIAGNOSTICO", 1), ("renal", "MORFOLOGIA_NEOPLASIA", 1), ("HTA", "DIAGNOSTICO", 9),
         (None, "DIAGNOSTICO", 1)],
        "mention string, label string, count long")
    prec = spark.createDataFrame(
        [("renal", "DIAGNOSTICO", 2, 167), ("masa renal", "DIAGNOSTICO", 2, 2),
         ("síndrome de lynch", "DIAGNOSTICO", 0, 2), ("hta", "DIAGNOSTICO", 1, 10), (None, None, None, None)],
        "phrase_key string, label string, annotated long, occurrences long")
    labels = ["DIAGNOSTICO", "MORFOLOGIA_NEOPLASIA"]
    assert phrases_by_label(gaz, labels, 1, 3, prec, 0.25, 3) == {
        "DIAGNOSTICO": ["Síndrome de Lynch", "masa renal"],   # "Lynch": too few occurrences to judge; HTA 10 %
        "MORFOLOGIA_NEOPLASIA": ["renal"]}                   # precision is per label
    assert phrases_by_label(gaz, labels, 1, 3, prec, 0.0)["DIAGNOSTICO"] == [
        "HTA", "Renal", "Síndrome de Lynch", "masa renal"]
    # the Spark key and the Python key (which wrote the TSV) agree, punctuation and accents included
    rows = gaz.select("mention", phrase_key_col(F.col("mention")).alias("k")).collect()
    assert [r["k"] for r in rows] == [None if r["mention"] is None else phrase_key(r["mention"]) for r in rows]
