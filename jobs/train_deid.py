"""Job train_deid: NerDL PHI recogniser on MEDDOCAN (all 21 types), logged to MLflow and registered as deid-ner-es.

Settings under models.deid.* (include_dev=true trains the final model on train+dev). The first version
becomes @champion; later ones wait for the promotion gate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from clinlake.cli import base_parser, run_job  # noqa: E402


def run(spark: SparkSession, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Train, evaluate on dev, log and register."""
    from clinlake.ner.lifecycle import train_recogniser

    return train_recogniser(spark, cfg, "deid")


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    run_job("train_deid", base_parser(__doc__).parse_args(argv), run)


if __name__ == "__main__":
    main()
