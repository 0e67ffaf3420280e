"""docs/queries/*.sql (shown in docs/analyst_queries.md) run against the small lake; answers checked in Python."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import pytest

from clinlake import catalog
from jobs.sql import run_sql
from tests.test_catalog_fixtures import small_lake  # noqa: F401 - shared session fixture

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "docs" / "queries"


@pytest.fixture(scope="module")
def lake(spark, small_lake):
    catalog.register_all(spark, small_lake.cfg)
    return small_lake


def query(spark, name: str) -> list[dict]:
    return [r.asDict() for r in run_sql(spark, (QUERIES / f"{name}.sql").read_text()).collect()]


def test_every_query_is_on_the_page_verbatim():
    page = (ROOT / "docs" / "analyst_queries.md").read_text()
    files = sorted(QUERIES.glob("*.sql"))
    assert 4 <= len(files) <= 6
    for f in files:
        assert f.read_text().strip() in page, f"{f.name} differs from docs/analyst_queries.md"


def test_top_codes_by_vocabulary(spark, lake):
    got = query(spark, "top_codes_by_vocabulary")
    counts = defaultdict(int)
    for r in lake.rows["note_nlp"]:
        counts[(r["vocabulary_id"], r["concept_code"])] += 1
    for vocab in {v for v, _ in counts}:
        ranked = sorted(((-n, code) for (v, code), n in counts.items() if v == vocab))[:5]
        mine = [(-g["mentions"], g["concept_code"]) for g in got if g["vocabulary_id"] == vocab]
        assert mine == ranked
    names = {c["concept_code"]: c["concept_name"] for c in lake.rows["concept"]}
    assert all(g["concept_name"] == names[g["concept_code"]] for g in got)


def test_negation_uncertainty_by_note_type(spark, lake):
    got = {g["note_title"]: g for g in query(spark, "negation_uncertainty_by_note_type")}
    title = {n["note_id"]: n["note_title"] for n in lake.rows["note_deid"]}
    per = defaultdict(list)
    for r in lake.rows["note_nlp"]:
        per[title[r["note_id"]]].append(r)
    assert set(got) == set(per)
    for t, rs in per.items():
        assert got[t]["mentions"] == len(rs)
        assert isinstance(got[t]["negated_rate"], float)  # plots and pandas want numbers, not Decimal
        assert float(got[t]["negated_rate"]) == pytest.approx(sum(r["negated"] for r in rs) / len(rs), abs=6e-4)
        assert float(got[t]["uncertain_rate"]) == pytest.approx(
            sum(r["certainty"] != "certain" for r in rs) / len(rs), abs=6e-4)


def test_diabetes_last_year_by_age_band(spark, lake):
    today = dt.date.today()
    notes = {n["note_id"]: n for n in lake.rows["note_deid"]}
    born = {p["person_id"]: p["year_of_birth"] for p in lake.rows["person"]}
    people = {notes[r["note_id"]]["person_id"] for r in lake.rows["note_nlp"]
              if r["vocabulary_id"] == "ICD10CM" and r["concept_code"][:3] in ("E08", "E09", "E10", "E11", "E13")
              and not r["negated"] and notes[r["note_id"]]["note_date"] >= today - dt.timedelta(days=365)}
    bands = defaultdict(int)
    for p in people:
        age = today.year - born[p]
        bands["00-39" if age < 40 else "40-64" if age < 65 else "65+"] += 1
    assert people, "fixture should hold at least one recent diabetes mention"
    assert {g["age_band"]: g["patients"] for g in query(spark, "diabetes_last_year_by_age_band")} == dict(bands)


def test_notes_per_year(spark, lake):
    got = {g["year"]: g for g in query(spark, "notes_per_year")}
    present = {r["note_id"] for r in lake.rows["note_nlp"] if r["term_exists"] == "Y"}
    for year in {n["note_date"].year for n in lake.rows["note_deid"]}:
        ns = [n for n in lake.rows["note_deid"] if n["note_date"].year == year]
        assert got[year]["notes"] == len(ns)
        assert got[year]["patients"] == len({n["person_id"] for n in ns})
        assert got[year]["notes_with_concepts"] == sum(n["note_id"] in present for n in ns)
    assert sum(g["notes"] for g in got.values()) == len(lake.rows["note_deid"])


def test_type2_diabetes_cohort_uses_the_hierarchy(spark, lake):
    ids = {c["concept_id"]: c for c in lake.rows["concept"]}
    e11 = next(c["concept_id"] for c in lake.rows["concept"] if c["concept_code"] == "E11")
    codes = {ids[a["descendant_concept_id"]]["concept_code"] for a in lake.rows["concept_ancestor"]
             if a["ancestor_concept_id"] == e11}
    person = {n["note_id"]: n["person_id"] for n in lake.rows["note_deid"]}
    hits = [r for r in lake.rows["note_nlp"] if r["concept_code"] in codes and r["term_exists"] == "Y"]
    (got,) = query(spark, "type2_diabetes_cohort")
    assert got["patients"] == len({person[r["note_id"]] for r in hits}) > 0
    assert got["notes"] == len({r["note_id"] for r in hits})
