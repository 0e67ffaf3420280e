"""Job train_embeddings: Word2Vec over all configured Spanish clinical text, registered as embeddings-clinical-es.

Corpus folders come from models.embeddings.* (corpora_root, text_dirs, conll_files). The first version gets
the alias (@champion); --set-champion moves it explicitly to the new version.
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
    """Train, log and register the embeddings."""
    from clinlake.ner.lifecycle import train_embeddings

    return train_embeddings(spark, cfg, set_champion=args.set_champion)


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    parser.add_argument("--set-champion", action="store_true", help="move the alias to the new version")
    run_job("train_embeddings", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
