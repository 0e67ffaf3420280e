"""Executor-side token vote: several NER versions' per-token tag distributions -> one BIO decoding -> spans.

Each member (a NerDL version run with `includeAllConfidenceScores`) gives, for every token, a probability per tag.
The vote takes their geometric mean (the mean of the log-probabilities, floored at FLOOR because NerDL rounds its
scores to four decimals) and decodes the whole note with Viterbi under the BIO constraint only: I-X may follow B-X
or I-X, nothing else, and no chunk starts with I-X. No transition weights are learned here: on MEDDOCAN dev, adding
weights estimated on train raised precision but lowered recall (docs/deid.md, "A vote per token"), and
de-identification puts recall first.

Unlike the exact span vote (recognisers.filter_votes), a place where the versions disagree on bounds or type still
gets a chunk: the one the averaged distributions make most likely.

The Viterbi is a dozen lines of NumPy written here: the CRF packages that ship one (sklearn-crfsuite, pytorch-crf)
decode with their own trained model, and these scores are not a CRF's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd  # module level: pandas_udf resolves the string type hints in these globals

FLOOR = 1e-4          # NerDL's scores are rounded to 4 decimals: 0.0 means "under 5e-5", not impossible
BLOCKED = -1e9        # additive log-score of a transition the BIO scheme forbids
SPANS_TYPE = "array<struct<start:int,end:int,label:string,score:double>>"


def bio_masks(tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(K x K transition mask, K start mask) with BLOCKED where I-X would follow O, another type or the start."""
    k = len(tags)
    trans, start = np.zeros((k, k)), np.zeros(k)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            start[j] = BLOCKED
            for i, prev in enumerate(tags):
                if prev == "O" or prev[2:] != tag[2:]:
                    trans[i, j] = BLOCKED
    return trans, start


def viterbi(log_probs: np.ndarray, trans: np.ndarray, start: np.ndarray) -> list[int]:
    """Best tag index per token under the masks (log_probs: tokens x tags)."""
    n = log_probs.shape[0]
    if n == 0:
        return []
    score = log_probs[0] + start
    back = np.zeros((n, log_probs.shape[1]), dtype=np.int64)
    for i in range(1, n):
        cand = score[:, None] + trans
        back[i] = cand.argmax(axis=0)
        score = cand.max(axis=0) + log_probs[i]
    path = [int(score.argmax())]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i][path[-1]]))
    return path[::-1]


def bio_chunks(begins: Sequence[int], ends: Sequence[int], path: Sequence[str],
               scores: Sequence[float]) -> list[dict[str, Any]]:
    """Tokens' (begin, end) and decoded tags -> chunks {start, end, label, score = mean token score}."""
    out: list[dict[str, Any]] = []
    run: list[float] = []
    for b, e, tag, s in zip(begins, ends, path, scores):
        if tag == "O":
            run = []
            continue
        prefix, label = tag.split("-", 1)
        if prefix == "B" or not out or not run or out[-1]["label"] != label:
            out.append({"start": int(b), "end": int(e), "label": label, "score": 0.0})
            run = []
        out[-1]["end"] = int(e)
        run.append(float(s))
        out[-1]["score"] = float(np.mean(run))
    return out


def decode_tokens(begins: Sequence[Sequence[int]], ends: Sequence[int], probs: Sequence[Sequence[Sequence[float]]],
                  tags: Sequence[str]) -> list[dict[str, Any]]:
    """One note: each member's token begins and per-token tag probabilities (members x tokens x tags) -> voted spans.

    The members must have tokenised the note the same way (the same text stages); otherwise there is nothing to
    average token by token, and that is an error, not a silent fall-back to one member.
    """
    if len(begins) != len(probs) or len(probs) == 0:
        raise ValueError(f"token vote: {len(begins)} token lists for {len(probs)} members")
    first = list(begins[0])
    for i, b in enumerate(begins[1:], start=2):
        if list(b) != first:
            raise ValueError(f"token vote: member {i} tokenised the note differently from member 1 "
                             f"({len(b)} tokens against {len(first)}); the members must share their text stages")
    if not first:
        return []
    arr = np.stack([np.asarray([np.asarray(t, dtype=np.float64) for t in p]) for p in probs])  # members x n x K
    if arr.shape[1] != len(first) or arr.shape[2] != len(tags):
        raise ValueError(f"token vote: probabilities of shape {arr.shape} for {len(first)} tokens and {len(tags)} tags")
    return decode_mean_log_probs(first, ends, np.log(np.maximum(arr, FLOOR)).mean(axis=0), tags)


def decode_mean_log_probs(begins: Sequence[int], ends: Sequence[int], log_probs: Any, tags: Sequence[str],
                          masks: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """One note's tokens and the members' mean log-probabilities (tokens x tags) -> spans (BIO Viterbi); `masks`
    are bio_masks(tags), passed in by a caller that decodes many notes with one tag set."""
    lp = np.asarray([np.asarray(t, dtype=np.float64) for t in log_probs]) if len(log_probs) else np.zeros((0, len(tags)))
    if lp.shape != (len(begins), len(tags)) or len(ends) != len(begins):
        raise ValueError(f"token vote: log-probabilities of shape {lp.shape} for {len(begins)} tokens "
                         f"({len(ends)} ends) and {len(tags)} tags")
    trans, start = masks if masks is not None else bio_masks(tags)
    path = viterbi(lp, trans, start)
    token_scores = np.exp(lp[np.arange(len(path)), path])
    return bio_chunks(begins, ends, [tags[j] for j in path], token_scores)


def vote_then_fill(token_spans: Sequence[dict[str, Any]], chunks_per_member: Sequence[Sequence[dict[str, Any]]],
                   min_votes: int) -> list[dict[str, Any]]:
    """`combine: spans+tokens`: the chunks at least min_votes members give with the same start, end and label (score
    = the share of members that gave it), then the token vote's spans that overlap none of them, sorted by start.

    The exact vote is the precise part; the token vote fills the places where the members disagree on bounds or type,
    which the exact vote alone would leave without any model span.
    """
    counts: dict[tuple[int, int, str], int] = {}
    for chunks in chunks_per_member:
        for key in {(int(c["start"]), int(c["end"]), str(c["label"])) for c in chunks}:
            counts[key] = counts.get(key, 0) + 1
    n = max(len(chunks_per_member), 1)
    voted = [{"start": s, "end": e, "label": lab, "score": k / n}
             for (s, e, lab), k in counts.items() if k >= min_votes]
    fill = [t for t in token_spans if not any(t["start"] < v["end"] and v["start"] < t["end"] for v in voted)]
    return sorted(voted + fill, key=lambda c: (c["start"], c["end"], c["label"]))


def member_chunks(begins: Sequence[int], ends: Sequence[int], member_tags: Sequence[Sequence[str]]) -> list[list[dict]]:
    """Each member's own chunks from its own BIO tags (the NerConverter's reading: a B or a change of type opens one)."""
    return [bio_chunks(begins, ends, [str(t) for t in tags], [1.0] * len(tags)) for tags in member_tags]


def tag_vote_udf(tags: Sequence[str], min_votes: int = 0) -> Any:
    """pandas_udf(begins array<int>, ends array<int>, mean log-probs array<array<double>>, members' own tags
    array<array<string>>) -> SPANS_TYPE; with min_votes > 0 the exact vote of the members' own chunks comes first
    (vote_then_fill), else the token vote alone (the tags are then ignored).

    The members' log-probabilities are floored, summed and checked for aligned tokens in Spark (with_token_voted_spans):
    only their mean crosses to Python, one number per token and tag whatever the number of members.
    """
    from pyspark.sql.functions import pandas_udf

    tag_list = [str(t) for t in tags]
    masks = bio_masks(tag_list)

    def one(b: Any, e: Any, lp: Any, own: Any) -> list[dict[str, Any]]:
        spans = decode_mean_log_probs(b, e, lp, tag_list, masks)
        return vote_then_fill(spans, member_chunks(b, e, own), min_votes) if min_votes > 0 else spans

    @pandas_udf(SPANS_TYPE)
    def _vote(begins: pd.Series, ends: pd.Series, log_probs: pd.Series, own_tags: pd.Series) -> pd.Series:
        return pd.Series([None if lp is None else one(b, e, lp, own)
                          for b, e, lp, own in zip(begins, ends, log_probs, own_tags)])

    return _vote
