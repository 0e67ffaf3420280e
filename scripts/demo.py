"""`make demo`: the whole chain on the bundled sample in one Spark session, then a printed summary.

ingest_notes -> build_vocabulary -> train_ner (gazetteer) and train_suggester (each only when no @champion exists)
-> deidentify_notes -> extract_concepts -> summary (notes in / quarantined / concepts per vocabulary / top codes / an example SQL query).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXAMPLE_SQL = """
SELECT n.vocabulary_id, n.concept_code, c.concept_name, count(*) AS mentions,
       count(DISTINCT n.note_id) AS notes, sum(CASE WHEN n.term_exists = 'N' THEN 1 ELSE 0 END) AS not_present
FROM omop.note_nlp n LEFT JOIN omop.concept c ON c.concept_id = n.note_nlp_source_concept_id
WHERE n.vocabulary_id = 'ICD10CM'
GROUP BY n.vocabulary_id, n.concept_code, c.concept_name
ORDER BY mentions DESC, n.concept_code
LIMIT 5
""".strip()


def stage(name: str, fn, *args):
    """Run one job's run() and print its summary line."""
    t = time.time()
    print(f"\n=== {name} ===", flush=True)
    summary = fn(*args)
    print(f"{name}: done in {time.time() - t:.1f}s")
    return summary


def main() -> None:
    """Run the chain and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="local")
    parser.add_argument("--lake", default=None)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--summary-json", default=None,
                        help="also write each job's summary (the dicts their run() returns) to this JSON file")
    opts = parser.parse_args()
    started = time.time()
    from pyspark.sql import functions as F

    from clinlake import quality, suggest, tracking
    from clinlake.cli import setup_logging
    from clinlake.config import lake_path, load_config
    from clinlake.errors import UserError
    from clinlake.spark import build_spark
    from jobs import build_vocabulary, deidentify_notes, extract_concepts, ingest_notes, train_ner, train_suggester

    setup_logging()
    try:
        cfg = load_config(opts.env, opts.set, lake=opts.lake)
        spark = build_spark(cfg, "clinlake-demo")
        ns = argparse.Namespace
        ing = stage("ingest_notes", ingest_notes.run, spark, cfg,
                    ns(input=str(ROOT / "sample" / "notes" / "notes.jsonl"), format="json"))
        summaries = {"ingest": ing, "vocab": stage("build_vocabulary", build_vocabulary.run, spark, cfg, ns())}
        mcfg = cfg.models.recogniser
        tracking.configure(cfg)
        try:
            tracking.resolve_alias(cfg, str(mcfg.name), str(mcfg.alias))
            print(f"\n=== train_ner: {mcfg.name}@{mcfg.alias} already registered, not retrained ===")
        except UserError:
            summaries["train"] = stage("train_ner (gazetteer)", train_ner.run, spark, cfg, ns(model="gazetteer"))
        scfg = suggest.settings(cfg)
        if scfg["enabled"]:
            try:
                tracking.resolve_alias(cfg, str(scfg["name"]), str(scfg["alias"]))
                print(f"\n=== train_suggester: {scfg['name']}@{scfg['alias']} already registered, not retrained ===")
            except UserError:
                summaries["suggester"] = stage("train_suggester", train_suggester.run, spark, cfg, ns())
        summaries["deid"] = stage("deidentify_notes", deidentify_notes.run, spark, cfg, ns())
        ext = summaries["extract"] = stage("extract_concepts", extract_concepts.run, spark, cfg, ns(model_alias=None))
        if opts.summary_json:   # for callers that assert on the run (tests/test_demo_chain.py), not for people
            Path(opts.summary_json).write_text(json.dumps(summaries, default=str, indent=1), encoding="utf-8")
    except UserError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        sys.exit(2)

    nlp = spark.read.format("delta").load(lake_path(cfg, "note_nlp"))
    per_vocab = nlp.groupBy("vocabulary_id").agg(F.count("*").alias("n")).orderBy(F.desc("n")).collect()
    top = (nlp.filter(F.col("concept_code").isNotNull())
           .groupBy("vocabulary_id", "concept_code").agg(F.count("*").alias("n"))
           .orderBy(F.desc("n"), "concept_code").limit(10).collect())
    print("\n================ demo summary ================")
    print(f"lake: {lake_path(cfg, '')}   MLflow: {tracking.tracking_uri(cfg)}")
    print(f"notes in: {ing['notes_read']}   accepted: {ing['accepted']}   quarantined: {ing['quarantined']}")
    for reason, n in sorted(ing["quarantine_reasons"].items()):
        print(f"   quarantined {n} x {reason}")
    print(f"model: {ext['model']}   notes processed this run: {ext['notes_processed']}")
    present = nlp.filter(F.col("term_exists") == "Y").count()
    print(f"concepts in note_nlp: {nlp.count()}   present (term_exists=Y): {present}")
    for r in per_vocab:
        print(f"   {r['vocabulary_id'] or '(unresolved)'}: {r['n']}")
    if ext.get("note_codes_written") is not None:
        print(f"ranked codes per note (note_code) written this run: {ext['note_codes_written']}")
    if ext.get("suggester"):
        print(f"codes similar notes carry (note_code_suggestion, {ext['suggester']}) written this run: "
              f"{ext['code_suggestions_written']}")
    docs = quality.data_docs_dir(cfg)
    if docs is not None and (docs / "index.html").exists():
        print(f"Great Expectations Data Docs (every quality gate of this run): {docs / 'index.html'}")
    print("ten most frequent codes:")
    for r in top:
        print(f"   {r['vocabulary_id']:9} {r['concept_code']:10} {r['n']}")
    print("\nexample SQL on the catalog (python jobs/sql.py --query ...):\n" + EXAMPLE_SQL)
    spark.sql(EXAMPLE_SQL).show(truncate=60)
    print(f"demo finished in {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
