"""One tokenisation for embeddings, training and inference, and BIO/IO tags from character spans.

The training tokens are produced by running the very stages that the fitted pipeline runs at inference
(DocumentAssembler -> SentenceDetector -> Tokenizer), so a token seen in training is a token seen in
production. Spans are [start, end) Python offsets; Spark NLP annotations use an inclusive `end`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

TEXT_COL = "note_text"
DOCUMENT_COL = "document"
SENTENCE_COL = "sentence"
TOKEN_COL = "token"
EMBEDDINGS_COL = "embeddings"
NER_COL = "ner"
CHUNK_COL = "ner_chunk"

Span = tuple[str, int, int]  # (label, start, end)
TokenSpan = tuple[int, int]  # (start, end)


def text_stages(text_cfg: Any, input_col: str = TEXT_COL) -> list:
    """DocumentAssembler -> SentenceDetector (configured bounds, long sentences split) -> Tokenizer."""
    from sparknlp.annotator import SentenceDetector, Tokenizer
    from sparknlp.base import DocumentAssembler

    # cleanupMode disabled: offsets must index the original note text, \r\n and all.
    doc = DocumentAssembler().setInputCol(input_col).setOutputCol(DOCUMENT_COL).setCleanupMode("disabled")
    # splitLength cuts a longer sentence into pieces; maxLength would DROP it (and its PHI would go unseen).
    sent = (SentenceDetector().setInputCols([DOCUMENT_COL]).setOutputCol(SENTENCE_COL)
            .setSplitLength(int(text_cfg.sentence_max_chars)).setMinLength(int(text_cfg.get("sentence_min_chars", 0)))
            # detectLists (on by default) takes "02." or "36." for a list item and ends the sentence before it,
            # cutting "NASS: 47 39047534 02." and "Av. Pedro Rubio, 36." in two (docs/ner.md, sentence bounds).
            .setDetectLists(bool(text_cfg.get("detect_lists", True))))
    bounds = [str(b) for b in (text_cfg.get("sentence_bounds") or [])]
    if bounds:
        sent = sent.setCustomBounds(bounds).setUseCustomBoundsOnly(bool(text_cfg.get("sentence_bounds_only", False)))
    tok = Tokenizer().setInputCols([SENTENCE_COL]).setOutputCol(TOKEN_COL)
    if text_cfg.get("split_pattern"):
        tok = tok.setSplitPattern(str(text_cfg.split_pattern))
    return [doc, sent, tok]


def fit_text_pipeline(spark: Any, text_cfg: Any, input_col: str = TEXT_COL) -> Any:
    """The fitted text stages as a PipelineModel (fitting a Tokenizer needs no data)."""
    from pyspark.ml import Pipeline

    empty = spark.createDataFrame([("",)], f"{input_col} string")
    return Pipeline(stages=text_stages(text_cfg, input_col)).fit(empty)


NESTED = ("outer", "inner")


def resolve_overlaps(spans: Iterable[Span], nested: str = "outer") -> tuple[list[Span], list[Span]]:
    """Non-overlapping spans for BIO and the spans that had to give way: the outer layer (longest first, then
    leftmost) or, with nested="inner", the inner one (shortest first), where a nested mention beats its container."""
    if nested not in NESTED:
        raise ValueError(f"nested must be one of {NESTED}, got {nested!r}")
    sign = -1 if nested == "outer" else 1
    kept: list[Span] = []
    dropped: list[Span] = []
    for span in sorted(set(spans), key=lambda s: (sign * (s[2] - s[1]), s[1], s[0])):
        if span[2] <= span[1]:
            dropped.append(span)
        elif any(span[1] < k[2] and k[1] < span[2] for k in kept):
            dropped.append(span)
        else:
            kept.append(span)
    return sorted(kept, key=lambda s: (s[1], s[2])), sorted(dropped, key=lambda s: (s[1], s[2]))


def tags_for_tokens(tokens: Sequence[TokenSpan], spans: Iterable[Span], scheme: str = "BIO") -> list[str]:
    """One tag per token: a token overlapping a span is inside it (B- on its first token under BIO).

    Overlap rather than exact edges, so a span that starts or ends inside a token still labels it;
    spans must not overlap each other (see resolve_overlaps).
    """
    if scheme not in ("BIO", "IO"):
        raise ValueError(f"unknown tagging scheme {scheme!r}")
    tags = ["O"] * len(tokens)
    for label, start, end in sorted(spans, key=lambda s: (s[1], s[2])):
        first = True
        for i, (ts, te) in enumerate(tokens):
            if ts < end and start < te and tags[i] == "O":
                tags[i] = f"{'B' if first and scheme == 'BIO' else 'I'}-{label}"
                first = False
    return tags


def aligned(tokens: Sequence[TokenSpan], span: Span) -> bool:
    """True when the span starts at a token start and ends at a token end (recoverable exactly)."""
    starts = {s for s, _ in tokens}
    ends = {e for _, e in tokens}
    return span[1] in starts and span[2] in ends


def tag_set(labels: Iterable[str], scheme: str = "BIO") -> list[str]:
    """All tags a scheme yields for these labels, O first."""
    prefixes = ("B", "I") if scheme == "BIO" else ("I",)
    return ["O"] + [f"{p}-{lab}" for lab in sorted(set(labels)) for p in prefixes]

