"""Codes that similar notes carry: a note-level suggester ranked after a note's own mention-backed codes.

A coder codes a discharge report as a whole, and CodiEsp's gold lists hold codes for which no mention is found
("antecedentes de ..." phrased away from any term, procedures named by their result). The suggester keeps the
training notes as L2-normalised TF-IDF vectors (word 1-2-grams, scikit-learn's TfidfVectorizer), finds a note's
`neighbours` most similar training notes (cosine) and scores each code by the share of those neighbours that carry
it, weighted by similarity**power. The scores are suggestions for a coder's worklist, never facts about a patient:
they live in their own table (`note_code_suggestion`), and cohort queries read `note_code` (docs/review.md).

Plain Python (fit, save, load, suggest) so that the executor side is unit-tested without Spark; Spark wiring is
`with_suggestions` / `write` and the pandas_udf in udfs/suggest.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

INDEX_FILE, META_FILE = "matrix.npz", "suggester.json"
DEFAULTS: dict[str, Any] = {"neighbours": 20, "power": 3.0, "top_n": 50, "ngram_max": 2, "min_df": 2}
# Suggestion rows: what the pandas_udf returns per note, sorted by vocabulary then rank.
SUGGESTION_TYPE = "array<struct<vocabulary_id:string,concept_code:string,score:double,rank:int>>"
# what the logged pyfunc model needs to load (no Spark: the index is NumPy/SciPy, the vectorizer scikit-learn)
PIP_REQUIREMENTS = ["scikit-learn==1.9.1", "scipy==1.17.1", "numpy==1.26.4"]


@dataclass
class SuggesterIndex:
    """Fitted vocabulary + IDF, the training notes' normalised vectors, and each training note's codes."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    matrix: sparse.csr_matrix                      # training notes x terms, rows L2-normalised
    codes: dict[str, list[list[str]]]              # vocabulary_id -> codes of each training note, matrix row order
    params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS))

    def __post_init__(self) -> None:
        """Check that every vocabulary lists one code list per training note."""
        for vocab, per_note in self.codes.items():
            if len(per_note) != self.matrix.shape[0]:
                raise ValueError(f"{vocab}: {len(per_note)} code lists for {self.matrix.shape[0]} training notes")
        self._vectorizer = None

    @property
    def vectorizer(self) -> Any:
        """The fitted TfidfVectorizer rebuilt from the stored vocabulary and IDF (built once per process)."""
        if self._vectorizer is None:
            self._vectorizer = _vectorizer(self.params, self.vocabulary)
            self._vectorizer.idf_ = self.idf
        return self._vectorizer


def _vectorizer(params: Mapping[str, Any], vocabulary: Mapping[str, int] | None = None) -> Any:
    """TfidfVectorizer with the suggester's settings; accents stripped and lower-cased, so "Diagnóstico" = "diagnostico"."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(sublinear_tf=True, strip_accents="unicode", lowercase=True,
                           ngram_range=(1, int(params["ngram_max"])),
                           min_df=1 if vocabulary is not None else int(params["min_df"]),
                           vocabulary=dict(vocabulary) if vocabulary is not None else None, dtype=np.float32)


def fit(texts: Sequence[str], codes: Mapping[str, Sequence[Iterable[str]]],
        params: Mapping[str, Any] | None = None) -> SuggesterIndex:
    """Fit the suggester on training notes and their codes per vocabulary (codes[v][i] belong to texts[i])."""
    p = {**DEFAULTS, **(params or {})}
    if not texts:
        raise ValueError("no training notes")
    vec = _vectorizer(p)
    matrix = vec.fit_transform(list(texts)).tocsr()           # TfidfVectorizer rows are already L2-normalised
    per_vocab = {v: [sorted({c.strip() for c in cs if c and c.strip()}) for cs in lists] for v, lists in codes.items()}
    vocabulary = {str(t): int(i) for t, i in vec.vocabulary_.items()}
    return SuggesterIndex(vocabulary, np.asarray(vec.idf_, dtype=np.float64), matrix, per_vocab, p)


def suggest(index: SuggesterIndex, texts: Sequence[str | None]) -> list[list[tuple[str, str, float, int]]]:
    """Per text, (vocabulary_id, code, score, rank) suggestions: the top_n codes per vocabulary by score.

    score = sum of sim**power over the `neighbours` nearest training notes that carry the code, divided by the same
    sum over all of them: 1.0 when every near neighbour has it. A null, empty or all-unknown-words text gets none.
    """
    p = index.params
    k, power, top_n = int(p["neighbours"]), float(p["power"]), int(p["top_n"])
    clean = [t if isinstance(t, str) else "" for t in texts]
    if not clean:
        return []
    sims = (index.vectorizer.transform(clean) @ index.matrix.T).toarray()
    k = min(k, sims.shape[1])
    out: list[list[tuple[str, str, float, int]]] = []
    for row in sims:
        nearest = np.argpartition(-row, k - 1)[:k] if k < row.size else np.arange(row.size)
        nearest = nearest[row[nearest] > 0]
        weights = row[nearest] ** power
        total = float(weights.sum())
        suggestions: list[tuple[str, str, float, int]] = []
        if total > 0:
            for vocab in sorted(index.codes):
                score: dict[str, float] = {}
                for j, w in zip(nearest, weights):
                    for code in index.codes[vocab][j]:
                        score[code] = score.get(code, 0.0) + float(w)
                # ties broken by code, so a suggestion list is the same on every run and every executor
                ranked = sorted(score.items(), key=lambda cw: (-cw[1], cw[0]))[:top_n]
                suggestions += [(vocab, c, round(w / total, 6), r) for r, (c, w) in enumerate(ranked, start=1)]
        out.append(suggestions)
    return out


def as_records(row: Iterable[tuple[str, str, float, int]]) -> list[dict[str, Any]]:
    """One note's suggestions as records with SUGGESTION_TYPE's field names (the UDF's and the pyfunc's output)."""
    return [{"vocabulary_id": v, "concept_code": c, "score": s, "rank": r} for v, c, s, r in row]


def save(index: SuggesterIndex, folder: str | Path) -> Path:
    """Write the index as one .npz (matrix, IDF) and one JSON (vocabulary, codes, params); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    m = index.matrix
    np.savez_compressed(folder / INDEX_FILE, data=m.data, indices=m.indices, indptr=m.indptr,
                        shape=np.array(m.shape), idf=index.idf)
    (folder / META_FILE).write_text(json.dumps({"vocabulary": index.vocabulary, "codes": index.codes,
                                                "params": index.params}, ensure_ascii=False), encoding="utf-8")
    return folder


def load(folder: str | Path) -> SuggesterIndex:
    """Read an index written by `save`; a ValueError names a missing or unreadable file."""
    folder = Path(folder)
    for name in (INDEX_FILE, META_FILE):
        if not (folder / name).is_file():
            raise ValueError(f"suggester index {folder} has no {name}")
    try:
        arrays = np.load(folder / INDEX_FILE)
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        matrix = sparse.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                                   shape=tuple(int(x) for x in arrays["shape"]))
        return SuggesterIndex(meta["vocabulary"], arrays["idf"], matrix, meta["codes"], {**DEFAULTS, **meta["params"]})
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"suggester index {folder} cannot be read: {exc}") from exc


# ---------------------------------------------------------------- Spark side

SUGGESTION_COLUMNS = ("note_id", "vocabulary_id", "concept_code", "rank", "score", "nlp_system")


def with_suggestions(notes: Any, index: SuggesterIndex, ref: str) -> Any:
    """Notes (note_id, note_text) -> one row per suggested code: note_id, vocabulary_id, concept_code, rank, score,
    nlp_system (the suggester's '<name>@<version>')."""
    from pyspark.sql import functions as F

    from udfs.suggest import make_suggest_udf

    return (notes.select("note_id", F.explode(make_suggest_udf(index)(F.col("note_text"))).alias("s"))
            .select("note_id", "s.vocabulary_id", "s.concept_code", "s.rank", "s.score")
            .withColumn("nlp_system", F.lit(ref)))


def write(spark: Any, cfg: Any, rows: Any, note_ids: Any) -> int:
    """Replace the processed notes' rows of Delta `note_code_suggestion` (one MERGE); returns the rows written."""
    from clinlake import delta
    from clinlake.config import lake_path

    rows = rows.select(*SUGGESTION_COLUMNS).localCheckpoint()
    delta.replace_for_keys(spark, rows, note_ids, lake_path(cfg, "note_code_suggestion"), key="note_id")
    return rows.count()


def settings(cfg: Any) -> dict[str, Any]:
    """`suggest:` of the config over the defaults (name, alias, corpus paths, neighbours, power, top_n, ...)."""
    from clinlake.config import to_dict

    return {"enabled": True, "name": "code-suggester-es", "alias": "champion", **DEFAULTS,
            **(to_dict(cfg).get("suggest") or {})}


def index_params(s: Mapping[str, Any]) -> dict[str, Any]:
    """The settings an index is fitted and served with."""
    return {k: s[k] for k in DEFAULTS}


class SuggesterModel:
    """MLflow pyfunc wrapper: predict(DataFrame with note_text) -> one list of suggestions per row."""

    def load_context(self, context: Any) -> None:
        """Read the index logged as the model's `index` artifact."""
        self.index = load(context.artifacts["index"])

    def predict(self, context: Any, model_input: Any, params: Any = None) -> list:
        """Suggestions per note_text (vocabulary_id, concept_code, score, rank)."""
        texts = list(model_input["note_text"]) if hasattr(model_input, "columns") else list(model_input)
        return [as_records(row) for row in suggest(self.index, texts)]


def log_and_register(index: SuggesterIndex, name: str, workdir: str | Path) -> str:
    """Log the index as a pyfunc model (explicit requirements: no second JVM) and register it; returns the version."""
    import mlflow.pyfunc

    folder = save(index, Path(workdir) / "index")

    class _Model(SuggesterModel, mlflow.pyfunc.PythonModel):   # ours first: PythonModel.predict is a stub
        pass

    info = mlflow.pyfunc.log_model(name="model", python_model=_Model(), artifacts={"index": str(folder)},
                                   pip_requirements=PIP_REQUIREMENTS, registered_model_name=name)
    return str(info.registered_model_version)


def load_registered(cfg: Any, alias: str | None = None) -> tuple[SuggesterIndex, str] | None:
    """The registered suggester's index by alias and its '<name>@<version>', or None when none is registered or
    `suggest.enabled` is false (the chain then writes no suggestions)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from clinlake import tracking

    s = settings(cfg)
    if not s["enabled"]:
        return None
    name, alias = str(s["name"]), str(alias or s["alias"])
    tracking.configure(cfg)
    try:
        mv = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    try:
        local = tracking.download_model(f"models:/{name}/{mv.version}")
        index = load(local / "artifacts" / "index")
    except Exception as exc:  # noqa: BLE001 - a registered model that cannot be read is a one-line user error
        raise tracking.load_failure(name, alias, mv.version, exc) from exc
    # serving settings (neighbours, power, top_n) come from the config; the vectorizer's from the index
    index.params.update({k: s[k] for k in ("neighbours", "power", "top_n")})
    return index, f"{name}@{mv.version}"
