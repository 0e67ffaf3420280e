"""From unsuppressed aggregates to the published tables: cells, the relations between them, suppression.

All cohort_counts and counts_over_time outputs of a study are views of one family of person counts keyed by
stratum (e.g. ``age_band=18-44&sex=female``); a cell that appears in two outputs is the same cell and is
suppressed in both. Relations are generated for every pair of published dimension sets S < T: each S cell
equals the sum of the T cells that extend it. That covers totals, margins and any finer cross table
published in another output, so suppression holds across all tables of a package, not just within one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import pandas as pd

from clinlake.study.cohort import UNKNOWN, Aggregates
from clinlake.study.definition import CohortCounts, CountsOverTime, Study, TopConcepts
from clinlake.study.suppression import Relation, suppress

ALL = "ALL"  # the value shown in a stratum column that is summed over
OTHER = "other"  # free-text note titles too rare to name
SUPPRESSED_DISPLAY = "suppressed"


@dataclass
class Table:
    """One published output: its key columns and rows (row['_cell'] names the cell behind the count)."""

    name: str
    type: str
    key_columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)


def cell_id(key: dict[str, str]) -> str:
    """Stable id of a stratum cell; the empty key is the cohort total."""
    return "persons|" + "&".join(f"{d}={key[d]}" for d in sorted(key))


def dims_of(out: CohortCounts | CountsOverTime, study: Study) -> tuple[str, ...]:
    """Dimensions of an output's finest table (monthly counts nest months in years)."""
    if isinstance(out, CohortCounts):
        return tuple(out.strata)
    return ("year", "month") if study.granularity_of(out) == "month" else ("year",)


def published_dimsets(out: CohortCounts | CountsOverTime, study: Study) -> set[tuple[str, ...]]:
    """Dimension sets a single output publishes: total, one-way margins, full cross table."""
    dims = dims_of(out, study)
    if isinstance(out, CountsOverTime):
        return {(), dims}
    return {(), dims, *((d,) for d in dims)}


def collapse_rare_titles(index: pd.DataFrame, study: Study, k: int) -> pd.DataFrame:
    """Free-text note titles seen for fewer than k persons become 'other' so the label itself cannot identify."""
    if study.strata.note_type != "note_title" or index.empty:
        return index
    per_title = index.groupby("note_type")["n"].sum()
    rare = set(per_title[per_title < k].index) - {UNKNOWN}
    out = index.copy()
    out.loc[out["note_type"].isin(rare), "note_type"] = OTHER
    return out


def stratum_cells(index: pd.DataFrame, dimsets: set[tuple[str, ...]]) -> dict[tuple[str, ...], pd.DataFrame]:
    """Person counts for every dimension set (index events partition persons, so sums are exact)."""
    out = {}
    for dims in dimsets:
        if not dims:
            out[dims] = pd.DataFrame({"n": [int(index["n"].sum())]})
        else:
            g = index.groupby(list(dims), as_index=False)["n"].sum()
            out[dims] = g[g["n"] > 0].sort_values(list(dims)).reset_index(drop=True)
    return out


def relations_between(cells: dict[tuple[str, ...], pd.DataFrame]) -> list[Relation]:
    """total = sum(parts) for every published S cell and every published T > S (sum over the extra dims)."""
    rels = []
    for s, t in ((s, t) for s in cells for t in cells if set(s) < set(t)):
        fine = cells[t]
        groups = [((), fine)] if not s else fine.groupby(list(s))
        for key, part in groups:
            key = key if isinstance(key, tuple) else (key,)
            total = cell_id(dict(zip(s, key)))
            parts = tuple(cell_id({d: r[d] for d in t}) for r in part.to_dict("records"))
            rels.append(Relation(total, parts))
    return rels


def build_tables(study: Study, agg: Aggregates, k: int) -> tuple[list[Table], dict[str, int], list[Relation]]:
    """Published tables (unsuppressed), the cell values behind them and their relations."""
    index = collapse_rare_titles(agg.index, study, k)
    counted = [o for o in study.outputs if isinstance(o, (CohortCounts, CountsOverTime))]
    family = set().union(*(published_dimsets(o, study) for o in counted)) if counted else set()
    cells = stratum_cells(index, family)
    values: dict[str, int] = {}
    for dims, frame in cells.items():
        for r in frame.to_dict("records"):
            values[cell_id({d: r[d] for d in dims})] = int(r["n"])
    tables = []
    for out in study.outputs:
        if isinstance(out, TopConcepts):
            t = Table(out.name, out.type, ["rank", "vocabulary_id", "concept_code", "concept_name"])
            for rank, r in enumerate(agg.top.get(out.name, pd.DataFrame()).to_dict("records"), start=1):
                cid = f"concept|{r['vocabulary_id']}|{r['concept_code']}"
                values[cid] = int(r["n"])
                t.rows.append({"rank": rank, "vocabulary_id": r["vocabulary_id"], "concept_code": r["concept_code"],
                               "concept_name": r["concept_name"], "_cell": cid})
            tables.append(t)
            continue
        dims = dims_of(out, study)
        if isinstance(out, CountsOverTime):
            t = Table(out.name, out.type, ["period"])
            for d in sorted(published_dimsets(out, study), key=len):
                for r in cells[d].to_dict("records"):
                    t.rows.append({"period": r[dims[-1]] if d else ALL, "_cell": cell_id({x: r[x] for x in d})})
        else:
            t = Table(out.name, out.type, list(dims))
            for d in sorted(published_dimsets(out, study), key=lambda x: (len(x), [dims.index(y) for y in x])):
                for r in cells[d].to_dict("records"):
                    t.rows.append({**{x: (r[x] if x in d else ALL) for x in dims}, "_cell": cell_id({x: r[x] for x in d})})
        tables.append(t)
    return tables, values, relations_between(cells)


def apply_suppression(tables: list[Table], values: dict[str, int], relations: list[Relation],
                      k: int) -> tuple[list[Table], dict[str, str]]:
    """Fill n / n_display / suppressed on every row; returns the suppressed cells too."""
    hidden = suppress(values, relations, k)
    for t in tables:
        for row in t.rows:
            cid = row["_cell"]
            row["suppressed"] = cid in hidden
            row["n"] = None if cid in hidden else values[cid]
            row["n_display"] = SUPPRESSED_DISPLAY if cid in hidden else str(values[cid])
    return tables, hidden


def publishable(study: Study, agg: Aggregates, k: int) -> tuple[list[Table], dict[str, str]]:
    """Aggregates -> suppressed tables, ready to write."""
    tables, values, relations = build_tables(study, agg, k)
    return apply_suppression(tables, values, relations, k)
