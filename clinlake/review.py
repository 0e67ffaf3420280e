"""Terminologist review loop: low-confidence mappings -> Delta `review_queue` -> CSV -> reviewed CSV -> gazetteer
overrides (the reviewed-corrections file build_vocabulary already applies) -> the next extraction run.

A *mapping* is (normalised mention, label, vocabulary, proposed code) as the resolver produced it in NOTE_NLP.
Mappings whose resolver score is below `review.threshold` (or that got no code) are queued with how many notes
and mentions carry them and when they were first seen. The queue holds no note text beyond the mention itself,
and that mention is `note_nlp.lexical_variant`, cut from `note_deid` (already de-identified text); no note id,
snippet or person is stored, so the queue and its CSV export are PHI-free by construction (docs/review.md).

Reviewed decisions become rows of the corrections CSV (`vocabulary.sources.corrections.path`, the format
`clinlake.vocab.gazetteer.load_corrections` reads): build_vocabulary removes rejected (mention, code) pairs
from the gazetteer and adds accepted ones, and the resolver looks codes up in that gazetteer. An accepted or
replacement code is made the only code of its (mention, label): every other code the gazetteer holds for it
is written as rejected, so the override wins whatever the training frequencies were.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import DictConfig
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType, TimestampType

from clinlake.errors import UserError
from clinlake.vocab import gazetteer as gz
from clinlake.vocab.normalize import normalize, normalize_col

DEFAULT_THRESHOLD = 0.5
KEY = ["mention_norm", "label", "vocabulary_id", "concept_code"]
PENDING = "pending"
DECISIONS = ("accept", "reject", "replace")
REPLACE = {"replace", "replaced", "change", "changed"}

REVIEW_QUEUE = StructType(
    [
        StructField("mention_norm", StringType(), False),
        StructField("label", StringType(), True),
        StructField("vocabulary_id", StringType(), True),
        StructField("concept_code", StringType(), True),  # the proposed code; null = the resolver found none
        StructField("mention", StringType(), True),  # most frequent surface form (from note_deid)
        StructField("score", DoubleType(), True),
        StructField("n_notes", LongType(), False),
        StructField("n_mentions", LongType(), False),
        StructField("first_seen", TimestampType(), True),
        StructField("nlp_system", StringType(), True),
        StructField("status", StringType(), False),  # pending | accept | reject | replace
        StructField("corrected_code", StringType(), True),
        StructField("reviewed_at", TimestampType(), True),
    ]
)

EXPORT_COLUMNS = ["mention", "label", "vocabulary_id", "code", "concept_name", "score", "n_notes", "n_mentions",
                  "first_seen", "decision", "corrected_code"]
REQUIRED_COLUMNS = ["mention", "label", "code", "decision"]
CORRECTION_COLUMNS = ["mention", "label", "code", "decision", "vocabulary_id", "reviewed_at"]


def threshold_of(cfg: DictConfig) -> float:
    """`review.threshold` (default 0.5): mappings scoring below it are queued."""
    return float((cfg.get("review") or {}).get("threshold", DEFAULT_THRESHOLD))


def corrections_path(cfg: DictConfig) -> str:
    """The reviewed-corrections CSV build_vocabulary reads (`vocabulary.sources.corrections.path`)."""
    from clinlake.config import path_of

    src = (cfg.vocabulary.get("sources") or {}).get("corrections")
    if not src or not src.get("path"):
        raise UserError("vocabulary.sources.corrections.path is not configured: nowhere to write reviewed codes")
    return path_of(cfg, str(src.path))


def with_candidate_rows(note_nlp: DataFrame, threshold: float, include_unmapped: bool = True) -> DataFrame:
    """NOTE_NLP rows whose mapping scores below threshold (or is uncoded), keyed by normalised mention (KEY)."""
    low = F.col("score") < F.lit(float(threshold))
    if include_unmapped:
        low = low | F.col("concept_code").isNull() | F.col("score").isNull()
    return (
        note_nlp.filter(F.col("lexical_variant").isNotNull() & low)
        .withColumn("mention_norm", normalize_col(F.col("lexical_variant")))
        .filter(F.col("mention_norm") != "")
        .withColumn("concept_code", F.when(F.trim("concept_code") != "", F.col("concept_code")))
    )


def with_review_candidates(note_nlp: DataFrame, threshold: float, include_unmapped: bool = True) -> DataFrame:
    """NOTE_NLP rows -> one pending REVIEW_QUEUE row per mapping scoring below threshold (or uncoded)."""
    return with_mapping_stats(with_candidate_rows(note_nlp, threshold, include_unmapped))


def with_mapping_stats(rows: DataFrame) -> DataFrame:
    """Candidate rows (with_candidate_rows) -> one pending REVIEW_QUEUE row per mapping, counted over those rows."""
    # Most frequent surface form per mapping, ties by text, so the exported mention is stable between runs.
    forms = rows.groupBy(*KEY, "lexical_variant").agg(F.count(F.lit(1)).alias("_n")).groupBy(*KEY).agg(
        F.sort_array(F.collect_list(F.struct((-F.col("_n")).alias("n"), F.col("lexical_variant").alias("m"))))
        .getItem(0).getField("m").alias("mention"))
    stats = rows.groupBy(*KEY).agg(
        F.max("score").cast("double").alias("score"),
        F.countDistinct("note_id").alias("n_notes"),
        F.count(F.lit(1)).alias("n_mentions"),
        F.min("nlp_datetime").alias("first_seen"),
        F.min("nlp_system").alias("nlp_system"),
    )
    out = stats.join(forms, [stats[k].eqNullSafe(forms[k]) for k in KEY]).select(
        *[stats[k] for k in KEY], "mention", "score", "n_notes", "n_mentions", "first_seen", "nlp_system",
        F.lit(PENDING).alias("status"), F.lit(None).cast("string").alias("corrected_code"),
        F.lit(None).cast("timestamp").alias("reviewed_at"))
    return _conform(out)


def _conform(df: DataFrame) -> DataFrame:
    """REVIEW_QUEUE column order and types."""
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in REVIEW_QUEUE.fields])


def _key_match(t: str = "t", s: str = "s") -> str:
    """Null-safe join condition on the mapping key (the proposed code may be null)."""
    return " AND ".join(f"{t}.`{k}` <=> {s}.`{k}`" for k in KEY)


def _touched_keys(spark: SparkSession, nlp_path: str, note_ids: DataFrame, before_version: int | None,
                  threshold: float) -> DataFrame:
    """Mapping keys the given notes carry in note_nlp now, or carried at before_version (their replaced rows)."""
    ids = note_ids.select("note_id").distinct()
    versions = [spark.read.format("delta").load(nlp_path)]
    if before_version is not None:
        versions.append(spark.read.format("delta").option("versionAsOf", before_version).load(nlp_path))
    keys = [with_candidate_rows(v.join(ids, "note_id"), threshold).select(*KEY) for v in versions]
    return keys[0].unionByName(keys[1]).distinct() if len(keys) > 1 else keys[0].distinct()


def _by_key(df: DataFrame, keys: DataFrame, how: str) -> DataFrame:
    """df rows whose mapping key is (left_semi) or is not (left_anti) among keys; null-safe, keys broadcast."""
    renamed = keys.select(*[F.col(k).alias(f"_key_{k}") for k in KEY])
    # Broadcast: the keys of one run's notes are few, so the lake-wide side is filtered without a shuffle.
    return df.join(F.broadcast(renamed), [df[k].eqNullSafe(F.col(f"_key_{k}")) for k in KEY], how)


def write_queue(spark: SparkSession, cfg: DictConfig, note_ids: DataFrame | None = None,
                before_version: int | None = None) -> dict:
    """Recompute candidates from note_nlp and MERGE them into review_queue (idempotent).

    Counts are over all notes, so they are recomputed rather than incremented: a reprocessed note must not count
    twice. New mappings are inserted pending; counts of known ones are updated (first_seen keeps the earliest,
    a decision is kept); pending mappings no longer produced are deleted, decided ones stay as the audit trail.
    Nothing is committed when nothing changed.

    With note_ids (the notes a run just rewrote) and before_version (note_nlp's version before that run's write,
    None when the table is new), only the mappings those notes carry now or carried before are recomputed, from
    every note that carries them: the same rows as a full refresh. Every low-score row is still read (its
    mention normalised to find its key), but only the touched mappings are aggregated, compared and merged.
    The export (jobs/review_queue.py) refreshes in full, which also follows a changed review.threshold, and
    removes a pending mapping that only the rows replaced by a run killed between its note_nlp and queue commits
    carried (the rerun's before_version no longer holds them).
    """
    from delta.tables import DeltaTable

    from clinlake import catalog, delta
    from clinlake.config import lake_path

    nlp_path, path = lake_path(cfg, "note_nlp"), lake_path(cfg, "review_queue")
    if not delta.exists(spark, nlp_path):
        return {"review_candidates": 0, "review_changed": 0}
    threshold = threshold_of(cfg)
    rows = with_candidate_rows(spark.read.format("delta").load(nlp_path), threshold)
    touched = None
    if note_ids is not None:
        touched = _touched_keys(spark, nlp_path, note_ids, before_version, threshold).cache()
        rows = _by_key(rows, touched, "left_semi")   # the lake-wide aggregation covers those mappings only
    cand = with_mapping_stats(rows).cache()
    delta.ensure_table(spark, path, cand)
    queue = spark.read.format("delta").load(path)
    cmp = KEY + ["mention", "score", "n_notes", "n_mentions", "nlp_system"]
    new_or_changed = cand.alias("s").join(
        queue.alias("t"), F.expr(" AND ".join(f"t.`{c}` <=> s.`{c}`" for c in cmp)), "left_anti")
    # Pending mappings no longer produced: all of them in a full refresh, those among the touched keys otherwise.
    stale_scope = queue if touched is None else _by_key(queue, touched, "left_semi")
    stale = stale_scope.filter(F.col("status") == PENDING).alias("t").join(
        cand.alias("s"), F.expr(_key_match()), "left_anti")
    n_changed, n_stale = new_or_changed.count(), stale.count()
    n_cand = cand.count()
    if n_changed or n_stale:
        differs = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in cmp[len(KEY):])
        update = {**{c: f"s.`{c}`" for c in cmp[len(KEY):]},
                  "first_seen": "CASE WHEN t.first_seen IS NULL THEN s.first_seen "
                                "ELSE least(t.first_seen, s.first_seen) END"}
        target = DeltaTable.forPath(spark, path).alias("t")
        if touched is None:
            (target.merge(cand.alias("s"), _key_match())
             .whenMatchedUpdate(condition=differs, set=update)
             .whenNotMatchedInsertAll()
             .whenNotMatchedBySourceDelete(condition=f"t.status = '{PENDING}'")
             .execute())
        else:
            # Touched keys with no candidate left travel as delete markers in the same source: one commit.
            markers = _by_key(touched, cand, "left_anti")
            markers = _conform(markers.select(*KEY, *[F.lit(None).alias(f.name) for f in REVIEW_QUEUE.fields
                                                     if f.name not in KEY])).withColumn("_gone", F.lit(True))
            source = cand.withColumn("_gone", F.lit(False)).unionByName(markers)
            insert = {f.name: f"s.`{f.name}`" for f in REVIEW_QUEUE.fields}
            (target.merge(source.alias("s"), _key_match())
             .whenMatchedDelete(condition=f"s._gone AND t.status = '{PENDING}'")
             .whenMatchedUpdate(condition=f"NOT s._gone AND ({differs})", set=update)
             .whenNotMatchedInsert(condition="NOT s._gone", values=insert)
             .execute())
        catalog.register(spark, cfg, "review_queue")
    cand.unpersist()
    if touched is not None:
        touched.unpersist()
    out = {"review_candidates": n_cand, "review_changed": n_changed, "review_removed": n_stale}
    if touched is not None:
        out["review_scope"] = "touched mappings"   # review_candidates counts those, not the whole queue
    return out


def with_export_columns(queue: DataFrame, concept: DataFrame | None = None) -> DataFrame:
    """Pending queue rows in the CSV layout reviewers fill in (concept_name for the proposed code, blank decision)."""
    rows = queue.filter(F.col("status") == PENDING)
    if concept is not None:
        names = concept.select("vocabulary_id", F.upper("concept_code").alias("_code"), "concept_name") \
            .dropDuplicates(["vocabulary_id", "_code"])
        rows = rows.withColumn("_code", F.upper("concept_code")).join(names, ["vocabulary_id", "_code"], "left")
    else:
        rows = rows.withColumn("concept_name", F.lit(None).cast("string"))
    return rows.select(
        "mention", "label", "vocabulary_id", F.col("concept_code").alias("code"), "concept_name",
        F.round("score", 4).alias("score"), "n_notes", "n_mentions",
        F.date_format("first_seen", "yyyy-MM-dd HH:mm:ss").alias("first_seen"),
        F.lit("").alias("decision"), F.lit("").alias("corrected_code"),
    ).orderBy(F.col("n_mentions").desc(), "label", "mention", F.col("code").asc_nulls_first())


def export_queue(spark: SparkSession, cfg: DictConfig, out: str) -> int:
    """Write the pending mappings as one CSV file for the terminologist; returns the number of rows."""
    from clinlake import delta
    from clinlake.config import lake_path

    path = lake_path(cfg, "review_queue")
    if not delta.exists(spark, path):
        raise UserError(f"no review_queue table in {cfg.lake}: run extract_concepts first")
    concept = delta.read(spark, cfg, "concept") if delta.exists(spark, lake_path(cfg, "concept")) else None
    # The pending queue is what one person reviews by hand: small enough for the driver.
    pdf = with_export_columns(spark.read.format("delta").load(path), concept).toPandas()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pdf[EXPORT_COLUMNS].to_csv(out, index=False, quoting=csv.QUOTE_MINIMAL)
    return len(pdf)


@dataclass(frozen=True)
class Review:
    """One decided line of a reviewed CSV."""

    line: int
    mention: str
    label: str
    vocabulary_id: str
    code: str  # the proposed code ('' when the mapping had none)
    decision: str  # accept | reject | replace
    corrected_code: str


def decision_of(value: str) -> str | None:
    """Normalise a reviewer's decision ('' -> None = not reviewed yet); raises ValueError when unknown."""
    d = (value or "").strip().lower()
    if not d:
        return None
    if d in gz.ACCEPT:
        return "accept"
    if d in gz.REJECT:
        return "reject"
    if d in REPLACE:
        return "replace"
    raise ValueError(d)


def parse_reviews(path: str, label_vocabularies: dict[str, str]) -> list[Review]:
    """Read and check a reviewed CSV (driver side: a hand-edited file); UserError names the first bad line."""
    name = Path(path).name
    if not Path(path).is_file():
        raise UserError(f"review CSV not found: {path}")
    with open(path, encoding="utf-8-sig", newline="") as fh:  # utf-8-sig: spreadsheets add a BOM
        reader = csv.DictReader(fh)
        header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise UserError(f"review CSV {name}: missing column(s) {', '.join(missing)} "
                            f"(needs {', '.join(REQUIRED_COLUMNS)}[, corrected_code])")
        reader.fieldnames = header
        out, seen = [], {}
        for i, row in enumerate(reader, start=2):  # line 1 is the header
            def get(col: str) -> str:
                return (row.get(col) or "").strip()
            try:
                decision = decision_of(get("decision"))
            except ValueError:
                raise UserError(f"review CSV {name} line {i}: unknown decision '{get('decision')}' "
                                f"(use {', '.join(DECISIONS)}, or leave it empty)") from None
            if decision is None:
                continue
            label, mention, code = get("label"), get("mention"), get("code")
            vocab = get("vocabulary_id") or label_vocabularies.get(label, "")
            if not vocab:
                raise UserError(f"review CSV {name} line {i}: unknown label '{label}' "
                                f"(one of {', '.join(sorted(label_vocabularies))})")
            if not normalize(mention):
                raise UserError(f"review CSV {name} line {i}: empty mention")
            if decision in ("accept", "reject") and not code:
                raise UserError(f"review CSV {name} line {i}: '{decision}' needs the proposed code in column code")
            key = (normalize(mention), label, vocab, code.upper())
            if key in seen:
                raise UserError(f"review CSV {name} line {i}: '{mention}' ({label}, code '{code}') "
                                f"is already decided on line {seen[key]}")
            seen[key] = i
            corrected = get("corrected_code")
            if decision == "replace" and not corrected:
                raise UserError(f"review CSV {name} line {i}: 'replace' needs the corrected code in corrected_code")
            out.append(Review(i, mention, label, vocab, code, decision, corrected if decision == "replace" else ""))
    return out


def reviews_frame(spark: SparkSession, reviews: list[Review]) -> DataFrame:
    """Reviews as a DataFrame with normalised mention and codes (concept_code, corrected_code as stored)."""
    df = spark.createDataFrame(
        [(r.line, r.mention, r.label, r.vocabulary_id, r.code, r.decision, r.corrected_code) for r in reviews],
        "line int, mention string, label string, vocabulary_id string, code string, decision string, "
        "corrected_code string")
    v = F.col("vocabulary_id")
    return df.select(
        "line", "mention", normalize_col(F.col("mention")).alias("mention_norm"), "label", "vocabulary_id",
        F.when(F.col("code") != "", gz.normalize_code(v, F.col("code"))).alias("concept_code"), "decision",
        F.when(F.col("corrected_code") != "", gz.normalize_code(v, F.col("corrected_code"))).alias("corrected_code"))


def filter_unknown_codes(reviews: DataFrame, known: DataFrame) -> DataFrame:
    """(line, vocabulary_id, code) of accepted or replacement codes absent from `known` (vocabulary_id, concept_code)."""
    target = F.when(F.col("decision") == "replace", F.col("corrected_code")).otherwise(F.col("concept_code"))
    wanted = reviews.filter(F.col("decision") != "reject").select("line", "vocabulary_id", target.alias("code"))
    codes = known.select("vocabulary_id", F.upper("concept_code").alias("_u")).distinct()
    return wanted.withColumn("_u", F.upper("code")).join(codes, ["vocabulary_id", "_u"], "left_anti").drop("_u")


def with_overrides(reviews: DataFrame, gazetteer: DataFrame) -> DataFrame:
    """Reviews -> correction rows (mention, label, code, decision accept|reject, vocabulary_id).

    reject: the proposed code is rejected. replace: the proposed code is rejected and the corrected one accepted.
    accept / replace also reject every other code the gazetteer holds for the same (normalised mention, label),
    so the reviewed code is the only candidate the resolver finds for that mention.
    """
    keep = ["mention", "mention_norm", "label", "vocabulary_id"]
    rejected = reviews.filter(F.col("decision").isin("reject", "replace") & F.col("concept_code").isNotNull()) \
        .select(*keep, F.col("concept_code").alias("code"), F.lit("reject").alias("decision"))
    final = reviews.filter(F.col("decision").isin("accept", "replace")).select(
        *keep, F.when(F.col("decision") == "replace", F.col("corrected_code"))
        .otherwise(F.col("concept_code")).alias("code"))
    accepted = final.withColumn("decision", F.lit("accept"))
    g = gazetteer.select("mention_norm", "label", "vocabulary_id", F.col("concept_code").alias("_other")).distinct()
    others = final.join(g, ["mention_norm", "label", "vocabulary_id"]) \
        .filter(F.upper("_other") != F.upper("code")) \
        .select(*keep, F.col("_other").alias("code"), F.lit("reject").alias("decision"))
    out = rejected.unionByName(accepted).unionByName(others)
    # A code both accepted and rejected for one mention: the accept is the reviewer's final word.
    return out.groupBy("mention_norm", "label", "vocabulary_id", F.upper("code").alias("_u")).agg(
        F.min("mention").alias("mention"), F.min("code").alias("code"),
        F.min("decision").alias("decision")).select("mention", "label", "code", "decision", "vocabulary_id")


def merge_corrections(existing: list[dict], new: list[dict]) -> list[dict]:
    """Corrections file rows, newest decision per (normalised mention, label, vocabulary, code); sorted."""
    def key(r: dict) -> tuple:
        return (normalize(r.get("mention")), (r.get("label") or "").strip(), (r.get("vocabulary_id") or "").strip(),
                (r.get("code") or "").strip().upper())

    merged = {key(r): r for r in existing}
    merged.update({key(r): r for r in new})
    return [merged[k] for k in sorted(merged)]


def read_corrections(path: str) -> list[dict]:
    """Rows of an existing corrections CSV (none when the file is absent)."""
    if not Path(path).is_file():
        return []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        reader.fieldnames = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
        return [{c: (r.get(c) or "") for c in CORRECTION_COLUMNS} for r in reader]


def write_corrections(path: str, rows: list[dict]) -> None:
    """Write the corrections CSV atomically (temp file + rename): build_vocabulary never reads half a file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CORRECTION_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _status_updates(reviews: DataFrame, when: Column) -> DataFrame:
    """Queue keys of the reviewed mappings with their decision."""
    return reviews.select("mention_norm", "label", "vocabulary_id", "concept_code",
                          F.col("decision").alias("status"), "corrected_code", when.alias("reviewed_at"))


def import_reviews(spark: SparkSession, cfg: DictConfig, path: str) -> dict:
    """Check a reviewed CSV, add its decisions to the corrections file and mark the queue rows decided."""
    from delta.tables import DeltaTable

    from clinlake import delta
    from clinlake.config import lake_path

    reviews = parse_reviews(path, {str(k): str(v) for k, v in cfg.extract.label_vocabularies.items()})
    name = Path(path).name
    if not reviews:
        return {"reviewed": 0, "corrections_file": corrections_path(cfg)}
    for t in ("concept", "gazetteer"):
        if not delta.exists(spark, lake_path(cfg, t)):
            raise UserError(f"vocabulary table '{t}' missing in the lake: run build_vocabulary first")
    gazetteer = delta.read(spark, cfg, "gazetteer")
    known = delta.read(spark, cfg, "concept").select("vocabulary_id", "concept_code") \
        .unionByName(gazetteer.select("vocabulary_id", "concept_code"))
    frame = reviews_frame(spark, reviews).cache()
    bad = filter_unknown_codes(frame, known).orderBy("line").first()
    if bad is not None:
        frame.unpersist()
        raise UserError(f"review CSV {name} line {bad['line']}: unknown code '{bad['code']}' in {bad['vocabulary_id']}")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    new_rows = [{**r.asDict(), "reviewed_at": stamp} for r in with_overrides(frame, gazetteer).collect()]
    target = corrections_path(cfg)
    rows = merge_corrections(read_corrections(target), new_rows)
    write_corrections(target, rows)
    queue_path = lake_path(cfg, "review_queue")
    n_marked = 0
    if delta.exists(spark, queue_path):
        updates = _status_updates(frame, F.lit(now.replace(tzinfo=None)).cast("timestamp"))
        queue = spark.read.format("delta").load(queue_path)
        n_marked = updates.alias("s").join(queue.alias("t"), F.expr(_key_match()), "left_semi").count()
        DeltaTable.forPath(spark, queue_path).alias("t").merge(updates.alias("s"), _key_match()) \
            .whenMatchedUpdate(set={"status": "s.status", "corrected_code": "s.corrected_code",
                                    "reviewed_at": "s.reviewed_at"}).execute()
    counts = {d: sum(1 for r in reviews if r.decision == d) for d in DECISIONS}
    frame.unpersist()
    return {"reviewed": len(reviews), **counts, "correction_rows": len(new_rows), "queue_rows_marked": n_marked,
            "corrections_file": target, "next": "run build_vocabulary, then extract_concepts"}
