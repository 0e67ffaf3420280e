"""Gazetteer of annotated mentions -> codes from the training corpora (CodiEsp-X, CANTEMIST) and the
terminologist's reviewed corrections.

The gazetteer is also the frequency table a ranker uses as a prior: one row per (surface mention, label,
vocabulary, code, source) with how many times annotators linked that mention to that code.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from clinlake.omop import CONCEPT_SYNONYM, LANGUAGE_SPANISH
from clinlake.vocab.loaders import conform
from clinlake.vocab.normalize import normalize_col

log = logging.getLogger(__name__)

GAZETTEER = StructType(
    [
        StructField("mention", StringType(), False),
        StructField("mention_norm", StringType(), False),
        StructField("label", StringType(), False),
        StructField("vocabulary_id", StringType(), False),
        StructField("concept_code", StringType(), False),
        StructField("count", LongType(), False),
        StructField("source", StringType(), False),
    ]
)

CORRECTIONS = StructType(
    [
        StructField("mention", StringType(), False),
        StructField("mention_norm", StringType(), False),
        StructField("label", StringType(), False),
        StructField("vocabulary_id", StringType(), False),
        StructField("concept_code", StringType(), False),
        StructField("decision", StringType(), False),
    ]
)

# Same mapping as conf extract.label_vocabularies; callers may pass the configured one.
LABEL_VOCABULARY: dict[str, str] = {
    "DIAGNOSTICO": "ICD10CM",
    "PROCEDIMIENTO": "ICD10PCS",
    "MORFOLOGIA_NEOPLASIA": "ICDO3",
}
REVIEW_SOURCE = "review"
ACCEPT = {"accept", "accepted", "approve", "approved", "ok", "yes", "y", "correct", "1", "true"}
REJECT = {"reject", "rejected", "no", "n", "wrong", "incorrect", "0", "false"}


def normalize_code(vocabulary_id: F.Column, code: F.Column) -> F.Column:
    """Codes as stored in concept: ICD-10-CM/PCS upper case (CodiEsp writes n44.8), others trimmed."""
    c = F.trim(code)
    return F.when(vocabulary_id.isin("ICD10CM", "ICD10PCS", "ICD9CM", "ICD9Proc"), F.upper(c)).otherwise(c)


def _vocab_of(label: F.Column, label_vocabulary: Mapping[str, str]) -> F.Column:
    """Label -> vocabulary_id via the mapping (null for unknown labels)."""
    mapping = F.create_map(*[F.lit(x) for kv in label_vocabulary.items() for x in kv])
    return mapping[label]


def read_codiesp_x(spark: SparkSession, paths: Iterable[str | Path]) -> DataFrame:
    """CodiEsp-X TSVs (doc, label, code, mention, offsets; no header, no quoting) -> one row per annotation."""
    files = [str(p) for p in paths]
    return (
        spark.read.option("sep", "\t").option("quote", "\u0000").option("header", False)
        .schema("doc_id string, label string, code string, mention string, offsets string").csv(files)
    )


def _brat_annotations(folder: Path) -> list[tuple[str, str, str]]:
    """(mention, label, code) for every T line with a '#' note, via clinlake.corpora.brat when available."""
    out: list[tuple[str, str, str]] = []
    try:
        from clinlake.corpora.brat import read_ann_folder
    except ImportError:  # minimal fallback: T and # lines only
        read_ann_folder = None
    if read_ann_folder is not None:
        for doc in read_ann_folder(folder).values():
            notes = doc.notes
            for ann_id, tb in doc.entities.items():
                code = notes.get(ann_id)
                if code and code.strip():
                    out.append((tb.text, tb.type, code.strip()))
        return out
    for ann in sorted(folder.rglob("*.ann")):
        ents: dict[str, tuple[str, str]] = {}
        codes: dict[str, str] = {}
        for line in ann.read_text(encoding="utf-8").splitlines():
            cols = line.split("\t")
            if line.startswith("T") and len(cols) >= 3:
                ents[cols[0]] = (cols[2], cols[1].split(" ")[0])
            elif line.startswith("#") and len(cols) >= 3:
                codes[cols[1].split(" ")[-1]] = cols[2].strip()
        out += [(text, label, codes[i]) for i, (text, label) in ents.items() if codes.get(i)]
    return out


def read_cantemist(spark: SparkSession, folders: Iterable[str | Path]) -> DataFrame:
    """CANTEMIST brat folders -> (mention, label, code, n); parsed on the driver (a few thousand lines)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for folder in folders:
        counts.update(_brat_annotations(Path(folder)))
    rows = [(m, label, code, n) for (m, label, code), n in sorted(counts.items())]
    return spark.createDataFrame(rows, "mention string, label string, code string, n long")


def build_gazetteer(spark: SparkSession, codiesp_x: Iterable[str | Path] = (), cantemist: Iterable[str | Path] = (),
                    label_vocabulary: Mapping[str, str] | None = None) -> DataFrame:
    """Gazetteer / frequency table (mention, mention_norm, label, vocabulary_id, concept_code, count, source).

    codiesp_x: CodiEsp-X TSV files (source 'codiesp'); cantemist: brat folders with '#' code notes (source
    'cantemist'). Mentions keep their surface form; mention_norm is normalize(mention). Discontinuous
    CodiEsp mentions are used as annotated (fragments joined by a space). Labels without a vocabulary in
    label_vocabulary are dropped.
    """
    lv = dict(label_vocabulary or LABEL_VOCABULARY)
    parts = []
    codiesp_x = list(codiesp_x)
    if codiesp_x:
        x = read_codiesp_x(spark, codiesp_x).dropDuplicates()  # CodiEsp-X repeats a few rows verbatim
        parts.append(x.select("mention", "label", "code", F.lit(1).cast("long").alias("n"), F.lit("codiesp").alias("source")))
    cantemist = list(cantemist)
    if cantemist:
        parts.append(read_cantemist(spark, cantemist).withColumn("source", F.lit("cantemist")))
    if not parts:
        raise ValueError("build_gazetteer needs at least one CodiEsp-X file or CANTEMIST folder")
    rows = parts[0]
    for p in parts[1:]:
        rows = rows.unionByName(p)
    rows = rows.withColumn("mention", F.trim("mention")).withColumn("vocabulary_id", _vocab_of(F.col("label"), lv))
    rows = rows.filter("vocabulary_id is not null and mention != '' and code is not null and trim(code) != ''")
    rows = rows.withColumn("concept_code", normalize_code(F.col("vocabulary_id"), F.col("code")))
    gaz = rows.groupBy("mention", "label", "vocabulary_id", "concept_code", "source").agg(F.sum("n").alias("count"))
    gaz = gaz.withColumn("mention_norm", normalize_col("mention")).filter("mention_norm != ''")
    return conform(gaz, GAZETTEER)


def read_gazetteer(spark: SparkSession, path: str | Path) -> DataFrame:
    """A gazetteer TSV written by write_gazetteer_tsv (mention_norm recomputed if the file lacks it)."""
    raw = spark.read.option("sep", "\t").option("header", True).option("quote", "\u0000").csv(str(path))
    if "mention_norm" not in raw.columns:
        raw = raw.withColumn("mention_norm", normalize_col("mention"))
    if "source" not in raw.columns:
        raw = raw.withColumn("source", F.lit("file"))
    if "code" in raw.columns and "concept_code" not in raw.columns:
        raw = raw.withColumnRenamed("code", "concept_code")
    return conform(raw, GAZETTEER)


def gazetteer_synonyms(gazetteer: DataFrame, concept: DataFrame, version: str) -> DataFrame:
    """Distinct gazetteer mentions as Spanish CONCEPT_SYNONYM rows of their (vocabulary_id, code) concept.

    Mentions whose code is not in `concept` (codes retired since the corpus was annotated, CANTEMIST '/H'
    codes) are left out here but stay in the gazetteer for the ranker.
    """
    ids = concept.select("vocabulary_id", "concept_code", "concept_id")
    syn = gazetteer.join(ids, ["vocabulary_id", "concept_code"]).select(
        "concept_id", F.col("mention").alias("concept_synonym_name"),
        F.lit(LANGUAGE_SPANISH).alias("language_concept_id"), F.lit(version).alias("vocabulary_version"),
    ).dropDuplicates(["concept_id", "concept_synonym_name"])
    return conform(syn, CONCEPT_SYNONYM)


def load_corrections(spark: SparkSession, path: str | Path,
                     label_vocabulary: Mapping[str, str] | None = None) -> DataFrame:
    """Reviewed-corrections CSV (mention,label,code,decision[,vocabulary_id]) -> CORRECTIONS rows.

    decision is normalised to 'accept' or 'reject' (accepted spellings in ACCEPT/REJECT); other values
    and rows without a vocabulary are dropped with a warning count. A vocabulary_id column, when present,
    wins over the label mapping.
    """
    lv = dict(label_vocabulary or LABEL_VOCABULARY)
    raw = spark.read.option("header", True).option("quote", '"').option("escape", '"').csv(str(path))
    raw = raw.toDF(*[c.strip().lower() for c in raw.columns])
    vocab = _vocab_of(F.trim(F.col("label")), lv)
    if "vocabulary_id" in raw.columns:
        vocab = F.coalesce(F.when(F.trim("vocabulary_id") != "", F.trim("vocabulary_id")), vocab)
    d = F.lower(F.trim(F.col("decision")))
    decision = F.when(d.isin(*ACCEPT), "accept").when(d.isin(*REJECT), "reject")
    rows = raw.select(F.trim("mention").alias("mention"), F.trim("label").alias("label"), vocab.alias("vocabulary_id"),
                      F.col("code"), decision.alias("decision"))
    rows = rows.withColumn("concept_code", normalize_code(F.col("vocabulary_id"), F.col("code")))
    rows = rows.withColumn("mention_norm", normalize_col("mention"))
    return conform(rows.filter("mention_norm != ''"), CORRECTIONS)


def apply_corrections(gazetteer: DataFrame, corrections: DataFrame) -> DataFrame:
    """Gazetteer with reviews applied: rejected (mention_norm, label, code) rows removed, accepted ones
    added with source 'review' (authoritative for the resolver; count 1 unless the pair is already known,
    then its total count). A key both accepted and rejected in the CSV counts as rejected (conservative).
    """
    key = ["mention_norm", "label", "vocabulary_id", "concept_code"]
    decided = corrections.groupBy(*key).agg(
        F.max(F.when(F.col("decision") == "reject", 1).otherwise(0)).alias("_rej"), F.first("mention").alias("_mention"))
    rejected = decided.filter("_rej = 1").select(*key)
    accepted = decided.filter("_rej = 0")
    kept = gazetteer.join(rejected, key, "left_anti")
    known = kept.groupBy(*key).agg(F.sum("count").alias("_known"))
    added = accepted.join(known, key, "left").select(
        F.col("_mention").alias("mention"), *key, F.coalesce("_known", F.lit(1)).cast("long").alias("count"),
        F.lit(REVIEW_SOURCE).alias("source"))
    return conform(kept.unionByName(added.select(*[f.name for f in GAZETTEER.fields])), GAZETTEER)


def write_gazetteer_tsv(gazetteer: DataFrame, path: str | Path) -> int:
    """Write a (small) gazetteer as one sorted TSV file via the driver; returns the row count."""
    pdf = gazetteer.select("mention", "label", "vocabulary_id", "concept_code", "count", "source").toPandas()
    pdf = pdf.sort_values(["vocabulary_id", "concept_code", "mention", "label", "source"]).reset_index(drop=True)
    if pdf["mention"].str.contains("\t|\n").any():
        raise ValueError("mentions with tabs/newlines cannot be written as TSV")
    pdf.to_csv(path, sep="\t", index=False)
    return len(pdf)


def phrase_key(text: str) -> str:
    """Case- and spacing-blind token key of a phrase ("Masa  Renal," -> "masa renal ,"), as a token matcher sees it."""
    return " ".join(_tokens(text))


def _tokens(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks: a comma between two words breaks a phrase match."""
    import re

    return re.findall(r"\w+|[^\w\s]", text.lower())


def phrase_precision(texts: Iterable[str], annotated: Iterable[str], phrases: Iterable[str],
                     max_tokens: int = 12) -> dict[str, tuple[int, int]]:
    """phrase key -> (times annotated, times the phrase occurs in `texts`), for a dictionary matcher's precision.

    `annotated` are the gold mentions of one label in those same texts; `phrases` the candidate dictionary
    entries. A phrase occurring much more often than it is annotated ("renal", annotated inside a few
    discontinuous CodiEsp mentions, occurring hundreds of times) makes a matcher fire on text nobody codes.
    """
    keys = {phrase_key(p) for p in phrases} - {""}
    lengths = sorted({len(k.split(" ")) for k in keys if len(k.split(" ")) <= max_tokens})
    matched: Counter[str] = Counter()
    for text in texts:
        toks = _tokens(text)
        hits = [(i, i + n, k) for n in lengths for i in range(len(toks) - n + 1)
                if (k := " ".join(toks[i:i + n])) in keys]
        # longest match, as the matcher: an occurrence inside a longer dictionary phrase's occurrence is not one
        reach = -1
        for start, end, k in sorted(hits, key=lambda h: (h[0], -h[1])):
            if end > reach:
                matched[k] += 1
                reach = end
    gold = Counter(k for k in (phrase_key(a) for a in annotated) if k in keys)
    return {k: (gold[k], matched[k]) for k in sorted(keys)}
