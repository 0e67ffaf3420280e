"""Executor-side ICD-O-3 code classifier for tumour mentions the resolver's index has never seen.

The resolver codes an unseen mention through its nearest indexed terms (character 3-grams). A mention such as
"carcinoma escamoso de pulmón T4N3M1" then takes the code of a neighbour that shares many grams ("carcinoma ... de
pulmón", 8140), where its own words name the histology ("escamoso": 8070). A linear classifier over the mention's words
and character n-grams, trained on every annotated mention, weighs the words that decide a histology. On CANTEMIST
dev1 gold spans it was right for 68 % of the 796 mentions the index lacks, against 62 % for the nearest neighbours
(docs/resolution.md, "A classifier for unseen tumour mentions").

Two linear SVMs (scikit-learn, a product dependency since the code suggester) share TF-IDF features of the normalised
mention (word 1-2-grams, character 2-5-grams within words): one predicts the histology (4 digits), one the rest of
the code (behaviour, grade, CANTEMIST's "/H"). The fitted objects travel as pickled bytes; `predict_codes` is the plain
function, `classify_udf` its pandas_udf wrapper over a broadcast of the bytes.
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


def fit(mentions: Sequence[str], codes: Sequence[str], weights: Sequence[float], c: float) -> bytes:
    """Fit on normalised mentions and their codes (each weighted by its annotation count); the pickled model."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+")
    # min_df 2 drops the grams of one-off typos in a real gazetteer; a tiny one (tests, a new site) keeps them all
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                            min_df=2 if len(mentions) >= 100 else 1)
    x = hstack([words.fit_transform(mentions), chars.fit_transform(mentions)]).tocsr()
    parts = [split_code(code) for code in codes]
    w = [float(v) for v in weights]
    hist = LinearSVC(C=c).fit(x, [h for h, _ in parts], sample_weight=w)
    rest_labels = [r for _, r in parts]
    # one rest for every mention (e.g. all "3") leaves nothing to learn: keep the constant
    rest: Any = LinearSVC(C=c).fit(x, rest_labels, sample_weight=w) if len(set(rest_labels)) > 1 else rest_labels[0]
    return pickle.dumps({"features": FEATURES_VERSION, "words": words, "chars": chars, "hist": hist, "rest": rest})


def model_for(model: bytes) -> dict[str, Any]:
    """The unpickled model, read once per Python worker (keyed by the bytes' digest)."""
    key = hashlib.sha256(model).hexdigest()
    if key not in _MODELS:
        _MODELS[key] = pickle.loads(model)  # noqa: S301 - our own artefact, pinned by the resolver version
    return _MODELS[key]


def predict_codes(model: dict[str, Any], mentions: Sequence[str | None]) -> list[str | None]:
    """The classifier's code per normalised mention ('8070/3'); None for a null or empty mention."""
    from scipy.sparse import hstack

    keep = [i for i, m in enumerate(mentions) if m]
    out: list[str | None] = [None] * len(mentions)
    if not keep:
        return out
    texts = [mentions[i] for i in keep]
    x = hstack([model["words"].transform(texts), model["chars"].transform(texts)]).tocsr()
    hist = model["hist"].predict(x)
    rest = model["rest"].predict(x) if hasattr(model["rest"], "predict") else [model["rest"]] * len(keep)
    for i, h, r in zip(keep, hist, rest):
        out[i] = f"{h}/{r}" if r else str(h)
    return out


def classify_udf(model: Any) -> Any:
    """pandas_udf(mention_norm string) -> string: the classifier's code; `model` is a broadcast of its bytes."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def _classify(mentions: pd.Series) -> pd.Series:
        return pd.Series(predict_codes(model_for(model.value), [None if pd.isna(m) else str(m) for m in mentions]))

    return _classify
