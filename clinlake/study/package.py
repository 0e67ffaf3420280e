"""Results package (CSV + JSON per output, study.json, manifest.json) and the site's local audit log."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import json
import subprocess
from pathlib import Path
from typing import Any

import clinlake
from clinlake.errors import UserError
from clinlake.study.definition import Study
from clinlake.study.tables import Table

PACKAGE_FORMAT = "clinlake-study-package/1"
VALUE_COLUMNS = ["n", "n_display", "suppressed"]


def code_version() -> dict[str, str | None]:
    """clinlake version and, in a git checkout, the commit it runs from."""
    root = Path(clinlake.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"clinlake": clinlake.__version__, "git_commit": commit}


def utc_now() -> str:
    """Run time, UTC, to the second (a run timestamp, not patient data)."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def check_out(out: str | Path, overwrite: bool) -> Path:
    """Refuse a non-empty package folder unless overwrite (never mix two runs); creates nothing."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise UserError(f"output {p} is a file, not a folder")
    if p.exists() and any(p.iterdir()) and not overwrite:
        raise UserError(f"output folder {p} is not empty (pass --overwrite to replace its package)")
    return p


def prepare_out(out: str | Path, overwrite: bool) -> Path:
    """Create the package folder, removing an earlier package's files when overwriting."""
    p = check_out(out, overwrite)
    if p.exists():
        for f in p.iterdir():
            if f.is_file() and (f.suffix in (".csv", ".json")):
                f.unlink()
    p.mkdir(parents=True, exist_ok=True)
    return p


def write_table(folder: Path, table: Table, k: int) -> list[str]:
    """<name>.csv and <name>.json (same rows; null n where suppressed)."""
    cols = table.key_columns + VALUE_COLUMNS
    rows = [{c: r[c] for c in cols} for r in table.rows]
    with open(folder / f"{table.name}.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({**r, "n": "" if r["n"] is None else r["n"], "suppressed": str(r["suppressed"]).lower()})
    doc = {"output": table.name, "type": table.type, "min_cell_count": k, "columns": cols, "rows": rows}
    (folder / f"{table.name}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [f"{table.name}.csv", f"{table.name}.json"]


def write_package(out: str | Path, study: Study, tables: list[Table], *, site_id: str, k: int,
                  model_versions: list[str], has_person: bool, file_sha256: str | None,
                  overwrite: bool = False) -> dict[str, Any]:
    """Write every output, the canonical study and the manifest; returns the manifest."""
    folder = prepare_out(out, overwrite)
    outputs = []
    for t in tables:
        files = write_table(folder, t, k)
        outputs.append({"name": t.name, "type": t.type, "files": files, "cells": len(t.rows),
                        "suppressed": sum(bool(r["suppressed"]) for r in t.rows)})
    (folder / "study.json").write_text(json.dumps(study.canonical(), indent=1, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    manifest = {
        "format": PACKAGE_FORMAT,
        "study_id": study.id,
        "study_title": study.title,
        "study_sha256": study.sha256(),
        "study_file_sha256": file_sha256,
        "site_id": site_id,
        "code_version": code_version(),
        "model_versions": model_versions,
        "created_at": utc_now(),
        "min_cell_count": k,
        "date_granularity": study.date_granularity,
        "person_table": has_person,
        "suppressed_display": "suppressed",
        "outputs": outputs,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def audit_path(cfg: Any) -> Path:
    """conf study.audit_log, else <lake>/_audit/studies.jsonl (a local file: the site keeps it)."""
    from clinlake.config import lake_path, path_of

    configured = (cfg.get("study", {}) or {}).get("audit_log")
    if configured:
        return Path(path_of(cfg, str(configured)))
    root = lake_path(cfg, "_audit")
    if "://" in root:
        raise UserError(f"lake {cfg.lake} is remote: set study.audit_log to a local file for the audit log")
    return Path(root) / "studies.jsonl"


def append_audit(path: Path, entry: dict[str, Any]) -> None:
    """Append one JSON line: who, what, when, which study and site, where to, how many cells (no data values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"at": utc_now(), "user": _user(), **entry}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
