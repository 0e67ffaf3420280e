"""`make eval`: every dev-set evaluation available, through jobs/evaluate.py (deployed-pipeline mode), then a report.

Needs the demo lake (vocabulary tables + registered models); runs `make demo`'s chain first when it is missing.
Corpora come from ../shared/corpora (development data; never needed at run time by the product).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

# (task, corpus, data path relative to the corpora root, output name)
RUNS = [
    ("deid", "meddocan", "meddocan/dev", "deid_meddocan_dev"),
    ("coding", "codiesp", "codiesp/dev", "coding_codiesp_dev"),
    ("ner", "cantemist", "cantemist/dev1", "ner_cantemist_dev1"),
    ("ner", "cantemist", "cantemist/dev2", "ner_cantemist_dev2"),
    ("ner", "pharmaconer", "pharmaconer/dev.txt", "ner_pharmaconer_dev"),
    ("assertion", "nubes", "nubes", "assertion_nubes_001_008"),
]
SAMPLE_RUNS = [
    ("assertion", "pairs", ROOT / "sample/assertion/pairs_en.tsv", "assertion_pairs_en_sample"),
    ("assertion", "pairs", ROOT / "sample/assertion/pairs_es.tsv", "assertion_pairs_es_sample"),
]


def main() -> int:
    """Run what is runnable, keep going on failures, write the markdown report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "eval")
    ap.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    ap.add_argument("--lake", default=None)
    ap.add_argument("--env", default=None, help="configuration environment passed to every job (e.g. full)")
    ap.add_argument("--set", action="append", default=[], help="key=value override passed to every job")
    args = ap.parse_args()
    passthrough = (["--env", args.env] if args.env else []) + [x for kv in args.set for x in ("--set", kv)]
    args.out.mkdir(parents=True, exist_ok=True)
    lake = args.lake or str(ROOT / "lake")
    if not (Path(lake) / "note_nlp").exists():
        subprocess.run([PY, str(ROOT / "scripts" / "demo.py"), "--lake", lake, *passthrough], check=True)
    runs = [(t, c, args.corpora / d, n) for t, c, d, n in RUNS] + SAMPLE_RUNS
    failed = []
    for task, corpus, data, name in runs:
        data = Path(data)
        if corpus == "pharmaconer" and not data.exists():
            data = next(iter(sorted(data.parent.glob("*dev*"))), data)
        if not data.exists():
            print(f"eval: skip {name}: {data} not found")
            continue
        cmd = [PY, str(ROOT / "jobs" / "evaluate.py"), "--task", task, "--corpus", corpus, "--data", str(data),
               "--out", str(args.out / f"{name}.json"), "--lake", lake, *passthrough]
        print("eval:", " ".join(cmd[1:]), flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(name)
    subprocess.run([PY, str(ROOT / "scripts" / "eval_report.py"), str(args.out), "--out", str(args.out / "REPORT.md"),
                    "--command", "make eval"], check=True)
    print(f"eval: report in {args.out / 'REPORT.md'}; failed or unavailable: {', '.join(failed) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
