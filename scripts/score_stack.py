"""Score a stack of recognisers + a resolver on CodiEsp dev and CANTEMIST dev1 with the official metric code.

A development tool, not a job: `jobs/evaluate.py` scores what one registry deploys; this scores models that live in
different development MLflow stores (e.g. the resolver in one, NerDL models trained elsewhere in another) without
copying them into one registry. It runs the product's own code: `recognisers.recognise_all` (the overlap policy, in
the order given), `extract_concepts.finish` (lexical variant, `resolve.with_codes`, assertion, NOTE_NLP rows),
`evaluation.pipelines` (the predictors' rows -> predictions) and `evaluation.scoring.score`. Chunks are cached as Parquet under --work, so
resolver variants can be re-scored without running the recognisers again.

    .venv/bin/python scripts/score_stack.py --lake L --mlflow-dir M [--ner-mlflow-dir N] \
        --recognisers ner-morphology-es@N,ner-gazetteer-es,ner-diagnosis-procedure-es@N --resolver champion

`name@N` loads `name@champion` from the --ner-mlflow-dir store, a bare name from --mlflow-dir; `name@N=a+b+c:2` serves
the versions behind aliases a, b and c as one voting recogniser (a chunk kept when 2 of them give it); `--resolver exact` scores the
gazetteer lookup instead of a registered resolver. Prints one JSON object: the metrics per corpus and a calibration
table (top-1 score bin -> mentions, share correct, mean score) over predicted spans that match a gold span exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPORA = {"codiesp": "codiesp/dev", "cantemist": "cantemist/dev1"}
KEYS = {"codiesp": ["map_d", "map_p", "map_d_with_suggestions", "map_p_with_suggestions", "f1_x", "precision_x",
                    "recall_x", "f1_d", "f1_p"],
        "cantemist": ["ner_f1", "norm_f1"]}


def chunk_frames(spark, cfg, ner_cfg, names: list[str], corpora: dict[str, str], work: Path) -> None:
    """Recognise every corpus once with the stack; cache chunks (+ the note id map) under work."""
    from clinlake import recognisers, tracking
    from clinlake.corpora.frames import notes_df
    from clinlake.corpora.readers import read_corpus
    from clinlake.evaluation.pipelines import _notes_frame

    def load(spec: str):
        # "name", "name@N", or a vote "name@N=alias1+alias2+alias3:min_votes" (recognisers.Ensemble)
        spec, _, vote = spec.partition("=")
        where, name = (ner_cfg if spec.endswith("@N") else cfg), spec.removesuffix("@N")
        if not vote:
            return tracking.load_spark_model(where, name, "champion")
        aliases, _, k = vote.partition(":")
        first, *others = aliases.split("+")
        return recognisers.load_ensemble(where, name, first, others,
                                         int(k) if k else recognisers.majority(len(others) + 1))

    models = [load(n) for n in names]
    (work / "recognisers.txt").write_text(",".join(names))
    for corpus, path in corpora.items():
        t = time.time()
        frame, back = _notes_frame(spark, notes_df(spark, read_corpus(corpus, path)))
        notes = frame.select("note_id", "note_text", "text_sha256").cache()
        # the merged chunks as extract_concepts.extract hands them to finish(); notes kept for finish() too
        merged = recognisers.recognise_all(notes, models, cfg.get("scale"), recognisers.keep_overlaps(cfg))
        merged.write.mode("overwrite").parquet(str(work / f"chunks_{corpus}"))
        notes.write.mode("overwrite").parquet(str(work / f"notes_{corpus}"))
        (work / f"back_{corpus}.json").write_text(json.dumps({str(k): v for k, v in back.items()}))
        print(f"{corpus}: recognised in {time.time() - t:.0f}s", file=sys.stderr, flush=True)


def score(spark, cfg, resolver_alias: str, corpora: dict[str, str], work: Path) -> dict:
    """Code the cached chunks with the resolver; official metrics and calibration per corpus."""
    from clinlake import resolve
    from clinlake.corpora.frames import notes_df
    from clinlake.corpora.readers import read_corpus
    from clinlake.evaluation import pipelines as pl
    from clinlake.evaluation.scoring import score as score_fn
    from jobs.extract_concepts import finish

    res = resolve.exact_resolver(spark, cfg) if resolver_alias == "exact" \
        else resolve.load_resolver(spark, cfg, resolver_alias)[0]
    out = {}
    for corpus, path in corpora.items():
        gold = read_corpus(corpus, path)
        back = {int(k): v for k, v in json.loads((work / f"back_{corpus}.json").read_text()).items()}
        chunks, notes = (spark.read.parquet(str(work / f"{p}_{corpus}")) for p in ("chunks", "notes"))
        # extract_concepts' own finish(): lexical variant, codes, assertion, NOTE_NLP rows
        rows = finish(spark, cfg, chunks, notes, resolver=res).select(
            "note_id", "label", "offset_start", "offset_end", "lexical_variant", "concept_code", "score",
            "term_exists", "candidates", "phrase_precision").collect()
        if corpus == "codiesp":
            pred = pl.codiesp_corpus(spark, cfg, rows, back)
            metrics, _ = score_fn("coding", corpus, gold, pred)
            # then with the registered suggester's codes after each note's own (what evaluate.py reports)
            suggested = pl.append_suggestions(spark, cfg, pred, notes_df(spark, gold))
            if suggested.model_versions:
                with_s, _ = score_fn("coding", corpus, gold, suggested)
                metrics.update({f"{k}_with_suggestions": with_s[k] for k in ("map_d", "map_p")})
        else:
            metrics, _ = score_fn("ner", corpus, gold, pl.cantemist_corpus(rows, back))
        out[corpus] = {k: round(metrics[k], 4) for k in KEYS[corpus] if k in metrics}
        out[corpus]["mentions"] = len(rows)
        gold_codes = defaultdict(set)
        for doc, ms in (gold.mentions or {}).items():
            for m in ms:
                gold_codes[(doc, m.label, m.start, m.end)].add((m.code or "").lower())
        bins = defaultdict(lambda: [0, 0, 0.0])
        for r in rows:
            key = (back[r["note_id"]], r["label"], r["offset_start"], r["offset_end"])
            if key in gold_codes and r["score"] is not None:
                b = bins[min(int(r["score"] * 5), 4)]
                b[0] += 1
                b[1] += int((r["concept_code"] or "").lower() in gold_codes[key])
                b[2] += r["score"]
        out[corpus]["calibration"] = {f"{b / 5:.1f}-{(b + 1) / 5:.1f}": [v[0], round(v[1] / v[0], 3), round(v[2] / v[0], 3)]
                                      for b, v in sorted(bins.items())}
    return out


def main() -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="shared", help="config env whose vocabulary the lake was built with")
    ap.add_argument("--lake", required=True, help="lake with concept, concept_relationship and gazetteer")
    ap.add_argument("--mlflow-dir", required=True, help="store with the gazetteer recogniser and the resolver")
    ap.add_argument("--ner-mlflow-dir", help="store with the NerDL models named name@N")
    ap.add_argument("--recognisers", default="ner-gazetteer-es", help="comma list, first wins same-label overlaps")
    ap.add_argument("--resolver", default="champion", help="resolver-es alias, or 'exact'")
    ap.add_argument("--corpora-root", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--corpora", default="codiesp,cantemist")
    ap.add_argument("--work", required=True, help="cache folder for the chunks")
    ap.add_argument("--reuse-chunks", action="store_true", help="score the chunks already in --work")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()

    from clinlake.config import load_config
    from clinlake.spark import build_spark

    sets = ["catalog.metastore=memory", *args.set]
    cfg = load_config(args.env, sets + [f"mlflow.dir={args.mlflow_dir}"], lake=args.lake)
    ner_cfg = load_config(args.env, sets + [f"mlflow.dir={args.ner_mlflow_dir or args.mlflow_dir}"], lake=args.lake)
    corpora = {c: str(Path(args.corpora_root) / CORPORA[c]) for c in args.corpora.split(",")}
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    spark = build_spark(cfg, "score-stack")
    spark.sparkContext.setLogLevel("ERROR")
    if not args.reuse_chunks:
        chunk_frames(spark, cfg, ner_cfg, args.recognisers.split(","), corpora, work)
    stack = work / "recognisers.txt"
    result = {"recognisers": stack.read_text() if stack.exists() else "(cached chunks of an unrecorded stack)",
              "resolver": args.resolver,
              **score(spark, cfg, args.resolver, corpora, work)}
    print(json.dumps(result, indent=1))
    spark.stop()


if __name__ == "__main__":
    main()
