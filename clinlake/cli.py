"""Shared wiring for jobs: argument parsing, config, Spark, one-line errors, and the printed summary."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from omegaconf import DictConfig

from clinlake.config import load_config
from clinlake.errors import UserError

log = logging.getLogger("clinlake")


def base_parser(description: str) -> argparse.ArgumentParser:
    """Parser with the options every job takes (--lake, --env, --set)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lake", help="lake root folder or URI (default: conf `lake`, ./lake)")
    parser.add_argument("--env", help="configuration environment: conf/<env>.yaml (default local)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    return parser


def setup_logging() -> None:
    """Plain, quiet logging: our own INFO lines, third-party warnings only."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)


class Steps:
    """Wall seconds per named step of a job: logged as each step ends (progress) and kept for the summary."""

    def __init__(self, logger: logging.Logger) -> None:
        self.log, self.seconds = logger, {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time one step; a step entered twice adds up."""
        t = time.perf_counter()
        try:
            yield
        finally:
            secs = time.perf_counter() - t
            self.seconds[name] = round(self.seconds.get(name, 0.0) + secs, 1)
            self.log.info("step %s: %.1fs", name, secs)


def run_job(
    name: str,
    args: argparse.Namespace,
    run: Callable[[Any, DictConfig, argparse.Namespace], dict[str, Any]],
    needs_spark: bool = True,
) -> dict[str, Any]:
    """Load config, build Spark, call run(spark, cfg, args), print its summary; UserError -> exit 2 with one line."""
    setup_logging()
    started = time.time()
    try:
        cfg = load_config(args.env, args.set, lake=args.lake)
        spark = None
        if needs_spark:
            from clinlake.spark import build_spark

            spark = build_spark(cfg, f"clinlake-{name}")
        summary = run(spark, cfg, args)
    except UserError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    summary = dict(summary or {})
    summary.setdefault("seconds", round(time.time() - started, 1))
    print(f"{name}: " + json.dumps(summary, default=str, ensure_ascii=False))
    return summary
