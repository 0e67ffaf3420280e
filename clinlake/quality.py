"""Great Expectations gates: suites stored as JSON in expectations/, validated on Spark DataFrames."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pyspark.sql import DataFrame

from clinlake.config import path_of
from clinlake.errors import UserError

log = logging.getLogger(__name__)

# Never echo column values back: GX's unexpected-value samples could carry note text (privacy).
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0, "include_unexpected_rows": False}


class QualityGateFailed(UserError):
    """A dataset failed its expectation suite: nothing is written."""


def load_suite_spec(cfg: DictConfig, suite: str) -> dict[str, Any]:
    """Read expectations/<suite>.json ({"name", "expectations": [{"type", "kwargs"}]})."""
    path = Path(path_of(cfg, cfg.quality.expectations_dir)) / f"{suite}.json"
    if not path.exists():
        raise UserError(f"expectation suite not found: {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def validate(df: DataFrame, cfg: DictConfig, suite: str, raise_on_failure: bool = True) -> dict[str, Any]:
    """Validate df with a stored suite; returns a small summary (no values), raising when it fails."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    spec = load_suite_spec(cfg, suite)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (
        context.data_sources.add_spark(name="spark")
        .add_dataframe_asset(name=suite)
        .add_batch_definition_whole_dataframe("whole")
    )
    expectations = [ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"]).to_domain_obj()
                    for e in spec["expectations"]]
    gx_suite = context.suites.add(gx.ExpectationSuite(name=spec.get("name", suite), expectations=expectations))
    vd = context.validation_definitions.add(gx.ValidationDefinition(name=f"{suite}-gate", data=batch_def, suite=gx_suite))
    result = vd.run(batch_parameters={"dataframe": df}, result_format=RESULT_FORMAT)
    failed = [
        f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column', '')})"
        f": {r.result.get('unexpected_count', '?')} unexpected"
        for r in result.results
        if not r.success
    ]
    summary = {"suite": suite, "success": bool(result.success), "evaluated": len(result.results), "failed": failed}
    if failed and raise_on_failure:
        raise QualityGateFailed(f"quality gate '{suite}' failed: {'; '.join(failed)}")
    return summary
