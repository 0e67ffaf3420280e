"""The seam between the evaluation job and the deployed pipeline.

Each (task, corpus) key maps to a callable ``(spark, cfg, notes_df, model_alias) -> Corpus`` that runs
the production code path (models loaded from the MLflow registry by alias) over ``notes_df``
(columns doc_id, text) and returns predictions in the same `Corpus` structure the ``--predictions``
parsers return: ``mentions`` for deid / NER / CodiEsp-X, ``codes_d`` / ``codes_p`` ranked best first for
CodiEsp-D/P, and optionally ``deid_texts`` or ``replacements`` from a de-identifier that rewrites text
(used for ``residual_phi_rate``). For PharmaCoNER, ``notes_df`` holds one row per sentence with the
tokens joined by single spaces; return mentions as character offsets into that text.

Pipeline owners register with the decorator::

    @register("ner", "cantemist")
    def predict_cantemist(spark, cfg, notes_df, model_alias): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clinlake.corpora.types import Corpus

Predictor = Callable[[Any, Any, Any, str], Corpus]

PREDICTORS: dict[tuple[str, str], Predictor] = {}


def register(task: str, corpus: str) -> Callable[[Predictor], Predictor]:
    """Decorator adding a predictor for (task, corpus) to PREDICTORS; one already set (e.g. by a test) is kept."""
    def deco(fn: Predictor) -> Predictor:
        PREDICTORS.setdefault((task, corpus), fn)
        return fn
    return deco


# Modules that register deployed-pipeline predictors when imported; a missing module is simply skipped.
PREDICTOR_MODULES = ("clinlake.evaluation.pipelines",)


def load_predictors(extra_modules: tuple[str, ...] = ()) -> dict[tuple[str, str], Predictor]:
    """Import the registering modules (defaults plus `extra_modules`) and return PREDICTORS."""
    import importlib

    for name in PREDICTOR_MODULES + tuple(extra_modules):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its imports is missing: a real error
                raise
    return PREDICTORS
