"""The evaluation job: read a split, get predictions (submission files or the deployed pipeline), score, report."""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from clinlake.cli import base_parser, run_job
from clinlake.corpora.readers import read_corpus
from clinlake.corpora.types import Corpus
from clinlake.errors import UserError
from clinlake.evaluation.predict import load_predictors
from clinlake.evaluation.predictions import read_predictions
from clinlake.evaluation.scoring import score

log = logging.getLogger("clinlake.evaluate")

TASKS = ("deid", "ner", "coding", "assertion")
CORPORA = ("meddocan", "codiesp", "cantemist", "pharmaconer", "nubes", "pairs")
SUPPORTED = {("deid", "meddocan"), ("ner", "cantemist"), ("ner", "pharmaconer"), ("coding", "codiesp"),
             ("assertion", "nubes"), ("assertion", "pairs")}
TABLE_COLUMNS = ("label", "support", "tp", "fp", "fn", "precision", "recall", "f1")


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad invocation as one line and exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"evaluate: error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The contract: --task --corpus --data --out [--predictions] [--model-alias] [--lake] [--set k=v]."""
    base = base_parser(__doc__)
    parser = _OneLineParser(description=__doc__, parents=[base], add_help=True, conflict_handler="resolve")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--corpus", required=True, choices=CORPORA)
    parser.add_argument("--data", required=True, help="a split in the corpus' own layout")
    parser.add_argument("--out", required=True, help="metrics JSON to write")
    parser.add_argument("--predictions", help="system output in the shared task's submission format")
    parser.add_argument("--model-alias", default="champion", help="registry alias of the deployed models")
    return parser


def check_invocation(args: argparse.Namespace) -> None:
    """Fail fast, before any Spark start: unknown combination, missing paths, no deployed pipeline."""
    if (args.task, args.corpus) not in SUPPORTED:
        raise UserError(f"task {args.task} does not apply to corpus {args.corpus}; supported: "
                        + ", ".join(f"{t}/{c}" for t, c in sorted(SUPPORTED)))
    if not Path(args.data).exists():
        raise UserError(f"--data not found: {args.data}")
    if args.predictions and not Path(args.predictions).exists():
        raise UserError(f"--predictions not found: {args.predictions}")
    if args.task != "assertion" and not args.predictions:
        if (args.task, args.corpus) not in load_predictors():
            raise UserError(f"no deployed pipeline for task {args.task} / corpus {args.corpus} yet")


def load_code_list(path: str | None) -> set[str] | None:
    """First column of a valid-codes TSV, lower-cased; None when no path is configured."""
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        raise UserError(f"valid codes list not found: {p}")
    with open(p, encoding="utf-8") as fh:
        return {line.split("\t")[0].strip().lower() for line in fh if line.strip()}


def _eval_cfg(cfg: DictConfig) -> Any:
    """The optional `evaluation` config section (absent keys read as None)."""
    return cfg.get("evaluation") or {}


def assertion_fn(corpus: str) -> Any:
    """clinlake.metrics.assertion.evaluate_<corpus> (owned by the assertion work), imported lazily."""
    import importlib

    fn_name = f"evaluate_{corpus}"
    try:
        return getattr(importlib.import_module("clinlake.metrics.assertion"), fn_name)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"clinlake.metrics.assertion.{fn_name} is not available yet") from exc


def _accepts(fn: Any, name: str) -> bool:
    """True when fn takes a keyword argument `name` (or **kwargs)."""
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def run_assertion(spark: Any, cfg: DictConfig, args: argparse.Namespace) -> tuple[dict[str, float], list, dict]:
    """Call evaluate_<corpus>(data, **the keywords it accepts) and split off its per-label table / versions."""
    fn = assertion_fn(args.corpus)
    offered = {"predictions": args.predictions, "cfg": cfg, "spark": spark, "model_alias": args.model_alias}
    if args.predictions and not _accepts(fn, "predictions"):
        log.warning("%s takes no predictions file: --predictions %s ignored", fn.__name__, args.predictions)
    result = dict(fn(args.data, **{k: v for k, v in offered.items() if _accepts(fn, k)}))
    table = list(result.pop("per_label", []) or [])
    versions = dict(result.pop("model_versions", {}) or {})
    return result, table, versions


def run(spark: Any, cfg: DictConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Score one split and write the flat metrics JSON (plus a per-label CSV beside it); log to MLflow."""
    started = time.time()
    if args.task == "assertion":
        metrics, table, versions = run_assertion(spark, cfg, args)
        documents = int(metrics.pop("documents", 0) or 0)
    else:
        try:
            gold = read_corpus(args.corpus, args.data)
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(f"cannot read {args.corpus} split {args.data}: {exc}") from exc
        pred = get_predictions(spark, cfg, args, gold)
        ev = _eval_cfg(cfg)
        metrics, table = score(args.task, args.corpus, gold, pred,
                               load_code_list((ev.get("valid_codes") or {}).get("d")),
                               load_code_list((ev.get("valid_codes") or {}).get("p")))
        metrics["gold_span_mismatches"] = len(gold.mismatches)
        documents, versions = gold.documents, pred.model_versions
    wall = time.time() - started
    metrics.update({"documents": documents, "wall_s": round(wall, 3),
                    "notes_per_s": round(documents / wall, 3) if wall > 0 else 0.0,
                    # provenance, so a folder of these files can be reported without knowing their names
                    "task": args.task, "corpus": args.corpus,
                    "mode": "predictions" if args.predictions else "pipeline"})
    write_outputs(args.out, metrics, table)
    if bool(_eval_cfg(cfg).get("mlflow", True)):
        log_to_mlflow(cfg, args, metrics, table, versions)
    return metrics


def get_predictions(spark: Any, cfg: DictConfig, args: argparse.Namespace, gold: Corpus) -> Corpus:
    """Parse --predictions, or run the registered deployed-pipeline predictor over the split's notes."""
    if args.predictions:
        return read_predictions(args.task, args.corpus, args.predictions, gold)
    from clinlake.corpora.frames import notes_df

    predictor = load_predictors()[(args.task, args.corpus)]
    t0 = time.time()
    pred = predictor(spark, cfg, notes_df(spark, gold), args.model_alias)
    log.info("deployed pipeline predicted %d documents in %.1f s", gold.documents, time.time() - t0)
    return pred


def per_label_csv_path(out: str | os.PathLike) -> Path:
    """Where the per-label table goes: METRICS.json -> METRICS.per_label.csv."""
    p = Path(out)
    return p.with_name(p.stem + ".per_label.csv")


def write_outputs(out: str | os.PathLike, metrics: dict[str, Any], table: list[dict[str, object]]) -> None:
    """Write the flat metrics JSON and the per-label CSV."""
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with open(per_label_csv_path(p), "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=TABLE_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(table)


def bar_chart(table: list[dict[str, object]], path: str | os.PathLike, title: str) -> None:
    """Horizontal bar chart of per-label F1 (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [str(r["label"]) for r in table] or ["(none)"]
    values = [float(r.get("f1", 0.0)) for r in table] or [0.0]  # type: ignore[arg-type]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
    ax.barh(labels, values, color="#4c72b0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1")
    ax.set_title(title)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def log_to_mlflow(cfg: DictConfig, args: argparse.Namespace, metrics: dict[str, Any],
                  table: list[dict[str, object]], versions: dict[str, str]) -> None:
    """One MLflow run: model versions and invocation as params, metrics, per-label CSV + PNG chart as artifacts."""
    try:
        import mlflow

        from clinlake import tracking
    except ImportError as exc:  # tracking not wired in this checkout: the JSON is still written
        log.warning("MLflow logging skipped: %s", exc)
        return
    params = {"task": args.task, "corpus": args.corpus, "data": args.data, "mode": "predictions" if args.predictions
              else "pipeline", "model_alias": args.model_alias, **{f"model.{k}": v for k, v in versions.items()}}
    with tracking.job_run(cfg, "evaluate", params):
        mlflow.log_metrics({k.replace("@", "_"): float(v) for k, v in metrics.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "per_label.csv"
            write_outputs(Path(tmp) / "metrics.json", metrics, table)
            (Path(tmp) / "metrics.per_label.csv").rename(csv_path)
            png = Path(tmp) / "per_label_f1.png"
            bar_chart(table, png, f"{args.task}/{args.corpus} per-label F1")
            mlflow.log_artifact(str(csv_path))
            mlflow.log_artifact(str(png))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry point: exit code 2 with a one-line cause for any bad invocation."""
    args = build_parser().parse_args(argv)
    try:
        check_invocation(args)
        if args.task == "assertion":
            needs_spark = _accepts(assertion_fn(args.corpus), "spark")
        else:
            needs_spark = args.predictions is None
    except UserError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        sys.exit(2)
    return run_job("evaluate", args, run, needs_spark=needs_spark)
