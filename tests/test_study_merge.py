"""Merging site packages: sums, suppressed cells as flagged lower bounds, per-site columns, hash check, chart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from clinlake.errors import UserError
from clinlake.study.cohort import Aggregates
from clinlake.study.definition import parse_study
from clinlake.study.merge import merge_packages
from clinlake.study.package import write_package
from clinlake.study.tables import publishable

ROOT = Path(__file__).resolve().parent.parent
K = 5
STUDY = {"id": "m", "cohort": {"concepts": [{"vocabulary_id": "ICD10CM", "concept_code": "I10"}]},
         "outputs": [{"type": "cohort_counts", "name": "by_sex", "strata": ["sex"]},
                     {"type": "counts_over_time", "name": "over_time"},
                     {"type": "top_concepts", "name": "top", "top_n": 2}]}


def package(folder: Path, site: str, sexes: dict[str, int], years: dict[str, int], top: list[tuple], study=STUDY) -> Path:
    """Write a package from hand-made aggregates (sex and year vary independently: one row per pair)."""
    s = parse_study(study)
    rows = []
    for (sex, n_sex), (year, _) in zip(sexes.items(), years.items()):
        rows.append(("unknown", sex, year, f"{year}-01", "32817", n_sex))
    index = pd.DataFrame(rows, columns=["age_band", "sex", "year", "month", "note_type", "n"])
    top_df = pd.DataFrame(top, columns=["vocabulary_id", "concept_code", "concept_name", "n"])
    tables, _ = publishable(s, Aggregates(index=index, top={"top": top_df}), K)
    write_package(folder / site, s, tables, site_id=site, k=K, model_versions=["ner@1"], has_person=False,
                  file_sha256=None)
    return folder / site


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)


def test_sums_lower_bounds_and_site_columns(tmp_path):
    a = package(tmp_path, "a", {"female": 20, "male": 30}, {"2019": 0, "2020": 0},
                [("ICD10CM", "E11.9", "Diabetes", 12), ("ICD10CM", "E78.5", "Hyperlipidemia", 9)])
    b = package(tmp_path, "b", {"female": 3, "male": 40}, {"2019": 0, "2020": 0},
                [("ICD10CM", "E11.9", "Diabetes", 7), ("ICD10CM", "J45.909", "Asthma", 6)])
    manifest = merge_packages([str(a), str(b)], tmp_path / "net")
    net = tmp_path / "net"
    by_sex = read(net, "by_sex").set_index("sex")
    assert by_sex.loc["female", "site:a"] == "20" and by_sex.loc["female", "site:b"] == "suppressed"
    # b's 3 is hidden (and so is its complement): network female is >= 20 + 1, flagged
    assert by_sex.loc["female", "is_lower_bound"] == "True" and by_sex.loc["female", "n_display"] == ">=21"
    assert int(by_sex.loc["ALL", "n"]) <= 20 + 30 + 3 + 40
    top = read(net, "top").set_index("concept_code")
    assert top.loc["E11.9", "n"] == "19" and top.loc["E11.9", "is_lower_bound"] == "False"
    # each site listed top_n concepts: one missing from a full list may sit just below its cut
    assert top.loc["J45.909", "is_lower_bound"] == "True" and top.loc["J45.909", "site:a"] == "not listed"
    assert (net / "network_chart.png").read_bytes()[:4] == b"\x89PNG"
    assert [s["site_id"] for s in manifest["sites"]] == ["a", "b"]
    assert json.loads((net / "by_sex.json").read_text())["rows"]


def test_different_studies_are_refused(tmp_path):
    a = package(tmp_path, "a", {"female": 20}, {"2019": 0}, [])
    other = {**STUDY, "min_cell_count": 11}
    b = package(tmp_path, "b", {"female": 20}, {"2019": 0}, [], study=other)
    with pytest.raises(UserError, match="different study definitions"):
        merge_packages([str(a), str(b)], tmp_path / "net")


def test_cli_reports_one_line_errors(tmp_path):
    a = package(tmp_path, "a", {"female": 20}, {"2019": 0}, [])
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "merge_sites.py"), "--packages", str(a), str(a),
                          "--out", str(tmp_path / "net")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "appears twice" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "merge_sites.py"), "--packages", str(tmp_path),
                          "--out", str(tmp_path / "net")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "no manifest.json" in run.stderr
