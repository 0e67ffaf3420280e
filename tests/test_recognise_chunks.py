"""Recognition in bounded pieces: same chunks as on whole notes, exact note offsets, bounded text per mention."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from clinlake import recognise
from clinlake.note_nlp import with_snippet

PHRASES = {"DIAGNOSTICO": ["dolor torácico", "dolor", "fiebre alta", "fiebre"],
           "PROCEDIMIENTO": ["radiografía de tórax", "radiografía"]}
LINES = ["Paciente con dolor torácico y fiebre alta desde ayer.", "Se realiza radiografía de tórax sin hallazgos.",
         "Niega dolor abdominal. Refiere fiebre.", "Control en consulta."]
SCALE = {"max_chunk_chars": 300, "target_partition_chars": 2_000, "min_partitions": 2, "max_partitions": 8}


@pytest.fixture(scope="module")
def model(spark):
    return recognise.fit_matcher(spark, PHRASES)


@pytest.fixture(scope="module")
def notes(spark):
    long_text = "\n".join(LINES[i % len(LINES)] for i in range(60))  # ~2,800 chars: ~10 pieces of <= 300
    rows = [(1, "\n".join(LINES), "a"), (2, long_text, "b"), (3, "Sin hallazgos.", "c")]
    return spark.createDataFrame(rows, "note_id long, note_text string, text_sha256 string")


def _keys(df):
    return {(r["note_id"], r["label"], r["offset_start"], r["offset_end"]) for r in
            df.select("note_id", "label", "offset_start", "offset_end").collect()}


def test_pieces_give_the_same_chunks_as_whole_notes(model, notes):
    whole = recognise.filter_contained(recognise.explode_chunks(
        model.transform(notes), recognise.matcher_labels(model), ["note_id", "text_sha256"]))
    pieces = recognise.chunks(model, notes, ["note_id", "text_sha256"], SCALE)
    got = _keys(pieces)
    assert got == _keys(whole)
    assert {k[0] for k in got} == {1, 2}
    assert pieces.count() == len(got)  # no duplicates
    # longest match wins inside a label: "dolor" at the start of "dolor torácico" is gone
    texts = dict(notes.select("note_id", "note_text").collect())
    surfaces = {(n, lb, texts[n][s:e]) for n, lb, s, e in got}
    assert (1, "DIAGNOSTICO", "dolor torácico") in surfaces
    starts = {(n, lb, s) for n, lb, s, e in got}
    assert len(starts) == len(got)


def test_long_note_spans_map_back_exactly(model, notes):
    texts = dict(notes.select("note_id", "note_text").collect())
    rows = recognise.chunks(model, notes, ["note_id"], SCALE).collect()
    long_rows = [r for r in rows if r["note_id"] == 2]
    assert len(long_rows) >= 60  # every line of the long note has at least one mention
    assert max(r["offset_start"] for r in long_rows) > 2 * SCALE["max_chunk_chars"]
    for r in rows:
        surface = texts[r["note_id"]][r["offset_start"]:r["offset_end"]].lower()
        assert surface in {p.lower() for p in PHRASES[r["label"]]}


def test_piece_text_round_trip_keeps_lexical_variant_and_snippet(model, notes):
    found = recognise.chunks(model, notes, ["note_id", "text_sha256"], SCALE)
    local = found.transform(recognise.with_piece_text, notes, SCALE, 80)
    assert local.agg(F.max(F.length("note_text"))).first()[0] <= SCALE["max_chunk_chars"] + 2 * 80
    back = (local.transform(recognise.with_lexical_variant).transform(recognise.with_note_offsets, 60)
            .select("note_id", "label", "offset_start", "offset_end", "lexical_variant", "snippet"))
    reference = (found.join(notes.select("note_id", "note_text"), "note_id")
                 .transform(recognise.with_lexical_variant).transform(with_snippet, 60)
                 .select("note_id", "label", "offset_start", "offset_end", "lexical_variant", "snippet"))
    assert sorted(back.collect()) == sorted(reference.collect())
    assert back.count() == found.count()


def test_filter_contained_keeps_longest_per_label_and_the_other_columns(spark):
    rows = [(1, "D", 0, 10, "x"), (1, "D", 0, 10, "x"), (1, "D", 2, 5, "y"), (1, "D", 8, 14, "z"),
            (1, "P", 2, 5, "w"), (2, "D", 2, 5, "v"), (1, "D", 0, 10, "x")]
    df = spark.createDataFrame(rows, "note_id long, label string, offset_start int, offset_end int, extra string")
    got = sorted(tuple(r) for r in recognise.filter_contained(df).collect())

    def inside(a, b):  # a strictly shorter and within b, same note and label
        return a[:2] == b[:2] and b[2] <= a[2] and a[3] <= b[3] and (b[3] - b[2]) > (a[3] - a[2])

    expected = sorted({r for r in rows if not any(inside(r, o) for o in rows)})
    assert got == expected
    assert (1, "D", 2, 5, "y") not in got and (1, "P", 2, 5, "w") in got
