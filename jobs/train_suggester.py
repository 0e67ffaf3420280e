"""Job train_suggester: coded training notes (CodiEsp D/P lists) -> similar-note code suggester -> MLflow
`code-suggester-es` (first version becomes @champion). Served by extract_concepts into `note_code_suggestion`.

python jobs/train_suggester.py [--env ENV] [--set suggest.neighbours=20 ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from omegaconf import DictConfig  # noqa: E402

from clinlake import suggest, tracking  # noqa: E402
from clinlake.cli import base_parser, run_job  # noqa: E402
from clinlake.config import path_of  # noqa: E402
from clinlake.errors import UserError  # noqa: E402

log = logging.getLogger("clinlake.train_suggester")
# CodiEsp's two code lists (D: diagnoses, P: procedures) as Corpus attributes
LISTS = {"D": "codes_d", "P": "codes_p"}


def coded_notes(corpus_name: str, path: str, max_docs: int = 0) -> tuple[list[str], list[str], Any]:
    """(doc ids, texts, Corpus) of a coded split, sorted by doc id; the first max_docs when > 0."""
    from clinlake.corpora.readers import read_corpus

    if not Path(path).exists():
        raise UserError(f"suggester corpus split {path} not found (suggest.train / suggest.dev)")
    corpus = read_corpus(corpus_name, path)
    docs = sorted(corpus.notes)[: max_docs or None]
    if not docs:
        raise UserError(f"suggester corpus split {path} has no notes")
    return docs, [corpus.notes[d] for d in docs], corpus


def code_lists(corpus: Any, lst: str) -> dict[str, list[str]]:
    """doc id -> codes of one CodiEsp list ("D" or "P"); empty when the split has no such file."""
    return getattr(corpus, LISTS[lst]) or {}


def dev_metrics(index: suggest.SuggesterIndex, s: dict, dev_path: str) -> dict[str, float]:
    """MAP of the suggestions alone on the dev split, per code list, with the evaluation's metric code."""
    from clinlake.metrics.coding import mean_average_precision

    docs, texts, corpus = coded_notes(str(s["corpus"]), dev_path, int(s["max_train_docs"]))
    out = suggest.suggest(index, texts)
    metrics = {}
    for lst, vocab in dict(s["vocabularies"]).items():
        lists = code_lists(corpus, lst)
        gold = {d: lists.get(d, []) for d in docs if lists}
        ranked = {d: [c for v, c, _, _ in row if v == vocab] for d, row in zip(docs, out)}
        metrics[f"dev_map_{lst.lower()}_suggestions_alone"] = round(mean_average_precision(gold, ranked), 4)
    return metrics


def run(spark: object, cfg: DictConfig, args: argparse.Namespace) -> dict:
    """Read the coded training notes -> fit -> dev MAP of the suggestions alone -> log, register, alias if free."""
    s = suggest.settings(cfg)
    vocabularies = dict(s["vocabularies"])
    unknown = set(vocabularies) - set(LISTS)
    if unknown:
        raise UserError(f"suggest.vocabularies: unknown code lists {sorted(unknown)}; CodiEsp has {sorted(LISTS)}")
    train_path, dev_path = str(path_of(cfg, s["train"])), str(path_of(cfg, s["dev"]))
    t0 = time.time()
    docs, texts, corpus = coded_notes(str(s["corpus"]), train_path, int(s["max_train_docs"]))
    codes = {vocab: [code_lists(corpus, lst).get(d, []) for d in docs] for lst, vocab in vocabularies.items()}
    # CodiEsp writes codes lower-case; concept and note_code hold ICD-10-CM/PCS upper-case
    codes = {v: [[c.upper() for c in cs] for cs in lists] for v, lists in codes.items()}
    index = suggest.fit(texts, codes, suggest.index_params(s))
    fit_s = time.time() - t0
    params = {"corpus": s["corpus"], "train": train_path, "dev": dev_path, "train_documents": len(docs),
              "vocabularies": vocabularies, **suggest.index_params(s)}
    with tracking.job_run(cfg, "train_suggester", params) as run_, tempfile.TemporaryDirectory() as tmp:
        import mlflow

        metrics = {"fit_s": round(fit_s, 2), "terms": float(len(index.vocabulary)),
                   **{f"codes_{v.lower()}": float(len({c for cs in lists for c in cs})) for v, lists in codes.items()}}
        if Path(dev_path).exists():
            metrics.update(dev_metrics(index, s, dev_path))
        else:
            log.warning("dev split %s not found: no dev metrics", dev_path)
        mlflow.log_metrics(metrics)
        name = str(s["name"])
        version = suggest.log_and_register(index, name, tmp)
        became = tracking.set_alias_if_absent(name, str(s["alias"]), version)
        mlflow.set_tag("registered_version", version)
        return {"model": name, "version": version, "champion": became, "run_id": run_.info.run_id,
                "train_documents": len(docs), **metrics}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    run_job("train_suggester", base_parser(__doc__).parse_args(argv), run, needs_spark=False)


if __name__ == "__main__":
    main()
