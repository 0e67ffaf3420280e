"""Turn a folder of METRICS json files (written by jobs/evaluate.py) into a markdown table with the state of the art.

python scripts/eval_report.py RESULTS_DIR [--out REPORT.md] [--all-keys] [--command "make eval"]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Best published *test-set* scores of each shared task, as quoted in this project's issues (#4, #5, #6), which cite
# the task overviews: MEDDOCAN (IberLEF 2019), CodiEsp (CLEF eHealth 2020), CANTEMIST (IberLEF 2020), PharmaCoNER
# (BioNLP-OST 2019). Figures we could not verify here (CodiEsp-P MAP, CodiEsp-X F1, MEDDOCAN merged F1) are left out
# rather than quoted from memory. Our numbers are on dev splits, so the comparison is indicative only.
STATE_OF_THE_ART: dict[tuple[str, str], dict[str, tuple[float, str]]] = {
    ("deid", "meddocan"): {
        "subtrack1_strict_f1": (0.9696, "best MEDDOCAN system (issue #4)"),
        "subtrack2_strict_f1": (0.9749, "best MEDDOCAN system (issue #4)"),
    },
    ("coding", "codiesp"): {
        "map_d": (0.593, "best CodiEsp-D run (issue #6)"),
    },
    ("ner", "cantemist"): {
        "ner_f1": (0.870, "best CANTEMIST-NER test score (issue #5)"),
        "norm_f1": (0.825, "best CANTEMIST-NORM test score (issue #6)"),
    },
    ("ner", "pharmaconer"): {
        "ner_f1": (0.9105, "best PharmaCoNER NER (issue #5)"),
    },
}

# Keys shown by default: the headline metrics of each task plus throughput.
HEADLINE = ("subtrack1_strict_f1", "subtrack2_strict_f1", "subtrack2_merged_f1", "residual_phi_rate",
            "residual_phi_rate_undetected",
            "map_d", "map_p", "f1_d", "f1_p", "f1_x", "ner_f1", "norm_f1", "negation_f1", "uncertainty_f1",
            "negation_accuracy", "temporality_accuracy", "experiencer_accuracy", "documents", "notes_per_s")


def load_results(folder: Path) -> list[dict]:
    """Every *.json in folder (sorted) that looks like an evaluate output (has task and corpus)."""
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "task" in data and "corpus" in data:
            out.append({**data, "_file": p.name})
    return out


def _fmt(v: object) -> str:
    """Numbers to 4 decimals (integers as they are)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return str(v) if isinstance(v, int) else f"{v:.4f}"


def render(results: list[dict], all_keys: bool = False, command: str | None = None) -> str:
    """Markdown: one row per (task, corpus, metric) with the state of the art next to it where known."""
    lines = ["| task | corpus | run | metric | value | shared-task best (test) |", "|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["task"], r["corpus"], r["_file"])):
        sota = STATE_OF_THE_ART.get((r["task"], r["corpus"]), {})
        keys = [k for k in r if not k.startswith("_") and k not in ("task", "corpus", "mode")]
        if not all_keys:
            keys = [k for k in HEADLINE if k in r]
        for k in keys:
            best = f"{sota[k][0]:.4f} ({sota[k][1]})" if k in sota else ""
            # the run (output file) tells apart two splits of one corpus, e.g. CANTEMIST dev1 and dev2
            lines.append(f"| {r['task']} | {r['corpus']} | {Path(r['_file']).stem} | {k} | {_fmt(r[k])} | {best} |")
    out = "\n".join(lines) + "\n"
    if command:
        out += f"\nProduced by `{command}`.\n"
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: write (or print) the report; exit 2 when the folder is missing or holds no results."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--all-keys", action="store_true", help="every metric, not just the headline ones")
    ap.add_argument("--command", help="command line to cite under the table")
    args = ap.parse_args(argv)
    if not args.folder.is_dir():
        print(f"eval_report: error: not a folder: {args.folder}", file=sys.stderr)
        return 2
    results = load_results(args.folder)
    if not results:
        print(f"eval_report: error: no evaluate METRICS json in {args.folder}", file=sys.stderr)
        return 2
    text = render(results, args.all_keys, args.command)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
