"""OMOP CDM 5.4 table shapes used by the lake (NOTE, NOTE_NLP, vocabulary) plus our extension columns."""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# OMOP CDM 5.4 NOTE, in CDM column order.
NOTE = StructType(
    [
        StructField("note_id", LongType(), False),
        StructField("person_id", LongType(), True),
        StructField("note_date", DateType(), True),
        StructField("note_datetime", TimestampType(), True),
        StructField("note_type_concept_id", IntegerType(), True),
        StructField("note_class_concept_id", IntegerType(), True),
        StructField("note_title", StringType(), True),
        StructField("note_text", StringType(), True),
        StructField("encoding_concept_id", IntegerType(), True),
        StructField("language_concept_id", IntegerType(), True),
        StructField("provider_id", LongType(), True),
        StructField("visit_occurrence_id", LongType(), True),
        StructField("visit_detail_id", LongType(), True),
        StructField("note_source_value", StringType(), True),
        StructField("note_event_id", LongType(), True),
        StructField("note_event_field_concept_id", IntegerType(), True),
    ]
)

# Lake bookkeeping columns appended to NOTE-shaped tables (not part of the CDM).
NOTE_LAKE_EXTRA = StructType(
    [
        StructField("text_sha256", StringType(), True),  # change detection for incremental runs
        StructField("ingest_run_id", StringType(), True),
        StructField("ingested_at", TimestampType(), True),
    ]
)

# OMOP CDM 5.4 NOTE_NLP, in CDM column order, then our extensions.
NOTE_NLP_CDM = StructType(
    [
        StructField("note_nlp_id", LongType(), False),
        StructField("note_id", LongType(), False),
        StructField("section_concept_id", IntegerType(), True),
        StructField("snippet", StringType(), True),
        StructField("offset", StringType(), True),
        StructField("lexical_variant", StringType(), False),
        StructField("note_nlp_concept_id", IntegerType(), True),
        StructField("note_nlp_source_concept_id", IntegerType(), True),
        StructField("nlp_system", StringType(), True),
        StructField("nlp_date", DateType(), False),
        StructField("nlp_datetime", TimestampType(), True),
        StructField("term_exists", StringType(), True),
        StructField("term_temporal", StringType(), True),
        StructField("term_modifiers", StringType(), True),
    ]
)

# One ranked code of the resolver's top-k for a mention (score: calibrated probability that it is the right code).
CANDIDATE = StructType(
    [
        StructField("rank", IntegerType(), True),
        StructField("vocabulary_id", StringType(), True),
        StructField("concept_code", StringType(), True),
        StructField("score", DoubleType(), True),
    ]
)

NOTE_NLP_EXTRA = StructType(
    [
        StructField("offset_start", IntegerType(), False),  # char offset into note_deid.note_text
        StructField("offset_end", IntegerType(), False),  # exclusive
        StructField("label", StringType(), True),  # recogniser label (DIAGNOSTICO, PROCEDIMIENTO, ...)
        StructField("vocabulary_id", StringType(), True),
        StructField("concept_code", StringType(), True),
        StructField("score", DoubleType(), True),
        StructField("negated", BooleanType(), True),
        StructField("certainty", StringType(), True),
        StructField("experiencer", StringType(), True),
        StructField("temporality", StringType(), True),
        StructField("negation_trigger", StringType(), True),
        StructField("certainty_trigger", StringType(), True),
        StructField("experiencer_trigger", StringType(), True),
        StructField("temporality_trigger", StringType(), True),
        StructField("note_text_sha256", StringType(), True),
        # The resolver's top-k codes for the mention, rank 1 = concept_code (null when no trained resolver ran).
        StructField("candidates", ArrayType(CANDIDATE), True),
        # How often annotators coded this phrase where it occurs in the training texts, min(1, (annotated + 1) /
        # (occurrences + 2)); null when the resolver has no count for it. note_code weighs the mention by it.
        StructField("phrase_precision", DoubleType(), True),
    ]
)

NOTE_NLP = StructType(NOTE_NLP_CDM.fields + NOTE_NLP_EXTRA.fields)

# OMOP vocabulary tables (CDM 5.4 shape) plus vocabulary_version for lineage.
CONCEPT = StructType(
    [
        StructField("concept_id", IntegerType(), False),
        StructField("concept_name", StringType(), True),
        StructField("domain_id", StringType(), True),
        StructField("vocabulary_id", StringType(), False),
        StructField("concept_class_id", StringType(), True),
        StructField("standard_concept", StringType(), True),
        StructField("concept_code", StringType(), False),
        StructField("valid_start_date", DateType(), True),
        StructField("valid_end_date", DateType(), True),
        StructField("invalid_reason", StringType(), True),
        StructField("vocabulary_version", StringType(), True),
    ]
)

CONCEPT_SYNONYM = StructType(
    [
        StructField("concept_id", IntegerType(), False),
        StructField("concept_synonym_name", StringType(), False),
        StructField("language_concept_id", IntegerType(), True),
        StructField("vocabulary_version", StringType(), True),
    ]
)

CONCEPT_RELATIONSHIP = StructType(
    [
        StructField("concept_id_1", IntegerType(), False),
        StructField("concept_id_2", IntegerType(), False),
        StructField("relationship_id", StringType(), False),
        StructField("valid_start_date", DateType(), True),
        StructField("valid_end_date", DateType(), True),
        StructField("invalid_reason", StringType(), True),
        StructField("vocabulary_version", StringType(), True),
    ]
)

CONCEPT_ANCESTOR = StructType(
    [
        StructField("ancestor_concept_id", IntegerType(), False),
        StructField("descendant_concept_id", IntegerType(), False),
        StructField("min_levels_of_separation", IntegerType(), True),
        StructField("max_levels_of_separation", IntegerType(), True),
    ]
)

# OMOP concept ids used by ingest (Athena standard concepts).
LANGUAGE_SPANISH = 4182511
LANGUAGE_ENGLISH = 4180186
ENCODING_UTF8 = 32678
NOTE_TYPE_EHR = 32817  # "EHR" type concept
NOTE_CLASS_DEFAULT = 0
