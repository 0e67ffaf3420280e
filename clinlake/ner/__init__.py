"""In-domain Word2Vec embeddings and NerDL recognisers (de-identification, diagnoses/procedures, morphology, drugs)."""

from __future__ import annotations

from typing import Any


def nerdl_stages(model: Any) -> list[Any]:
    """The NerDLModel stages of a fitted pipeline, in order (none for anything else).

    Matched by class name, so that serving code (tracking, the deid vote, the benchmark) needs no Spark NLP import.
    """
    return [stage for stage in getattr(model, "stages", None) or [] if type(stage).__name__ == "NerDLModel"]
