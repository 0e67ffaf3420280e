"""In-domain Word2Vec embeddings (Spark NLP Word2VecApproach) over all configured Spanish clinical text.

The registered artefact is a PipelineModel [DocumentAssembler, SentenceDetector, Tokenizer, Word2VecModel].
Every recogniser is trained and served on the text stages of models.text, and refuses embeddings whose
Tokenizer split differently, so embeddings, training tokens and inference tokens cannot disagree.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from clinlake.corpora.brat import read_text
from clinlake.corpora.readers import read_conll
from clinlake.errors import UserError
from clinlake.ner.tokens import EMBEDDINGS_COL, TEXT_COL, TOKEN_COL, text_stages

log = logging.getLogger(__name__)

# Vector sizes with a NerDL graph bundled in the Spark NLP jar (blstm_<tags>_<dim>_<lstm>_<chars>.pb).
BUNDLED_GRAPH_DIMS = (100, 128, 256, 300, 384, 512, 768, 1024, 2048, 4096)


def corpus_texts(emb_cfg: DictConfig, root: str | None = None) -> list[tuple[str, str]]:
    """(doc_id, text) for every configured text folder (*.txt, recursive) and CoNLL file, exact duplicates once.

    MEDDOCAN and CodiEsp share many clinical cases: identical texts are kept once so they do not weigh double.
    """
    root = Path(root or str(emb_cfg.corpora_root))
    if not root.is_dir():
        raise UserError(f"embeddings corpora_root not found: {root}")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(doc_id: str, text: str) -> None:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
        if text.strip() and digest not in seen:
            seen.add(digest)
            out.append((doc_id, text))

    for rel in emb_cfg.get("text_dirs") or []:
        folder = root / str(rel)
        if not folder.is_dir():
            raise UserError(f"embeddings text folder not found: {folder}")
        for path in sorted(folder.rglob("*.txt")):
            add(f"{rel}/{path.relative_to(folder)}", read_text(path))
    for rel in emb_cfg.get("conll_files") or []:
        path = root / str(rel)
        if not path.is_file():
            raise UserError(f"embeddings CoNLL file not found: {path}")
        for n, sentence in enumerate(read_conll(path), start=1):
            add(f"{rel}#{n}", " ".join(tok for tok, _ in sentence))
    max_docs = int(emb_cfg.get("max_docs", 0) or 0)
    return out[:max_docs] if max_docs > 0 else out


def check_vector_size(size: int) -> int:
    """The vector size, or a UserError when no bundled NerDL graph takes it."""
    if size not in BUNDLED_GRAPH_DIMS:
        raise UserError(f"embeddings vector_size {size} has no bundled NerDL graph; use one of {BUNDLED_GRAPH_DIMS}")
    return size


def word2vec_stage(emb_cfg: DictConfig) -> Any:
    """The configured, seeded Word2VecApproach."""
    from sparknlp.annotator import Word2VecApproach

    return (Word2VecApproach().setInputCols([TOKEN_COL]).setOutputCol(EMBEDDINGS_COL)
            .setVectorSize(check_vector_size(int(emb_cfg.vector_size))).setWindowSize(int(emb_cfg.window_size))
            .setMinCount(int(emb_cfg.min_count)).setMaxIter(int(emb_cfg.max_iter))
            .setStepSize(float(emb_cfg.step_size)).setNumPartitions(int(emb_cfg.num_partitions))
            .setSeed(int(emb_cfg.seed)).setStorageRef(str(emb_cfg.name)))


def fit_embeddings(spark: Any, text_cfg: DictConfig, emb_cfg: DictConfig,
                   texts: list[tuple[str, str]]) -> Any:
    """Fit [text stages + Word2Vec] on the texts; returns the PipelineModel."""
    from pyspark.ml import Pipeline

    if not texts:
        raise UserError("no text to train embeddings on")
    df = spark.createDataFrame(texts, f"doc_id string, {TEXT_COL} string").repartition(
        int(emb_cfg.num_partitions), "doc_id")
    return Pipeline(stages=text_stages(text_cfg) + [word2vec_stage(emb_cfg)]).fit(df)


def split_embeddings_pipeline(model: Any) -> tuple[list, Any]:
    """(text stages, Word2VecModel) of a registered embeddings pipeline; UserError when it is not one."""
    stages = list(model.stages)
    if len(stages) < 2 or type(stages[-1]).__name__ != "Word2VecModel":
        raise UserError("the registered embeddings model is not [text stages..., Word2VecModel]")
    return stages[:-1], stages[-1]


def vocabulary_size(spark: Any, pipeline: Any) -> int:
    """Number of words with a vector (Spark NLP fills the vector table on first use, hence the tiny transform)."""
    pipeline.transform(spark.createDataFrame([("a",)], f"{TEXT_COL} string")).count()
    return int(pipeline.stages[-1].getVectors().count())
