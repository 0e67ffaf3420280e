"""Seeded NerDL graphs (clinlake/ner/seeding.py): every random op of a frozen GraphDef gets the training's seed."""

from __future__ import annotations

import pytest

from clinlake.ner import seeding
from clinlake.ner.training import GRAPH_DIR


@pytest.fixture(scope="module")
def graph() -> bytes:
    """Our generated 43-tag BiLSTM graph, frozen (like the jar's) with unseeded random ops."""
    [pb] = sorted(GRAPH_DIR.glob("*.pb"))
    return pb.read_bytes()


def test_frozen_graphs_are_unseeded(graph):
    ops = seeding.random_ops(graph)
    assert len(ops) > 10 and {op for op, _, _, _ in ops} <= seeding.RANDOM_OPS
    assert {(s, s2) for _, _, s, s2 in ops} == {(0, 0)}


def test_seed_graph_seeds_every_random_op_and_leaves_the_rest(graph):
    before = seeding.random_ops(graph)
    seeded = seeding.seed_graph(graph, 7)
    after = seeding.random_ops(seeded)
    assert [(op, name) for op, name, _, _ in after] == [(op, name) for op, name, _, _ in before]
    assert {s for _, _, s, _ in after} == {8}                       # off zero: 0 would mean "unseeded"
    assert sorted(s2 for _, _, _, s2 in after) == list(range(1, len(before) + 1))   # no two ops draw alike
    assert seeding.seed_graph(graph, 7) == seeded and seeding.seed_graph(graph, 13) != seeded
    # a graph seeded again takes the new seed: the later map entry wins, as TensorFlow reads it
    assert {s for _, _, s, _ in seeding.random_ops(seeding.seed_graph(seeded, 3))} == {4}


def test_seeded_graph_folder_keeps_the_file_names(tmp_path, graph):
    folder = seeding.seeded_graph_folder({"blstm_43_100_128_200.pb": graph}, 42, tmp_path / "g")
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["blstm_43_100_128_200.pb"]
    assert seeding.folder_graphs(folder)["blstm_43_100_128_200.pb"] == seeding.seed_graph(graph, 42)


@pytest.mark.parametrize("bad", [b"\x0f\x01", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05ab", b"\x08\xff"])
def test_not_a_graph_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="not a GraphDef"):
        seeding.seed_graph(bad, 1)
