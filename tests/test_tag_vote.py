"""The token vote's plain functions (udfs/tag_vote.py): BIO masks, Viterbi, chunks, the geometric mean of members."""

from __future__ import annotations

import math

import numpy as np
import pytest

from udfs.tag_vote import (FLOOR, bio_chunks, bio_masks, decode_mean_log_probs, decode_tokens, member_chunks,
                             vote_then_fill, viterbi)

TAGS = ["O", "B-A", "I-A", "B-B", "I-B"]


def test_masks_allow_inside_only_after_its_own_type():
    trans, start = bio_masks(TAGS)
    ok = {(p, t) for i, p in enumerate(TAGS) for j, t in enumerate(TAGS) if trans[i, j] == 0}
    assert ("B-A", "I-A") in ok and ("I-A", "I-A") in ok and ("O", "B-B") in ok and ("I-A", "B-A") in ok
    assert ("O", "I-A") not in ok and ("B-B", "I-A") not in ok and ("I-B", "I-A") not in ok
    assert [t for t, s in zip(TAGS, start) if s != 0] == ["I-A", "I-B"]


def test_viterbi_prefers_a_valid_path_over_the_tokens_own_best_tags():
    # Token by token the best tags are O then I-A, which BIO forbids; B-A I-A is the best valid path (.4 x .85).
    probs = np.array([[0.5, 0.4, 0.1, 0.0, 0.0], [0.1, 0.05, 0.85, 0.0, 0.0]])
    trans, start = bio_masks(TAGS)
    assert [TAGS[j] for j in viterbi(np.log(np.maximum(probs, FLOOR)), trans, start)] == ["B-A", "I-A"]
    assert viterbi(np.zeros((0, len(TAGS))), trans, start) == []


def test_chunks_split_on_a_new_begin_and_a_change_of_type():
    got = bio_chunks([0, 4, 8, 12, 16], [3, 7, 11, 15, 19], ["B-A", "I-A", "B-A", "B-B", "O"], [0.9, 0.7, 0.5, 1.0, 0.2])
    assert got == [{"start": 0, "end": 7, "label": "A", "score": pytest.approx(0.8)},
                   {"start": 8, "end": 11, "label": "A", "score": 0.5},
                   {"start": 12, "end": 15, "label": "B", "score": 1.0}]


def test_members_vote_by_the_geometric_mean_of_their_distributions():
    one = [[0.0, 0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]]
    two = [[0.0, 0.8, 0.2, 0.0, 0.0], [0.6, 0.0, 0.4, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]]
    three = [[0.0, 0.0, 0.0, 0.7, 0.3], [0.0, 0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0]]
    begins, ends = [0, 6, 12], [5, 11, 13]
    # Two of three say A over both tokens (the second one stops after the first token), one says B: A wins and
    # keeps both tokens, although the second member ends it after the first.
    got = decode_tokens([begins] * 3, ends, [one, two, three], TAGS)
    assert [(c["start"], c["end"], c["label"]) for c in got] == [(0, 11, "A")]
    token1 = math.exp((math.log(0.9) + math.log(0.8) + math.log(FLOOR)) / 3)
    token2 = math.exp((math.log(1.0) + math.log(0.4) + math.log(FLOOR)) / 3)
    assert got[0]["score"] == pytest.approx((token1 + token2) / 2)
    # one member alone is its own argmax path
    assert [(c["start"], c["end"], c["label"]) for c in decode_tokens([begins], ends, [three], TAGS)] == [(0, 11, "B")]


def test_members_must_share_their_tokens():
    probs = [[1.0, 0.0, 0.0, 0.0, 0.0]]
    assert decode_tokens([[], []], [], [[], []], TAGS) == []
    with pytest.raises(ValueError, match="tokenised the note differently"):
        decode_tokens([[0], [1]], [3], [probs, probs], TAGS)
    with pytest.raises(ValueError, match="2 token lists for 1 members"):
        decode_tokens([[0], [0]], [3], [probs], TAGS)
    with pytest.raises(ValueError, match="shape"):
        decode_tokens([[0]], [3], [[[1.0, 0.0]]], TAGS)


def test_the_served_decoder_takes_the_mean_log_probabilities():
    probs = [[[0.5, 0.4, 0.1, 0.0, 0.0], [0.1, 0.05, 0.85, 0.0, 0.0]],
             [[0.7, 0.3, 0.0, 0.0, 0.0], [0.2, 0.0, 0.8, 0.0, 0.0]]]
    mean = np.log(np.maximum(np.array(probs), FLOOR)).mean(axis=0)
    got = decode_mean_log_probs([0, 4], [3, 8], list(mean), TAGS)
    assert got == decode_tokens([[0, 4]] * 2, [3, 8], probs, TAGS)
    assert [(c["start"], c["end"], c["label"]) for c in got] == [(0, 8, "A")]
    assert decode_mean_log_probs([], [], [], TAGS) == []
    with pytest.raises(ValueError, match="1 ends"):
        decode_mean_log_probs([0, 4], [3], list(mean), TAGS)


def test_exact_votes_first_then_the_token_vote_where_they_left_nothing():
    token = [{"start": 0, "end": 11, "label": "A", "score": 0.9}, {"start": 20, "end": 25, "label": "B", "score": 0.6},
             {"start": 30, "end": 35, "label": "A", "score": 0.5}]
    members = [[{"start": 0, "end": 5, "label": "A"}, {"start": 30, "end": 35, "label": "B"}],
               [{"start": 0, "end": 5, "label": "A"}, {"start": 30, "end": 35, "label": "B"}],
               [{"start": 0, "end": 11, "label": "A"}, {"start": 0, "end": 11, "label": "A"}]]
    # (0, 5, A) and (30, 35, B) have two votes and replace the token spans they overlap; (20, 25) had no voted span.
    assert vote_then_fill(token, members, 2) == [
        {"start": 0, "end": 5, "label": "A", "score": pytest.approx(2 / 3)},
        {"start": 20, "end": 25, "label": "B", "score": 0.6},
        {"start": 30, "end": 35, "label": "B", "score": pytest.approx(2 / 3)}]
    # a member repeating a chunk votes once: three votes are out of reach for (0, 11, A)
    assert vote_then_fill(token, members, 3) == token
    assert member_chunks([0, 6, 12], [5, 11, 13], [["B-A", "I-A", "O"], ["B-A", "B-A", "B-B"]]) == [
        [{"start": 0, "end": 11, "label": "A", "score": 1.0}],
        [{"start": 0, "end": 5, "label": "A", "score": 1.0}, {"start": 6, "end": 11, "label": "A", "score": 1.0},
         {"start": 12, "end": 13, "label": "B", "score": 1.0}]]
