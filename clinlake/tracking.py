"""MLflow wiring: one tracking store per config, one run per job, models registered and served by alias."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig

from clinlake.config import path_of
from clinlake.errors import UserError

log = logging.getLogger(__name__)

# Explicit requirements: letting MLflow infer them starts a second JVM (~24 s) per logged model.
PIP_REQUIREMENTS = ["pyspark==3.5.8", "spark-nlp==5.5.3", "delta-spark==3.3.2"]


def tracking_uri(cfg: DictConfig) -> str:
    """Configured tracking URI, else the embedded store: SQLite under mlflow.dir."""
    uri = str(cfg.mlflow.get("tracking_uri") or "")
    if uri:
        return uri
    folder = Path(path_of(cfg, cfg.mlflow.dir))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def configure(cfg: DictConfig) -> str:
    """Point MLflow at the configured store and experiment; returns the experiment id."""
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = str(cfg.mlflow.experiment)
    with _store_lock(cfg):
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            artifact_location = None
            if not cfg.mlflow.get("tracking_uri"):
                artifact_location = (Path(path_of(cfg, cfg.mlflow.dir)) / "artifacts").resolve().as_uri()
            exp_id = mlflow.create_experiment(name, artifact_location=artifact_location)
        else:
            exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


@contextlib.contextmanager
def _store_lock(cfg: DictConfig) -> Iterator[None]:
    """Serialise first use of the embedded SQLite store across processes.

    Two jobs started at once on a fresh store both run MLflow's schema migration and one dies with an
    alembic "expected to match one row" error (seen in CI); both may also try to create the experiment.
    A server-backed store handles its own concurrency, so no lock there.
    """
    if cfg.mlflow.get("tracking_uri"):
        yield
        return
    import fcntl

    with open(Path(path_of(cfg, cfg.mlflow.dir)) / ".store.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def job_run(cfg: DictConfig, job: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
    """One MLflow run per job invocation, tagged with the job name."""
    import mlflow

    configure(cfg)
    with mlflow.start_run(run_name=job, tags={"clinlake.job": job}) as run:
        if params:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        yield run


def resolve_alias(cfg: DictConfig, name: str, alias: str) -> Any:
    """The registered model version behind name@alias, or a one-line UserError before any output is written."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    configure(cfg)
    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise UserError(f"model '{name}@{alias}' not found in the registry at {tracking_uri(cfg)}: "
                        f"train and register it first") from exc


def load_spark_model(cfg: DictConfig, name: str, alias: str) -> tuple[Any, str]:
    """Load a registered Spark pipeline by alias, set up for serving (for_serving); returns (PipelineModel,
    '<name>@<version>')."""
    model, ref = load_model_version(name, alias, resolve_alias(cfg, name, alias))
    return for_serving(model, cfg), ref


def for_serving(model: Any, cfg: DictConfig) -> Any:
    """The pipeline with its NerDL stages tagging `scale.ner_batch_size` sentences per TensorFlow batch (0 or unset:
    the batch size it was trained with).

    NerDL pads every batch to its longest sentence, and clinical sentences range from a word to hundreds, so small
    batches waste less: one MEDDOCAN deid version tags dev in 18 s at 4 against 34 s at 32, the same chunks
    (scripts/bench_nerdl.py; docs/scale.md "NerDL batch size").
    """
    raw = (cfg.get("scale") or {}).get("ner_batch_size")
    try:
        size = int(raw or 0)
    except (TypeError, ValueError):
        size = -1
    if size < 0 or isinstance(raw, float) and raw != size:
        raise UserError(f"scale.ner_batch_size must be a whole number >= 0 (0 = the model's own), got {raw!r}")
    if size > 0:
        from clinlake.ner import nerdl_stages

        for stage in nerdl_stages(model):
            stage.setBatchSize(size)
    return model


def load_model_version(name: str, alias: str, version: Any) -> tuple[Any, str]:
    """Load the Spark pipeline of an already resolved model version (`alias` only names it in errors)."""
    import mlflow.spark

    try:
        # Download once and check the stage metadata on the driver first: a corrupt file would otherwise fail
        # inside a Spark job, whose executor-side Python traceback Spark logs before our one-line error.
        # The version resolved by the caller, not the alias again: if the alias moves meanwhile, the model loaded
        # is still the one every output row names.
        local = download_model(f"models:/{name}/{version.version}")
        check_spark_model_files(local)
        model = mlflow.spark.load_model(str(local))
    except Exception as exc:  # noqa: BLE001 - any failure to load a registered model is a one-line user error
        raise load_failure(name, alias, version.version, exc) from exc
    return model, f"{name}@{version.version}"


def load_failure(name: str, alias: str, version: Any, exc: BaseException) -> UserError:
    """The one-line UserError for a registered model version that cannot be read (the exception's first line)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UserError(f"model '{name}@{alias}' (version {version}) cannot be loaded: {first}")


def download_model(uri: str) -> Path:
    """The model's artifacts in a fresh local temp folder, removed when the process exits."""
    import atexit
    import shutil
    import tempfile

    from mlflow.artifacts import download_artifacts

    folder = tempfile.mkdtemp(prefix="clinlake-model-")
    atexit.register(shutil.rmtree, folder, True)
    return Path(download_artifacts(artifact_uri=uri, dst_path=folder))


def check_spark_model_files(model_dir: Path) -> None:
    """Raise ValueError naming the file when a logged Spark model has no stage metadata or unreadable metadata."""
    import json

    parts = sorted(p for p in model_dir.rglob("metadata/part-*") if p.is_file())
    if not parts:
        raise ValueError(f"no Spark stage metadata under {model_dir.name}: not a logged Spark pipeline")
    for part in parts:
        for line in part.read_text(encoding="utf-8", errors="strict").splitlines():
            if line.strip():
                try:
                    json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"stage metadata {part.relative_to(model_dir)} is not valid JSON") from exc


def log_and_register_spark_model(model: Any, name: str, signature: Any = None) -> str:
    """Log a fitted PipelineModel to the active run and register it; returns the new version number."""
    import mlflow.spark

    info = mlflow.spark.log_model(
        model, "model", pip_requirements=PIP_REQUIREMENTS, signature=signature, registered_model_name=name
    )
    return str(info.registered_model_version)


def set_alias_if_absent(name: str, alias: str, version: str) -> bool:
    """Give `version` the alias when no version holds it yet (a first model becomes champion)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        client.get_model_version_by_alias(name, alias)
        return False
    except MlflowException:
        client.set_registered_model_alias(name, alias, version)
        return True
