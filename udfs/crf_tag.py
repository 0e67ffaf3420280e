"""Executor-side CRF voter: word-shape features -> CRFsuite tag marginals per token (the de-identification vote) or
its own chunks (a NER recogniser's span vote, `crf_spans_udf`).

A linear-chain CRF over hand-made features (the word, its shape, affixes, its neighbours, the line's first word)
errs differently from the NerDL versions, which all share one architecture, one embedding table and one training
set: on MEDDOCAN dev it is a weaker tagger alone but lifts the vote (docs/deid.md, "A CRF in the vote").

The CRF itself is CRFsuite through python-crfsuite (L-BFGS training, forward-backward marginals); only the feature
function is ours, and the very same function builds the training and the serving features. The tagger takes the
tokens of the vote's first NerDL member, so it votes on exactly the tokens the others tag.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd  # module level: pandas_udf resolves the string type hints in these globals

FEATURES_VERSION = "shape-1"   # bump when token_features changes: a model only serves the features it learned
OUT_TYPE = "struct<lp:array<array<double>>,tag:array<string>>"
_UPPER, _LOWER, _DIGIT = re.compile(r"[A-ZÁÉÍÓÚÑÜ]"), re.compile(r"[a-záéíóúñü]"), re.compile(r"\d")
_REPEAT = re.compile(r"(.)\1+")


def shape(word: str) -> str:
    """'Calle' -> 'Xx', '28.034' -> 'd.d', 'DNI:' -> 'X:' (letter classes, digits, repeats collapsed)."""
    return _REPEAT.sub(r"\1", _DIGIT.sub("d", _LOWER.sub("x", _UPPER.sub("X", word))))


def token_features(text: str, begins: Sequence[int], ends: Sequence[int]) -> list[dict[str, float]]:
    """One feature dict per token ([begin, end) offsets into text): the word, shape, affixes, a +-3 window, the
    neighbouring bigrams, line starts and ends, and the first word of the token's line ('Nombre:', 'NHC:')."""
    words = [text[b:e] for b, e in zip(begins, ends)]
    lows = [w.lower() for w in words]
    shapes = [shape(w) for w in words]
    n = len(words)
    # first token of each token's line: a header word labels the rest of its line
    line_start, k = [], 0
    for i in range(n):
        if i and "\n" in text[ends[i - 1]:begins[i]]:
            k = i
        line_start.append(k)
    out = []
    for i in range(n):
        w, lw = words[i], lows[i]
        f = {"b": 1.0, "w=" + lw: 1.0, "sh=" + shapes[i]: 1.0, "p2=" + lw[:2]: 1.0, "p3=" + lw[:3]: 1.0,
             "s2=" + lw[-2:]: 1.0, "s3=" + lw[-3:]: 1.0, "s4=" + lw[-4:]: 1.0, "len=" + str(min(len(w), 12)): 1.0}
        if w.istitle():
            f["title"] = 1.0
        if w.isupper():
            f["upper"] = 1.0
        if w.isdigit():
            f["digit"] = 1.0
        if line_start[i] == i:
            f["bol"] = 1.0
        if i + 1 == n or line_start[i + 1] == i + 1:
            f["eol"] = 1.0
        for d in (-3, -2, -1, 1, 2, 3):
            j = i + d
            if 0 <= j < n:
                f[f"{d}w=" + lows[j]] = 1.0
                if abs(d) <= 2:
                    f[f"{d}sh=" + shapes[j]] = 1.0
                    f[f"{d}s3=" + lows[j][-3:]] = 1.0
            else:
                f[f"{d}w=<pad>"] = 1.0
        if i > 0:
            f["bi-=" + lows[i - 1] + "|" + lw] = 1.0
        if i + 1 < n:
            f["bi+=" + lw + "|" + lows[i + 1]] = 1.0
        if line_start[i] < i:
            f["line0=" + lows[line_start[i]]] = 1.0
        out.append(f)
    return out


_TAGGERS: dict[str, tuple[Any, bytes]] = {}


def tagger_for(model: bytes) -> Any:
    """A pycrfsuite.Tagger over the model bytes, opened once per Python worker (keyed by the bytes' digest)."""
    import pycrfsuite

    key = hashlib.sha256(model).hexdigest()
    if key not in _TAGGERS:
        own = bytes(model)
        tagger = pycrfsuite.Tagger()
        tagger.open_inmemory(own)
        # CRFsuite reads the model in place, without a copy: the bytes must live as long as the tagger
        _TAGGERS[key] = (tagger, own)
    return _TAGGERS[key][0]


def crf_tags(tagger: Any, text: str, begins: Sequence[int], ends: Sequence[int]) -> list[str]:
    """The CRF's own Viterbi tags for one note's tokens ([] for none)."""
    return list(tagger.tag(token_features(text, begins, ends))) if len(begins) else []


def crf_log_probs(tagger: Any, text: str, begins: Sequence[int], ends: Sequence[int], tags: Sequence[str],
                  floor: float) -> tuple[np.ndarray, list[str]]:
    """(tokens x tags log-marginals floored at `floor`, the CRF's own Viterbi tags) for one note; a tag the CRF
    never learned gets the floor."""
    n = len(begins)
    if n == 0:
        return np.zeros((0, len(tags))), []
    tagger.set(token_features(text, begins, ends))
    own = list(tagger.tag())
    known = set(tagger.labels())
    probs = np.full((n, len(tags)), 0.0)
    for j, t in enumerate(tags):
        if t in known:
            probs[:, j] = [tagger.marginal(t, i) for i in range(n)]
    return np.log(np.maximum(probs, floor)), own


def crf_udf(model: Any, tags: Sequence[str], floor: float) -> Any:
    """pandas_udf(text string, begins array<int>, ends array<int> [exclusive]) -> OUT_TYPE: the CRF's floored
    log-marginals per token and tag (the vote's tag order) and its own tags; null begins give null.

    `model` is a broadcast of the CRFsuite model bytes (a few MB), read once per worker."""
    from pyspark.sql.functions import pandas_udf

    tag_list = [str(t) for t in tags]

    @pandas_udf(OUT_TYPE)
    def _crf(texts: pd.Series, begins: pd.Series, ends: pd.Series) -> pd.DataFrame:
        tagger = tagger_for(model.value)
        lps, owns = [], []
        for text, b, e in zip(texts, begins, ends):
            if b is None or text is None:
                lps.append(None)
                owns.append(None)
                continue
            lp, own = crf_log_probs(tagger, text, [int(x) for x in b], [int(x) for x in e], tag_list, floor)
            lps.append([row.tolist() for row in lp])
            owns.append(own)
        return pd.DataFrame({"lp": lps, "tag": owns})

    return _crf


SPANS_TYPE = "array<struct<label:string,s:int,e:int>>"


def crf_spans(tagger: Any, text: str, begins: Sequence[int], ends: Sequence[int]) -> list[dict[str, Any]]:
    """One note's CRF chunks ({label, s, e}, end exclusive) from its Viterbi tags read as BIO."""
    from udfs.tag_vote import bio_chunks

    tags = crf_tags(tagger, text, begins, ends)
    return [{"label": c["label"], "s": c["start"], "e": c["end"]}
            for c in bio_chunks(begins, ends, tags, [1.0] * len(tags))]


def crf_spans_udf(model: Any) -> Any:
    """pandas_udf(text string, begins array<int>, ends array<int> [exclusive]) -> SPANS_TYPE: the CRF's own chunks,
    a recogniser vote's CRF voter (clinlake.recognisers); a null text or null tokens give null.

    `model` is a broadcast of the CRFsuite model bytes, read once per worker."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(SPANS_TYPE)
    def _spans(texts: pd.Series, begins: pd.Series, ends: pd.Series) -> pd.Series:
        tagger = tagger_for(model.value)
        return pd.Series([None if t is None or b is None or e is None
                          else crf_spans(tagger, t, [int(x) for x in b], [int(x) for x in e])
                          for t, b, e in zip(texts, begins, ends)])

    return _spans
