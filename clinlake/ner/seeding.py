"""Seeded copies of NerDL TensorFlow graphs, so that one seed gives one model.

Spark NLP seeds the order in which NerDL shuffles its training sentences (`setRandomSeed`), but the graphs, both the
ones bundled in its jar and ours from TFNerDLGraphBuilder, were frozen with seed = seed2 = 0 on every random op: the
weight initialisers and the dropout masks then draw from a fresh random seed in every TensorFlow session, and two
trainings with the same seed, data and embeddings start from different weights (docs/ner.md "Seeded was not
reproducible; now the start is"). `seed_graph` writes the seed into every random op of a frozen GraphDef; `seeded_graph_folder` does it
for a folder of graphs (or the jar's own), and the training points NerDL at the copy.

The GraphDef is edited at the protobuf wire level, without TensorFlow (not a dependency here): a GraphDef is
`repeated NodeDef node = 1`, and a NodeDef's `attr` (field 5) is a map whose later entries replace earlier ones with the
same key, so appending `seed` and `seed2` entries to a node overrides the zeros it was frozen with.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# TensorFlow ops that draw random numbers and take the seed / seed2 attributes
RANDOM_OPS = {"RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
              "RandomGamma", "RandomPoisson", "RandomPoissonV2", "Multinomial", "ParameterizedTruncatedNormal"}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    """Decode a protobuf varint at buf[i:] -> (value, next index)."""
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ValueError("not a GraphDef: a varint runs past the end")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _encode_varint(value: int) -> bytes:
    """A non-negative int as a protobuf varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes, bytes]]:
    """(field number, wire type, payload, the field's raw bytes) of one serialized message."""
    i = 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, j = _varint(buf, i)
            payload, i = buf[i:j], j
        elif wire == 1:
            payload, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            payload, i = buf[i:i + size], i + size
        elif wire == 5:
            payload, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"not a GraphDef: protobuf wire type {wire} at byte {start}")
        if i > len(buf):
            raise ValueError(f"not a GraphDef: a field at byte {start} runs past the end ({len(buf)} bytes)")
        yield number, wire, payload, buf[start:i]


def _bytes_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _int_attr(key: str, value: int) -> bytes:
    """One NodeDef.attr map entry: key -> AttrValue{i: value} (AttrValue.i is field 3)."""
    attr_value = _encode_varint(3 << 3) + _encode_varint(value)
    return _bytes_field(5, _bytes_field(1, key.encode()) + _bytes_field(2, attr_value))


def random_ops(graph: bytes) -> list[tuple[str, str, int, int]]:
    """(op, node name, seed, seed2) of every random op in a serialized GraphDef (the last map entry wins)."""
    out = []
    for number, _, node, _ in _fields(graph):
        if number != 1:
            continue
        name = op = ""
        seeds = {"seed": 0, "seed2": 0}
        for field, _, payload, _ in _fields(node):
            if field == 1:
                name = payload.decode()
            elif field == 2:
                op = payload.decode()
            elif field == 5:
                entry = {f: p for f, _, p, _ in _fields(payload)}
                key = entry.get(1, b"").decode()
                if key in seeds:
                    value = {f: p for f, _, p, _ in _fields(entry.get(2, b""))}.get(3, b"\x00")
                    seeds[key] = _varint(value, 0)[0]
        if op in RANDOM_OPS:
            out.append((op, name, seeds["seed"], seeds["seed2"]))
    return out


def seed_graph(graph: bytes, seed: int) -> bytes:
    """The GraphDef with every random op seeded: seed = `seed`, seed2 = a number of its own (its position).

    Distinct seed2 values keep two initialisers of the same shape from drawing the same weights. TensorFlow treats
    seed = seed2 = 0 as "unseeded", so the seed is moved off zero.
    """
    seed = int(seed) % (2 ** 31 - 1) + 1
    out, k = bytearray(), 0
    for number, _, node, raw in _fields(graph):
        if number == 1:
            op = next((p.decode() for f, _, p, _ in _fields(node) if f == 2), "")
            if op in RANDOM_OPS:
                k += 1
                node = node + _int_attr("seed", seed) + _int_attr("seed2", k)
                raw = _bytes_field(1, node)
        out += raw
    return bytes(out)


def seeded_graph_folder(graphs: dict[str, bytes], seed: int, out_dir: str | Path) -> str:
    """Write every graph (file name -> GraphDef bytes) seeded into out_dir; returns the folder for setGraphFolder."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name, graph in graphs.items():
        (folder / name).write_bytes(seed_graph(graph, seed))
    return str(folder)


def folder_graphs(folder: str | Path) -> dict[str, bytes]:
    """The .pb graphs of a local folder, by file name."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).glob("*.pb"))}


def bundled_graphs(spark: object) -> dict[str, bytes]:
    """The NerDL graphs inside the Spark NLP jar on the driver's class path (its `ner-dl/` resources), by file name."""
    jvm = spark._jvm  # type: ignore[attr-defined]
    names = jvm.com.johnsnowlabs.nlp.util.io.ResourceHelper.listResourceDirectory("/ner-dl")
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    out = {}
    for i in range(names.size()):
        path = str(names.apply(i))
        name = path.rsplit("/", 1)[-1]
        if not name.endswith(".pb"):
            continue
        stream = loader.getResourceAsStream(f"ner-dl/{name}")
        if stream is None:
            raise FileNotFoundError(f"ner-dl/{name} listed but not readable from the Spark NLP jar")
        try:
            out[name] = bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()
    return out
