"""Assembly of OMOP NOTE_NLP rows (CDM fields + our typed extensions) from coded, asserted chunks."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

from clinlake import omop


def note_nlp_id(*cols: str) -> Column:
    """Deterministic positive 63-bit id from the row's identity, so reruns produce the same ids."""
    return F.abs(F.xxhash64(*[F.col(c) for c in cols])) % F.lit(9_223_372_036_854_775_000)


def with_snippet(df: DataFrame, chars: int, text_col: str = "note_text") -> DataFrame:
    """Context window of `chars` characters around the mention (OMOP `snippet`), whitespace collapsed."""
    start = f"greatest(offset_start - {chars}, 0)"
    window = F.expr(f"substring({text_col}, 1 + {start}, offset_end + {chars} - {start})")
    return df.withColumn("snippet", F.regexp_replace(window, r"\s+", " "))


def with_default_assertion(df: DataFrame) -> DataFrame:
    """Present, certain, patient, current: used when no assertion stage ran."""
    defaults = {
        "negated": F.lit(False), "certainty": F.lit("certain"), "experiencer": F.lit("patient"),
        "temporality": F.lit("current"), "negation_trigger": F.lit(None).cast("string"),
        "certainty_trigger": F.lit(None).cast("string"), "experiencer_trigger": F.lit(None).cast("string"),
        "temporality_trigger": F.lit(None).cast("string"), "term_exists": F.lit("Y"),
        "term_temporal": F.lit(None).cast("string"),
        "term_modifiers": F.lit("negated=false,certainty=certain,experiencer=patient,temporality=current"),
    }
    for name, value in defaults.items():
        if name not in df.columns:
            df = df.withColumn(name, value)
    return df


def to_note_nlp(df: DataFrame, snippet_chars: int = 60) -> DataFrame:
    """Select the NOTE_NLP schema (CDM order, then extensions) from an enriched chunk frame."""
    out = (
        (df if "snippet" in df.columns else df.transform(with_snippet, snippet_chars))  # kept when made per piece
        .withColumn("note_nlp_id", note_nlp_id("note_id", "offset_start", "offset_end", "label", "nlp_system"))
        .withColumn("offset", F.concat_ws("-", F.col("offset_start").cast("string"), F.col("offset_end").cast("string")))
        .withColumn("section_concept_id", F.lit(0))
        .withColumn("nlp_date", F.current_date())
        .withColumn("nlp_datetime", F.current_timestamp())
        .withColumn("note_text_sha256", F.col("text_sha256"))
    )
    if "candidates" not in out.columns:   # the exact-lookup fallback ranks nothing
        out = out.withColumn("candidates", F.lit(None).cast(ArrayType(omop.CANDIDATE)))
    if "phrase_precision" not in out.columns:
        out = out.withColumn("phrase_precision", F.lit(None).cast("double"))
    return out.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in omop.NOTE_NLP.fields])
