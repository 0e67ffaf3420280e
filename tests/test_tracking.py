"""Model loading by alias: the version the outputs name is the version that was loaded."""

from __future__ import annotations

import pytest
from pyspark.ml import Pipeline
from pyspark.ml.feature import SQLTransformer

from clinlake import tracking
from clinlake.errors import UserError


def _register(spark, value: int) -> str:
    """Log and register a one-stage pipeline that stamps `value` on every row; returns its version."""
    import mlflow

    df = spark.createDataFrame([(1,), (None,)], "x int")
    model = Pipeline(stages=[SQLTransformer(statement=f"SELECT *, {value} AS v FROM __THIS__")]).fit(df)
    with mlflow.start_run():
        return tracking.log_and_register_spark_model(model, "stamp")


def test_loads_the_resolved_version_even_if_the_alias_moves(spark, cfg, monkeypatch):
    from mlflow import MlflowClient

    tracking.configure(cfg)
    first, second = _register(spark, 1), _register(spark, 2)
    client = MlflowClient()
    client.set_registered_model_alias("stamp", "champion", first)
    resolved = client.get_model_version_by_alias("stamp", "champion")
    # The alias moves between the resolution and the download (a promotion during a job's start-up).
    client.set_registered_model_alias("stamp", "champion", second)
    monkeypatch.setattr(tracking, "resolve_alias", lambda *_: resolved)
    model, ref = tracking.load_spark_model(cfg, "stamp", "champion")
    assert ref == f"stamp@{first}"
    stamped = {r["v"] for r in model.transform(spark.createDataFrame([(1,), (None,)], "x int")).collect()}
    assert stamped == {1}


def test_unknown_alias_is_a_one_line_user_error(spark, cfg):
    tracking.configure(cfg)
    _register(spark, 1)
    with pytest.raises(UserError, match=r"model 'stamp@nope' not found in the registry"):
        tracking.load_spark_model(cfg, "stamp", "nope")


def test_served_nerdl_stages_take_the_configured_batch_size():
    from omegaconf import OmegaConf

    from clinlake.ner import nerdl_stages

    class NerDLModel:  # the stage is recognised by its class name, as in a loaded Spark NLP pipeline
        def __init__(self) -> None:
            self.size = 32

        def setBatchSize(self, size: int) -> None:  # noqa: N802 - Spark NLP's name
            self.size = size

    class Tokenizer:
        pass

    def served(value):
        model = type("PipelineModel", (), {"stages": [Tokenizer(), NerDLModel()]})()  # only .stages is read
        return tracking.for_serving(model, OmegaConf.create({"scale": {"ner_batch_size": value}})).stages[1].size

    assert served(4) == 4 and served("8") == 8
    assert served(0) == 32 and served(None) == 32          # 0 / unset: the batch the model was trained with
    for bad in (-1, "four", 2.5):
        with pytest.raises(UserError, match="ner_batch_size"):
            served(bad)
    assert tracking.for_serving("not a pipeline", OmegaConf.create({})) == "not a pipeline"
    two = type("PipelineModel", (), {"stages": [NerDLModel(), Tokenizer(), NerDLModel()]})()
    assert nerdl_stages(two) == [two.stages[0], two.stages[2]] and nerdl_stages(None) == []
    served_two = tracking.for_serving(two, OmegaConf.create({"scale": {"ner_batch_size": 4}}))
    assert [s.size for s in nerdl_stages(served_two)] == [4, 4]
