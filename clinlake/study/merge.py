"""Network results from several sites' packages: sums, suppressed cells as flagged lower bounds, per-site columns.

Only what the packages publish is used, so the network tables reveal nothing the site packages did not.
A cell suppressed at a site counts as at least 1 there (a published stratum is never empty), so the network
value is then a lower bound and flagged. A stratum absent from a site's package is 0 there. For top_concepts a
concept absent from a site whose list is full (top_n rows) may just be below its cut: also a lower bound.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd

from clinlake.errors import UserError
from clinlake.study.package import PACKAGE_FORMAT, VALUE_COLUMNS

NETWORK_FORMAT = "clinlake-network-results/1"


def read_package(folder: str | Path) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """manifest and one DataFrame per output (from the JSON files)."""
    p = Path(folder)
    mpath = p / "manifest.json"
    if not mpath.is_file():
        raise UserError(f"{p} is not a results package: no manifest.json")
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    if manifest.get("format") != PACKAGE_FORMAT:
        raise UserError(f"{mpath}: unknown package format {manifest.get('format')!r} (expected {PACKAGE_FORMAT})")
    tables = {}
    for out in manifest["outputs"]:
        doc = json.loads((p / f"{out['name']}.json").read_text(encoding="utf-8"))
        tables[out["name"]] = pd.DataFrame(doc["rows"], columns=doc["columns"])
    return manifest, tables


def check_compatible(manifests: list[dict[str, Any]], folders: list[str]) -> None:
    """Same study (hash of the canonical definition) everywhere, and one package per site."""
    hashes = {m["study_sha256"] for m in manifests}
    if len(hashes) > 1:
        detail = ", ".join(f"{m['site_id']} ({f}): {m['study_sha256'][:12]}" for m, f in zip(manifests, folders))
        raise UserError(f"packages come from different study definitions: {detail}")
    seen: dict[str, str] = {}
    for m, f in zip(manifests, folders):
        if m["site_id"] in seen:
            raise UserError(f"site '{m['site_id']}' appears twice: {seen[m['site_id']]} and {f}")
        seen[m["site_id"]] = f


def key_columns(output_type: str, columns: list[str]) -> list[str]:
    """Columns identifying a row across sites (top concepts by vocabulary and code, not by local rank)."""
    if output_type == "top_concepts":
        return ["vocabulary_id", "concept_code"]
    return [c for c in columns if c not in VALUE_COLUMNS]


def merge_output(output_type: str, frames: dict[str, pd.DataFrame], top_n: int | None = None) -> pd.DataFrame:
    """One network table: keys, network n (sum or lower bound), flags, and each site's published value."""
    sites = list(frames)
    cols = next(iter(frames.values())).columns.tolist()
    keys = key_columns(output_type, cols)
    long = []
    for site, df in frames.items():
        d = df.copy()
        d["site_id"] = site
        long.append(d)
    allrows = pd.concat(long, ignore_index=True)
    allrows["n_num"] = pd.to_numeric(allrows["n"], errors="coerce")
    allrows["suppressed"] = allrows["suppressed"].astype(bool)
    out = allrows[keys].drop_duplicates().reset_index(drop=True)
    if output_type == "top_concepts":
        names = allrows.drop_duplicates(keys)[keys + ["concept_name"]]
        out = out.merge(names, on=keys, how="left")
    published = allrows[~allrows["suppressed"]].groupby(keys, dropna=False)["n_num"].sum().rename("n_published")
    hidden = allrows[allrows["suppressed"]].groupby(keys, dropna=False).size().rename("sites_suppressed")
    reporting = allrows.groupby(keys, dropna=False).size().rename("sites_reporting")
    out = out.merge(published, on=keys, how="left").merge(hidden, on=keys, how="left").merge(reporting, on=keys, how="left")
    out = out.fillna({"n_published": 0, "sites_suppressed": 0})
    out["sites_suppressed"] = out["sites_suppressed"].astype(int)
    unlisted = pd.Series(0, index=out.index)
    if output_type == "top_concepts" and top_n is not None:
        full = [s for s, df in frames.items() if len(df) >= top_n]
        for s in full:  # a concept a full list leaves out may still have been mentioned there
            listed = frames[s].set_index(keys).index
            unlisted += (~out.set_index(keys).index.isin(listed)).astype(int)
    out["sites_unlisted"] = unlisted.astype(int)
    out["n"] = (out["n_published"] + out["sites_suppressed"]).astype(int)
    out["is_lower_bound"] = (out["sites_suppressed"] > 0) | (out["sites_unlisted"] > 0)
    out["n_display"] = [f">={n}" if lb else str(n) for n, lb in zip(out["n"], out["is_lower_bound"])]
    absent = "not listed" if output_type == "top_concepts" else "0"
    for site, df in frames.items():
        shown = df.set_index(keys)["n_display"]
        col = out.set_index(keys).index.map(lambda k, s=shown: s.get(k, absent))
        out[f"site:{site}"] = list(col)
    if output_type == "top_concepts":
        out = out.sort_values(["n", "vocabulary_id", "concept_code"], ascending=[False, True, True]).reset_index(drop=True)
    order = keys + (["concept_name"] if output_type == "top_concepts" else [])
    rest = ["n", "n_display", "is_lower_bound", "sites_suppressed", "sites_unlisted", "sites_reporting"]
    return out[order + rest + [f"site:{s}" for s in sites]]


def merge_packages(folders: list[str], out: str | Path, chart: bool = True) -> dict[str, Any]:
    """Read, check, merge and write network results (CSV + JSON per output, manifest, chart); returns the manifest."""
    if len(folders) < 1:
        raise UserError("give at least one package folder")
    read = [read_package(f) for f in folders]
    manifests = [m for m, _ in read]
    check_compatible(manifests, folders)
    study = json.loads((Path(folders[0]) / "study.json").read_text(encoding="utf-8"))
    top_ns = {o["name"]: o.get("top_n") for o in study.get("outputs", [])}
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    outputs = []
    merged: dict[str, pd.DataFrame] = {}
    for o in manifests[0]["outputs"]:
        frames = {m["site_id"]: t[o["name"]] for m, t in read}
        table = merge_output(o["type"], frames, top_ns.get(o["name"]))
        merged[o["name"]] = table
        table.to_csv(dest / f"{o['name']}.csv", index=False)
        doc = {"output": o["name"], "type": o["type"], "columns": table.columns.tolist(),
               "rows": json.loads(table.to_json(orient="records"))}
        (dest / f"{o['name']}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        outputs.append({"name": o["name"], "type": o["type"], "rows": len(table),
                        "lower_bounds": int(table["is_lower_bound"].sum())})
    manifest = {
        "format": NETWORK_FORMAT,
        "study_id": manifests[0]["study_id"],
        "study_sha256": manifests[0]["study_sha256"],
        "sites": [{k: m.get(k) for k in ("site_id", "created_at", "min_cell_count", "code_version", "model_versions",
                                          "person_table")} for m in manifests],
        "created_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "outputs": outputs,
    }
    (dest / "study.json").write_text(json.dumps(study, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if chart:
        manifest["chart"] = draw_chart(manifests[0]["outputs"], merged, [m["site_id"] for m in manifests],
                                       dest / "network_chart.png", manifests[0]["study_id"])
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def _site_value(display: str) -> float:
    """Bar height for a site's cell: the published count, 0 where suppressed (the total is flagged instead)."""
    try:
        return float(display)
    except (TypeError, ValueError):
        return 0.0


def draw_chart(outputs: list[dict[str, Any]], merged: dict[str, pd.DataFrame], sites: list[str], path: Path,
               title: str) -> str:
    """Stacked bars of persons by period per site (first counts_over_time output), else cohort totals per site."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    over = next((o for o in outputs if o["type"] == "counts_over_time"), None)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if over is not None:
        t = merged[over["name"]]
        t = t[t["period"] != "ALL"].sort_values("period")
        bottom = pd.Series(0.0, index=t.index)
        for s in sites:
            h = t[f"site:{s}"].map(_site_value)
            ax.bar(t["period"], h, bottom=bottom, label=s)
            bottom += h
        for x, y, lb, disp in zip(t["period"], bottom, t["is_lower_bound"], t["n_display"]):
            ax.annotate(disp, (x, y), ha="center", va="bottom", fontsize=8, color="firebrick" if lb else "black")
        ax.set_xlabel("period of cohort entry")
        ax.set_ylabel("persons")
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_title(f"{title}: persons entering the cohort (>= : a site suppressed a cell)")
    else:
        first = next(o for o in outputs if o["type"] == "cohort_counts")
        t = merged[first["name"]]
        keys = [c for c in t.columns if c not in ("n", "n_display", "is_lower_bound", "sites_suppressed", "sites_unlisted",
                                                   "sites_reporting") and not c.startswith("site:")]
        total = t[(t[keys] == "ALL").all(axis=1)] if keys else t
        ax.bar(sites, [_site_value(total[f"site:{s}"].iloc[0]) for s in sites])
        ax.set_ylabel("persons")
        ax.set_title(f"{title}: cohort size per site")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name
