"""NerDL serving throughput: notes/s per core of registered NerDL pipelines at several TensorFlow batch sizes.

For each model (`name@alias` in the registry) and each folder of .txt notes: load the pipeline as the jobs serve it
(tracking.load_spark_model), cache the notes in `--partitions` partitions, run once to warm up (TensorFlow session,
JIT), then time the pipeline's chunks collected at each batch size (`scale.ner_batch_size` is the served one;
docs/scale.md "NerDL batch size"), and count the chunks (note, start, end, label) that a size and the first size
do not share: padding changes the float sums a little, so a token near a tie can flip. Needs a store that holds
the models (docs/ner.md "Commands"); the rules-only chain's benchmark is scripts/bench.py.

    .venv/bin/python scripts/bench_nerdl.py --env full --lake L --set mlflow.dir=M --set catalog.metastore=memory \\
        --models deid-ner-es@champion --data ../shared/corpora/meddocan/dev --batch-sizes 32 8 4 --out bench

Writes <out>/nerdl.json and <out>/nerdl.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def read_notes(folder: Path) -> list[tuple[str, str]]:
    """(file stem, text) of every .txt under folder, sorted; a folder without any is an error."""
    files = sorted(folder.rglob("*.txt"))
    if not files:
        raise SystemExit(f"no .txt notes under {folder}")
    return [(p.stem, p.read_text(encoding="utf-8")) for p in files]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else the platform's machine name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def time_sizes(spark, model, notes: list[tuple[str, str]], sizes: list[int], partitions: int) -> list[dict]:
    """Seconds to tag the notes at each batch size (after one warm-up run), and how many chunks differ from the
    first size's."""
    from pyspark.sql import functions as F

    from clinlake.ner import nerdl_stages

    stages = nerdl_stages(model)
    if not stages:
        raise SystemExit("the model has no NerDLModel stage")
    ner = stages[0]
    chunk_col = model.stages[-1].getOutputCol()
    frame = spark.createDataFrame(notes, "note_id string, note_text string").repartition(partitions).cache()
    frame.count()

    def run() -> tuple[float, set]:
        start = time.perf_counter()
        rows = model.transform(frame).select("note_id", F.explode(chunk_col).alias("c")) \
            .select("note_id", "c.begin", "c.end", F.col("c.metadata")["entity"].alias("label")).collect()
        return time.perf_counter() - start, {tuple(r) for r in rows}

    ner.setBatchSize(sizes[0])
    run()  # warm-up
    out, first = [], None
    for size in sizes:
        ner.setBatchSize(size)
        seconds, chunks = run()
        first = first if first is not None else chunks
        differ = len(chunks ^ first)
        out.append({"batch_size": size, "seconds": round(seconds, 2), "chunks": len(chunks),
                    "chunks_not_in_both": differ})
        print(f"  batch {size:3d}: {seconds:6.1f} s, {len(chunks)} chunks, {differ} not in both this and the "
              f"first size's", flush=True)
    frame.unpersist()
    return out


def store_arguments(ap: argparse.ArgumentParser) -> None:
    """--env, --lake and --set: where the store with the trained versions is (the benchmarks of a trained store)."""
    ap.add_argument("--env", default=None)
    ap.add_argument("--lake", default=None)
    ap.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")


def save_plot(fig, ax, path: Path) -> None:
    """Grid, legend, tight layout, PNG: the benchmarks' plots share their finish."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot(results: list[dict], path: Path) -> None:
    """notes/s per core against batch size, one line per model and folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        xs = [t["batch_size"] for t in r["timings"]]
        corpus = "/".join(Path(r["data"]).parts[-2:])
        ax.plot(xs, [t["notes_per_s_per_core"] for t in r["timings"]], marker="o",
                label=f"{r['model']} on {corpus} ({r['tokens_per_note']:.0f} tokens/note)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("NerDL batch size (sentences per TensorFlow call)")
    ax.set_ylabel("notes/s per core")
    save_plot(fig, ax, path)


def main(argv: list[str] | None = None) -> None:
    """Parse args, load config and models, time each model on each folder, write JSON and the plot."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    store_arguments(ap)
    ap.add_argument("--models", nargs="+", required=True, help="registered NerDL pipelines as name@alias")
    ap.add_argument("--data", nargs="+", required=True, help="folders of .txt notes")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 8, 4])
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--out", default="bench")
    args = ap.parse_args(argv)
    if any(b < 1 for b in args.batch_sizes) or any("@" not in m for m in args.models):
        ap.error("batch sizes must be >= 1 and models name@alias")

    from clinlake import tracking
    from clinlake.config import load_config
    from clinlake.spark import build_spark

    cfg = load_config(args.env, args.set, lake=args.lake)
    spark = build_spark(cfg, "bench_nerdl")
    cores = spark.sparkContext.defaultParallelism
    results = []
    for ref in args.models:
        name, alias = ref.rsplit("@", 1)
        model, version = tracking.load_spark_model(cfg, name, alias)
        for folder in args.data:
            notes = read_notes(Path(folder))
            tokens = sum(len(t.split()) for _, t in notes) / len(notes)
            print(f"{version} on {folder}: {len(notes)} notes, {tokens:.0f} whitespace tokens/note", flush=True)
            timings = time_sizes(spark, model, notes, args.batch_sizes, args.partitions)
            for t in timings:
                t["notes_per_s_per_core"] = round(len(notes) / t["seconds"] / cores, 3)
            results.append({"model": version, "data": str(folder), "notes": len(notes),
                            "tokens_per_note": round(tokens, 1), "timings": timings})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": cpu_name(),
              "cores": cores, "served_batch_size": int(cfg.scale.get("ner_batch_size") or 0),
              "partitions": args.partitions, "results": results}
    (out / "nerdl.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(results, out / "nerdl.png")
    print(f"wrote {out / 'nerdl.json'} and {out / 'nerdl.png'}")


if __name__ == "__main__":
    main()
