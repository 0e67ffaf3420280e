"""De-identification stage wiring: secret handling, model spans, the UDF over a notes frame, output frames."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from functools import reduce
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from clinlake.config import path_of
from clinlake.deid.phrases import fingerprint, load_phrases
from clinlake.deid.replace import DeidPolicy
from clinlake.deid.residual import RESIDUAL_PATTERNS
from clinlake.deid.surrogates import DeidSecret, load_secret
from clinlake.errors import UserError
from clinlake.ner import nerdl_stages
from clinlake.recognisers import Ensemble, filter_votes

log = logging.getLogger(__name__)

SPAN_T = "array<struct<start:int,end:int,label:string,score:double>>"   # model_spans, as the deid UDF reads them


def secret_for(cfg: DictConfig) -> DeidSecret:
    """The surrogate key from the environment or the secret file; a local/demo lake may create its own file."""
    env_var = str(cfg.deid.secret_env)
    file_cfg = str(cfg.deid.get("secret_file") or "")
    file_path = path_of(cfg, file_cfg) if file_cfg else None
    if not os.environ.get(env_var) and file_path and not Path(file_path).exists() and cfg.deid.create_secret_if_missing:
        Path(file_path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        log.info("created a new de-identification secret file for this lake (mode 0600)")
    return load_secret(env_var, file_path)


def policy_for(cfg: DictConfig) -> DeidPolicy:
    """Replacement policy from `deid.policy` (defaults in clinlake.deid.replace), with the `deid.phrases` list."""
    node = cfg.deid.get("policy")
    raw = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    policy = DeidPolicy.from_dict(raw)  # type: ignore[arg-type]
    phrases_file = str(cfg.deid.get("phrases") or "")
    if phrases_file:
        policy = dataclasses.replace(policy, phrases=load_phrases(path_of(cfg, phrases_file)))
    return policy


def rules_system(cfg: DictConfig, policy: DeidPolicy) -> str:
    """`deid.rules_version`, plus the phrase list's fingerprint: a changed list re-runs the notes."""
    version = str(cfg.deid.rules_version)
    return f"{version}+phrases-{fingerprint(policy.phrases)}" if policy.phrases else version


def with_model_spans(notes: DataFrame, model: Any | None, max_chunk_chars: int = 20_000) -> DataFrame:
    """Add `model_spans` array<struct<start,end,label,score>> from a NER pipeline (null when no model).

    Notes longer than max_chunk_chars (`scale.max_chunk_chars`) go through the model in bounded pieces
    (clinlake.chunking) and their spans are shifted back to note offsets, so a 1 MB note never becomes one
    Spark NLP document (sentence detection and the annotation arrays grow with the document); short notes,
    the common case, take the direct path with no extra shuffle.
    """
    if model is None:
        return notes.withColumn("model_spans", F.lit(None).cast(SPAN_T))
    if isinstance(model, Ensemble):
        if model.combine in ("tokens", "spans+tokens"):
            return with_token_voted_spans(notes, model, max_chunk_chars)
        return with_voted_spans(notes, model, max_chunk_chars)

    def spans(offset: Any) -> Any:
        return F.transform(
            F.col("ner_chunk"),
            lambda c: F.struct(
                (c["begin"] + offset).alias("start"), (c["end"] + 1 + offset).alias("end"),
                c["metadata"]["entity"].alias("label"),
                F.coalesce(c["metadata"]["confidence"].cast("double"), F.lit(1.0)).alias("score"),
            ),
        ).cast(SPAN_T)

    return _per_note(notes, model, max_chunk_chars, spans, "model_spans")


def _per_note(notes: DataFrame, model: Any, max_chunk_chars: int, extract: Any, out: str) -> DataFrame:
    """notes + column `out` = extract(offset) over the model's output: short notes directly, long ones in pieces.

    `extract` maps the piece's offset in the note (a Column) to an array column of structs whose first field is a
    start offset; a long note's pieces are shifted by their offset, concatenated and sorted by it.
    """
    from clinlake import chunking

    is_long = F.length("note_text") > F.lit(int(max_chunk_chars))
    short = model.transform(notes.filter(~is_long | F.col("note_text").isNull())) \
        .withColumn(out, extract(F.lit(0))).select(*notes.columns, out)
    long_notes = notes.filter(is_long)
    pieces = chunking.explode_text_chunks(long_notes.select("note_id", "note_text"), int(max_chunk_chars))
    per_note = (model.transform(pieces).select("note_id", extract(F.col("chunk_offset")).alias("s"))
                .groupBy("note_id").agg(F.array_sort(F.flatten(F.collect_list("s"))).alias(out)))
    long_out = long_notes.join(per_note, "note_id", "left").select(*notes.columns, out)
    return short.unionByName(long_out)


def ner_stage(model: Any) -> Any:
    """The NerDLModel stage of a served NER pipeline (UserError when it has none: nothing to vote per token)."""
    found = nerdl_stages(model)
    if not found:
        raise UserError("a token vote needs NerDL pipelines; a member has no NerDLModel stage")
    return found[0]


def with_token_voted_spans(notes: DataFrame, ensemble: Ensemble, max_chunk_chars: int = 20_000) -> DataFrame:
    """Add `model_spans` decoded from the members' per-token tag distributions (udfs.tag_vote): every member runs
    with all its tag scores, their geometric mean is decoded under BIO, and a place the versions disagree on still
    gets the chunk the average makes most likely. With `combine: spans+tokens` the chunks min_votes members give
    exactly come first and the token vote fills the rest (one NerDL pass per member gives both). The ensemble's CRF,
    when it has one, is one more voter in both (udfs.crf_tag). Empty notes get an empty array, a null text keeps a
    null one.
    """
    from udfs.tag_vote import FLOOR, tag_vote_udf

    ids = notes.select("note_id", "note_text")
    tags: list[str] | None = None
    parts = []
    for i, (model, ref) in enumerate(ensemble.members):
        ner = ner_stage(model).setIncludeAllConfidenceScores(True)
        classes = sorted(str(c) for c in ner._java_obj.getClasses())
        if tags is None:
            tags = classes
        elif classes != tags:
            raise UserError(f"token vote: {ref} tags {len(classes)} classes, the first member {len(tags)}; "
                            "the members must share one tag set")

        def log_probs(offset: Any, col: str = ner.getOutputCol(), tags: list[str] = tags) -> Any:
            floor = lambda p: F.log(F.greatest(F.coalesce(p.cast("double"), F.lit(0.0)), F.lit(FLOOR)))  # noqa: E731
            return F.transform(F.col(col), lambda a: F.struct(
                (a["begin"] + offset).alias("begin"), (a["end"] + 1 + offset).alias("end"),
                F.array(*[floor(a["metadata"][t]) for t in tags]).alias("lp"), a["result"].alias("tag")))

        parts.append(_per_note(ids, model, max_chunk_chars, log_probs, f"_t{i}").select("note_id", f"_t{i}"))
    joined = reduce(lambda a, b: a.join(b, "note_id"), parts)
    if ensemble.crf is not None:
        # the CRF tags the first member's tokens (note offsets, long notes included), so it lines up by construction;
        # nondeterministic only so that the optimiser keeps one call per note for its two fields below
        from udfs.crf_tag import crf_udf

        crf = crf_udf(notes.sparkSession.sparkContext.broadcast(ensemble.crf.model), tags, FLOOR).asNondeterministic()
        joined = joined.join(ids, "note_id").withColumn(
            f"_t{len(parts)}", F.when(F.col("_t0").isNotNull(), crf(F.col("note_text"), F.col("_t0.begin"),
                                                                    F.col("_t0.end")))).drop("note_text")
    n = ensemble.voters
    # The mean is taken here, so only one tokens x tags array per note crosses to Python whatever the number of
    # members; tokens that do not line up stop the job (nothing to average token by token).
    mean = F.col("_t0.lp")
    for i in range(1, n):
        mean = F.zip_with(mean, F.col(f"_t{i}.lp"), lambda x, y: F.zip_with(x, y, lambda a, b: a + b))
    mean = F.transform(mean, lambda row: F.transform(row, lambda v: v / F.lit(float(n))))
    aligned = reduce(lambda a, b: a & b, [F.col(f"_t{i}.begin") == F.col("_t0.begin")
                                          for i in range(1, len(ensemble.members))], F.lit(True))
    # the members' own tags (their exact vote's chunks) cross to Python only for combine: spans+tokens
    exact = ensemble.combine == "spans+tokens"
    own_tags = (F.array(*[F.col(f"_t{i}.tag") for i in range(n)]) if exact
                else F.lit(None).cast("array<array<string>>"))
    voted = joined.select(
        "note_id",
        F.when(F.col("_t0").isNull(), F.lit(None).cast(SPAN_T))
        .when(~F.coalesce(aligned, F.lit(False)),
              F.raise_error(F.concat(F.lit("token vote: the members tokenised note "), F.col("note_id").cast("string"),
                                     F.lit(" differently; they must share their text stages"))).cast(SPAN_T))
        # the UDF runs on every row whatever the branch: misaligned rows hand it a null, and the error above fires
        .otherwise(tag_vote_udf(tags, ensemble.min_votes if exact else 0)(
            F.col("_t0.begin"), F.col("_t0.end"), F.when(aligned, mean), own_tags))
        .alias("model_spans"))
    return _attach_spans(notes, voted)


def with_voted_spans(notes: DataFrame, ensemble: Ensemble, max_chunk_chars: int = 20_000) -> DataFrame:
    """Add `model_spans` holding the spans (start, end, label) that at least `min_votes` members of the ensemble give.

    Each member runs as in with_model_spans; a kept span's score is the mean of its voters' confidences. Notes are
    matched back by note_id (unique in a notes frame); a note no span passed gets an empty array, a null text
    keeps a null one.
    """
    ids = notes.select("note_id", "note_text")
    parts = [ids.transform(with_model_spans, m, max_chunk_chars)
             .select("note_id", F.explode("model_spans").alias("s"), F.lit(i).alias("member"))
             .select("note_id", "s.start", "s.end", "s.label", "s.score", "member")
             for i, (m, _) in enumerate(ensemble.members)]
    kept = (reduce(DataFrame.unionByName, parts)
            .transform(filter_votes, ensemble.min_votes, ["score"])
            .groupBy("note_id")
            .agg(F.array_sort(F.collect_list(F.struct("start", "end", "label", "score"))).alias("model_spans")))
    return _attach_spans(notes, kept)


def _attach_spans(notes: DataFrame, per_note: DataFrame) -> DataFrame:
    """notes + `model_spans` from a vote's (note_id, model_spans) rows, matched by note_id (unique in a notes frame):
    a note the vote gave nothing gets an empty array, a null text a null one (the deid UDF quarantines it)."""
    return (notes.join(per_note, "note_id", "left")
            .withColumn("model_spans", F.when(F.col("note_text").isNull(), F.lit(None).cast(SPAN_T))
                        .otherwise(F.coalesce(F.col("model_spans").cast(SPAN_T), F.array().cast(SPAN_T))))
            .select(*notes.columns, "model_spans"))


def with_deid(notes: DataFrame, deid_udf: Any) -> DataFrame:
    """Apply the de-identification UDF: adds struct column `deid` (deid_text, spans, error)."""
    return notes.withColumn("deid", deid_udf(F.col("note_text"), F.col("person_id"), F.col("model_spans")))


def with_residual_check(df: DataFrame) -> DataFrame:
    """Flag de-identified texts that still match an identifier pattern (they never reach note_deid)."""
    hit = F.lit(None).cast("string")
    for name, rx in reversed(list(RESIDUAL_PATTERNS.items())):
        hit = F.when(F.col("deid.deid_text").rlike(rx), F.lit(name)).otherwise(hit)
    return df.withColumn("residual", hit)


def deid_rows(df: DataFrame, deid_system: str, note_columns: list[str]) -> DataFrame:
    """note_deid rows: NOTE shape with the de-identified text, the original's fingerprint and the system."""
    cols = [F.col("deid.deid_text").alias("note_text") if c == "note_text" else F.col(c) for c in note_columns]
    return df.select(*cols, F.sha2(F.col("deid.deid_text"), 256).alias("deid_text_sha256"),
                     F.lit(deid_system).alias("deid_system"))


def phi_rows(df: DataFrame, keep_original: bool) -> DataFrame:
    """phi_span audit rows (original PHI text only when configuration asks for it)."""
    exploded = df.select("note_id", "person_id", F.explode("deid.spans").alias("s"))
    cols = [
        "note_id",
        F.col("s.start").alias("start"), F.col("s.end").alias("end"),
        F.col("s.new_start").alias("new_start"), F.col("s.new_end").alias("new_end"),
        F.col("s.label").alias("phi_type"), F.col("s.replacement").alias("replacement"),
        F.col("s.detector").alias("detector"),
    ]
    out = exploded.join(df.select("note_id", "note_text"), "note_id") if keep_original else exploded
    if keep_original:
        cols.append(F.expr("substring(note_text, s.start + 1, s.end - s.start)").alias("original_text"))
    else:
        cols.append(F.lit(None).cast("string").alias("original_text"))
    return out.select(*cols)
