"""Vocabulary loaders on the bundled sample (and the Eunomia zip when ../shared is present)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from clinlake import omop
from clinlake.vocab import ids as ids_mod
from clinlake.vocab.ids import assign_concept_ids, with_concept_ids
from clinlake.vocab.loaders import (
    PCS_PREFIX_CLASS,
    load_athena,
    load_cie10_who_es,
    load_icd9cm,
    load_icd10cm,
    load_icd10pcs,
    load_icdo3,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample" / "vocab"
SCHEMAS = {
    "concept": omop.CONCEPT,
    "concept_synonym": omop.CONCEPT_SYNONYM,
    "concept_relationship": omop.CONCEPT_RELATIONSHIP,
    "concept_ancestor": omop.CONCEPT_ANCESTOR,
}


def _assert_omop(tables: dict, version: str | None = None) -> None:
    """Exact schema equality with clinlake/omop.py, and the version filled in where the table has one."""
    for key, df in tables.items():
        assert df.schema == SCHEMAS[key], key
    if version is not None:
        df = tables["concept"]  # every loader here returns concept; its version column must carry `version`
        assert df.select("vocabulary_version").first()[0] == version


@pytest.fixture(scope="module")
def icd10cm(spark):
    return load_icd10cm(spark, SAMPLE / "icd10cm", "ICD10CM sample")


def test_icd10cm_concepts_hierarchy_and_synonyms(icd10cm):
    _assert_omop(icd10cm, "ICD10CM sample")
    concept = icd10cm["concept"]
    rows = {r.concept_code: r for r in concept.filter(F.col("concept_code").isin(
        "N44.8", "S02.0XX", "A00-B99")).collect()}
    assert set(rows) == {"N44.8", "S02.0XX", "A00-B99"}
    assert all(r.concept_id > 2_000_000_000 and r.vocabulary_id == "ICD10CM" for r in rows.values())
    assert rows["A00-B99"].concept_class_id == "ICD10 Chapter"
    cid = {c: r.concept_id for c, r in rows.items()}
    anc = icd10cm["concept_ancestor"]
    # S02.0XXA: placeholder-padded 7th-character code generated from sevenChrDef, under the stem S02.0XX
    s02 = concept.filter("concept_code = 'S02.0XXA'").select("concept_id").first()
    assert s02 is not None
    levels = {r.ancestor_concept_id: r.min_levels_of_separation
              for r in anc.filter(F.col("descendant_concept_id") == s02.concept_id).collect()}
    assert levels[cid["S02.0XX"]] == 1 and levels[s02.concept_id] == 0
    rel = icd10cm["concept_relationship"].filter(F.col("concept_id_1") == cid["S02.0XX"]).collect()
    assert {(r.relationship_id, r.concept_id_2) for r in rel} >= {("Subsumes", s02.concept_id)}
    # every concept name is a synonym, plus the inclusion terms
    syn = icd10cm["concept_synonym"]
    assert syn.filter(F.col("language_concept_id") == omop.LANGUAGE_ENGLISH).limit(1).count() == 1
    n_syn, n_concept = syn.count(), concept.count()
    assert n_syn > n_concept  # name of every concept + inclusion terms


def test_loader_ids_match_pure_python_assignment(icd10cm):
    pairs = icd10cm["concept"].select("concept_code", "concept_id").collect()
    expected = assign_concept_ids("ICD10CM", [r.concept_code for r in pairs])
    assert {r.concept_code: r.concept_id for r in pairs} == expected


def test_spark_ids_equal_python_ids_under_forced_collisions(spark, monkeypatch):
    monkeypatch.setattr(ids_mod, "PRIMARY_SIZE", 40)
    codes = [f"K{i:03d}" for i in range(150)]
    df = spark.createDataFrame([(c,) for c in codes], "concept_code string")
    got = {r.concept_code: r.concept_id for r in with_concept_ids(df, "ICD10PCS").collect()}
    assert got == assign_concept_ids("ICD10PCS", codes)


def test_icd10pcs_prefixes(spark):
    t = load_icd10pcs(spark, SAMPLE / "icd10pcs", "PCS sample")
    _assert_omop(t, "PCS sample")
    concept = t["concept"]
    prefixes = {r.concept_code: r for r in concept.filter(F.col("concept_class_id") == PCS_PREFIX_CLASS).collect()}
    assert prefixes and {len(c) for c in prefixes} == {3, 4}
    # a prefix name is a word prefix shared by its codes' descriptions
    code4 = next(c for c in sorted(prefixes) if len(c) == 4)
    names = [r.concept_name for r in concept.filter(F.col("concept_code").startswith(code4) & (F.length("concept_code") == 7)).collect()]
    assert names and all(n.startswith(prefixes[code4].concept_name) for n in names)
    rel = t["concept_relationship"].filter(F.col("concept_id_1") == prefixes[code4].concept_id).filter("relationship_id = 'Subsumes'")
    assert rel.count() == len(names)


def test_icd9_with_gems(spark, icd10cm):
    t = load_icd9cm(spark, SAMPLE / "icd9cm", "ICD9 sample", gem_path=SAMPLE / "gem", icd10cm_concept=icd10cm["concept"])
    _assert_omop(t, "ICD9 sample")
    concept = t["concept"]
    assert {r.vocabulary_id for r in concept.select("vocabulary_id").distinct().collect()} == {"ICD9CM", "ICD9Proc"}
    # CMS codes come without dots; Athena's (and ours) have them
    cm9 = [r.concept_code for r in concept.filter("vocabulary_id = 'ICD9CM'").collect()]
    assert all(re.fullmatch(r"(\d{3}|V\d{2}|E\d{3})(\.\d{1,2})?", c) for c in cm9)
    assert any("." in c for c in cm9)
    gem_ids = {r.relationship_id for r in t["concept_relationship"].select("relationship_id").distinct().collect()}
    assert {"ICD10CM - ICD9CM eq", "ICD9CM - ICD10CM eq"} <= gem_ids
    assert gem_ids <= {f"{a} - {b} {k}" for a, b in (("ICD10CM", "ICD9CM"), ("ICD9CM", "ICD10CM"))
                       for k in ("eq", "apx", "cmb")}


def test_who_spanish_synonyms_attach_to_icd10cm(spark, icd10cm):
    t = load_cie10_who_es(spark, SAMPLE / "cie10-who-es", "WHO es sample", icd10cm["concept"])
    _assert_omop(t, "WHO es sample")
    cm_ids = icd10cm["concept"].select("concept_id")
    es = t["concept_synonym"].filter(F.col("language_concept_id") == omop.LANGUAGE_SPANISH)
    on_cm = es.join(cm_ids, "concept_id", "left_semi").count()
    assert on_cm > 0
    # WHO-only codes are their own concepts in their own block, never duplicating an ICD10CM code
    own = t["concept"]
    assert own.filter(F.col("vocabulary_id") != "CIE10ES-WHO").count() == 0
    assert own.join(icd10cm["concept"].select("concept_code"), "concept_code", "left_semi").count() == 0


def test_icdo3(spark):
    t = load_icdo3(spark, SAMPLE / "cie-o-3", "CIE-O-3.1 sample")
    _assert_omop(t, "CIE-O-3.1 sample")
    c = {r.concept_code: r.concept_id for r in t["concept"].filter(F.col("concept_code").isin("8140/3", "8140/31")).collect()}
    assert set(c) == {"8140/3", "8140/31"}
    isa = t["concept_relationship"].filter((F.col("concept_id_1") == c["8140/31"]) & (F.col("relationship_id") == "Is a"))
    assert [r.concept_id_2 for r in isa.collect()] == [c["8140/3"]]
    syn = [r.concept_synonym_name for r in t["concept_synonym"].filter(F.col("concept_id") == c["8140/3"]).collect()]
    assert "Adenocarcinoma" in syn  # 'Adenocarcinoma, SAI' without ', SAI'


def test_athena_tab_folder_sample(spark):
    t = load_athena(spark, SAMPLE / "athena")
    _assert_omop(t)
    concept = t["concept"]
    with open(SAMPLE / "athena" / "CONCEPT.csv", encoding="utf-8") as fh:
        n_file = sum(1 for _ in fh) - 1
    assert concept.count() == n_file
    row = concept.orderBy("concept_id").first()
    assert row.valid_start_date is not None and row.vocabulary_version  # yyyyMMdd parsed, version from VOCABULARY.csv
    assert t["concept_relationship"].count() > 0 and t["concept_synonym"].count() == 0


def test_athena_comma_zip_and_tab_give_same_concepts(spark, shared_dir, tmp_path):
    zip_path = shared_dir / "vocab" / "omop-eunomia" / "Synthea27Nj_5.4.zip"
    comma = load_athena(spark, zip_path, "eunomia", extract_dir=tmp_path / "x")
    _assert_omop(comma, "eunomia")
    # rewrite CONCEPT.csv the way Athena exports it (tab, yyyyMMdd, no quotes) and compare
    tab_dir = tmp_path / "tab"
    tab_dir.mkdir()
    with open(tmp_path / "x" / "CONCEPT.csv", encoding="utf-8", newline="") as src, \
            open(tab_dir / "CONCEPT.csv", "w", encoding="utf-8") as dst:
        for i, row in enumerate(csv.reader(src)):
            if i:
                row = [v.replace("-", "") if j in (7, 8) else v for j, v in enumerate(row)]
            dst.write("\t".join(row) + "\n")
    tab = load_athena(spark, tab_dir, "eunomia")
    assert set(tab) == {"concept"}
    assert tab["concept"].exceptAll(comma["concept"]).count() == 0
    assert comma["concept"].count() == tab["concept"].count() > 2000
    assert comma["concept"].filter("standard_concept = ''").count() == 0  # "" is NULL
