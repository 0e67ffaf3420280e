"""Job promote_model: evaluate a challenger version against @champion on the dev gold set and move the alias
only through the gate (not worse than the champion by more than the margin, and better on at least one metric)."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402

from clinlake import tracking  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.config import path_of  # noqa: E402
from clinlake.errors import UserError  # noqa: E402
from clinlake.promotion import decide, side_by_side  # noqa: E402

log = logging.getLogger("clinlake.promote_model")
CHALLENGER = "challenger"


def evaluate_alias(spark, cfg: DictConfig, spec, alias: str, out: Path) -> dict:
    """The evaluation job's own run() over the dev split, models resolved by `alias` (see `served_with`)."""
    from clinlake.evaluation import run as evaluation

    cfg, model_alias = served_with(cfg, spec, alias)
    ns = argparse.Namespace(task=str(spec.task), corpus=str(spec.corpus), data=path_of(cfg, spec.data),
                            out=str(out), predictions=None, model_alias=model_alias)
    return evaluation.run(spark, cfg, ns)


def served_with(cfg: DictConfig, spec, alias: str) -> tuple[DictConfig, str | None]:
    """(configuration, the evaluation's model alias) that serve `alias` of the model a promotion spec names.

    A CRF voter is one voter of a configured vote, the others served as configured: a spec with `alias_key`
    (deid-crf-es: `deid.vote.crf`) writes the alias to that key, one with `crf_of` (ner-morphology-crf-es:
    ner-morphology-es) to the `vote.crf` of that recogniser's extract.recognisers entry. Any other model is served
    by the evaluation's model alias.
    """
    import copy

    from omegaconf import OmegaConf

    key, owner = str(spec.get("alias_key") or ""), str(spec.get("crf_of") or "")
    if not key and not owner:
        return cfg, alias
    cfg = copy.deepcopy(cfg)
    if key:
        if OmegaConf.select(cfg, key.rsplit(".", 1)[0]) is None:
            raise UserError(f"promotion through {key} needs {key.rsplit('.', 1)[0]} configured (e.g. conf/full.yaml)")
        OmegaConf.update(cfg, key, alias)
        return cfg, None
    entry = next((e for e in cfg.extract.get("recognisers") or []
                  if not isinstance(e, str) and str(e.get("name")) == owner and e.get("vote")), None)
    if entry is None:
        raise UserError(f"promoting {owner}'s CRF voter needs {owner} served with a vote in extract.recognisers "
                        "(e.g. conf/full.yaml)")
    entry.vote.crf = alias
    return cfg, None


def run(spark, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Resolve champion and challenger, evaluate both, decide, move the alias, record the decision."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    spec = (cfg.promotion.models or {}).get(args.model)
    if spec is None:
        raise UserError(f"no promotion.models entry for '{args.model}' in configuration")
    tracking.configure(cfg)
    client = MlflowClient()
    try:
        client.get_model_version(args.model, str(args.version))
    except MlflowException as exc:
        raise UserError(f"model '{args.model}' has no version {args.version}") from exc
    try:
        champion = client.get_model_version_by_alias(args.model, "champion")
    except MlflowException:
        champion = None
    margin = float(args.margin if args.margin is not None else cfg.promotion.margin)
    params = {"model": args.model, "challenger_version": args.version, "margin": margin, "metric": spec.metric,
              "champion_version": champion.version if champion else "none"}
    if champion is None:
        with tracking.job_run(cfg, "promote_model", params):
            import mlflow

            client.set_registered_model_alias(args.model, "champion", str(args.version))
            mlflow.set_tag("decision", "promoted: first version, no champion yet")
        return {"model": args.model, "promoted": True, "reason": "no champion yet", "champion": str(args.version)}
    if str(champion.version) == str(args.version):
        return {"model": args.model, "promoted": False, "reason": "this version already is the champion"}
    # Each evaluation is its own MLflow run (the evaluation job's), so they happen before the decision's run.
    client.set_registered_model_alias(args.model, CHALLENGER, str(args.version))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            champ = evaluate_alias(spark, cfg, spec, "champion", Path(tmp) / "champion.json")
            chall = evaluate_alias(spark, cfg, spec, CHALLENGER, Path(tmp) / "challenger.json")
    finally:
        client.delete_registered_model_alias(args.model, CHALLENGER)
    promoted, reason = decide(champ, chall, str(spec.metric), list(spec.get("also") or []), margin)
    table = side_by_side(champ, chall)
    with tracking.job_run(cfg, "promote_model", params) as run:
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "side_by_side.csv"
            with open(path, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=["metric", "champion", "challenger", "delta"])
                w.writeheader()
                w.writerows(table)
            mlflow.log_artifact(str(path))
            (Path(tmp) / "decision.json").write_text(json.dumps({"promoted": promoted, "reason": reason}))
            mlflow.log_artifact(str(Path(tmp) / "decision.json"))
        mlflow.log_metrics({f"champion_{r['metric']}": float(r["champion"]) for r in table})
        mlflow.log_metrics({f"challenger_{r['metric']}": float(r["challenger"]) for r in table})
        mlflow.set_tag("decision", ("promoted: " if promoted else "kept champion: ") + reason)
        if promoted:
            client.set_registered_model_alias(args.model, "champion", str(args.version))
        return {"model": args.model, "promoted": promoted, "reason": reason, "run_id": run.info.run_id,
                "champion": str(args.version) if promoted else str(champion.version),
                spec.metric: {"champion": champ.get(spec.metric), "challenger": chall.get(spec.metric)}}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    parser = base_parser(__doc__)
    parser.add_argument("--model", required=True, help="registered model name, e.g. ner-gazetteer-es")
    parser.add_argument("--version", required=True, help="challenger version number")
    parser.add_argument("--margin", type=float, default=None, help="override promotion.margin")
    run_job("promote_model", parser.parse_args(argv), run)


if __name__ == "__main__":
    main()
