"""A real tracking server: `mlflow server` on 127.0.0.1 (SQLite backend, local artifact root), and the whole model
life over HTTP: train -> register -> promote through the gate -> load by alias -> serve in extract's chain."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from clinlake.config import lake_path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    """Start `mlflow server` (own process group) and stop only it."""
    port = _free_port()
    store = tmp_path / "server"
    store.mkdir()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow_bin if mlflow_bin.exists() else shutil.which("mlflow")), "server",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
           "--artifacts-destination", str(store / "artifacts")]
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
        time.sleep(1)
    yield url, store
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def _dev_split(folder: Path, mentions: list[str]) -> None:
    """A tiny CANTEMIST-format dev split (brat) whose gold mentions come from the lake's own gazetteer."""
    folder.mkdir(parents=True)
    for i, group in enumerate([mentions[:3], mentions[3:6]]):
        text, anns = "Paciente con antecedentes.", []
        for j, m in enumerate(group):
            text += " Se observa "
            anns.append(f"T{j + 1}\tMORFOLOGIA_NEOPLASIA {len(text)} {len(text) + len(m)}\t{m}")
            text += m + "."
        (folder / f"cc_onco{i}.txt").write_text(text, encoding="utf-8")
        (folder / f"cc_onco{i}.ann").write_text("\n".join(anns) + "\n", encoding="utf-8")


def test_train_register_promote_load_over_http(spark, tmp_path, server):
    from mlflow import MlflowClient

    from clinlake import recognisers, tracking
    from jobs import build_vocabulary, promote_model, train_ner
    from tests.conftest import test_config

    url, store = server
    cfg = test_config(tmp_path, [f"mlflow.tracking_uri={url}"])
    sources = cfg.vocabulary.sources
    cfg.vocabulary.sources = {"icdo3": sources.icdo3, "gazetteer": sources.gazetteer}
    ns = argparse.Namespace
    build_vocabulary.run(spark, cfg, ns())
    gaz = spark.read.format("delta").load(lake_path(cfg, "gazetteer"))
    mentions = [r["mention"] for r in gaz.filter((F.col("label") == "MORFOLOGIA_NEOPLASIA")
                                                 & (F.length("mention").between(8, 25))
                                                 & ~F.col("mention").contains(" "))
                .select("mention").distinct().orderBy("mention").limit(6).collect()]
    assert len(mentions) == 6
    dev = tmp_path / "dev"
    _dev_split(dev, mentions)

    cfg.models.recogniser.labels = ["MORFOLOGIA_NEOPLASIA"]
    cfg.models.recogniser.min_chars = 26           # v1: knows only long phrases, none of the dev split
    v1 = train_ner.run(spark, cfg, ns(model="gazetteer"))
    cfg.models.recogniser.min_chars = 3            # v2: the real gazetteer
    v2 = train_ner.run(spark, cfg, ns(model="gazetteer"))
    assert (v1["version"], v1["champion"], v2["version"], v2["champion"]) == ("1", True, "2", False)

    # Everything went through the server: its SQLite file and artifact root hold the runs and the models.
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    assert str(client.get_model_version_by_alias("ner-gazetteer-es", "champion").version) == "1"
    assert any((store / "artifacts").rglob("MLmodel"))

    cfg.promotion.models["ner-gazetteer-es"] = {"task": "ner", "corpus": "cantemist", "data": str(dev),
                                                "metric": "ner_f1", "also": []}
    decision = promote_model.run(spark, cfg, ns(model="ner-gazetteer-es", version="2", margin=None))
    assert decision["promoted"] is True and decision["champion"] == "2"
    assert decision["ner_f1"]["challenger"] > decision["ner_f1"]["champion"]
    assert str(client.get_model_version_by_alias("ner-gazetteer-es", "champion").version) == "2"
    runs = client.search_runs([client.get_experiment_by_name(str(cfg.mlflow.experiment)).experiment_id],
                              "tags.`clinlake.job` = 'promote_model'")
    assert runs and runs[0].data.tags["decision"].startswith("promoted")
    assert {"side_by_side.csv", "decision.json"} <= {a.path for a in client.list_artifacts(runs[0].info.run_id)}

    # Served by alias over HTTP, inside the production chain's recogniser stage.
    [(model, ref)] = recognisers.load(cfg)
    assert ref == "ner-gazetteer-es@2"
    notes = spark.createDataFrame([(1, f"Biopsia: {mentions[0]}.", "x"), (2, None, "y")],
                                  "note_id long, note_text string, text_sha256 string")
    found = recognisers.recognise_chunks(notes, model, ref).collect()
    assert [(r["note_id"], r["label"], r["nlp_system"]) for r in found] == [(1, "MORFOLOGIA_NEOPLASIA", ref)]
    assert tracking.tracking_uri(cfg) == url
