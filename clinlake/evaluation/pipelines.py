"""Deployed-pipeline predictors for the evaluation job: the production code paths, models by registry alias.

- coding/codiesp and ner/cantemist: jobs.extract_concepts.extract (recogniser by alias -> resolver -> assertion),
  exactly what writes note_nlp; CodiEsp-D/P rankings are note_code's own (clinlake.note_code.with_note_codes).
- deid/meddocan: the deidentify_notes stage (rules + deid NER by alias when registered -> merge -> replace).
- ner/pharmaconer: the drug recogniser by alias.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from clinlake import omop
from clinlake.corpora.types import Corpus, Mention
from clinlake.evaluation.predict import register

LABEL_TRACK = {"DIAGNOSTICO": "d", "PROCEDIMIENTO": "p"}


def _notes_frame(spark: Any, notes_df: Any) -> tuple[Any, dict[int, str]]:
    """Evaluation notes as NOTE-like rows with integer ids (dev splits are small: ids assigned on the driver)."""
    docs = sorted(r["doc_id"] for r in notes_df.select("doc_id").collect())
    ids = {doc: i + 1 for i, doc in enumerate(docs)}
    mapping = spark.createDataFrame([(d, i) for d, i in ids.items()], "doc_id string, note_id long")
    frame = notes_df.join(mapping, "doc_id").select(
        "note_id", F.col("text").alias("note_text"), F.sha2(F.col("text"), 256).alias("text_sha256"),
        F.col("note_id").alias("person_id"))
    return frame, {i: d for d, i in ids.items()}


def _extract(spark: Any, cfg: Any, notes_df: Any, model_alias: str) -> tuple[list, dict[int, str], str]:
    """Run the production extraction chain; returns NOTE_NLP rows, id->doc map and the model references."""
    from clinlake import recognisers
    from jobs.extract_concepts import extract

    models = recognisers.load(cfg, model_alias or None)
    frame, back = _notes_frame(spark, notes_df)
    rows = extract(spark, cfg, frame, models).select(
        "note_id", "label", "offset_start", "offset_end", "lexical_variant", "concept_code", "score",
        "term_exists", "candidates", "phrase_precision").collect()
    return rows, back, ",".join(ref for _, ref in models)


def _versions(refs: str) -> dict[str, str]:
    """'a@1,b@2' -> {'a': '1', 'b': '2'} (the model versions an evaluation logs as params)."""
    return dict(ref.rsplit("@", 1) for ref in refs.split(",") if ref)


def _mentions(rows: list, back: dict[int, str], labels: set[str] | None = None,
              min_score: float | None = None) -> dict[str, list[Mention]]:
    """NOTE_NLP rows -> Corpus mentions (codes lower-cased as the shared tasks write them).

    With min_score, a row whose resolver score is below it is left out (a null score, the exact fallback's, stays).
    """
    out: dict[str, list[Mention]] = defaultdict(list)
    for r in rows:
        if labels and r["label"] not in labels:
            continue
        if min_score is not None and r["score"] is not None and r["score"] < min_score:
            continue
        code = (r["concept_code"] or "").lower() or None
        out[back[r["note_id"]]].append(Mention(r["label"], r["offset_start"], r["offset_end"], code,
                                               text=r["lexical_variant"] or ""))
    return dict(out)


def rank_codes(spark: Any, cfg: Any, rows: list, back: dict[int, str]) -> dict[str, dict[str, list[str]]]:
    """Per label, per document, codes ranked by clinlake.note_code.with_note_codes (what note_code stores)."""
    from clinlake.note_code import candidates_per_mention, with_note_codes

    cols = ("note_id", "label", "concept_code", "score", "term_exists", "offset_start", "candidates",
            "phrase_precision")
    schema = StructType([omop.NOTE_NLP[c] for c in cols])   # NOTE_NLP's own types, the candidates struct included
    frame = spark.createDataFrame([tuple(r[c] for c in cols) for r in rows], schema)
    vocab = F.create_map(*[F.lit(str(x)) for kv in cfg.extract.label_vocabularies.items() for x in kv])
    ranked = with_note_codes(frame.withColumn("vocabulary_id", vocab[F.col("label")]),
                             candidates_per_mention(cfg)) \
        .select("note_id", "vocabulary_id", "concept_code", "rank").collect()
    labels = {str(v): str(k) for k, v in cfg.extract.label_vocabularies.items()}
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(ranked, key=lambda r: (r["note_id"], r["vocabulary_id"] or "", r["rank"])):
        out[labels.get(r["vocabulary_id"], "")][back[r["note_id"]]].append(r["concept_code"].lower())
    return {label: dict(docs) for label, docs in out.items()}


def codiesp_corpus(spark: Any, cfg: Any, rows: list, back: dict[int, str], ref: str = "") -> Corpus:
    """NOTE_NLP rows -> CodiEsp D/P rankings (as note_code ranks them) and X mentions.

    X holds the confident mappings only, those scored at or above `review.threshold`: the lower ones are what the
    review queue sends to terminologists (docs/review.md). D/P rank every row, low scores last.
    """
    ranked = rank_codes(spark, cfg, rows, back)
    x = _mentions(rows, back, set(LABEL_TRACK), float(cfg.review.threshold))
    return Corpus(mentions=x, codes_d=ranked.get("DIAGNOSTICO", {}),
                  codes_p=ranked.get("PROCEDIMIENTO", {}), model_versions=_versions(ref))


def cantemist_corpus(rows: list, back: dict[int, str], ref: str = "") -> Corpus:
    """NOTE_NLP rows -> tumour morphology mentions with their CIE-O-3 codes."""
    return Corpus(mentions=_mentions(rows, back, {"MORFOLOGIA_NEOPLASIA"}), model_versions=_versions(ref))


def append_suggestions(spark: Any, cfg: Any, corpus: Corpus, notes_df: Any) -> Corpus:
    """D/P rankings followed by the registered suggester's codes that the note's own ranking lacks (what a coder's
    worklist reads: note_code, then note_code_suggestion); the corpus as it is when none is registered or
    `suggest.enabled` is false."""
    from clinlake import suggest

    loaded = suggest.load_registered(cfg)
    if loaded is None:
        return corpus
    index, ref = loaded
    frame, back = _notes_frame(spark, notes_df)
    rows = suggest.with_suggestions(frame, index, ref).collect()   # dev splits: a few thousand rows
    per: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for r in rows:
        per[(r["vocabulary_id"], back[r["note_id"]])].append((r["rank"], r["concept_code"].lower()))
    vocab = {str(k): str(v) for k, v in cfg.extract.label_vocabularies.items()}
    for label, attr in (("DIAGNOSTICO", "codes_d"), ("PROCEDIMIENTO", "codes_p")):
        ranked = dict(getattr(corpus, attr) or {})
        for doc in back.values():
            have = ranked.get(doc, [])
            seen = set(have)
            ranked[doc] = have + [c for _, c in sorted(per.get((vocab.get(label, ""), doc), [])) if c not in seen]
        setattr(corpus, attr, ranked)
    corpus.model_versions.update(_versions(ref))
    return corpus


@register("coding", "codiesp")
def predict_codiesp(spark: Any, cfg: Any, notes_df: Any, model_alias: str) -> Corpus:
    """CodiEsp D/P rankings (note_code's, then the suggester's) and X mentions from the deployed extraction chain."""
    rows, back, ref = _extract(spark, cfg, notes_df, model_alias)
    return append_suggestions(spark, cfg, codiesp_corpus(spark, cfg, rows, back, ref), notes_df)


@register("ner", "cantemist")
def predict_cantemist(spark: Any, cfg: Any, notes_df: Any, model_alias: str) -> Corpus:
    """Tumour morphology mentions with their CIE-O-3 codes from the deployed extraction chain."""
    rows, back, ref = _extract(spark, cfg, notes_df, model_alias)
    return cantemist_corpus(rows, back, ref)


@register("deid", "meddocan")
def predict_meddocan(spark: Any, cfg: Any, notes_df: Any, model_alias: str) -> Corpus:
    """PHI spans and de-identified texts from the deidentify_notes stage (rules + NER by alias if registered)."""
    from clinlake.deid import job as deid
    from jobs.deidentify_notes import load_model
    from udfs.deid import make_deid_udf

    if model_alias:
        cfg.deid.model_alias = model_alias
    model, ref = load_model(cfg)
    frame, back = _notes_frame(spark, notes_df)
    policy = deid.policy_for(cfg)
    udf = make_deid_udf(policy, deid.secret_for(cfg))
    rows = frame.transform(deid.with_model_spans, model).transform(deid.with_deid, udf) \
        .select("note_id", "deid").collect()
    mentions, texts, replacements = {}, {}, {}
    for r in rows:
        doc = back[r["note_id"]]
        spans = r["deid"]["spans"] or []
        mentions[doc] = [Mention(s["label"], s["start"], s["end"]) for s in spans]
        replacements[doc] = [((s["start"], s["end"]), s["replacement"] or "") for s in spans]
        if r["deid"]["deid_text"] is not None:
            texts[doc] = r["deid"]["deid_text"]
    versions = {"rules": deid.rules_system(cfg, policy)}
    versions.update(_versions(ref or ""))   # a vote with a CRF: '<deid-ner-es ensemble>,deid-crf-es@<v>'
    return Corpus(mentions=mentions, deid_texts=texts, replacements=replacements, model_versions=versions)


@register("ner", "pharmaconer")
def predict_pharmaconer(spark: Any, cfg: Any, notes_df: Any, model_alias: str) -> Corpus:
    """Drug mentions from the registered drug recogniser (ner-drug-es by alias)."""
    from clinlake.ner.predict import predict_drug

    return predict_drug(spark, cfg, notes_df, model_alias)
