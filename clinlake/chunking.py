"""Bounded pieces of long notes and size-balanced partitions, so one 1 MB note cannot exhaust an executor.

Pure functions first (unit- and property-tested): `split_text` cuts a text into pieces of at most `max_chars`
characters at the best boundary found in each window (blank line, newline, sentence end, whitespace, else a hard
cut); the pieces concatenate back to the text exactly, so a span found in piece i at [s, e) is at
[offset_i + s, offset_i + e) in the note. Then thin Spark transforms: `explode_text_chunks` (one row per piece,
with `chunk_index` and `chunk_offset`), `with_note_offsets` (chunk-local offsets -> note offsets) and
`repartition_by_size` (partition count from the total characters; rows spread by hash, which balances well once
no single row is large, which chunking guarantees).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

# Boundaries in order of preference; each match's end is where the cut goes (the separator stays with the left
# piece, so pieces concatenate back to the text).
BOUNDARIES: tuple[re.Pattern[str], ...] = (
    re.compile(r"\n[ \t]*\n"),            # paragraph
    re.compile(r"\n"),                    # line
    re.compile(r"[.!?;:][)\"'»]?\s"),     # sentence end
    re.compile(r"\s"),                    # word
)


@dataclass(frozen=True)
class Chunk:
    """One piece of a note: its position in the note and its text."""

    index: int
    offset: int
    text: str


def _cut(text: str, start: int, max_chars: int, min_fraction: float) -> int:
    """End of the piece that starts at `start`: the best boundary in the window's last (1 - min_fraction)."""
    limit = start + max_chars
    if limit >= len(text):
        return len(text)
    lowest = start + max(1, int(max_chars * min_fraction))
    for pattern in BOUNDARIES:
        best = -1
        # The last boundary ending inside [lowest, limit]; search only this window (linear in the window).
        for m in pattern.finditer(text, start, limit):
            if lowest <= m.end() <= limit:
                best = m.end()
        if best > start:
            return best
    return limit  # no boundary at all (a 1 MB token): hard cut keeps the bound


def split_text(text: str, max_chars: int, min_fraction: float = 0.5) -> list[Chunk]:
    """Pieces of at most max_chars characters that concatenate to `text`; one piece when it already fits.

    A cut is placed at the latest paragraph/line/sentence/word boundary in the last half of each window
    (`min_fraction` of max_chars is the shortest piece accepted before falling back to a weaker boundary).
    """
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    if not 0.0 <= min_fraction < 1.0:
        raise ValueError("min_fraction must be in [0, 1)")
    if text is None:
        return []
    chunks: list[Chunk] = []
    start = 0
    while start < len(text) or not chunks:
        end = _cut(text, start, max_chars, min_fraction)
        chunks.append(Chunk(len(chunks), start, text[start:end]))
        start = end
        if start >= len(text):
            break
    return chunks


def shift_spans(spans: Iterable[tuple[int, int]], offset: int) -> list[tuple[int, int]]:
    """Chunk-local (start, end) pairs -> note offsets."""
    return [(s + offset, e + offset) for s, e in spans]


def merge_chunk_spans(per_chunk: Sequence[tuple[Chunk, Iterable[tuple]]]) -> list[tuple]:
    """Spans found per chunk (tuples whose first two items are start, end) -> note spans, sorted, deduplicated."""
    out = set()
    for chunk, spans in per_chunk:
        for span in spans:
            out.add((span[0] + chunk.offset, span[1] + chunk.offset, *span[2:]))
    return sorted(out)


def reassemble(pieces: Sequence[tuple[int, str]]) -> tuple[str, list[int]]:
    """Texts of processed pieces (index, text) -> the whole text and each piece's new offset (in index order).

    For a stage that rewrites text (de-identification): the note's new text is the pieces' new texts in order,
    and a span at [s, e) in new piece i sits at [offsets[i] + s, offsets[i] + e) in the new text.
    """
    ordered = [t for _, t in sorted(pieces, key=lambda p: p[0])]
    offsets, pos = [], 0
    for t in ordered:
        offsets.append(pos)
        pos += len(t)
    return "".join(ordered), offsets


def partitions_for(total_chars: int, target_chars: int, min_partitions: int = 1, max_partitions: int = 100_000) -> int:
    """Number of partitions so that each holds about target_chars characters."""
    n = math.ceil(max(total_chars, 0) / max(target_chars, 1))
    return int(min(max(n, min_partitions), max_partitions))


# ------------------------------------------------------------------------------------------------- Spark side
def explode_text_chunks(df, max_chars: int, text_col: str = "note_text", min_fraction: float = 0.5,
                        margin: int = 0):
    """One row per piece: text_col becomes the piece, plus chunk_index and chunk_offset; short notes are one piece.

    Notes that fit are passed through with their text kept in the JVM (the common case: the UDF sees a null for
    them); only long ones' text goes through the UDF, so the cost is paid where it is needed. With `margin` > 0
    each piece of a long note also carries up to `margin` characters of its neighbours on each side (context for
    a stage that reads around a mention); chunk_offset is then where that widened text starts, the piece proper is
    [core_start, core_end) in note offsets (two more columns), and the pieces overlap instead of concatenating back
    to the note.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    piece = T.StructType([T.StructField("chunk_index", T.IntegerType()), T.StructField("chunk_offset", T.IntegerType()),
                          T.StructField("chunk_text", T.StringType()), T.StructField("core_start", T.IntegerType()),
                          T.StructField("core_end", T.IntegerType())])

    @F.udf(T.ArrayType(piece))
    def _split(text: str | None):
        if not text:
            return []
        out = []
        for c in split_text(text, max_chars, min_fraction):
            start = max(0, c.offset - margin)
            out.append((c.index, start, text[start:c.offset + len(c.text) + margin], c.offset, c.offset + len(c.text)))
        return out

    short = F.array(F.struct(F.lit(0).alias("chunk_index"), F.lit(0).alias("chunk_offset"),
                             F.col(text_col).alias("chunk_text"), F.lit(0).alias("core_start"),
                             F.length(text_col).alias("core_end")))
    # Spark evaluates a Python UDF for every row even inside CASE WHEN (BatchEvalPython runs below the Generate), so
    # only the long notes' text is handed to it: short rows send a null and get [] back, their text stays in the JVM.
    is_long = F.length(text_col) > max_chars
    pieces = F.when(~is_long, short).otherwise(_split(F.when(is_long, F.col(text_col))))
    others = [c for c in df.columns if c != text_col]
    core = [F.col("_chunk.core_start").alias("core_start"), F.col("_chunk.core_end").alias("core_end")] if margin else []
    return (df.select(*others, F.explode(pieces).alias("_chunk"))
            .select(*others, F.col("_chunk.chunk_index").alias("chunk_index"),
                    F.col("_chunk.chunk_offset").alias("chunk_offset"),
                    F.col("_chunk.chunk_text").alias(text_col), *core))


def with_note_offsets(df, start_col: str = "offset_start", end_col: str = "offset_end",
                      offset_col: str = "chunk_offset"):
    """Chunk-local offsets -> note offsets (adds the piece's offset); drops nothing."""
    from pyspark.sql import functions as F

    return (df.withColumn(start_col, F.col(start_col) + F.col(offset_col))
            .withColumn(end_col, F.col(end_col) + F.col(offset_col)))


def repartition_by_size(df, text_col: str = "note_text", target_chars: int = 8_000_000, min_partitions: int = 1,
                        max_partitions: int = 100_000, key_cols: Sequence[str] = ("note_id",)):
    """Repartition so each partition holds ~target_chars of text; returns (df, number of partitions).

    Counting the characters costs one pass over the text column; with rows bounded by chunking, hashing
    the key spreads the characters evenly (each partition gets thousands of rows, so the sums converge).
    """
    from pyspark.sql import functions as F

    total = df.select(F.sum(F.length(text_col)).alias("n")).first()["n"] or 0
    n = partitions_for(int(total), target_chars, min_partitions, max_partitions)
    keys = [c for c in key_cols if c in df.columns] + [c for c in ("chunk_index",) if c in df.columns]
    return df.repartition(n, F.xxhash64(*keys)), n


def with_new_piece_offsets(df, text_col: str = "note_text", key_cols: Sequence[str] = ("note_id",),
                           out_col: str = "new_chunk_offset"):
    """For pieces whose text a stage rewrote (de-identification): each piece's offset in the reassembled text.

    new offset of piece i = total length of the rewritten pieces 0..i-1 of the same note (a window sum).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    before = Window.partitionBy(*key_cols).orderBy("chunk_index").rowsBetween(Window.unboundedPreceding, -1)
    return df.withColumn(out_col, F.coalesce(F.sum(F.length(text_col)).over(before), F.lit(0)).cast("int"))


def concat_pieces(df, text_col: str = "note_text", key_cols: Sequence[str] = ("note_id",),
                  first_cols: Sequence[str] = ()):
    """Pieces -> one row per note: text_col = the pieces' texts in chunk_index order; first_cols carried along."""
    from pyspark.sql import functions as F

    ordered = F.array_sort(F.collect_list(F.struct(F.col("chunk_index"), F.col(text_col).alias("t"))))
    return df.groupBy(*key_cols).agg(
        F.concat_ws("", F.transform(ordered, lambda x: x["t"])).alias(text_col),
        *[F.first(c).alias(c) for c in first_cols],
    )


def merge_deid_pieces(pieces, key_cols: Sequence[str] = ("note_id",), carry: Sequence[str] = (),
                      result_col: str = "deid"):
    """De-identified pieces -> one row per note with the same `deid` struct (deid_text, spans, error) as whole notes.

    Each piece's spans move by its offset in the original note (start/end += chunk_offset) and in the new text
    (new_start/new_end += total length of the earlier rewritten pieces); the note's text is the rewritten pieces
    in order; the note's error is its first piece error (the text is then null, as for a whole note). `carry`
    columns (person_id, text_sha256, ...) are taken from the first piece.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    before = Window.partitionBy(*key_cols).orderBy("chunk_index").rowsBetween(Window.unboundedPreceding, -1)
    new_off = F.coalesce(F.sum(F.length(F.col(f"{result_col}.deid_text"))).over(before), F.lit(0)).cast("int")
    df = pieces.withColumn("_new_off", new_off)

    def shift(s):
        return (s.withField("start", s["start"] + F.col("chunk_offset"))
                .withField("end", s["end"] + F.col("chunk_offset"))
                .withField("new_start", s["new_start"] + F.col("_new_off"))
                .withField("new_end", s["new_end"] + F.col("_new_off")))

    piece = F.struct(F.col("chunk_index"), F.col(f"{result_col}.deid_text").alias("t"),
                     F.transform(F.col(f"{result_col}.spans"), shift).alias("spans"),
                     F.col(f"{result_col}.error").alias("error"))
    grouped = df.groupBy(*key_cols).agg(F.array_sort(F.collect_list(piece)).alias("_p"),
                                        *[F.first(c).alias(c) for c in carry])
    errors = F.filter(F.transform("_p", lambda x: x["error"]), lambda e: e.isNotNull())
    error = F.element_at(errors, 1)
    text = F.when(error.isNull(), F.concat_ws("", F.transform("_p", lambda x: x["t"])))
    merged = F.struct(text.alias("deid_text"), F.flatten(F.transform("_p", lambda x: x["spans"])).alias("spans"),
                      error.alias("error"))
    return grouped.select(*key_cols, *carry, merged.alias(result_col))
