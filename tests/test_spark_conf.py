"""spark.conf from YAML (flat dotted keys) and from --set (nested) reach Spark as the same settings."""

from __future__ import annotations

from clinlake.config import load_config, spark_settings


def test_set_override_of_a_dotted_spark_key_is_flattened(tmp_path):
    cfg = load_config("test", ["spark.conf.spark.sql.shuffle.partitions=3",
                               "spark.conf.spark.sql.adaptive.enabled=false"], lake=str(tmp_path / "lake"))
    flat = spark_settings(cfg.spark.conf)
    assert flat["spark.sql.shuffle.partitions"] == "3" and flat["spark.sql.adaptive.enabled"] == "false"
    assert "spark" not in flat and all(isinstance(v, str) for v in flat.values())
    assert spark_settings({"a.b": True, "c": {"d": None, "e": {"f": 1}}}) == {"a.b": "true", "c.e.f": "1"}
