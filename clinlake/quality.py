"""Great Expectations gates: suites stored as JSON in expectations/, validated on Spark DataFrames."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pyspark.sql import DataFrame

from clinlake.config import lake_path, path_of
from clinlake.errors import UserError

log = logging.getLogger(__name__)

# Never echo column values back: GX's unexpected-value samples could carry note text (privacy).
DOCS_SITE = "clinlake"
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0, "include_unexpected_rows": False}


class QualityGateFailed(UserError):
    """A dataset failed its expectation suite: nothing is written."""


def load_suite_spec(cfg: DictConfig, suite: str) -> dict[str, Any]:
    """Read expectations/<suite>.json ({"name", "expectations": [{"type", "kwargs"}]})."""
    path = Path(path_of(cfg, cfg.quality.expectations_dir)) / f"{suite}.json"
    if not path.exists():
        raise UserError(f"expectation suite not found: {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def data_docs_dir(cfg: DictConfig) -> Path | None:
    """<lake>/_quality/data_docs, or None when the lake is not a local folder (Data Docs are local HTML)."""
    root = lake_path(cfg, "_quality")
    if "://" in root and not root.startswith("file:"):
        return None
    return Path(root.removeprefix("file://").removeprefix("file:")) / "data_docs"


def _context(cfg: DictConfig) -> tuple[Any, Path | None]:
    """A GX file context under <lake>/_quality (history of results + Data Docs site), ephemeral for remote lakes."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    docs = data_docs_dir(cfg)
    if docs is None:
        context = gx.get_context(mode="ephemeral")
    else:
        context = gx.get_context(mode="file", project_root_dir=str(docs.parent))
        if DOCS_SITE not in context.get_site_names():
            context.add_data_docs_site(site_name=DOCS_SITE, site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            })
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context, docs


def validate(df: DataFrame, cfg: DictConfig, suite: str, raise_on_failure: bool = True) -> dict[str, Any]:
    """Validate df with a stored suite and build Data Docs; returns a small summary (no values), raising on failure."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    spec = load_suite_spec(cfg, suite)
    context, docs = _context(cfg)
    source = context.data_sources.add_or_update_spark(name="spark")
    batch_def = source.add_dataframe_asset(name=suite).add_batch_definition_whole_dataframe("whole")
    expectations = [ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"]).to_domain_obj()
                    for e in spec["expectations"]]
    gx_suite = context.suites.add_or_update(
        gx.ExpectationSuite(name=spec.get("name", suite), expectations=expectations))
    vd = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{suite}-gate", data=batch_def, suite=gx_suite))
    actions = [UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])] if docs is not None else []
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(name=f"{suite}-checkpoint", validation_definitions=[vd], actions=actions,
                      result_format=RESULT_FORMAT))
    run = checkpoint.run(batch_parameters={"dataframe": df})
    key, result = next(iter(run.run_results.items()))
    failed = [
        f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column', '')})"
        f": {r.result.get('unexpected_count', '?')} unexpected"
        for r in result.results
        if not r.success
    ]
    page = None
    if docs is not None:
        urls = context.get_docs_sites_urls(resource_identifier=key, site_names=[DOCS_SITE])
        page = urls[0]["site_url"].removeprefix("file://") if urls else str(docs / "index.html")
        log.info("quality gate '%s': Data Docs %s", suite, page)
    summary = {"suite": suite, "success": bool(result.success), "evaluated": len(result.results), "failed": failed,
               "data_docs": page, "data_docs_index": str(docs / "index.html") if docs is not None else None}
    if failed and raise_on_failure:
        raise QualityGateFailed(f"quality gate '{suite}' failed: {'; '.join(failed)} (Data Docs: {page})")
    return summary
