"""First recogniser: a Spark NLP TextMatcher per label over the gazetteer, as one fitted PipelineModel."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from clinlake import chunking

TEXT_COL = "note_text"
# Defaults of the `scale:` knobs (conf/base.yaml) for callers that pass no configuration.
SCALE_DEFAULTS = {"max_chunk_chars": 20_000, "target_partition_chars": 4_000_000, "min_partitions": 2,
                  "max_partitions": 20_000}


def chunk_col(label: str) -> str:
    """Output column of one label's matcher."""
    return f"chunk_{label.lower()}"


def phrases_by_label(gazetteer: DataFrame, labels: Iterable[str], min_count: int, min_chars: int,
                     precision: DataFrame | None = None, min_precision: float = 0.0,
                     min_occurrences: int = 3) -> dict[str, list[str]]:
    """Distinct mentions per label (training-time, bounded by the gazetteer size); short ones dropped.

    Short upper-case abbreviations ("SE", "CM") collide with common words once matching ignores case. With
    `precision` (phrase_key, label, annotated, occurrences; scripts/make_gazetteer_precision.py), a phrase seen
    at least `min_occurrences` times in the training texts but annotated in fewer than `min_precision` of them
    ("renal", "masa") is dropped: a matcher would fire on text the annotators do not code.
    """
    rows = (
        gazetteer.filter(F.col("label").isin(list(labels)) & (F.col("count") >= min_count))
        .filter(F.length(F.trim("mention")) >= min_chars)
        .select("label", F.trim("mention").alias("mention")).distinct()
    )
    if precision is not None and min_precision > 0:
        low = precision.filter(
            (F.col("occurrences") >= min_occurrences)
            & (F.col("annotated") < F.lit(float(min_precision)) * F.col("occurrences"))
        ).select("label", "phrase_key")
        rows = rows.withColumn("phrase_key", phrase_key_col(F.col("mention"))) \
            .join(low, ["label", "phrase_key"], "left_anti").drop("phrase_key")
    grouped = rows.groupBy("label").agg(F.sort_array(F.collect_list("mention")).alias("mentions")).collect()
    return {r["label"]: list(r["mentions"]) for r in grouped}


def phrase_key_col(text: Column) -> Column:
    """Spark twin of clinlake.vocab.gazetteer.phrase_key: lower-cased words and punctuation marks joined by spaces."""
    return F.array_join(F.regexp_extract_all(F.lower(text), F.lit(r"(?U)(\w+|[^\w\s])"), F.lit(1)), " ")


def read_phrase_precision(spark: SparkSession, path: str) -> DataFrame:
    """The phrase-precision TSV (phrase_key, label, annotated, occurrences) written by make_gazetteer_precision."""
    return (spark.read.option("sep", "\t").option("header", True).option("quote", "\u0000")
            .schema("phrase_key string, label string, annotated long, occurrences long").csv(path))


def build_pipeline(phrases: dict[str, list[str]], workdir: str) -> Pipeline:
    """DocumentAssembler -> SentenceDetector -> Tokenizer -> one TextMatcher per label."""
    from sparknlp.annotator import SentenceDetector, TextMatcher, Tokenizer
    from sparknlp.base import DocumentAssembler
    from sparknlp.common import ReadAs

    stages = [
        DocumentAssembler().setInputCol(TEXT_COL).setOutputCol("document").setCleanupMode("disabled"),
        SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
        Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
    ]
    for label in sorted(phrases):
        path = Path(workdir) / f"{label}.txt"
        # The matcher reads this file at fit time and keeps the phrases inside the fitted model.
        path.write_text("\n".join(phrases[label]) + "\n", encoding="utf-8")
        stages.append(
            TextMatcher().setInputCols(["sentence", "token"]).setOutputCol(chunk_col(label))
            .setEntities(str(path), ReadAs.TEXT).setEntityValue(label).setCaseSensitive(False)
            .setBuildFromTokens(True)
        )
    return Pipeline(stages=stages)


def fit_matcher(spark: SparkSession, phrases: dict[str, list[str]]) -> PipelineModel:
    """Fit the matcher pipeline (the phrase files are only needed during fit)."""
    with tempfile.TemporaryDirectory() as tmp:
        empty = spark.createDataFrame([("",)], f"{TEXT_COL} string")
        return build_pipeline(phrases, tmp).fit(empty)


def matcher_labels(model: PipelineModel) -> list[str]:
    """Labels of a fitted matcher pipeline, read from its TextMatcher stages."""
    return [s.getOrDefault("entityValue") for s in model.stages if type(s).__name__ == "TextMatcherModel"]


def explode_chunks(annotated: DataFrame, labels: list[str], keep: list[str]) -> DataFrame:
    """One row per matched chunk: keep columns + label, offset_start, offset_end (exclusive)."""
    parts = []
    for label in labels:
        parts.append(
            annotated.select(*keep, F.explode(chunk_col(label)).alias("c")).select(
                *keep,
                F.lit(label).alias("label"),
                F.col("c.begin").alias("offset_start"),
                (F.col("c.end") + 1).alias("offset_end"),  # Spark NLP ends are inclusive
            )
        )
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def filter_contained(chunks: DataFrame) -> DataFrame:
    """Within a label, drop a chunk lying inside a longer one of the same note (longest match wins).

    The self-join runs on the keys only, so a mention does not drag its note's text through the shuffle.
    """
    keys = ["note_id", "label", "offset_start", "offset_end"]
    k = chunks.select(*keys).distinct()
    a, b = k.alias("a"), k.alias("b")
    inside = a.join(
        b,
        (F.col("a.note_id") == F.col("b.note_id")) & (F.col("a.label") == F.col("b.label"))
        & (F.col("b.offset_start") <= F.col("a.offset_start")) & (F.col("b.offset_end") >= F.col("a.offset_end"))
        & ((F.col("b.offset_end") - F.col("b.offset_start")) > (F.col("a.offset_end") - F.col("a.offset_start"))),
        "left_semi",
    )
    return chunks.dropDuplicates(keys).join(inside, keys, "left_anti")


def _scale(scale: Mapping[str, Any] | None) -> dict[str, int]:
    """The `scale:` knobs with defaults for the missing ones."""
    given = dict(scale or {})
    return {k: int(given.get(k, v)) for k, v in SCALE_DEFAULTS.items()}


def _span(c, label) -> Any:
    """An annotation -> struct(label, s, e) with end exclusive (Spark NLP ends are inclusive)."""
    return F.struct(label.alias("label"), c["begin"].alias("s"), (c["end"] + 1).alias("e"))


def label_spans(model: PipelineModel, columns: list[str]):
    """Every label's annotations of one row as one array<struct<label,s,e>> (one explode for all labels)."""
    labels = matcher_labels(model)
    if labels:
        return F.concat(*[_tag(chunk_col(lb), lb) for lb in labels])
    if "ner_chunk" in columns:  # NerDL pipeline: the label is the chunk's entity
        return F.transform(F.col("ner_chunk"), lambda c: _span(c, c["metadata"].getItem("entity")))
    raise ValueError("model output has neither TextMatcher chunk columns nor ner_chunk")


def _tag(col: str, label: str):
    """One matcher column's annotations tagged with its label (a named function: F.transform counts lambda args)."""
    return F.transform(F.col(col), lambda c: _span(c, F.lit(label)))


WORD = r"[\p{L}\p{N}]"


def _count(col: Column, char: str) -> Column:
    """How many times `char` occurs in a string column."""
    return F.length(F.regexp_replace(col, f"[^\\{char}]", ""))


def _snap(spans: Column, text: Column) -> Column:
    """Spans (0-based start, exclusive end) widened to whole words and past a ')' their own '(' leaves open, then
    ended before trailing punctuation no annotator includes (`_TRIM_STEPS`).

    Tokenisers split "ypT0N0M0" or "(Fuhrman)" where annotators do not: a chunk that starts or ends inside a word
    takes the whole word, and one that opens a parenthesis right before its ')' takes that ')' too. On CANTEMIST
    dev1 this turned 19 predicted spans into exact gold spans and no exact one into a wrong one (docs/ner.md).
    Chained transforms, so that each value is computed once per span: the text is cut once around each span
    (a substring at a far offset of a UTF-8 text scans from its start), the rest works on that short window.
    """
    one = F.lit(1)

    def window(c):
        a = F.greatest(c["s"] - 40, F.lit(0))                   # the window is text[a, e + 41)
        return F.struct(c["label"].alias("label"), a.alias("a"), (c["s"] - a).alias("ls"), (c["e"] - a).alias("le"),
                        text.substr(a + 1, c["e"] - a + 41).alias("w"))

    def words(c):
        w, ls, le = c["w"], c["ls"], c["le"]
        head = F.regexp_extract(w.substr(one, ls), WORD + r"+\z", 0)   # \z: Java's $ also matches before a "\n"
        tail = F.regexp_extract(w.substr(le + 1, F.lit(41)), "^" + WORD + "+", 0)
        return F.struct(c["label"].alias("label"), c["a"].alias("a"), w.alias("w"),
                        F.when(w.substr(ls + 1, one).rlike(WORD), ls - F.length(head)).otherwise(ls).alias("ls"),
                        F.when(w.substr(le, one).rlike(WORD), le + F.length(tail)).otherwise(le).alias("le"))

    def paren(c):
        w, ls, le = c["w"], c["ls"], c["le"]
        seg = w.substr(ls + 1, le - ls)
        closes = (_count(seg, "(") > _count(seg, ")")) & (w.substr(le + 1, one) == F.lit(")"))
        return F.struct(c["label"].alias("label"), c["a"].alias("a"), w.alias("w"), ls.alias("ls"),
                        F.when(closes, le + 1).otherwise(le).alias("le"))

    def trim(c):
        w, ls, le = c["w"], c["ls"], c["le"]
        end = le
        for step in _TRIM_STEPS:                  # each step shortens the end by what it finds at it
            seg = w.substr(ls + 1, end - ls)
            end = end - step(seg)
        # a span trimmed to nothing (a chunk of punctuation alone) keeps its own end
        return F.struct(c["label"].alias("label"), (ls + c["a"]).alias("s"),
                        (F.when(end > ls, end).otherwise(le) + c["a"]).alias("e"))

    # spans are read once (a NerDL model's chunks are not cheap to recompute); with no text every when() falls
    # through to its otherwise(): the model's spans as they are
    return F.transform(F.transform(F.transform(F.transform(spans, window), words), paren), trim)


def _trailing(pattern: str):
    """A trim step: how many characters at the end of a segment match `pattern` (anchored at the end)."""
    return lambda seg: F.coalesce(F.length(F.regexp_extract(seg, f"(?:{pattern})\\z", 0)), F.lit(0))


def _unopened(close: str, open_: str):
    """A trim step: 1 when the segment ends with `close` and holds fewer `open_` than `close`, else 0."""
    return lambda seg: F.when(seg.endswith(close) & (_count(seg, open_) < _count(seg, close)), 1).otherwise(0)


# No gold span of CANTEMIST, CodiEsp-X or PharmaCoNER train ends in a comma, semicolon, colon or a bracket it did
# not open, and only "Ca." and "A.I.N.E." in a period, yet the tokenizer hands a model "(cT2N2M1)," or
# "peritoneales)" as one token. So a chunk ends before them; a period stays after an abbreviation alone ("Ca.")
# or an acronym with periods ("A.I.N.E.", "EE.UU."). The steps run in this order, once each.
_TRIM_STEPS = (
    _trailing(r"[\s,;:]+"),
    _trailing(r"(?<!^\p{L}{1,3})(?<!\.\p{L}{1,3})\."),
    _unopened(")", "("),
    _unopened("]", "["),
    _trailing(r"[\s,;:]+"),
)


def _longest(spans):
    """Distinct spans minus those inside a longer span of the same label (rule 1, within one row)."""
    spans = F.array_distinct(spans)
    return F.filter(spans, lambda c: ~F.exists(spans, lambda d: (d["label"] == c["label"]) & (d["s"] <= c["s"])
                                               & (d["e"] >= c["e"]) & ((d["e"] - d["s"]) > (c["e"] - c["s"]))))


def chunks(model: PipelineModel, notes: DataFrame, keep: list[str],
           scale: Mapping[str, Any] | None = None) -> DataFrame:
    """Recognised chunks: keep columns + label, offset_start, offset_end (note offsets, end exclusive).

    Long notes go through the model as bounded pieces (`scale.max_chunk_chars`, cut at paragraph/line/sentence
    boundaries by clinlake.chunking), rows are spread by text size (`scale.target_partition_chars`), the model
    runs once for all labels, and the longest-match rule (`filter_contained`) is applied inside each piece, with
    no shuffle: a chunk and any chunk containing it always lie in the same piece. Output = explode_chunks +
    filter_contained on the whole notes, except for a mention cut by a piece boundary (cuts avoid them).
    """
    return explode_piece_chunks(model.transform(text_pieces(notes, keep, scale)), model,
                                [c for c in keep if c != TEXT_COL])


def text_pieces(notes: DataFrame, keep: list[str], scale: Mapping[str, Any] | None = None) -> DataFrame:
    """Notes cut into bounded pieces (`scale.max_chunk_chars`) and spread by text size: what a model pass reads.

    Sizing the partitions counts the text (one Spark job), so models that read the same notes (a vote's members)
    take one `text_pieces` frame rather than calling `chunks` each.
    """
    knobs = _scale(scale)
    cols = list(dict.fromkeys(["note_id", *keep, TEXT_COL]))
    pieces = chunking.explode_text_chunks(notes.select(*cols), knobs["max_chunk_chars"])
    pieces, _ = chunking.repartition_by_size(pieces, target_chars=knobs["target_partition_chars"],
                                             min_partitions=knobs["min_partitions"],
                                             max_partitions=knobs["max_partitions"])
    return pieces


def explode_piece_chunks(annotated: DataFrame, model: PipelineModel | None, keep: list[str],
                         spans: Column | None = None) -> DataFrame:
    """One row per labelled chunk of annotated pieces (longest match per label), offsets moved by `chunk_offset`.

    The chunks are the model's (label_spans), or `spans` (array<struct<label,s,e>>, piece offsets) when given."""
    spans = label_spans(model, annotated.columns) if spans is None else spans
    if TEXT_COL in annotated.columns:   # whole words (see _snap); a frame without the text keeps the model's spans
        # a column of its own: _longest reads the array once per element, and must not re-cut the text each time
        annotated = annotated.withColumn("__spans", _snap(spans, F.col(TEXT_COL)))
        spans = F.col("__spans")
    spans = _longest(spans)
    return (annotated.select(*keep, "chunk_offset", F.explode(spans).alias("c"))
            .select(*keep, F.col("c.label").alias("label"),
                    (F.col("c.s") + F.col("chunk_offset")).alias("offset_start"),
                    (F.col("c.e") + F.col("chunk_offset")).alias("offset_end")))


def with_piece_text(chunks_df: DataFrame, notes: DataFrame, scale: Mapping[str, Any] | None = None,
                    margin: int = 200) -> DataFrame:
    """Chunks (note offsets) + the text of the piece they lie in, offsets made piece-local (`chunk_offset` added).

    Replaces joining every chunk to its whole note: a mention of a 1 MB note carries its ~20 kB piece (plus
    `margin` characters of context on each side, enough for the snippet window and the assertion's sentence),
    not 1 MB, through the join, the resolver and the assertion UDF; the join buffers one note's pieces at most.
    A short note is one piece: its text and offsets as they are. `with_note_offsets` maps the offsets back.
    """
    knobs = _scale(scale)
    pieces = chunking.explode_text_chunks(notes.select("note_id", TEXT_COL), knobs["max_chunk_chars"],
                                          margin=margin).drop("chunk_index")
    c, p = chunks_df.alias("c"), pieces.alias("p")
    inside = ((F.col("c.note_id") == F.col("p.note_id")) & (F.col("p.core_start") <= F.col("c.offset_start"))
              & (F.col("c.offset_start") < F.col("p.core_end")))
    return (c.join(p, inside).select("c.*", F.col("p.chunk_offset"), F.col(f"p.{TEXT_COL}"))
            .withColumn("offset_start", F.col("offset_start") - F.col("chunk_offset"))
            .withColumn("offset_end", F.col("offset_end") - F.col("chunk_offset")))


def with_note_offsets(df: DataFrame, snippet_chars: int = 60) -> DataFrame:
    """Piece-local rows -> note offsets; the OMOP snippet is taken from the piece text first (it has the margin)."""
    from clinlake.note_nlp import with_snippet

    return (df.transform(with_snippet, snippet_chars).transform(chunking.with_note_offsets)
            .drop("chunk_offset"))


def with_lexical_variant(chunks: DataFrame, text_col: str = TEXT_COL) -> DataFrame:
    """lexical_variant = note_text[offset_start:offset_end] (Spark's substring is 1-based)."""
    return chunks.withColumn(
        "lexical_variant", F.expr(f"substring({text_col}, offset_start + 1, offset_end - offset_start)")
    )


def first_by(df: DataFrame, keys: list[str], order: list) -> DataFrame:
    """First row per key under an ordering."""
    w = Window.partitionBy(*keys).orderBy(*order)
    return df.withColumn("__rn", F.row_number().over(w)).filter("__rn = 1").drop("__rn")
