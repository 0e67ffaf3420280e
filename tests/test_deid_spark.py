"""The pandas_udf wrapper on a tiny DataFrame: struct result, null/empty rows, model spans as array<struct>."""

from __future__ import annotations

import os
import sys

from clinlake.deid.replace import DeidPolicy
from clinlake.deid.surrogates import DeidSecret
from udfs.deid import make_deid_udf

# Python workers must use this interpreter (faker, stdnum live in the venv); set before the session starts.
# TODO(lead): build_spark could set spark.pyspark.python itself; then this line can go.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def test_deid_udf_on_spark(spark):
    from pyspark.sql import types as T

    span_t = T.ArrayType(T.StructType([T.StructField("start", T.IntegerType()), T.StructField("end", T.IntegerType()),
                                       T.StructField("label", T.StringType()), T.StructField("score", T.DoubleType())]))  # fmt: skip
    schema = T.StructType([T.StructField("note_id", T.StringType()), T.StructField("person_id", T.LongType()),
                           T.StructField("note_text", T.StringType()), T.StructField("model_spans", span_t)])  # fmt: skip
    rows = [
        ("n1", 1, "Nombre: Ana.\nNHC: 368503. Tel: 612345678.", [(8, 11, "NOMBRE_SUJETO_ASISTENCIA", 0.9)]),
        ("n2", 1, "Control de Ana el 03/03/2016.", [(11, 14, "NOMBRE_SUJETO_ASISTENCIA", 0.9)]),
        ("n3", None, "texto", None),
        ("n4", 2, None, None),
        ("n5", 2, "   ", None),
    ]
    df = spark.createDataFrame(rows, schema).repartition(1)
    udf = make_deid_udf(DeidPolicy(), DeidSecret("spark-test-secret-0123456789abcdef"))
    out = {r.note_id: r.d for r in df.select("note_id", udf("note_text", "person_id", "model_spans").alias("d")).collect()}
    assert "368503" not in out["n1"].deid_text and "612345678" not in out["n1"].deid_text
    ana1 = [s.replacement for s in out["n1"].spans if s.label == "NOMBRE_SUJETO_ASISTENCIA"]
    ana2 = [s.replacement for s in out["n2"].spans if s.label == "NOMBRE_SUJETO_ASISTENCIA"]
    assert ana1 == ana2 and ana1 != ["Ana"]  # same patient, same surrogate across notes
    assert out["n3"].error == "null person_id" and out["n3"].deid_text is None
    assert out["n4"].error == "null text"
    assert out["n5"].deid_text == "   " and out["n5"].error is None
