"""Precision/recall per PHI type on MEDDOCAN dev (strict span+label, and overlap recall): rules, or rules + model.

Rules alone by default. `--model-spans FILE` adds a model's spans (JSON lines `{"doc_id", "spans": [{start, end,
label, score}]}`, e.g. dumped from `deid.with_model_spans` over the dev texts) and scores the merged path the
deidentify job runs, so merge-policy changes can be measured without re-running the model.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinlake.corpora.brat import read_brat_folder  # noqa: E402
from clinlake.deid.phrases import load_phrases  # noqa: E402
from clinlake.deid.replace import DeidPolicy  # noqa: E402
from clinlake.deid.types import Span  # noqa: E402
from udfs.deid import _model_span, detect_spans  # noqa: E402


def read_model_spans(path: str) -> dict[str, list[Span]]:
    """doc_id -> model spans, from a JSON-lines dump."""
    out: dict[str, list[Span]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            out[row["doc_id"]] = [_model_span(s) for s in row["spans"]]  # as the deidentify UDF reads them
    return out


def main() -> None:
    """Print a per-type table: gold, predicted, strict TP/P/R and the share of gold spans touched by any rule."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--folder", default=str(ROOT / ".." / "shared" / "corpora" / "meddocan" / "dev"))
    ap.add_argument("--show-fn", default="", help="print missed gold spans of this type")
    ap.add_argument("--show-fp", default="", help="print false positives of this type")
    ap.add_argument("--model-spans", default="", help="JSON lines of model spans per doc_id, merged with the rules")
    ap.add_argument("--phrases", default=str(Path(__file__).resolve().parents[1] / "sample" / "deid" / "phi_phrases.tsv"),
                    help="PHI phrase list (deid.phrases); '' for none")
    args = ap.parse_args()
    policy = DeidPolicy(phrases=load_phrases(args.phrases) if args.phrases else ())
    model = read_model_spans(args.model_spans) if args.model_spans else {}
    gold_n, pred_n, tp, touched = (collections.Counter() for _ in range(4))
    chars_gold = chars_hit = 0
    for doc_id, text, ann in read_brat_folder(args.folder):
        gold = {(e.start, e.end, e.type) for e in ann.entities.values()}
        spans = detect_spans(text, model.get(doc_id, []), policy)
        pred = {(s.start, s.end, s.label) for s in spans}
        covered = [False] * (len(text) + 1)
        for s, e, _ in pred:
            for i in range(s, e):
                covered[i] = True
        for s, e, t in gold:
            gold_n[t] += 1
            chars_gold += e - s
            chars_hit += sum(covered[s:e])
            if any(covered[s:e]):
                touched[t] += 1
            elif t == args.show_fn:
                print("FN", doc_id, repr(text[max(0, s - 30):s]), "[[", text[s:e], "]]", repr(text[e:e + 15]))
        for p in pred:
            pred_n[p[2]] += 1
            if p in gold:
                tp[p[2]] += 1
            elif p[2] == args.show_fp:
                s, e, _ = p
                gl = [x for x in gold if x[0] < e and s < x[1]]
                print("FP", doc_id, repr(text[max(0, s - 30):s]), "[[", text[s:e], "]]", repr(text[e:e + 15]), gl)
    print(f"{'type':36s} {'gold':>5s} {'pred':>5s} {'tp':>5s} {'P':>6s} {'R':>6s} {'touchR':>6s}")
    for t in sorted(set(gold_n) | set(pred_n), key=lambda x: -gold_n[x]):
        p = tp[t] / pred_n[t] if pred_n[t] else 0.0
        r = tp[t] / gold_n[t] if gold_n[t] else 0.0
        tr = touched[t] / gold_n[t] if gold_n[t] else 0.0
        print(f"{t:36s} {gold_n[t]:5d} {pred_n[t]:5d} {tp[t]:5d} {p:6.3f} {r:6.3f} {tr:6.3f}")
    all_tp, all_p, all_g = sum(tp.values()), sum(pred_n.values()), sum(gold_n.values())
    print(f"{'ALL (strict)':36s} {all_g:5d} {all_p:5d} {all_tp:5d} {all_tp / all_p:6.3f} {all_tp / all_g:6.3f}")
    print(f"gold PHI characters covered by some span: {chars_hit / chars_gold:.3f}")


if __name__ == "__main__":
    main()
