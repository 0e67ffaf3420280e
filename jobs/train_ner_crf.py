"""Job train_ner_crf: the CRF voter of a NER recogniser's vote (CRFsuite on the recogniser's own splits and tokens),
logged to MLflow and registered as the recogniser's name with -crf before its -es (ner-morphology-crf-es).

    spark-submit jobs/train_ner_crf.py --model morphology [--env full] [--set models.ner_crf.max_iterations=200]

Settings under models.ner_crf.*; the splits (extra_train included) are models.ner.models.<model>'s. The first
version becomes @champion. `vote: {members: [...], crf: champion}` on the recogniser's extract.recognisers entry
serves it (docs/ner.md "A CRF in the morphology vote").
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

    return train(spark, cfg, model=args.model)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    parser.add_argument("--model", required=True, help="a key of models.ner.models (e.g. morphology)")
    run_job("train_ner_crf", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
