"""Shared fixtures: one session-scoped local Spark (Spark NLP + Delta jars, UI off, 2 shuffle partitions)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = (ROOT / ".." / "shared").resolve()


def test_config(tmp_path: Path | None = None, sets: list[str] | None = None):
    """Config for tests: conf/test.yaml, with the lake and MLflow store in tmp_path when given."""
    from clinlake.config import load_config

    extra = list(sets or [])
    if tmp_path is not None:
        extra += [f"mlflow.dir={tmp_path / 'mlruns'}"]
    return load_config("test", extra, lake=str(tmp_path / "lake") if tmp_path is not None else None)


def sample_notes(folder: Path, n: int) -> Path:
    """The first n lines of the bundled sample notes as a JSON-lines file in folder (short end-to-end runs)."""
    lines = (ROOT / "sample" / "notes" / "notes.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    out = folder / "notes.jsonl"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def spark():
    """The one SparkSession for the whole test run; fails loudly when `make setup` was skipped."""
    os.chdir(ROOT)
    from clinlake.errors import UserError
    from clinlake.spark import build_spark

    try:
        session = build_spark(test_config(), "clinlake-tests")
    except UserError as exc:
        pytest.fail(f"Spark fixture unavailable: {exc}", pytrace=False)
    yield session
    session.stop()


@pytest.fixture()
def cfg(tmp_path):
    """A test config whose lake and MLflow store live in a fresh temp folder."""
    return test_config(tmp_path)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (corpora and vocabularies for development); skip when this checkout has none."""
    if not SHARED.exists():
        pytest.skip(f"{SHARED} not present")
    return SHARED


@pytest.fixture(scope="session")
def vocabulary(spark, tmp_path_factory):
    """seed(cfg): the vocabulary tables build_vocabulary writes, in cfg's lake.

    Built by the job once per test session (per xdist worker) for a given vocabulary config, then copied: a Delta
    table is a self-contained folder. The job costs about a minute of small Spark jobs on the sample vocabulary, and
    four end-to-end fixtures need the same one. A later build_vocabulary.run on a copied lake rebuilds rather than
    skips (the job's fingerprint covers the lake's own corrections path), so tests of the skip call the job itself.
    """
    import hashlib
    import json
    import shutil
    from argparse import Namespace

    from clinlake.config import lake_path, to_dict
    from jobs import build_vocabulary

    tables = (*build_vocabulary.TABLES, "gazetteer")
    built: dict[str, Path] = {}

    def seed(cfg) -> None:
        conf = to_dict(cfg)["vocabulary"]
        corrections = (conf.get("sources") or {}).pop("corrections", None)
        if corrections and Path(corrections["path"]).exists():
            build_vocabulary.run(spark, cfg, Namespace())  # reviewed corrections make it this lake's own vocabulary
            return
        key = hashlib.sha256(json.dumps(conf, sort_keys=True).encode()).hexdigest()
        if key not in built:
            build_vocabulary.run(spark, cfg, Namespace())
            built[key] = tmp_path_factory.mktemp("vocabulary")
            for t in tables:
                if Path(lake_path(cfg, t)).exists():
                    shutil.copytree(lake_path(cfg, t), built[key] / t)
            return
        for t in tables:
            if (built[key] / t).exists():
                shutil.copytree(built[key] / t, lake_path(cfg, t))

    return seed


# Files whose module fixtures run whole job chains, longest first by `make test --durations` of 2026-12-03 (session
# 12; an idle run that evening put incremental_kill first and recognisers after review_loop: close enough to keep).
# xdist sorts files by their number of tests unless told not to (`--no-loadscope-reorder` in the Makefile), which
# left the few-test, 8-minute privacy file (now test_demo_chain.py) alone at the end; started first, the long files overlap
# (45.7 -> 44.1 min for the whole suite with evaluations sharing the cores, one run each: within noise).
LONGEST_FIRST = ("test_demo_chain.py", "test_bad_inputs.py", "test_incremental_kill.py", "test_recognisers.py",
                 "test_review_loop.py", "test_resolve_resolver.py",
                 "test_catalog.py", "test_notebooks.py", "test_mlflow_server.py", "test_study_spark.py", "test_sql.py")


def pytest_report_header(config) -> str:
    """The machine in the run's header: CI's runs differ by up to 3x in time, and the log then says why."""
    import platform

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"machine: {len(os.sched_getaffinity(0))} usable cores, {mem:.0f} GiB memory, {cpu or 'cpu unknown'}"


def pytest_collection_modifyitems(session, config, items) -> None:
    """Collect the longest files first (a stable sort: every other file keeps its place after them)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
