"""Train -> log -> register for the embeddings and the NerDL recognisers (what the train_* jobs run)."""

from __future__ import annotations

import csv
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pyspark.sql import SparkSession

from clinlake import tracking
from clinlake.config import path_of
from clinlake.errors import UserError
from clinlake.ner import embeddings as emb
from clinlake.ner import seeding
from clinlake.ner import training
from clinlake.ner.data import LabelledSplit, labelled_split, merge_splits
from clinlake.ner.settings import deid_settings, model_settings, with_model_defaults
from clinlake.ner.tokens import CHUNK_COL, NESTED, TEXT_COL, tag_set

log = logging.getLogger(__name__)

HYPER = ("max_epochs", "lr", "po", "batch_size", "dropout", "seed")


def ner_signature() -> Any:
    """Input: note_text; output: ner_chunk (CHUNK annotations, label in metadata `entity`)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", TEXT_COL)]), outputs=Schema([ColSpec("string", CHUNK_COL)]))


def embeddings_signature() -> Any:
    """Input: note_text; output: embeddings (one vector per token)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", TEXT_COL)]),
                          outputs=Schema([ColSpec("string", emb.EMBEDDINGS_COL)]))


def log_and_register(model: Any, name: str, signature: Any) -> str:
    """tracking.log_and_register_spark_model, adapted to an mlflow.spark.log_model that wants `artifact_path`.

    The installed MLflow's spark flavour takes (spark_model, artifact_path, ...) positionally and rejects the
    `name=` keyword tracking.py passes; pass the path positionally, which both signatures accept.
    """
    import mlflow.spark

    try:
        return tracking.log_and_register_spark_model(model, name, signature)
    except TypeError as exc:
        if "artifact_path" not in str(exc):
            raise
    info = mlflow.spark.log_model(model, "model", pip_requirements=tracking.PIP_REQUIREMENTS, signature=signature,
                                  registered_model_name=name)
    return str(info.registered_model_version)


def _text_params(cfg: DictConfig) -> dict[str, Any]:
    """The shared text settings as flat params."""
    return {f"text.{k}": v for k, v in OmegaConf.to_container(cfg.models.text, resolve=True).items()}  # type: ignore[union-attr]


def train_embeddings(spark: SparkSession, cfg: DictConfig, set_champion: bool = False) -> dict[str, Any]:
    """Fit Word2Vec over the configured corpora, log it, register a version (alias when absent or asked)."""
    cfg = with_model_defaults(cfg)
    ecfg = cfg.models.embeddings
    emb.check_vector_size(int(ecfg.vector_size))
    texts = emb.corpus_texts(ecfg, path_of(cfg, str(ecfg.corpora_root)))
    params = {"registered_name": ecfg.name, "corpora_root": ecfg.corpora_root,
              "text_dirs": ",".join(map(str, ecfg.text_dirs or [])), "conll_files": ",".join(map(str, ecfg.conll_files or [])),
              "documents": len(texts), **{k: ecfg[k] for k in ("vector_size", "window_size", "min_count", "max_iter",
                                                               "step_size", "num_partitions", "seed", "max_docs")},
              **_text_params(cfg)}
    with tracking.job_run(cfg, "train_embeddings", params) as run:
        import mlflow

        t0 = time.time()
        model = emb.fit_embeddings(spark, cfg.models.text, ecfg, texts)
        seconds = time.time() - t0
        vocab = emb.vocabulary_size(spark, model)
        mlflow.log_metrics({"documents": float(len(texts)), "characters": float(sum(len(t) for _, t in texts)),
                            "vocabulary": float(vocab), "train_seconds": seconds})
        version = log_and_register(model, str(ecfg.name), embeddings_signature())
        if set_champion:
            from mlflow import MlflowClient

            MlflowClient().set_registered_model_alias(str(ecfg.name), str(ecfg.alias), version)
            became = True
        else:
            became = tracking.set_alias_if_absent(str(ecfg.name), str(ecfg.alias), version)
        mlflow.set_tag("registered_version", version)
        return {"model": str(ecfg.name), "version": version, "alias_set": became, "run_id": run.info.run_id,
                "documents": len(texts), "vocabulary": vocab, "train_seconds": round(seconds, 1)}


def _split_pattern(stages: list) -> str:
    """The Tokenizer's split pattern in a list of fitted text stages ('' when none)."""
    for stage in stages:
        if type(stage).__name__ == "TokenizerModel":
            return str(stage.getOrDefault("splitPattern")) if stage.isDefined("splitPattern") else ""
    raise UserError("the text stages hold no Tokenizer")


def load_embeddings(spark: SparkSession, cfg: DictConfig) -> tuple[list, Any, str]:
    """(text stages from models.text, registered Word2VecModel, '<name>@<version>').

    The text stages are rebuilt from the current configuration (the sentence bound is a serving-safety
    setting), but the tokens must be those the vectors were trained on: a different Tokenizer split
    pattern than the registered embeddings' is refused (retrain the embeddings).
    """
    from clinlake.ner.tokens import fit_text_pipeline

    name, alias = str(cfg.models.embeddings.name), str(cfg.models.ner.embeddings_alias)
    model, ref = tracking.load_spark_model(cfg, name, alias)
    emb_stages, w2v = emb.split_embeddings_pipeline(model)
    stages = list(fit_text_pipeline(spark, cfg.models.text).stages)
    if _split_pattern(stages) != _split_pattern(emb_stages):
        raise UserError(f"models.text.split_pattern differs from the one {ref} was trained with "
                        f"({_split_pattern(emb_stages)!r}): run train_embeddings again")
    return stages, w2v, ref


def _write_table(path: Path, table: list[dict]) -> None:
    """Per-label table as CSV."""
    cols = ["label", "support", "tp", "fp", "fn", "precision", "recall", "f1"]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(table)


def nested_layer(settings: DictConfig) -> str:
    """The layer of overlapping gold spans a recogniser learns (tokens.NESTED), or a UserError."""
    # inner: a second tagger for the mentions nested inside others, served beside the outer one (keep_overlaps)
    nested = str(settings.get("nested", "outer"))
    if nested not in NESTED:
        raise UserError(f"nested must be one of {', '.join(NESTED)}, got {nested!r}")
    return nested


def _splits(cfg: DictConfig, settings: DictConfig, include_dev: bool) -> tuple[LabelledSplit, LabelledSplit]:
    """(train, dev) labelled splits for a recogniser's settings."""
    labels = list(settings.get("labels") or [])
    disc = str(settings.get("discontinuous", "span"))
    nested_layer(settings)   # checked before any corpus is read
    corpus = str(settings.corpus)
    max_train = int(settings.get("max_train_docs", 0) or 0)  # caps the train split and each extra split alike
    train = labelled_split(corpus, path_of(cfg, str(settings.train)), labels, disc, max_train)
    dev_path = path_of(cfg, str(settings.dev))
    dev = labelled_split(corpus, dev_path, labels, disc, int(settings.get("max_dev_docs", 0) or 0))
    for extra in extra_train_paths(cfg, settings):
        # a second annotated split of the same corpus (CANTEMIST dev2): more training data, dev stays held out
        if extra.resolve() == Path(dev_path).resolve():
            raise UserError(f"extra_train lists the dev split {extra}: dev metrics would not be held out "
                            "(use include_dev: true for a final model on train+dev)")
        extra_split = labelled_split(corpus, extra, labels, disc, max_train)
        leak = set(extra_split.texts) & set(dev.texts)
        if leak:
            raise UserError(f"{len(leak)} documents of extra_train {extra} are also dev documents, e.g. "
                            f"{sorted(leak)[0]}: dev metrics would not be held out")
        train = merge_splits(train, extra_split)
    if include_dev:
        train = merge_splits(train, dev)
    return train, dev


def extra_train_paths(cfg: DictConfig, settings: DictConfig) -> list[Path]:
    """The recogniser's `extra_train` splits (a path or a list of paths), resolved; [] when unset."""
    extra = settings.get("extra_train") or []
    if isinstance(extra, str):
        extra = [extra]
    return [Path(path_of(cfg, str(p))) for p in extra]


def train_recogniser(spark: SparkSession, cfg: DictConfig, model: str) -> dict[str, Any]:
    """Train one NerDL recogniser (`deid` or a models.ner.models key), log everything, register a version."""
    cfg = with_model_defaults(cfg)
    is_deid = model == "deid"
    settings = deid_settings(cfg) if is_deid else model_settings(cfg, model)
    job = "train_deid" if is_deid else "train_ner"
    scheme = str(settings.get("tagging", "BIO")).upper()
    include_dev = bool(settings.get("include_dev", False))
    train, dev = _splits(cfg, settings, include_dev)
    nested = nested_layer(settings)
    labels = sorted(set(settings.get("labels") or []) or set(train.labels))
    tags = tag_set(labels, scheme)
    graph_dir = training.graph_folder(settings.get("graph_dir"), len(tags))
    seed_graphs = bool(settings.get("seed_graphs", True))   # one seed, one model: the graphs' random ops get the seed
    text_stages, w2v, emb_ref = load_embeddings(spark, cfg)
    params = {"model": model, "registered_name": settings.name, "corpus": settings.corpus, "train": settings.train,
              "dev": settings.dev, "include_dev": include_dev,
              "extra_train": ",".join(str(p) for p in extra_train_paths(cfg, settings)),
              "labels": ",".join(labels), "tagging": scheme,
              "tags": len(tags), "graph_dir": graph_dir or "bundled", "embeddings": emb_ref,
              "seed_graphs": seed_graphs,
              "discontinuous": settings.get("discontinuous", "span"),
              "nested": nested, "train_documents": len(train.texts),
              "dev_documents": len(dev.texts), **{k: settings[k] for k in HYPER}, **_text_params(cfg)}
    with tracking.job_run(cfg, job, params) as run, tempfile.TemporaryDirectory() as tmp:
        import mlflow

        t0 = time.time()
        fit_graphs = graph_dir
        if seed_graphs:
            source = seeding.folder_graphs(graph_dir) if graph_dir else seeding.bundled_graphs(spark)
            fit_graphs = seeding.seeded_graph_folder(source, int(settings.seed), f"{tmp}/graphs")
        pipeline, stats = training.fit_ner(spark, text_stages, w2v, train, settings, f"{tmp}/logs", scheme, fit_graphs,
                                           nested)
        train_seconds = time.time() - t0
        epochs, log_files = training.read_epoch_logs(f"{tmp}/logs")
        for e in epochs:
            mlflow.log_metric("train_loss", e["loss"], step=int(e["epoch"]))
            mlflow.log_metric("epoch_seconds", e["seconds"], step=int(e["epoch"]))
        for f in log_files:
            mlflow.log_artifact(str(f), "training_logs")
        mlflow.log_metrics({f"data_{k}": float(v) for k, v in stats.items()})
        mlflow.log_metrics({f"data_skipped_{k}": float(v) for k, v in train.skipped.items()})
        t1 = time.time()
        pred = training.predict_mentions(spark, pipeline, dev.texts)
        dev_seconds = time.time() - t1
        metrics, table = training.dev_scores(str(settings.corpus), dev.gold, pred)
        mlflow.log_metrics({f"dev_{k}": float(v) for k, v in metrics.items()})
        mlflow.log_metrics({f"dev_f1.{r['label']}": float(r["f1"]) for r in table})
        mlflow.log_metrics({"train_seconds": train_seconds, "dev_predict_seconds": dev_seconds,
                            "dev_notes_per_s": len(dev.texts) / dev_seconds if dev_seconds else 0.0})
        _write_table(Path(tmp) / "dev_per_label.csv", table)
        (Path(tmp) / "dev_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        mlflow.log_artifact(str(Path(tmp) / "dev_per_label.csv"))
        mlflow.log_artifact(str(Path(tmp) / "dev_metrics.json"))
        version = log_and_register(pipeline, str(settings.name), ner_signature())
        became = tracking.set_alias_if_absent(str(settings.name), str(cfg.models.ner.alias), version)
        mlflow.set_tag("registered_version", version)
        if include_dev:
            mlflow.set_tag("dev_metrics_note", "trained on train+dev: dev metrics are not a held-out estimate")
        # "champion": whether this version took the configured alias (models.ner.alias, named beside it)
        return {"model": str(settings.name), "version": version, "champion": became,
                "alias": str(cfg.models.ner.alias), "run_id": run.info.run_id, "embeddings": emb_ref,
                "epochs": len(epochs), "final_loss": epochs[-1]["loss"] if epochs else None,
                "train_seconds": round(train_seconds, 1), "dev": {k: round(v, 4) for k, v in metrics.items()},
                "alignment": stats}


def check_model_name(cfg: DictConfig, model: str) -> None:
    """UserError unless `model` is a configured recogniser."""
    cfg = with_model_defaults(cfg)
    model_settings(cfg, model)

