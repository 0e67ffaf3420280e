"""NerDL training on our tokens and embeddings, per-epoch log parsing, prediction and dev scoring.

Fitted pipeline (input column `note_text`), the contract for extract_concepts / deidentify_notes:
  document, sentence, token, embeddings, ner (one tag per token, metadata `confidence`... per tag),
  ner_chunk: one CHUNK annotation per entity with begin / end (inclusive, Java string offsets == Python
  offsets for text without characters beyond U+FFFF), result = covered text, metadata `entity` (label),
  `sentence`, `chunk` and `confidence` (mean tag confidence).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from clinlake.corpora.types import Corpus, Mention
from clinlake.errors import UserError
from clinlake.ner.data import LabelledSplit
from clinlake.ner.tokens import (
    CHUNK_COL, EMBEDDINGS_COL, NER_COL, SENTENCE_COL, TEXT_COL, TOKEN_COL, aligned, resolve_overlaps,
    tags_for_tokens,
)

log = logging.getLogger(__name__)

LABEL_COL = "label"
GRAPH_DIR = Path(__file__).resolve().parent / "graphs"
BUNDLED_MAX_TAGS = 38  # the widest graph in the Spark NLP jar: blstm_38_*
EPOCH_RE = re.compile(r"Epoch (\d+)/(\d+) - ([0-9.]+)s - loss: ([0-9.eE+-]+)")

ANNOTATION = T.StructType([
    T.StructField("annotatorType", T.StringType(), True),
    T.StructField("begin", T.IntegerType(), False),
    T.StructField("end", T.IntegerType(), False),
    T.StructField("result", T.StringType(), True),
    T.StructField("metadata", T.MapType(T.StringType(), T.StringType(), True), True),
    T.StructField("embeddings", T.ArrayType(T.FloatType(), False), True),
])
LABELS_SCHEMA = T.StructType([T.StructField("doc_id", T.StringType(), False),
                              T.StructField(LABEL_COL, T.ArrayType(ANNOTATION, True), True)])


def notes_frame(spark: SparkSession, texts: dict[str, str], partitions: int = 2) -> DataFrame:
    """doc_id, note_text rows, sorted by doc_id."""
    return spark.createDataFrame(sorted(texts.items()), f"doc_id string, {TEXT_COL} string").repartition(
        partitions, "doc_id")


def label_rows(tokens: list[tuple[str, list[int], list[int], list[str]]], split: LabelledSplit,
               scheme: str, nested: str = "outer") -> tuple[list[tuple], dict[str, int]]:
    """Per document, the NAMED_ENTITY label annotations aligned to its tokens, and alignment counts.

    tokens: (doc_id, begins, inclusive ends, token texts) as the tokenizer produced them. nested: which layer of
    overlapping gold spans the tags hold (resolve_overlaps); the others are counted as spans_overlap_dropped.
    """
    rows, stats = [], {"spans": 0, "spans_aligned": 0, "spans_overlap_dropped": 0, "spans_untokenised": 0,
                       "tokens": 0, "entity_tokens": 0}
    for doc_id, begins, ends, words in tokens:
        toks = [(b, e + 1) for b, e in zip(begins, ends)]
        kept, dropped = resolve_overlaps(split.spans.get(doc_id, []), nested)
        tags = tags_for_tokens(toks, kept, scheme)
        stats["spans"] += len(kept) + len(dropped)
        stats["spans_overlap_dropped"] += len(dropped)
        stats["spans_aligned"] += sum(aligned(toks, s) for s in kept)
        stats["spans_untokenised"] += sum(1 for s in kept if not any(ts < s[2] and s[1] < te for ts, te in toks))
        stats["tokens"] += len(toks)
        stats["entity_tokens"] += sum(t != "O" for t in tags)
        rows.append((doc_id, [("named_entity", b, e - 1, tag, {"word": w}, [])
                              for (b, e), tag, w in zip(toks, tags, words)]))
    return rows, stats


def training_frame(spark: SparkSession, text_model: Any, w2v_model: Any, split: LabelledSplit,
                   scheme: str, nested: str = "outer") -> tuple[DataFrame, dict[str, int]]:
    """sentence, token, embeddings and label columns for NerDLApproach, from the inference text stages."""
    notes = notes_frame(spark, split.texts)
    tokenized = text_model.transform(notes).select("doc_id", SENTENCE_COL, TOKEN_COL)
    collected = [(r["doc_id"], list(r["b"]), list(r["e"]), list(r["w"])) for r in tokenized.select(
        "doc_id", F.col(f"{TOKEN_COL}.begin").alias("b"), F.col(f"{TOKEN_COL}.end").alias("e"),
        F.col(f"{TOKEN_COL}.result").alias("w")).collect()]
    rows, stats = label_rows(collected, split, scheme, nested)
    labels = spark.createDataFrame(rows, LABELS_SCHEMA).withColumn(
        LABEL_COL, F.col(LABEL_COL).alias(LABEL_COL, metadata={"annotatorType": "named_entity"}))
    # orderBy: NerDL collects the rows and shuffles them with its seed, so a fixed input order = reproducible
    joined = tokenized.join(labels, "doc_id").orderBy("doc_id")
    return w2v_model.transform(joined), stats


def graph_folder(configured: str | None, n_tags: int) -> str | None:
    """The NerDL graph folder: the configured one, else the jar's (None), else ours past the jar's 38 tags."""
    # A configured folder holds a generated graph (another embedding size, a wider BiLSTM) and always wins.
    if configured:
        return str(configured)
    return str(GRAPH_DIR) if n_tags > BUNDLED_MAX_TAGS else None


def nerdl_approach(settings: DictConfig, logs_dir: str, graph_dir: str | None = None) -> Any:
    """The configured, seeded NerDLApproach writing its per-epoch log under logs_dir."""
    from sparknlp.annotator import NerDLApproach

    ner = (NerDLApproach().setInputCols([SENTENCE_COL, TOKEN_COL, EMBEDDINGS_COL]).setOutputCol(NER_COL)
           .setLabelColumn(LABEL_COL).setMaxEpochs(int(settings.max_epochs)).setLr(float(settings.lr))
           .setPo(float(settings.po)).setBatchSize(int(settings.batch_size)).setDropout(float(settings.dropout))
           .setRandomSeed(int(settings.seed)).setIncludeConfidence(True).setVerbose(0)
           .setEnableOutputLogs(True).setOutputLogsPath(logs_dir))
    if graph_dir:
        ner = ner.setGraphFolder(graph_dir)
    return ner


def converter() -> Any:
    """NER tags -> ner_chunk (label in metadata `entity`)."""
    from sparknlp.annotator import NerConverter

    return NerConverter().setInputCols([SENTENCE_COL, TOKEN_COL, NER_COL]).setOutputCol(CHUNK_COL)


def assemble(text_stages: list, w2v_model: Any, ner_model: Any) -> Any:
    """The serving PipelineModel: text stages -> embeddings -> NerDL -> NerConverter."""
    from pyspark.ml import PipelineModel

    return PipelineModel(stages=list(text_stages) + [w2v_model, ner_model, converter()])


def fit_ner(spark: SparkSession, text_stages: list, w2v_model: Any, split: LabelledSplit, settings: DictConfig,
            logs_dir: str, scheme: str = "BIO", graph_dir: str | None = None,
            nested: str = "outer") -> tuple[Any, dict[str, int]]:
    """Train NerDL on the split; returns (serving PipelineModel, tokenisation / alignment stats)."""
    from pyspark.ml import PipelineModel

    if not any(split.spans.values()):
        raise UserError("the training split has no gold spans for the configured labels")
    train, stats = training_frame(spark, PipelineModel(stages=list(text_stages)), w2v_model, split, scheme, nested)
    Path(logs_dir).mkdir(parents=True, exist_ok=True)
    try:
        ner_model = nerdl_approach(settings, logs_dir, graph_dir).fit(train)
    except Exception as exc:  # noqa: BLE001 - py4j wraps the JVM's reason; keep it to one line for the user
        msg = str(exc)
        if "suitable tensorflow graph" in msg.lower():
            raise UserError(f"no NerDL graph fits this label set: {msg.strip().splitlines()[0][:300]}") from exc
        raise
    return assemble(text_stages, w2v_model, ner_model), stats


def parse_epoch_log(text: str) -> list[dict[str, float]]:
    """Spark NLP's training log -> [{epoch, seconds, loss}] in file order."""
    return [{"epoch": int(m.group(1)), "seconds": float(m.group(3)), "loss": float(m.group(4))}
            for m in EPOCH_RE.finditer(text)]


def read_epoch_logs(logs_dir: str) -> tuple[list[dict[str, float]], list[Path]]:
    """Parse every *.log NerDL wrote under logs_dir (one per fit)."""
    files = sorted(Path(logs_dir).glob("*.log"))
    epochs: list[dict[str, float]] = []
    for f in files:
        epochs.extend(parse_epoch_log(f.read_text(encoding="utf-8", errors="replace")))
    return epochs, files


def chunk_mentions(rows: Iterable[Any]) -> dict[str, list[Mention]]:
    """Collected (doc_id, ner_chunk) rows -> doc_id -> Mentions with [start, end) offsets."""
    out: dict[str, list[Mention]] = {}
    for r in rows:
        out[r["doc_id"]] = [Mention(c["metadata"]["entity"], int(c["begin"]), int(c["end"]) + 1, None, (),
                                    c["result"]) for c in (r[CHUNK_COL] or [])]
    return out


def predict_mentions(spark: SparkSession, model: Any, texts: dict[str, str]) -> dict[str, list[Mention]]:
    """Run the serving pipeline over texts; doc_id -> predicted mentions."""
    out = model.transform(notes_frame(spark, texts)).select("doc_id", CHUNK_COL).collect()
    return chunk_mentions(out)


def mention_only(mentions: dict[str, list[Mention]]) -> dict[str, list[Mention]]:
    """Mentions reduced to label + first start / last end (codes and fragments dropped)."""
    return {d: [Mention(m.label, m.start, m.end) for m in ms] for d, ms in mentions.items()}


def dev_scores(corpus: str, gold: Corpus, pred: dict[str, list[Mention]]) -> tuple[dict[str, float], list[dict]]:
    """Dev metrics with the evaluation job's scorers (clinlake.evaluation.scoring / clinlake.metrics).

    CodiEsp: the issue asks for mention detection (span + label, code ignored), i.e. the CodiEsp-X metric
    (first start / last end) with codes blanked on both sides: clinlake.metrics.coding.x_scores.
    """
    if corpus == "codiesp":
        from clinlake.metrics.coding import x_scores

        counts, table = x_scores(mention_only(gold.mentions or {}), mention_only(pred), docs=set(gold.notes))
        return counts.as_dict("mention_"), table
    from clinlake.evaluation.scoring import score

    task = "deid" if corpus == "meddocan" else "ner"
    metrics, table = score(task, corpus, gold, Corpus(notes={}, mentions=pred))
    if corpus == "cantemist":  # no codes predicted: NORM is not this model's job
        metrics = {k: v for k, v in metrics.items() if not k.startswith("norm_")}
    return metrics, table
