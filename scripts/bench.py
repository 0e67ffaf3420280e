"""`make bench`: per-stage and end-to-end notes/s per core on synthetic lakes, against the raw-copy limit.

For each size N: generate N synthetic notes (+ one 1 MB note) -> fresh lake; build the vocabulary and the gazetteer
model (not timed); then time ingest_notes, deidentify_notes, extract_concepts and, on the same `note` table, the raw
limit (read `note`, write it back as Delta, no NLP); then add 1 % new notes and time the incremental rerun of the
chain. Peak memory: the local-mode executor is the driver JVM plus its Python workers; a sampler thread reads their
proportional set sizes (PSS) from /proc every 0.2 s, per stage and for the JVM and the workers apart (the JVM's own
peak RSS is also read from VmHWM).

    .venv/bin/python scripts/bench.py --sizes 10000 100000 --out bench

Writes <out>/results.json, <out>/bench.png and the table in <out>/README.md; lakes go to <out>/work (git-ignored
only if you put them elsewhere: use --work /tmp/... for big sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from clinlake.procs import cmdline, descendants  # noqa: E402


# ------------------------------------------------------------------------------------------------ memory sampling
def _rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages split among sharers, so forked Python workers are not counted twice."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return _rss_bytes(pid)
    return 0


def _hwm_bytes(pid: int) -> int:
    """Peak resident set size the kernel recorded for one process."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def worker_pids(jvm_pid: int, jvm_cmd: bytes) -> list[int]:
    """The JVM's descendants that are separate processes (Python workers), not momentary copies of the JVM.

    Hadoop's local file system shells out (`chmod` on every file Delta writes) through jspawnhelper; for an instant
    before `exec` the child is a copy of the JVM with the JVM's command line and up to its whole PSS. Counting those
    copies had doubled the reported peak (9.8 GB) at random.
    """
    return [p for p in descendants(jvm_pid) if cmdline(p) != jvm_cmd]


class MemorySampler(threading.Thread):
    """Samples JVM + Python-worker PSS; peak() gives the largest sum seen since the last reset(), parts() the
    largest JVM and Python-worker shares on their own (to tell which side of a stage holds the memory)."""

    def __init__(self, jvm_pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.jvm_pid, self.every, self._stop = jvm_pid, every, threading.Event()
        self._peak = self._jvm = self._py = 0

    def run(self) -> None:
        jvm_cmd = cmdline(self.jvm_pid)
        while not self._stop.is_set():
            jvm = _pss_bytes(self.jvm_pid)
            py = sum(_pss_bytes(p) for p in worker_pids(self.jvm_pid, jvm_cmd))
            self._peak, self._jvm, self._py = max(self._peak, jvm + py), max(self._jvm, jvm), max(self._py, py)
            time.sleep(self.every)

    def reset(self) -> None:
        self._peak = self._jvm = self._py = 0

    def peak(self) -> int:
        return self._peak

    def parts(self) -> dict[str, float]:
        """GB: peak total, peak JVM alone, peak Python workers alone, since the last reset()."""
        return {"total": round(self._peak / 2**30, 3), "jvm": round(self._jvm / 2**30, 3),
                "python_workers": round(self._py / 2**30, 3)}

    def stop(self) -> None:
        self._stop.set()


def _jvm_pid(spark) -> int:
    """pid of the driver JVM (pyspark launched it; spark-submit's script execs java in place)."""
    proc = spark.sparkContext._gateway.proc  # noqa: SLF001 - the only handle pyspark keeps on the JVM process
    return int(proc.pid)


# ------------------------------------------------------------------------------------------------ the run
def timed(label: str, fn, *args):
    """(result, seconds) of one call, printed."""
    t = time.time()
    out = fn(*args)
    secs = time.time() - t
    print(f"bench: {label}: {secs:.1f}s", flush=True)
    return out, secs


def raw_copy(spark, cfg) -> int:
    """The limit: read `note` and write it back as Delta, no NLP."""
    from clinlake.config import lake_path

    notes = spark.read.format("delta").load(lake_path(cfg, "note"))
    notes.write.format("delta").mode("overwrite").save(lake_path(cfg, "_bench_raw_copy"))
    return notes.count()


def bench_size(spark, gen, n: int, work: Path, seed: int, sets: list[str], cores: int, sampler,
               huge_chars: int = 1_000_000) -> dict:
    """One size: generate, prepare, time the stages, the raw copy and the 1 % incremental rerun."""
    from clinlake import tracking
    from clinlake.config import load_config
    from jobs import build_vocabulary, deidentify_notes, extract_concepts, ingest_notes, train_ner

    ns = argparse.Namespace
    root = work / str(n)
    shutil.rmtree(root, ignore_errors=True)
    cfg = load_config("local", sets + [f"mlflow.dir={root / 'mlruns'}"], lake=str(root / "lake"))
    tracking.configure(cfg)
    _, gen_s = timed(f"{n}: generate", lambda: gen.write_lake(
        gen.generate(spark, n, seed=seed, huge_notes=1 if huge_chars else 0, huge_chars=huge_chars),
        str(root / "raw")))
    build_vocabulary.run(spark, cfg, ns())
    train_ner.run(spark, cfg, ns(model="gazetteer"))
    stage_memory: dict[str, dict[str, float]] = {}

    def measured(stage: str, label: str, fn, *args):
        """timed(), with the stage's own memory peak (total, JVM, Python workers) kept in stage_memory."""
        sampler.reset()
        out = timed(label, fn, *args)
        stage_memory[stage] = sampler.parts()
        return out

    ing, ing_s = measured("ingest", f"{n}: ingest_notes", ingest_notes.run, spark, cfg,
                          ns(input=str(root / "raw" / "notes"), format="parquet"))
    deid, deid_s = measured("deidentify", f"{n}: deidentify_notes", deidentify_notes.run, spark, cfg, ns())
    ext, ext_s = measured("extract", f"{n}: extract_concepts", extract_concepts.run, spark, cfg, ns(model_alias=None))
    peak = max(m["total"] for m in stage_memory.values()) * 2**30
    print(f"bench: {n}: peak memory per stage (GB): {stage_memory}", flush=True)
    _, raw_s = timed(f"{n}: raw copy", raw_copy, spark, cfg)
    # 1 % new notes arrive (new ids after the existing ones): the chain reruns on them only.
    n_new = max(1, n // 100)
    gen.write_lake(gen.generate(spark, n_new, seed=seed + 1, first_id=n + 10), str(root / "raw_new"))
    inc_ing, inc_ing_s = timed(f"{n}: +1% ingest", ingest_notes.run, spark, cfg,
                               ns(input=str(root / "raw_new" / "notes"), format="parquet"))
    inc_deid, inc_deid_s = timed(f"{n}: +1% deidentify", deidentify_notes.run, spark, cfg, ns())
    inc_ext, inc_ext_s = timed(f"{n}: +1% extract", extract_concepts.run, spark, cfg, ns(model_alias=None))
    total = n + (1 if huge_chars else 0)
    nlp_s = deid_s + ext_s
    full_s = ing_s + nlp_s
    inc_s = inc_ing_s + inc_deid_s + inc_ext_s
    per_core = lambda secs, k=total: round(k / secs / cores, 3) if secs else None  # noqa: E731
    chars = spark.read.parquet(str(root / "raw" / "notes")).selectExpr("avg(length(note_text)) a",
                                                                      "max(length(note_text)) m").first()
    return {
        "notes": total, "new_notes_1pct": n_new, "avg_chars": round(chars["a"]), "max_chars": chars["m"],
        "seconds": {"generate": round(gen_s, 1), "ingest": round(ing_s, 1), "deidentify": round(deid_s, 1),
                    "extract": round(ext_s, 1), "end_to_end": round(nlp_s, 1), "chain_with_ingest": round(full_s, 1),
                    "raw_copy": round(raw_s, 1), "incremental_1pct_chain": round(inc_s, 1),
                    "incremental_1pct_per_stage": {"ingest": round(inc_ing_s, 1), "deidentify": round(inc_deid_s, 1),
                                                   "extract": round(inc_ext_s, 1)}},
        "notes_per_s_per_core": {"generate": per_core(gen_s), "ingest": per_core(ing_s),
                                 "deidentify": per_core(deid_s), "extract": per_core(ext_s),
                                 "end_to_end": per_core(nlp_s), "chain_with_ingest": per_core(full_s),
                                 "raw_copy": per_core(raw_s)},
        "incremental_1pct_time_ratio": round(inc_s / full_s, 4),
        "peak_executor_memory_gb": round(peak / 2**30, 3),
        "peak_memory_gb_per_stage": stage_memory,
        "counts": {"accepted": ing["accepted"], "deidentified": deid["deidentified"],
                   "deid_quarantined": deid["quarantined"], "concepts": ext["concepts_written"],
                   "incremental_processed": [inc_ing["new_in_note"], inc_deid["notes_processed"],
                                             inc_ext["notes_processed"]]},
        "models": {"deid": deid["deid_system"], "ner": ext["model"]},
        # where the NLP stages' time goes, full run and +1 % run (clinlake.cli.Steps): fixed costs show up here
        "step_seconds": {"full": {"deidentify": deid.get("step_seconds"), "extract": ext.get("step_seconds")},
                         "incremental_1pct": {"deidentify": inc_deid.get("step_seconds"),
                                              "extract": inc_ext.get("step_seconds")}},
    }


def plot(results: dict, path: Path) -> None:
    """Notes/s per core per stage and size, with the raw-copy limit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = ["ingest", "deidentify", "extract", "end_to_end", "raw_copy"]
    sizes = [r["notes"] for r in results["runs"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(len(sizes), 1)
    for i, r in enumerate(results["runs"]):
        vals = [r["notes_per_s_per_core"][s] or 0 for s in stages]
        ax1.bar([j + i * width for j in range(len(stages))], vals, width, label=f"{r['notes']:,} notes")
    ax1.set_xticks([j + width * (len(sizes) - 1) / 2 for j in range(len(stages))], stages, rotation=20)
    ax1.set_yscale("log")
    ax1.set_ylabel("notes / s / core (log)")
    ax1.legend()
    ax1.set_title("throughput per stage")
    ax2.plot(sizes, [r["seconds"]["end_to_end"] for r in results["runs"]], "o-", label="end-to-end (deid+extract)")
    ax2.plot(sizes, [r["seconds"]["raw_copy"] for r in results["runs"]], "s-", label="raw copy")
    if sizes:
        s0, t0 = sizes[0], results["runs"][0]["seconds"]["end_to_end"]
        ax2.plot(sizes, [t0 * s / s0 for s in sizes], "k:", label="linear from smallest")
    ax2.set_xlabel("notes")
    ax2.set_ylabel("seconds")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.legend()
    ax2.set_title("time vs size")
    fig.suptitle(f"clinlake bench, {results['machine']['cores_used']} core(s), {results['machine']['cpu']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def readme_table(results: dict) -> str:
    """Markdown table of one results.json."""
    rows = ["| notes | avg chars | ingest | deidentify | extract | end-to-end | raw copy | e2e / raw | "
            "+1 % rerun / full | peak exec. mem GB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        p = r["notes_per_s_per_core"]
        ratio = round(p["end_to_end"] / p["raw_copy"], 4) if p["raw_copy"] else None
        rows.append(f"| {r['notes']:,} | {r['avg_chars']} | {p['ingest']} | {p['deidentify']} | {p['extract']} | "
                    f"{p['end_to_end']} | {p['raw_copy']} | {ratio} | {r['incremental_1pct_time_ratio']} | "
                    f"{r['peak_executor_memory_gb']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """CLI."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--out", default="bench")
    ap.add_argument("--work", default=None, help="where the lakes go (default <out>/work; deleted unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the generated lakes")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cores", type=int, default=2, help="local[N]: cores given to Spark")
    # 2g: the executor heap the ≤ 4 GB target is measured at (bench/README.md); the jobs' own default (6g) is sized
    # for NerDL training, not for the chain.
    ap.add_argument("--memory", default="2g", help="driver(=executor in local mode) heap")
    ap.add_argument("--huge-chars", type=int, default=1_000_000, help="size of the one huge note (0 = none)")
    ap.add_argument("--set", action="append", default=[],
                    help="extra config overrides key=value; a Spark setting for A/B runs is spark.conf.<key>=<value>")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else out / "work"
    sets = [f"spark.master=local[{args.cores}]", *args.set]

    import make_synthetic_lake as gen

    from clinlake.cli import setup_logging
    from clinlake.config import load_config
    from clinlake.spark import build_spark

    setup_logging()
    cfg = load_config("local", sets)
    # The bench's own sizing; `--set spark.conf.<key>=<value>` reaches the session too (config.spark_settings
    # joins the nested keys), which is how the A/B runs in bench/README.md vary one Spark setting.
    cfg.spark.conf["spark.driver.memory"] = args.memory
    cfg.spark.conf["spark.sql.shuffle.partitions"] = max(2, args.cores * 2)
    spark = build_spark(cfg, "clinlake-bench")
    sampler = MemorySampler(_jvm_pid(spark))
    sampler.start()
    started = time.time()
    runs: list[dict] = []
    try:
        for n in sorted(args.sizes):
            runs.append(bench_size(spark, gen, n, work, args.seed, sets, args.cores, sampler, args.huge_chars))
            # written after every size, so a long run that is stopped still leaves its numbers
            results = summarise(runs, args, argv, spark, started)
            (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    finally:
        sampler.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    plot(results, out / "bench.png")
    _update_readme(out / "README.md", results)
    print(json.dumps({k: v for k, v in results.items() if k not in ("runs", "definitions")}, indent=2))
    spark.stop()


def summarise(runs: list[dict], args: argparse.Namespace, argv: list[str] | None, spark, started: float) -> dict:
    """results.json content for the sizes measured so far."""
    small, large = runs[0], runs[-1]
    scaling = None
    if large["notes"] != small["notes"]:
        scaling = round((large["seconds"]["end_to_end"] / small["seconds"]["end_to_end"])
                        / (large["notes"] / small["notes"]), 3)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor())
    e2e, raw = large["notes_per_s_per_core"]["end_to_end"], large["notes_per_s_per_core"]["raw_copy"]
    return {
        "command": "scripts/bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpu": cpu, "cpus_visible": os.cpu_count(), "cores_used": args.cores,
                    "load_average_at_end": os.getloadavg(), "memory_heap": args.memory,
                    "python": platform.python_version(), "spark": spark.version},
        "definitions": {
            "end_to_end": "deidentify_notes + extract_concepts (de-id, NER, assertion, resolution, Delta writes)",
            "raw_copy": "read `note` and write it back as Delta, no NLP, same data",
            "per_core": "notes / wall seconds / cores given to Spark (local[N])",
            "peak_executor_memory_gb": "max over the timed stages of PSS(driver JVM = local executor) + PSS(Python "
                                       "workers), sampled every 0.2 s from /proc/<pid>/smaps_rollup",
            "peak_memory_gb_per_stage": "per timed stage: peak of that sum, and the peaks of the JVM and of the "
                                        "Python workers on their own",
            "scaling_time_ratio": "(end-to-end time largest / smallest) / (largest size / smallest size)",
            "incremental_1pct_time_ratio": "(ingest+deid+extract on 1 % new notes) / (ingest+deid+extract full)",
        },
        "end_to_end_notes_per_s_per_core": e2e,
        "raw_copy_notes_per_s_per_core": raw,
        "end_to_end_over_raw_copy": round(e2e / raw, 5) if raw else None,
        "scaling_time_ratio": scaling,
        "peak_executor_memory_gb": max(r["peak_executor_memory_gb"] for r in runs),
        "jvm_peak_rss_gb_vmhwm": round(_hwm_bytes(_jvm_pid(spark)) / 2**30, 3),
        "incremental_1pct_time_ratio": large["incremental_1pct_time_ratio"],
        "huge_note_chars": args.huge_chars,
        "runs": runs,
        "wall_seconds": round(time.time() - started, 1),
    }


def _update_readme(path: Path, results: dict) -> None:
    """Replace the generated block of bench/README.md (between the markers) with this run's table."""
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    m = results["machine"]
    block = (f"{start}\nCommand: `{results['command']}` - machine: {m['cpu']}, {m['cores_used']} of "
             f"{m['cpus_visible']} visible cores given to Spark (local mode), heap {m['memory_heap']}, "
             f"load average at the end {tuple(round(x, 1) for x in m['load_average_at_end'])}.\n\n"
             f"notes/s per core:\n\n{readme_table(results)}\n\n"
             f"scaling_time_ratio = {results['scaling_time_ratio']}, end-to-end / raw copy = "
             f"{results['end_to_end_over_raw_copy']}, peak executor memory = {results['peak_executor_memory_gb']} GB "
             f"(JVM VmHWM {results['jvm_peak_rss_gb_vmhwm']} GB).\n{end}")
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Benchmark\n\n{start}\n{end}\n"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text += "\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
