"""End to end on three generated site lakes: run_study at each site, merge, and check what leaves the sites."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from functools import reduce
from pathlib import Path

import pandas as pd
import pytest
import yaml

from clinlake.config import load_config
from clinlake.errors import UserError
from clinlake.study import synthetic
from clinlake.study.cohort import SiteTables, compute_aggregates
from clinlake.study.definition import load_study, parse_study
from clinlake.study.merge import merge_packages
from clinlake.study.tables import OTHER, build_tables, cell_id

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "conf" / "studies" / "example.yaml"
SITES = {"north": (1, 150), "centre": (2, 90), "south": (3, 50)}  # site id -> (site number, persons)
SEED = 7


def site_cfg(base: Path, site: str):
    return load_config("test", [f"mlflow.dir={base / 'mlruns'}"], lake=str(base / site / "lake"))


@pytest.fixture(scope="module")
def network(spark, tmp_path_factory):
    """Three site lakes, a package from each (example study) and the merged network results."""
    from jobs import run_study

    base = tmp_path_factory.mktemp("network")
    packages = {}
    for site, (number, persons) in SITES.items():
        cfg = site_cfg(base, site)
        synthetic.write_site_lake(spark, str(base / site / "lake"), number, persons, SEED)
        out = base / "packages" / site
        run_study.run(spark, cfg, argparse.Namespace(study=str(EXAMPLE), site_id=site, out=str(out)))
        packages[site] = out
    merge_packages([str(p) for p in packages.values()], base / "net")
    return {"base": base, "packages": packages, "net": base / "net"}


def written_files(network) -> list[Path]:
    return sorted(p for root in [*network["packages"].values(), network["net"]] for p in root.rglob("*") if p.is_file())


def site_rows() -> dict[str, dict[str, list[tuple]]]:
    return {site: synthetic.site_rows(number, persons, SEED) for site, (number, persons) in SITES.items()}


def test_no_file_holds_ids_text_snippets_or_fine_dates(network):
    rows = site_rows()
    ids = {str(r[0]) for t in rows.values() for r in t["person"] + t["note_deid"] + t["note_nlp"]}
    texts = {r[7] for t in rows.values() for r in t["note_deid"]}
    snippets = {r[3] for t in rows.values() for r in t["note_nlp"]}
    files = written_files(network)
    assert {p.suffix for p in files} == {".csv", ".json", ".png"}
    scanned = 0
    for path in files:
        if path.suffix == ".png":
            continue
        text = path.read_text(encoding="utf-8")
        if path.name == "manifest.json":  # the run timestamps are the only full dates allowed
            doc = json.loads(text)
            doc.pop("created_at")
            for site in doc.get("sites", []):
                site.pop("created_at")
            text = json.dumps(doc, ensure_ascii=False)
        numbers = set(re.findall(r"\d{6,}", text))
        assert not numbers & ids, f"{path} holds a person/note/mention id"
        assert not [t for t in texts if t in text] and not [s for s in snippets if s in text], f"{path} holds text"
        assert synthetic.RARE_TITLE.lower() not in text.lower(), f"{path} names a rare free-text title"
        assert not re.search(r"(?<!\d)\d{4}-(0[1-9]|1[0-2])(?!\d)", text), f"{path} holds a date finer than a year"
        scanned += 1
    assert scanned >= 3 * 10


def test_no_published_cell_below_threshold_and_suppression_is_flagged(network):
    k = 5
    hidden = 0
    for site, folder in network["packages"].items():
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["min_cell_count"] == k
        for out in manifest["outputs"]:
            table = pd.read_csv(folder / f"{out['name']}.csv", dtype=str, keep_default_na=False)
            shown = table[table["suppressed"] == "false"]
            assert (shown["n"].astype(int) >= k).all(), (site, out["name"])
            assert (shown["n"] == shown["n_display"]).all()
            dark = table[table["suppressed"] == "true"]
            assert (dark["n"] == "").all() and (dark["n_display"] == "suppressed").all()
            assert len(dark) == out["suppressed"]
            hidden += len(dark)
            doc = json.loads((folder / f"{out['name']}.json").read_text())
            assert all((r["n"] is None) == r["suppressed"] for r in doc["rows"])
    assert hidden > 0, "the generated lakes should have small strata"


def test_manifests_agree_on_the_study_and_name_versions(network):
    study, file_sha = load_study(EXAMPLE)
    rows = site_rows()
    for site, folder in network["packages"].items():
        m = json.loads((folder / "manifest.json").read_text())
        assert (m["study_sha256"], m["study_file_sha256"], m["site_id"]) == (study.sha256(), file_sha, site)
        assert m["code_version"]["clinlake"] and m["person_table"] is True
        assert set(m["model_versions"]) <= {r[8] for r in rows[site]["note_nlp"]} and m["model_versions"]
        assert json.loads((folder / "study.json").read_text()) == study.canonical()
    net = json.loads((network["net"] / "manifest.json").read_text())
    assert [s["site_id"] for s in net["sites"]] == list(SITES) and net["chart"] == "network_chart.png"


def test_every_run_is_in_the_site_audit_log(network):
    for site, folder in network["packages"].items():
        lines = (network["base"] / site / "lake" / "_audit" / "studies.jsonl").read_text().splitlines()
        entry = json.loads(lines[-1])
        assert entry["status"] == "ok" and entry["site_id"] == site and entry["out"] == str(folder)
        assert entry["cells_published"] + entry["cells_suppressed"] == sum(o["cells"] for o in entry["outputs"].values())
        assert entry["study_sha256"] and entry["user"] and entry["at"]


def pooled_values(spark, study) -> dict[str, int]:
    """Cell values computed on the three sites' tables pooled into one (what a central lake would give)."""
    frames = [synthetic.site_frames(spark, number, persons, SEED) for number, persons in SITES.values()]
    union = {t: reduce(lambda a, b: a.unionByName(b), [f[t] for f in frames]) for t in ("note_deid", "note_nlp", "person")}
    tables = SiteTables(note=union["note_deid"], note_nlp=union["note_nlp"], concept=frames[0]["concept"],
                        concept_ancestor=frames[0]["concept_ancestor"], person=union["person"])
    agg = compute_aggregates(tables, study)
    _, values, _ = build_tables(study, agg, 1)
    return values


def test_merged_totals_equal_the_pooled_computation_where_nothing_is_suppressed(spark, network):
    study, _ = load_study(EXAMPLE)
    data = study.canonical()
    for o in data["outputs"]:
        if o["type"] == "top_concepts":
            o["top_n"] = 200  # every concept, so each merged concept has a pooled value
    values = pooled_values(spark, parse_study(data))
    compared = exact = 0
    for out in study.outputs:
        table = pd.read_csv(network["net"] / f"{out.name}.csv", dtype=str, keep_default_na=False)
        for row in table.to_dict("records"):
            if out.type == "top_concepts":
                cid = f"concept|{row['vocabulary_id']}|{row['concept_code']}"
            elif out.type == "counts_over_time":
                cid = cell_id({} if row["period"] == "ALL" else {"year": row["period"]})
            else:
                if row.get("note_type") == OTHER:  # 'other' gathers titles rare at one site: site-specific
                    continue
                cid = cell_id({d: row[d] for d in out.strata if row[d] != "ALL"})
            compared += 1
            if row["is_lower_bound"] == "False":
                assert int(row["n"]) == values[cid], (out.name, row)
                exact += 1
            else:
                assert int(row["n"]) <= values[cid], (out.name, row)
    assert exact >= 10 and compared > exact  # some cells exact, some lower bounds: both paths checked
    total = pd.read_csv(network["net"] / "entries_by_year.csv", dtype=str).set_index("period").loc["ALL"]
    assert total["is_lower_bound"] == "False" and int(total["n"]) == values["persons|"]
    assert values["persons|"] == expected_cohort_size()


def expected_cohort_size() -> int:
    """Independent pure-Python count: persons with a present, patient, non-historical E/I-chapter mention."""
    persons = set()
    for site, rows in site_rows().items():
        note_person = {r[0]: r[1] for r in rows["note_deid"]}
        for m in rows["note_nlp"]:
            if (m[17] == "ICD10CM" and m[18][0] in "EI" and m[11] == "Y" and m[20] is False
                    and m[22] == "patient" and m[23] != "historical"):
                persons.add(note_person[m[1]])
    return len(persons)


def test_demo_shaped_lake_without_person_reports_unknown_age_and_sex(spark):
    f = synthetic.site_frames(spark, 3, 40, SEED, with_person=False)
    study = parse_study(yaml.safe_load(EXAMPLE.read_text()))
    agg = compute_aggregates(SiteTables(note=f["note_deid"], note_nlp=f["note_nlp"], concept=f["concept"],
                                        concept_ancestor=f["concept_ancestor"]), study)
    assert not agg.has_person and set(agg.index["age_band"]) == {"unknown"} and set(agg.index["sex"]) == {"unknown"}
    assert agg.index["n"].sum() > 0 and {len(y) for y in agg.index["year"]} == {4}


def test_unknown_codes_and_bad_studies_fail_clearly_and_are_audited(spark, network, tmp_path):
    from jobs import run_study

    cfg = site_cfg(network["base"], "south")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"id": "x", "cohort": {"concepts": [{"vocabulary_id": "ICD10CM"}]}, "outputs": []}))
    with pytest.raises(UserError, match=r"cohort.concepts\[0\].concept_code"):
        run_study.run(spark, cfg, argparse.Namespace(study=str(bad), site_id="south", out=str(tmp_path / "o1")))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(yaml.safe_dump({"id": "x", "cohort": {"concepts": [{"vocabulary_id": "SNOMED", "concept_code": "38341003"}]},
                                       "outputs": [{"type": "cohort_counts", "name": "a"}]}))
    with pytest.raises(UserError, match="SNOMED '38341003'"):
        run_study.run(spark, cfg, argparse.Namespace(study=str(unknown), site_id="south", out=str(tmp_path / "o2")))
    with pytest.raises(UserError, match="not empty"):
        run_study.run(spark, cfg, argparse.Namespace(study=str(EXAMPLE), site_id="south",
                                                     out=str(network["packages"]["south"])))
    log = [json.loads(x) for x in (network["base"] / "south" / "lake" / "_audit" / "studies.jsonl").read_text().splitlines()]
    assert [e["status"] for e in log[-3:]] == ["error", "error", "error"]
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    assert dt.date.today().isoformat()[:4] in log[-1]["at"]
