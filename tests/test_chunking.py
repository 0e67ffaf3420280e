"""Bounded pieces of long notes: exact reassembly, bounded size, boundaries preferred, offsets map back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinlake import chunking
from clinlake.chunking import Chunk, merge_chunk_spans, partitions_for, reassemble, split_text

# Few distinct characters so that boundaries (blank lines, sentence ends, spaces) are frequent and adjacent.
texts = st.lists(st.sampled_from(list("abc ÁÑ.\n\t;:!?") + ["  ", "\n\n", ". ", "palabra"]), max_size=800).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=texts, max_chars=st.integers(min_value=1, max_value=400),
       min_fraction=st.floats(min_value=0.0, max_value=0.95))
def test_pieces_cover_text_exactly_and_are_bounded(text, max_chars, min_fraction):
    chunks = split_text(text, max_chars, min_fraction)
    assert "".join(c.text for c in chunks) == text
    assert all(0 < len(c.text) <= max_chars for c in chunks) or text == ""
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert text[c.offset:c.offset + len(c.text)] == c.text


@settings(max_examples=200, deadline=None)
@given(text=texts, max_chars=st.integers(min_value=5, max_value=300), data=st.data())
def test_chunk_local_spans_map_back_to_the_same_text(text, max_chars, data):
    chunks = split_text(text, max_chars)
    found = []
    for c in chunks:
        if not c.text:
            continue
        s = data.draw(st.integers(min_value=0, max_value=len(c.text) - 1))
        e = data.draw(st.integers(min_value=s, max_value=len(c.text)))
        found.append((c, [(s, e, c.text[s:e])]))
    for start, end, surface in merge_chunk_spans(found):
        assert text[start:end] == surface


def test_prefers_newline_then_sentence_then_word():
    line = "Primera línea del informe.\nSegunda línea con más texto"
    assert split_text(line, 40)[0].text == "Primera línea del informe.\n"
    sentence = "Dolor torácico. Sin fiebre ni disnea conocida"
    assert split_text(sentence, 30)[0].text == "Dolor torácico. "
    words = "uno dos tres cuatro cinco seis"
    first = split_text(words, 12)[0].text
    assert first.endswith(" ") and len(first) <= 12


def test_hard_cut_when_no_boundary_keeps_the_bound():
    blob = "x" * 1_000_003
    chunks = split_text(blob, 10_000)
    assert len(chunks) == 101 and max(len(c.text) for c in chunks) == 10_000


def test_short_and_empty_texts():
    assert split_text("corto", 100) == [Chunk(0, 0, "corto")]
    assert split_text("", 100) == [Chunk(0, 0, "")]
    with pytest.raises(ValueError):
        split_text("x", 0)


def test_reassemble_offsets_follow_rewritten_pieces():
    text, offsets = reassemble([(1, "BBB"), (0, "A"), (2, "CC")])
    assert text == "ABBBCC" and offsets == [0, 1, 4]
    assert text[offsets[1]:offsets[1] + 3] == "BBB"


def test_partitions_for_bounds():
    assert partitions_for(0, 100) == 1
    assert partitions_for(1001, 100) == 11
    assert partitions_for(10**12, 100, max_partitions=50) == 50


def test_spark_explode_and_reoffset(spark):
    from pyspark.sql import functions as F

    long_text = ("Paciente con fiebre. " * 40) + "\n" + ("Refiere tos seca. " * 40)
    df = spark.createDataFrame([(1, long_text), (2, "Nota corta.")], "note_id long, note_text string")
    pieces = chunking.explode_text_chunks(df, 200)
    rows = pieces.orderBy("note_id", "chunk_index").collect()
    by_note: dict[int, list] = {}
    for r in rows:
        by_note.setdefault(r["note_id"], []).append(r)
    assert "".join(r["note_text"] for r in by_note[1]) == long_text
    assert all(len(r["note_text"]) <= 200 for r in rows)
    assert [r["note_text"] for r in by_note[2]] == ["Nota corta."]
    # a "mention" found in each piece at local [0, 8) maps back to the note's text
    found = pieces.withColumn("offset_start", F.lit(0)).withColumn("offset_end", F.lit(8)) \
        .withColumn("surface", F.substring("note_text", 1, 8)).transform(chunking.with_note_offsets)
    for r in found.filter("note_id = 1").collect():
        assert long_text[r["offset_start"]:r["offset_end"]] == r["surface"]
    balanced, n = chunking.repartition_by_size(pieces, target_chars=300)
    assert n == -(-len(long_text + "Nota corta.") // 300)
    assert balanced.rdd.getNumPartitions() == n and balanced.count() == pieces.count()


def test_spark_rewritten_pieces_reassemble_with_new_offsets(spark):
    from pyspark.sql import functions as F

    text = "Juan vino.\n" * 30 + "Alta.\n"
    df = spark.createDataFrame([(7, text)], "note_id long, note_text string")
    pieces = chunking.explode_text_chunks(df, 50)
    # a rewriting stage: every "Juan" becomes "[NOMBRE]" (longer), so new offsets differ from the old ones
    rewritten = pieces.withColumn("note_text", F.regexp_replace("note_text", "Juan", "[NOMBRE]"))
    with_offsets = chunking.with_new_piece_offsets(rewritten).orderBy("chunk_index").collect()
    whole = chunking.concat_pieces(rewritten).first()["note_text"]
    assert whole == text.replace("Juan", "[NOMBRE]")
    for r in with_offsets:
        assert whole[r["new_chunk_offset"]:r["new_chunk_offset"] + len(r["note_text"])] == r["note_text"]


def test_spark_merge_deid_pieces_shifts_spans_into_note_and_new_text(spark):
    from pyspark.sql import functions as F

    text = "".join(f"Visto por Juan el día {i}.\n" for i in range(12))
    df = spark.createDataFrame([(3, 9, text)], "note_id long, person_id long, note_text string")
    pieces = chunking.explode_text_chunks(df, 60)
    assert pieces.count() > 1

    # a toy de-identifier per piece: "Juan" -> "[NOMBRE]", spans in piece-local old and new offsets
    def fake(piece: str):
        out, spans, pos, shift = [], [], 0, 0
        i = piece.find("Juan")
        while i >= 0:
            out.append(piece[pos:i] + "[NOMBRE]")
            spans.append((i, i + 4, i + shift, i + shift + 8, "NOMBRE_SUJETO_ASISTENCIA", "[NOMBRE]", "rule:x"))
            shift += 4
            pos = i + 4
            i = piece.find("Juan", pos)
        out.append(piece[pos:])
        return ("".join(out), spans, None)

    rows = [(r["note_id"], r["person_id"], r["chunk_index"], r["chunk_offset"], *fake(r["note_text"]))
            for r in pieces.collect()]
    span_t = ("array<struct<start:int,end:int,new_start:int,new_end:int,label:string,replacement:string,"
              "detector:string>>")
    done = spark.createDataFrame(rows, f"note_id long, person_id long, chunk_index int, chunk_offset int, "
                                      f"deid_text string, spans {span_t}, error string") \
        .select("note_id", "person_id", "chunk_index", "chunk_offset",
                F.struct("deid_text", "spans", "error").alias("deid"))
    merged = chunking.merge_deid_pieces(done, carry=["person_id"]).first()
    new_text = merged["deid"]["deid_text"]
    assert new_text == text.replace("Juan", "[NOMBRE]") and merged["person_id"] == 9
    assert len(merged["deid"]["spans"]) == 12
    for s in merged["deid"]["spans"]:
        assert text[s["start"]:s["end"]] == "Juan"
        assert new_text[s["new_start"]:s["new_end"]] == "[NOMBRE]"


def test_deid_model_spans_of_a_long_note_come_back_in_note_offsets(spark):
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    from clinlake.deid.job import with_model_spans

    # A real Spark ML transformer standing in for the NER pipeline: every "Juan" becomes a ner_chunk annotation.
    finder = SQLTransformer(statement=(
        "SELECT *, transform(filter(sequence(0, greatest(length(note_text) - 4, 0)), "
        "i -> substring(note_text, i + 1, 4) = 'Juan'), i -> named_struct('begin', i, 'end', i + 3, "
        "'metadata', map('entity', 'NOMBRE_SUJETO_ASISTENCIA', 'confidence', '0.9'))) AS ner_chunk FROM __THIS__"))
    model = PipelineModel(stages=[finder])
    long_text = "\n".join(f"Línea {i}: visita de Juan con su médico." for i in range(40))
    notes = spark.createDataFrame([(1, 5, long_text), (2, 6, "Juan viene solo."), (3, 7, None)],
                                  "note_id long, person_id long, note_text string")
    whole = {r["note_id"]: r["model_spans"] for r in with_model_spans(notes, model, 10_000_000).collect()}
    pieces = {r["note_id"]: r["model_spans"] for r in with_model_spans(notes, model, 200).collect()}
    assert set(pieces) == {1, 2, 3}
    assert len(pieces[1]) == 40
    for nid in (1, 2):
        assert sorted(pieces[nid]) == sorted(whole[nid])
    assert all(long_text[s["start"]:s["end"]] == "Juan" for s in pieces[1])
