"""Write a small synthetic site lake (note_deid, note_nlp, person, concept, concept_ancestor) for study tests/demos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402

from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.config import lake_path  # noqa: E402
from clinlake.errors import UserError  # noqa: E402
from clinlake.study.synthetic import write_site_lake  # noqa: E402


def run(spark, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Generate one site's tables under the configured lake root."""
    if args.site < 1 or args.site > 99 or args.persons < 1:
        raise UserError("--site must be 1..99 and --persons at least 1")
    counts = write_site_lake(spark, lake_path(cfg, ""), args.site, args.persons, args.seed, not args.no_person)
    return {"lake": lake_path(cfg, ""), "site": args.site, **{f"{k}_rows": v for k, v in counts.items()}}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    parser.add_argument("--site", type=int, default=1, help="site number (changes ids, prevalence and model version)")
    parser.add_argument("--persons", type=int, default=120, help="persons at the site (about 2.2 notes each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-person", action="store_true", help="leave out the person table, like the demo lake")
    run_job("make_site_lake", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
