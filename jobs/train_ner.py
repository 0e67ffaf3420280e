"""Job train_ner: fit a recogniser, log it to MLflow, register a new version (first version becomes @champion).

--model gazetteer: TextMatcher over the lake's gazetteer. --model diagnosis_procedure | diagnosis | procedure |
morphology | drug, or any other key under models.ner.models: NerDL on the registered in-domain embeddings (run
train_embeddings first), settings under models.ner.*.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from clinlake import delta, recognise, tracking  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.config import lake_path, path_of, require_path  # noqa: E402
from clinlake.errors import UserError  # noqa: E402

log = logging.getLogger("clinlake.train_ner")
NERDL_MODELS = ("diagnosis_procedure", "diagnosis", "procedure", "morphology", "drug")  # the shipped keys
MODELS = ("gazetteer",) + NERDL_MODELS


def signature():
    """Input: note text; output: the recognised chunks (documented for MLflow's model page)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", recognise.TEXT_COL)]),
                          outputs=Schema([ColSpec("string", "chunks")]))


def train_gazetteer(spark: SparkSession, cfg: DictConfig) -> dict:
    """TextMatcher pipeline over the lake's gazetteer table (built by build_vocabulary)."""
    mcfg = cfg.models.recogniser
    gaz_path = lake_path(cfg, "gazetteer")
    if not delta.exists(spark, gaz_path):
        raise UserError(f"no gazetteer table at {gaz_path}: run build_vocabulary first")
    gaz = spark.read.format("delta").load(gaz_path)
    prec = mcfg.get("precision") or {}
    table, min_precision = None, float(prec.get("min_precision", 0.0))
    if prec.get("path") and min_precision > 0:
        path = path_of(cfg, str(prec.path))
        require_path(path, f"models.recogniser.precision.path {path} not found (set it to \"\" to keep every phrase)")
        table = recognise.read_phrase_precision(spark, path)
    phrases = recognise.phrases_by_label(gaz, list(mcfg.labels), int(mcfg.min_count), int(mcfg.min_chars),
                                         table, min_precision, int(prec.get("min_occurrences", 3)))
    if not phrases:
        raise UserError("the gazetteer has no mentions for the configured labels")
    with tracking.job_run(cfg, "train_ner", {
        "model": "gazetteer", "registered_name": mcfg.name, "labels": ",".join(sorted(phrases)),
        "min_count": mcfg.min_count, "min_chars": mcfg.min_chars,
        "min_precision": min_precision if table is not None else 0.0,
        "min_occurrences": int(prec.get("min_occurrences", 3)),
        "gazetteer_version": delta.version(spark, gaz_path),
    }) as run:
        import mlflow

        model = recognise.fit_matcher(spark, phrases)
        mlflow.log_metrics({f"phrases_{k.lower()}": float(len(v)) for k, v in phrases.items()})
        version = tracking.log_and_register_spark_model(model, str(mcfg.name), signature())
        became = tracking.set_alias_if_absent(str(mcfg.name), str(mcfg.alias), version)
        mlflow.set_tag("registered_version", version)
        return {"model": str(mcfg.name), "version": version, "champion": became, "run_id": run.info.run_id,
                "phrases": {k: len(v) for k, v in phrases.items()}}


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Dispatch on --model."""
    if args.model == "gazetteer":
        return train_gazetteer(spark, cfg)
    from clinlake.ner.lifecycle import train_recogniser

    # any models.ner.models key (a site may configure its own); an unknown one is a UserError naming the known ones
    return train_recogniser(spark, cfg, args.model)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    parser.add_argument("--model", required=True, help=f"{', '.join(MODELS)} or another models.ner.models key")
    run_job("train_ner", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
