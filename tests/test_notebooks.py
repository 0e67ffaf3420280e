"""notebooks/*.ipynb execute headless (nbclient) against the small lake, so they never rot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_catalog_fixtures import small_lake  # noqa: F401 - shared session fixture

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_two_or_three_notebooks():
    assert 2 <= len(NOTEBOOKS) <= 3


def test_notebooks_run_and_plot(small_lake, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.manager import KernelManager

    # The kernel inherits this environment: the small lake, the quiet test Spark settings, the checkout.
    monkeypatch.setenv("CLINLAKE_LAKE", str(small_lake.root))
    monkeypatch.setenv("CLINLAKE_ENV", "test")
    monkeypatch.setenv("CLINLAKE_HOME", str(ROOT))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # One kernel (one JVM) for all notebooks: each still builds and stops its own SparkSession.
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(ROOT / "notebooks"), env=dict(os.environ))
    try:
        for path in NOTEBOOKS:
            nb = nbformat.read(path, as_version=4)
            client = nbclient.NotebookClient(nb, km=km, timeout=600,
                                             resources={"metadata": {"path": str(ROOT / "notebooks")}})
            client.execute()  # raises CellExecutionError with the failing cell's traceback
            outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
            assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} drew no plot"
            assert not any(o.get("output_type") == "error" for o in outputs)
    finally:
        km.shutdown_kernel(now=True)
