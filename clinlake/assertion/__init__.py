"""Assertion and context (negation, certainty, temporality, experiencer) of recognised spans, ConText-style."""

from clinlake.assertion.context import (
    CERTAINTY_VALUES,
    EXPERIENCER_VALUES,
    TEMPORALITY_VALUES,
    Assertion,
    assert_spans,
    sentence_bounds,
    term_exists,
    term_modifiers,
    term_temporal,
)

__all__ = [
    "Assertion",
    "assert_spans",
    "sentence_bounds",
    "term_exists",
    "term_temporal",
    "term_modifiers",
    "CERTAINTY_VALUES",
    "TEMPORALITY_VALUES",
    "EXPERIENCER_VALUES",
]
