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
