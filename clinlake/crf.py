"""A CRF voter beside NerDL versions: training, MLflow logging, registration, loading (deid and NER recognisers).

`jobs/train_deid_crf.py` (MEDDOCAN) and `jobs/train_ner_crf.py --model <recogniser>` train a CRFsuite model
(udfs.crf_tag's features, L-BFGS with L1 + L2) on the tokens the serving text stages give, score it alone on dev with
the evaluation job's metric code, log it as an MLflow pyfunc model (the CRFsuite file as its artifact) and register
it: `deid-crf-es`, or the recogniser's name with `-crf` before its `-es` (`ner-morphology-crf-es`, `crf_name`); the
first version becomes @champion. `deid.vote.crf: <alias>` serves it as one more voter per token
(clinlake.deid.job.with_token_voted_spans), a recogniser's `vote: {crf: <alias>}` as one more voter on spans
(clinlake.recognisers.recognise_chunks).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from clinlake import tracking
from clinlake.corpora.types import Mention
from clinlake.errors import UserError
from clinlake.ner.data import LabelledSplit
from clinlake.ner.tokens import TOKEN_COL, resolve_overlaps, tags_for_tokens

log = logging.getLogger(__name__)

MODEL_FILE = "model.crfsuite"
PIP_REQUIREMENTS = ["python-crfsuite==0.9.12", "mlflow==3.17.2", "pandas==2.3.3"]


@dataclass(frozen=True)
class CrfMember:
    """A registered CRF's model bytes and '<name>@<version>'."""

    model: bytes
    ref: str


def tokenise(spark: SparkSession, text_model: Any, texts: dict[str, str]) -> dict[str, tuple[list[int], list[int]]]:
    """doc_id -> (token begins, exclusive ends) from the serving text stages (the tokens the vote's members tag)."""
    from clinlake.ner.training import notes_frame

    rows = text_model.transform(notes_frame(spark, texts)).select(
        "doc_id", F.col(f"{TOKEN_COL}.begin").alias("b"), F.col(f"{TOKEN_COL}.end").alias("e")).collect()
    return {r["doc_id"]: ([int(x) for x in r["b"] or []], [int(x) + 1 for x in r["e"] or []]) for r in rows}


def sequences(split: LabelledSplit, tokens: dict[str, tuple[list[int], list[int]]]) -> list[tuple[list, list[str]]]:
    """(features, BIO tags) per training document, in doc_id order (a fixed order: L-BFGS is deterministic)."""
    from udfs.crf_tag import token_features

    out = []
    for doc_id in sorted(split.texts):
        begins, ends = tokens.get(doc_id, ([], []))
        if not begins:
            continue
        kept, _ = resolve_overlaps(split.spans.get(doc_id, []))
        out.append((token_features(split.texts[doc_id], begins, ends),
                    tags_for_tokens(list(zip(begins, ends)), kept, "BIO")))
    return out


def fit(seqs: list[tuple[list, list[str]]], settings: DictConfig, path: Path) -> dict[str, float]:
    """Train CRFsuite on the sequences into `path`; returns the last iteration's loss, iterations and active
    features (crfsuite's own log, parsed by python-crfsuite)."""
    import pycrfsuite

    if not seqs:
        raise UserError("the CRF has no training documents with tokens")
    trainer = pycrfsuite.Trainer(verbose=False)
    for xseq, yseq in seqs:
        trainer.append(xseq, yseq)
    trainer.set_params({"c1": float(settings.c1), "c2": float(settings.c2),
                        "max_iterations": int(settings.max_iterations), "feature.possible_transitions": True})
    trainer.train(str(path))
    last = trainer.logparser.last_iteration or {}
    return {"train_loss": float(last.get("loss", float("nan"))), "iterations": float(last.get("num", 0)),
            "active_features": float(last.get("active_features", 0))}


def predict_mentions(model: bytes, texts: dict[str, str],
                     tokens: dict[str, tuple[list[int], list[int]]]) -> dict[str, list[Mention]]:
    """doc_id -> the CRF's own chunks (its Viterbi tags read as BIO), for the dev scores of the CRF alone."""
    from udfs.crf_tag import crf_spans, tagger_for

    tagger = tagger_for(model)
    return {doc_id: [Mention(c["label"], c["s"], c["e"])
                     for c in crf_spans(tagger, text, *tokens.get(doc_id, ([], [])))]
            for doc_id, text in texts.items()}


def _pyfunc_class() -> Any:
    """The MLflow pyfunc wrapper (defined lazily: mlflow is imported only where a model is logged or loaded)."""
    import mlflow.pyfunc

    class CrfTagger(mlflow.pyfunc.PythonModel):
        """pyfunc: rows of note_text, token begins and exclusive ends -> the CRF's BIO tags per token."""

        def load_context(self, context: Any) -> None:
            self.model = Path(context.artifacts["crf"]).read_bytes()

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            from udfs.crf_tag import crf_tags, tagger_for

            tagger = tagger_for(self.model)
            return [crf_tags(tagger, t, list(b), list(e))
                    for t, b, e in zip(model_input["note_text"], model_input["begins"], model_input["ends"])]

    return CrfTagger


def log_and_register(path: Path, name: str) -> str:
    """Log the CRFsuite file as a pyfunc model of the active run and register it; returns the version."""
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    signature = ModelSignature(
        inputs=Schema([ColSpec(DataType.string, "note_text"), ColSpec(Array(DataType.long), "begins"),
                       ColSpec(Array(DataType.long), "ends")]),
        outputs=Schema([ColSpec(Array(DataType.string), "tags")]))
    info = mlflow.pyfunc.log_model(
        "model", python_model=_pyfunc_class()(), artifacts={"crf": str(path)}, pip_requirements=PIP_REQUIREMENTS,
        signature=signature, registered_model_name=name,
        code_paths=[str(Path(__file__).resolve().parents[1] / "udfs")])
    return str(info.registered_model_version)


def load_member(cfg: DictConfig, name: str, alias: str) -> CrfMember:
    """The CRF registered as name@alias: its CRFsuite bytes and '<name>@<version>' (UserError when missing)."""
    version = tracking.resolve_alias(cfg, name, alias)
    try:
        local = tracking.download_model(f"models:/{name}/{version.version}")
        found = sorted(local.rglob(MODEL_FILE))
        if not found:
            raise ValueError(f"no {MODEL_FILE} among the model's artifacts")
        model = found[0].read_bytes()
    except Exception as exc:  # noqa: BLE001 - any failure to load a registered model is a one-line user error
        raise tracking.load_failure(name, alias, version.version, exc) from exc
    return CrfMember(model, f"{name}@{version.version}")


def crf_name(name: str) -> str:
    """A recogniser's CRF voter's registered name: 'ner-morphology-es' -> 'ner-morphology-crf-es'."""
    return f"{name[:-3]}-crf-es" if name.endswith("-es") else f"{name}-crf"


def train(spark: SparkSession, cfg: DictConfig, model: str | None = None) -> dict[str, Any]:
    """Train on a recogniser's train split (models.deid's without `model`, else models.ner.models.<model>'s; train+dev
    with include_dev), score alone on dev, log, register."""
    from clinlake.ner.lifecycle import _splits, _write_table
    from clinlake.ner.settings import deid_settings, model_settings, with_model_defaults
    from clinlake.ner.tokens import fit_text_pipeline
    from clinlake.ner.training import dev_scores
    from udfs.crf_tag import FEATURES_VERSION

    cfg = with_model_defaults(cfg)
    if model is None:
        data, settings, job = deid_settings(cfg), cfg.models.deid_crf, "train_deid_crf"
        name = str(settings.name)
    else:
        data, settings, job = model_settings(cfg, model), cfg.models.ner_crf, "train_ner_crf"
        if data.get("nested"):
            raise UserError(f"the CRF voter learns the outer layer of the gold spans; {model} is a nested-layer "
                            f"recogniser (nested: {data.nested})")
        name = crf_name(str(data.name))
    include_dev = bool(settings.get("include_dev", False))
    train_split, dev = _splits(cfg, data, include_dev)
    text_model = fit_text_pipeline(spark, cfg.models.text)
    params = {"registered_name": name, "corpus": data.corpus, "train": data.train, "dev": data.dev,
              "extra_train": ",".join(map(str, data.get("extra_train") or [])), "recogniser": model or "deid",
              "include_dev": include_dev, "features": FEATURES_VERSION, "c1": settings.c1, "c2": settings.c2,
              "max_iterations": settings.max_iterations, "train_documents": len(train_split.texts),
              "dev_documents": len(dev.texts),
              **{f"text.{k}": v for k, v in dict(cfg.models.text).items()}}
    with tracking.job_run(cfg, job, params) as run, tempfile.TemporaryDirectory() as tmp:
        import mlflow

        t0 = time.time()
        seqs = sequences(train_split, tokenise(spark, text_model, train_split.texts))
        n_tokens = sum(len(y) for _, y in seqs)
        log.info("CRF: %d training documents, %d tokens", len(seqs), n_tokens)
        path = Path(tmp) / MODEL_FILE
        stats = fit(seqs, settings, path)
        train_seconds = time.time() - t0
        t1 = time.time()
        pred = predict_mentions(path.read_bytes(), dev.texts, tokenise(spark, text_model, dev.texts))
        dev_seconds = time.time() - t1
        metrics, table = dev_scores(str(data.corpus), dev.gold, pred)
        mlflow.log_metrics({**stats, "train_tokens": float(n_tokens),
                            "train_seconds": train_seconds, "dev_predict_seconds": dev_seconds})
        mlflow.log_metrics({f"dev_{k}": float(v) for k, v in metrics.items()})
        mlflow.log_metrics({f"dev_f1.{r['label']}": float(r["f1"]) for r in table})
        _write_table(Path(tmp) / "dev_per_label.csv", table)
        (Path(tmp) / "dev_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        mlflow.log_artifact(str(Path(tmp) / "dev_per_label.csv"))
        mlflow.log_artifact(str(Path(tmp) / "dev_metrics.json"))
        version = log_and_register(path, name)
        became = tracking.set_alias_if_absent(name, str(settings.alias), version)
        mlflow.set_tag("registered_version", version)
        if include_dev:
            mlflow.set_tag("dev_metrics_note", "trained on train+dev: dev metrics are not a held-out estimate")
        return {"model": name, "version": version, "champion": became, "alias": str(settings.alias),
                "run_id": run.info.run_id, "train_seconds": round(train_seconds, 1), **stats,
                "dev": {k: round(v, 4) for k, v in metrics.items()}}
