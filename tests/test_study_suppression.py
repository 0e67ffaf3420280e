"""Small-cell suppression: no published cell below the threshold, no suppressed cell recoverable by differencing."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinlake.study.cohort import Aggregates
from clinlake.study.definition import parse_study
from clinlake.study.suppression import PRIMARY, Relation, feasible_ranges, suppress
from clinlake.study.tables import OTHER, build_tables, publishable

K = 5


def two_way(table: list[list[int]]) -> tuple[dict[str, int], list[Relation]]:
    """Cells, row/column margins and grand total of a count table; zero cells are absent, like absent strata."""
    values, rels = {}, []
    rows, cols = len(table), len(table[0])
    for i, j in itertools.product(range(rows), range(cols)):
        if table[i][j] > 0:
            values[f"c{i}.{j}"] = table[i][j]
    for i in range(rows):
        parts = tuple(f"c{i}.{j}" for j in range(cols) if table[i][j] > 0)
        if parts:
            values[f"r{i}"] = sum(table[i])
            rels.append(Relation(f"r{i}", parts))
    for j in range(cols):
        parts = tuple(f"c{i}.{j}" for i in range(rows) if table[i][j] > 0)
        if parts:
            values[f"k{j}"] = sum(row[j] for row in table)
            rels.append(Relation(f"k{j}", parts))
    total = sum(map(sum, table))
    if total:
        values["t"] = total
        rels.append(Relation("t", tuple(f"r{i}" for i in range(rows) if sum(table[i]) > 0)))
        rels.append(Relation("t", tuple(f"k{j}" for j in range(cols) if sum(r[j] for r in table) > 0)))
    return values, rels


def linearly_determined(values: dict[str, int], rels: list[Relation], hidden: set[str]) -> set[str]:
    """Hidden cells fixed by the linear system alone (independent check: zero in every null-space vector)."""
    cells = sorted(hidden)
    if not cells:
        return set()
    col = {c: i for i, c in enumerate(cells)}
    rows = []
    for r in rels:
        row = np.zeros(len(cells))
        for m, sign in [(r.total, 1.0)] + [(p, -1.0) for p in r.parts]:
            if m in hidden:
                row[col[m]] += sign
        rows.append(row)
    a = np.array(rows) if rows else np.zeros((1, len(cells)))
    _, s, vt = np.linalg.svd(a)
    rank = int((s > 1e-9).sum())
    null = vt[rank:]  # basis of the null space
    return {c for c in cells if null.shape[0] == 0 or np.all(np.abs(null[:, col[c]]) < 1e-9)}


counts = st.integers(min_value=0, max_value=40).map(lambda v: v if v % 3 else min(v, 4))  # many small cells
tables = st.integers(1, 5).flatmap(lambda r: st.integers(1, 5).flatmap(
    lambda c: st.lists(st.lists(counts, min_size=c, max_size=c), min_size=r, max_size=r)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables)
def test_suppressed_cells_cannot_be_recovered(table):
    values, rels = two_way(table)
    hidden = suppress(values, rels, K)
    published = {c: v for c, v in values.items() if c not in hidden}
    assert all(v >= K for v in published.values()), "a published cell is below the threshold"
    assert all(0 < values[c] < K for c, why in hidden.items() if why == PRIMARY)
    assert all(c in hidden for c, v in values.items() if 0 < v < K)
    for r in rels:  # every relation holding a suppressed cell holds at least one more
        inside = [m for m in r.members if m in hidden]
        assert len(inside) != 1, f"{inside[0]} = difference in {r}"
    assert not linearly_determined(values, rels, set(hidden))
    for c, (lo, hi) in feasible_ranges(values, rels, hidden).items():  # nor pinned once rows are known >= 1
        assert hi - lo >= 0.5, (c, lo, hi)


def test_two_ones_in_a_row_are_not_left_pinned_by_positivity():
    # row: 1 + 1 + 20 = 22; the pair rule alone would publish 20 and 22, giving x + y = 2 and so x = y = 1
    values = {"a": 1, "b": 1, "c": 20, "t": 22}
    rels = [Relation("t", ("a", "b", "c"))]
    hidden = suppress(values, rels, K)
    assert {"a", "b"} <= set(hidden) and len(hidden) == 3


def test_single_small_cell_gets_a_complement_and_totals_stay():
    values, rels = two_way([[2, 30, 40], [25, 35, 45]])
    hidden = suppress(values, rels, K)
    assert hidden["c0.0"] == PRIMARY
    assert "t" not in hidden and len(hidden) >= 4  # a 2x2 rectangle of hidden cells is the cheapest cover


def test_nothing_small_nothing_hidden():
    values, rels = two_way([[12, 30], [25, 35]])
    assert suppress(values, rels, K) == {}


def _study(**extra):
    data = {"id": "s", "cohort": {"concepts": [{"vocabulary_id": "ICD10CM", "concept_code": "I10"}]},
            "strata": {"note_type": "note_title"},
            "outputs": [{"type": "cohort_counts", "name": "by_age_sex", "strata": ["age_band", "sex"]},
                        {"type": "cohort_counts", "name": "by_sex_year", "strata": ["sex", "year"]},
                        {"type": "cohort_counts", "name": "by_title", "strata": ["note_type"]},
                        {"type": "counts_over_time", "name": "over_time"}]}
    data.update(extra)
    return parse_study(data)


def _index(rows):
    df = pd.DataFrame(rows, columns=["age_band", "sex", "year", "note_type", "n"])
    df["month"] = df["year"] + "-01"
    return df[["age_band", "sex", "year", "month", "note_type", "n"]]


def test_cells_shared_between_outputs_are_suppressed_everywhere_and_add_up():
    index = _index([("18-44", "female", "2019", "alta", 3), ("18-44", "male", "2019", "alta", 9),
                    ("45-64", "female", "2020", "alta", 14), ("45-64", "male", "2020", "alta", 11),
                    ("65+", "female", "2019", "urgencias", 8), ("65+", "male", "2021", "Dr. Gil", 2)])
    study = _study()
    tables, values, rels = build_tables(study, Aggregates(index=index), K)
    total = int(index["n"].sum())
    assert values["persons|"] == total
    for r in rels:  # the generated relations hold exactly on the true values
        assert values[r.total] == sum(values[p] for p in r.parts)
    published, hidden = publishable(study, Aggregates(index=index), K)
    by_cell: dict[str, set] = {}
    for t in published:
        for row in t.rows:
            by_cell.setdefault(row["_cell"], set()).add(row["suppressed"])
            assert row["suppressed"] or row["n"] >= K
    assert all(len(flags) == 1 for flags in by_cell.values())  # same cell, same decision in every table
    assert by_cell["persons|year=2021"] == {True}  # year 2021 = one cell of 2 persons
    assert not linearly_determined(values, rels, set(hidden))
    titles = {row["note_type"] for t in published if t.name == "by_title" for row in t.rows}
    assert "Dr. Gil" not in titles and OTHER in titles  # a rare free-text title is never a label


def test_top_concepts_small_counts_are_suppressed():
    study = _study(outputs=[{"type": "top_concepts", "name": "top", "top_n": 5}])
    top = pd.DataFrame([("ICD10CM", "I10", "Hypertension", 30), ("ICD10CM", "E11.9", "Diabetes", 4)],
                       columns=["vocabulary_id", "concept_code", "concept_name", "n"])
    (table,), _ = publishable(study, Aggregates(index=_index([]), top={"top": top}), K)
    assert [(r["concept_code"], r["n"], r["suppressed"]) for r in table.rows] == [("I10", 30, False), ("E11.9", None, True)]
