"""Job train_resolver: lake vocabulary + gazetteer -> resolver index (Delta snapshot) + ranker -> MLflow `resolver-es`
(first version becomes @champion). Served by extract_concepts through clinlake.resolve.load_resolver."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from clinlake import delta, resolve, tracking  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.config import lake_path  # noqa: E402
from clinlake.errors import UserError  # noqa: E402
from clinlake.resolver import index as ix  # noqa: E402
from clinlake.resolver import ranker as rk  # noqa: E402

log = logging.getLogger("clinlake.train_resolver")


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Check inputs -> build index + fit ranker -> log params/metrics -> register, tag the pinned index versions."""
    for t in ("gazetteer", "concept", "concept_synonym"):
        if not delta.exists(spark, lake_path(cfg, t)):
            raise UserError(f"vocabulary table '{t}' missing in the lake: run build_vocabulary first")
    s = resolve.settings(cfg)
    params = {k: s[k] for k in ("top_k", "max_df", "rare_grams", "pool", "top_n", "stem_top_n", "stem_rare",
                                "stem_pool", "reg_param", "ranker", "index_table", "icdo_classifier",
                                "icdo_classifier_c", "top1_calibrator", "calibrator_folds")}
    if s["ranker"] == "gbt":
        params.update({f"gbt_{k}": v for k, v in rk.gbt_settings(dict(s["gbt"] or {})).items()})
    params.update({f"{t}_version": delta.version(spark, lake_path(cfg, t)) for t in ("gazetteer", "concept_synonym")})
    params["label_vocabularies"] = dict(cfg.extract.label_vocabularies)
    with tracking.job_run(cfg, "train_resolver", params) as run_:
        import mlflow
        from mlflow import MlflowClient

        model, versions, metrics, calibrator = resolve.train(spark, cfg)
        mlflow.log_metrics(metrics)
        name = str(s["name"])
        version = tracking.log_and_register_spark_model(model, name)
        client = MlflowClient()
        client.set_model_version_tag(name, version, "index_path", lake_path(cfg, str(s["index_table"])))
        for part, v in versions.items():
            client.set_model_version_tag(name, version, f"index_version_{part}", str(v))
        # the stored stem postings serve only a word_stems with this fingerprint (resolve.load_resolver)
        client.set_model_version_tag(name, version, resolve.STEMS_TAG, ix.STEMS_FINGERPRINT)
        # the ranker learnt its neighbour features at these retrieval settings: the version serves with them
        for k in resolve.RETRIEVAL:
            client.set_model_version_tag(name, version, f"retrieval_{k}", str(int(s[k])))
        if calibrator is not None:
            client.set_model_version_tag(name, version, resolve.CALIBRATOR_TAG, json.dumps(calibrator))
        became = tracking.set_alias_if_absent(name, str(s["alias"]), version)
        mlflow.set_tag("registered_version", version)
        return {"model": name, "version": version, "champion": became, "run_id": run_.info.run_id,
                "top1_calibrator": calibrator is not None,
                "index_versions": versions, **{k: round(v, 4) for k, v in metrics.items()}}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    run_job("train_resolver", base_parser(__doc__).parse_args(argv), run)


if __name__ == "__main__":
    main()
