"""Executor-side ICD-O-3 code classifier for tumour mentions the resolver's index has never seen.

The resolver codes an unseen mention through its nearest indexed terms (character 3-grams). A mention such as
"carcinoma escamoso de pulmón T4N3M1" then takes the code of a neighbour that shares many grams ("carcinoma ... de
pulmón", 8140), where its own words name the histology ("escamoso": 8070). A linear classifier over the mention's words
and character n-grams, trained on every annotated mention, weighs the words that decide a histology. On CANTEMIST
dev1 gold spans it was right for 68 % of the 796 mentions the index lacks, against 62 % for the nearest neighbours
(docs/resolution.md, "A classifier for unseen tumour mentions").

Two linear SVMs (scikit-learn, a product dependency since the code suggester) share TF-IDF features of the normalised
mention (word 1-2-grams, character 2-5-grams within words): one predicts the histology (4 digits), one the rest of
the code (behaviour, grade, CANTEMIST's "/H"). A logistic regression on the two SVMs' margins turns them into the
probability that the code is right; it is fitted on margins from held-out folds of the training mentions, so it sees
mentions the SVMs have not, as at serving time. `fit_model` fits; the model travels as pickled bytes;
`predict_scored` and `predict_codes` are the plain functions, `classify_udf` their pandas_udf wrapper over a broadcast
of the bytes.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from typing import Any

import pandas as pd  # module level: pandas_udf resolves the string type hints in these globals

FEATURES_VERSION = "words12-chars25-1"   # stored with each model and checked at load: bump on a feature change
# sklearn objects only (no class of ours) in the pickle, so any worker with scikit-learn reads it
_MODELS: dict[str, Any] = {}


def split_code(code: str) -> tuple[str, str]:
    """'8140/32' -> ('8140', '32'); '8000/6/H' -> ('8000', '6/H'); '8000' -> ('8000', '')."""
    hist, _, rest = code.partition("/")
    return hist, rest


def _vectorize(model: dict[str, Any], texts: Sequence[str]) -> Any:
    """TF-IDF word and character features of normalised mentions (one CSR row each)."""
    from scipy.sparse import hstack

    return hstack([model["words"].transform(texts), model["chars"].transform(texts)]).tocsr()


def _svms(x: Any, hist: Sequence[str], rest: Sequence[str], w: Sequence[float], c: float) -> tuple[Any, Any]:
    """The histology SVM and the rest SVM (or the constant rest when every example has the same one)."""
    from sklearn.svm import LinearSVC

    # one rest for every mention (e.g. all "3") leaves nothing to learn: keep the constant. liblinear shuffles its
    # coordinates: seeded, so one training set gives one model
    r: Any = LinearSVC(C=c, random_state=0).fit(x, rest, sample_weight=w) if len(set(rest)) > 1 else rest[0]
    return LinearSVC(C=c, random_state=0).fit(x, hist, sample_weight=w), r


def _margins(hist: Any, rest: Any, x: Any) -> tuple[Any, Any, Any]:
    """(histology, rest, features): each row's predicted axes and how sure the SVMs are of them (the top decision
    value and its gap to the second, per SVM): what the calibrator reads."""
    import numpy as np

    def top2(svm: Any) -> tuple[Any, Any, Any]:
        d = svm.decision_function(x)
        d = np.column_stack([-d, d]) if d.ndim == 1 else d          # two classes: one signed margin
        order = np.sort(d, axis=1)
        return svm.classes_[d.argmax(axis=1)], order[:, -1], order[:, -1] - order[:, -2]

    h, h_top, h_gap = top2(hist)
    if hasattr(rest, "predict"):
        r, r_top, r_gap = top2(rest)
    else:
        r, r_top, r_gap = np.array([rest] * x.shape[0]), np.ones(x.shape[0]), np.ones(x.shape[0])
    return h, r, np.column_stack([h_top, h_gap, r_top, r_gap])


def _calibrator(x: Any, mentions: Sequence[str], hist: Sequence[str], rest: Sequence[str], w: Sequence[float],
                c: float, folds: int = 3) -> tuple[Any, float | None]:
    """(P(the classifier's code is right | its margins), held-out accuracy): a logistic regression on held-out margins,
    each fold's SVMs fitted without the mentions it scores; (None, None) when too few examples or folds leave nothing
    to learn."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    if len(set(mentions)) < 10 * folds:
        return None, None
    feats: list[Any] = []
    right: list[bool] = []
    # grouped by mention: a mention annotated with two codes is held out whole, as at serving time
    for tr, te in GroupKFold(n_splits=folds).split(x, groups=list(mentions)):
        h_tr = [hist[i] for i in tr]
        if len(set(h_tr)) < 2:
            return None, None
        hs, rs = _svms(x[tr], h_tr, [rest[i] for i in tr], [w[i] for i in tr], c)
        h, r, f = _margins(hs, rs, x[te])
        feats.append(f)
        right += [bool(h[j] == hist[i] and r[j] == rest[i]) for j, i in enumerate(te)]
    # Each held-out mention counts once, not by its annotations: the mentions a resolver has never seen are mostly
    # rare ones, and weighting by counts taught the calibrator the frequent, easy mentions (on CANTEMIST dev2's unseen
    # mentions, expected calibration error 0.18 weighted, 0.08 not; docs/resolution.md).
    accuracy = float(np.mean(right))
    if len(set(right)) < 2:
        return None, accuracy
    return LogisticRegression(C=1.0, max_iter=1000).fit(np.vstack(feats), right), accuracy


def fit_model(mentions: Sequence[str], codes: Sequence[str], weights: Sequence[float], c: float) -> dict[str, Any]:
    """Fit on normalised mentions and their codes (each weighted by its annotation count), plus the calibrator of
    its scores; the model (vectorisers, SVMs, calibrator, held-out accuracy). A resolver version stores it pickled,
    and its workers read those bytes through model_for."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    # in one order whatever order they came in (a Spark collect's varies between runs): the folds and the solvers
    # depend on it
    ordered = sorted(zip(mentions, codes, [float(v) for v in weights]))
    mentions = [m for m, _, _ in ordered]
    codes = [code for _, code, _ in ordered]
    weights = [v for _, _, v in ordered]
    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+")
    # min_df 2 drops the grams of one-off typos in a real gazetteer; a tiny one (tests, a new site) keeps them all
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                            min_df=2 if len(mentions) >= 100 else 1)
    words.fit(mentions)
    chars.fit(mentions)
    model: dict[str, Any] = {"features": FEATURES_VERSION, "words": words, "chars": chars}
    x = _vectorize(model, mentions)
    parts = [split_code(code) for code in codes]
    hist, rest, w = [h for h, _ in parts], [r for _, r in parts], [float(v) for v in weights]
    model["hist"], model["rest"] = _svms(x, hist, rest, w, c)
    # The folds refit the SVMs only: the vectorisers keep every mention's grams and IDF, held-out ones included, a
    # small optimism (an unseen mention's new grams count for nothing) that the dev figures in the docs include.
    model["calibrator"], model["held_out_accuracy"] = _calibrator(x, mentions, hist, rest, w, c)
    return model


def model_for(model: bytes) -> dict[str, Any]:
    """The unpickled model, read once per Python worker (keyed by the bytes' digest)."""
    key = hashlib.sha256(model).hexdigest()
    if key not in _MODELS:
        _MODELS[key] = pickle.loads(model)  # noqa: S301 - our own artefact, pinned by the resolver version
    return _MODELS[key]


def predict_scored(model: dict[str, Any], mentions: Sequence[str | None]) -> list[tuple[str | None, float | None]]:
    """The classifier's (code, calibrated probability that it is right) per normalised mention ('8070/3', 0.71);
    (None, None) for a null or empty mention, a None probability from a model fitted without a calibrator."""
    keep = [i for i, m in enumerate(mentions) if m]
    out: list[tuple[str | None, float | None]] = [(None, None)] * len(mentions)
    if not keep:
        return out
    hist, rest, feats = _margins(model["hist"], model["rest"], _vectorize(model, [mentions[i] for i in keep]))
    cal = model.get("calibrator")   # absent from models pickled before the calibrator existed
    probs = cal.predict_proba(feats)[:, list(cal.classes_).index(True)] if cal is not None else [None] * len(keep)
    for i, h, r, p in zip(keep, hist, rest, probs):
        out[i] = (f"{h}/{r}" if r else str(h), None if p is None else float(p))
    return out


def predict_codes(model: dict[str, Any], mentions: Sequence[str | None]) -> list[str | None]:
    """The classifier's code per normalised mention ('8070/3'); None for a null or empty mention."""
    return [code for code, _ in predict_scored(model, mentions)]


def classify_udf(model: Any) -> Any:
    """pandas_udf(mention_norm string) -> struct<code string, p double>: the classifier's code and its calibrated
    probability; `model` is a broadcast of its bytes."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("code string, p double")
    def _classify(mentions: pd.Series) -> pd.DataFrame:
        got = predict_scored(model_for(model.value), [None if pd.isna(m) else str(m) for m in mentions])
        return pd.DataFrame({"code": [c for c, _ in got], "p": [p for _, p in got]})

    return _classify
