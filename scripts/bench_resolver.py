"""Resolver serving throughput (mentions/s per core) of registered `resolver-es` versions, and their build times.

For each alias: load the version as extract_concepts serves it (resolve.load_resolver: the pinned index snapshots,
ranker, calibrator, leaf map, retrieval settings), warm up on a few mentions, then time `resolve.with_codes` over the
first n mentions at each size (the frame written to Spark's `noop` sink, so nothing is collected to the driver). The
resolver works on the distinct (label, normalised mention) pairs, so the JSON gives both counts. These timings
resolve every mention (the resolver cache off); `--cache` (default) then codes all mentions twice through a scratch
cache, empty and then full (`cache.fill_seconds`, `cache.hit_seconds`). The version's training run gives the index
build and ranker fit times (MLflow metrics `index_build_s`, `ranker_fit_s`).

Mentions come from `--data`: a TSV file with a header `label<TAB>text`, or a folder of a corpus split read with
`--corpus` (its gold mentions: CodiEsp-X, CANTEMIST). Needs a store that holds the versions (docs/resolution.md).

    .venv/bin/python scripts/bench_resolver.py --env full --lake L --set mlflow.dir=M --set catalog.metastore=memory \\
        --aliases champion --corpus codiesp --data ../shared/corpora/codiesp/dev --sizes 1000 0 --out bench

Writes <out>/resolver.json and <out>/resolver.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_nerdl import cpu_name, save_plot, store_arguments  # noqa: E402 - the NerDL benchmark's helpers


def read_mentions(path: Path, corpus: str | None) -> list[tuple[str, str]]:
    """(label, text) of a TSV file (header label, text) or of a corpus split's gold mentions, in file order."""
    if path.is_file():
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows and not {"label", "text"} <= set(rows[0]):
            raise SystemExit(f"{path}: the header must name the columns label and text")
        out = [(r["label"], r["text"]) for r in rows if r["label"] and r["text"]]
    elif path.is_dir():
        if not corpus:
            raise SystemExit(f"{path} is a folder: say which corpus reader reads it (--corpus codiesp|cantemist)")
        from clinlake.corpora.readers import read_corpus

        gold = read_corpus(corpus, str(path))
        out = [(m.label, m.text) for doc in sorted(gold.mentions or {}) for m in gold.mentions[doc]]
    else:
        raise SystemExit(f"no such file or folder: {path}")
    if not out:
        raise SystemExit(f"no mentions in {path}")
    return out


def build_times(cfg, name: str, version: str) -> dict[str, float]:
    """index_build_s / ranker_fit_s / seconds of the run that trained the version (empty if it logged none)."""
    from mlflow import MlflowClient

    from clinlake import tracking

    tracking.configure(cfg)
    client = MlflowClient()
    metrics = client.get_run(client.get_model_version(name, version).run_id).data.metrics
    return {k: metrics[k] for k in ("index_build_s", "ranker_fit_s", "seconds") if k in metrics}


def _coder(spark, cfg, resolver, partitions: int):
    """(frame, run): a cached mentions frame, and the seconds `resolve.with_codes` takes to code one into `noop`."""
    from clinlake import resolve
    from clinlake.config import lake_path

    vocab = {t: spark.read.format("delta").load(lake_path(cfg, t)) for t in ("concept", "concept_relationship")}
    labels = dict(cfg.extract.label_vocabularies)

    def frame(rows: list[tuple[str, str]]):
        data = [(i, lab, text) for i, (lab, text) in enumerate(rows)]
        df = spark.createDataFrame(data, "note_id long, label string, lexical_variant string") \
            .repartition(partitions).cache()
        df.count()
        return df

    def run(df) -> float:
        start = time.perf_counter()
        resolve.with_codes(df, resolver, vocab["concept"], vocab["concept_relationship"], labels) \
            .write.format("noop").mode("overwrite").save()
        return time.perf_counter() - start

    return frame, run


def time_sizes(spark, cfg, resolver, mentions: list[tuple[str, str]], sizes: list[int],
               partitions: int) -> list[dict]:
    """Seconds to code the first n mentions at each size (0 = all), after one warm-up on 50."""
    from clinlake.vocab.normalize import normalize

    frame, run = _coder(spark, cfg, resolver, partitions)
    warm = frame(mentions[:50])
    run(warm)
    warm.unpersist()
    out = []
    for size in sizes:
        rows = mentions if size <= 0 else mentions[:size]
        df = frame(rows)
        seconds = run(df)
        distinct = len({(lab, normalize(text)) for lab, text in rows})
        out.append({"size": size, "mentions": len(rows), "distinct": distinct, "seconds": round(seconds, 2)})
        print(f"  {len(rows):6d} mentions ({distinct} distinct): {seconds:6.1f} s", flush=True)
        df.unpersist()
    return out


def time_cache(spark, cfg, resolver, mentions: list[tuple[str, str]], partitions: int) -> dict:
    """Seconds to code all mentions through an empty resolver cache (each resolved and appended), then again with
    every one cached; the cache is a scratch Delta table, so the lake's own is not touched."""
    frame, run = _coder(spark, cfg, resolver, partitions)
    df = frame(mentions)
    with tempfile.TemporaryDirectory(prefix="bench-resolver-cache-") as tmp:
        resolver.cache_path = f"{tmp}/resolver_cache"
        fill, hit = run(df), run(df)
        resolver.cache_path = None
    df.unpersist()
    print(f"  cache: {fill:6.1f} s filling it, {hit:6.1f} s with every mention cached", flush=True)
    return {"mentions": len(mentions), "fill_seconds": round(fill, 2), "hit_seconds": round(hit, 2)}


def plot(results: list[dict], path: Path) -> None:
    """mentions/s per core against the number of mentions, one line per version."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        line, = ax.plot([t["mentions"] for t in r["timings"]], [t["mentions_per_s_per_core"] for t in r["timings"]],
                        marker="o", label=f"{r['resolver']} ({r['alias']})")
        if r.get("cache"):   # the same mentions, every one already in the resolver cache
            c = r["cache"]
            ax.plot([c["mentions"]], [c["mentions"] / c["hit_seconds"] / r["cores"]], marker="*", markersize=12,
                    linestyle="none", color=line.get_color(), label=f"{r['resolver']}, all cached")
    ax.set_xscale("log")
    ax.set_xlabel("mentions coded in one call")
    ax.set_ylabel("mentions/s per core")
    save_plot(fig, ax, path)


def main(argv: list[str] | None = None) -> None:
    """Parse args, load config and versions, time each version on the mentions, write JSON and the plot."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    store_arguments(ap)
    ap.add_argument("--aliases", nargs="+", default=["champion"], help="aliases of the resolver (resolver.name)")
    ap.add_argument("--data", required=True, help="a TSV (label, text) or a corpus split folder")
    ap.add_argument("--corpus", default=None, help="the reader for a folder: codiesp, cantemist")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 0], help="mentions per timed call; 0 = all")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                    help="also time all mentions through an empty resolver cache, then fully cached")
    ap.add_argument("--out", default="bench")
    args = ap.parse_args(argv)
    if any(s < 0 for s in args.sizes) or args.partitions < 1:
        ap.error("sizes must be >= 0 (0 = all) and partitions >= 1")

    from clinlake import resolve
    from clinlake.config import load_config
    from clinlake.spark import build_spark

    mentions = read_mentions(Path(args.data), args.corpus)
    cfg = load_config(args.env, args.set, lake=args.lake)
    spark = build_spark(cfg, "bench_resolver")
    cores = spark.sparkContext.defaultParallelism
    results = []
    for alias in args.aliases:
        resolver, ref = resolve.load_resolver(spark, cfg, alias)
        if resolver.ranker is None:
            raise SystemExit(f"no resolver registered as {resolve.settings(cfg)['name']}@{alias}")
        name, version = ref.rsplit("@", 1)
        print(f"{ref} ({alias}) on {len(mentions)} mentions of {args.data}", flush=True)
        resolver.cache_path = None   # the resolver's own speed: every mention resolved (resolver.cache off)
        timings = time_sizes(spark, cfg, resolver, mentions, args.sizes, args.partitions)
        for t in timings:
            t["mentions_per_s_per_core"] = round(t["mentions"] / t["seconds"] / cores, 2)
        cache = time_cache(spark, cfg, resolver, mentions, args.partitions) if args.cache else None
        retrieval = {k: resolver.params.get(k) for k in resolve.RETRIEVAL}
        results.append({"resolver": ref, "alias": alias, "retrieval": retrieval, "cores": cores,
                        "build": build_times(cfg, name, version), "timings": timings, "cache": cache})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": cpu_name(), "cores": cores,
              "data": str(args.data), "partitions": args.partitions, "results": results}
    (out / "resolver.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(results, out / "resolver.png")
    print(f"wrote {out / 'resolver.json'} and {out / 'resolver.png'}")


if __name__ == "__main__":
    main()
