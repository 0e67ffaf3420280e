"""Job train_deid_crf: the CRF member of the de-identification vote (CRFsuite on MEDDOCAN, all 21 types), logged
to MLflow and registered as deid-crf-es.

Settings under models.deid_crf.* (the splits are models.deid's; include_dev=true trains on train+dev). The first
version becomes @champion. `deid.vote.crf: champion` serves it in the vote (docs/deid.md "A CRF in the vote").
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
    """Train, score alone on dev, log and register."""
    from clinlake.crf import train

    return train(spark, cfg)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    run_job("train_deid_crf", base_parser(__doc__).parse_args(argv), run)


if __name__ == "__main__":
    main()
