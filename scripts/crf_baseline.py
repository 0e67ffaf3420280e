"""The issue's calibration baseline: a plain CRF with word-shape features on MEDDOCAN, scored per type on dev.

Not part of the product or the test suite. It needs `pip install sklearn-crfsuite` (python-crfsuite), ideally in a
scratch virtual environment; the brat reader is the project's own (`clinlake.corpora.brat`, pure Python). It trains
on MEDDOCAN train, tags dev, and scores it with the evaluation job's MEDDOCAN scorer (`clinlake.metrics`): it prints
subtrack 1 strict precision, recall and F1 per type in the form of docs/deid.md's table, and `--out` keeps those with
the subtrack 2 scores, so the deployed path can be compared type by type.

    python scripts/crf_baseline.py [--train DIR] [--dev DIR] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clinlake.corpora.brat import read_brat_folder  # noqa: E402
from clinlake.metrics.deid import meddocan_scores  # noqa: E402
from clinlake.metrics.prf import per_label_table  # noqa: E402

TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def shape(word: str) -> str:
    """Collapsed word shape: 'Xx', 'dd', 'X.X.' ..."""
    s = re.sub(r"[A-ZÁÉÍÓÚÑÜ]", "X", word)
    s = re.sub(r"[a-záéíóúñü]", "x", s)
    s = re.sub(r"\d", "d", s)
    return re.sub(r"(.)\1+", r"\1", s)


def word_features(w: str, prefix: str) -> dict[str, object]:
    """The features of one token, keyed with a position prefix."""
    return {f"{prefix}lower": w.lower(), f"{prefix}shape": shape(w), f"{prefix}suf3": w[-3:].lower(),
            f"{prefix}pre3": w[:3].lower(), f"{prefix}title": w.istitle(), f"{prefix}upper": w.isupper(),
            f"{prefix}digit": w.isdigit(), f"{prefix}len": min(len(w), 10)}


def sentence_features(words: list[str]) -> list[dict[str, object]]:
    """Word-shape features of each token and of its neighbours within two positions."""
    out = []
    for i, w in enumerate(words):
        f: dict[str, object] = {"bias": 1.0, **word_features(w, "")}
        for d in (-2, -1, 1, 2):
            j = i + d
            f.update(word_features(words[j], f"{d}:") if 0 <= j < len(words) else {f"{d}:pad": True})
        out.append(f)
    return out


def tokenized_lines(text: str) -> list[list[tuple[int, int]]]:
    """Token offsets per line (a line is the sequence unit: MEDDOCAN's headers are one field per line)."""
    lines, pos = [], 0
    for line in text.split("\n"):
        toks = [(pos + m.start(), pos + m.end()) for m in TOKEN.finditer(line)]
        if toks:
            lines.append(toks)
        pos += len(line) + 1
    return lines


def bio(tokens: list[tuple[int, int]], spans: list[tuple[int, int, str]]) -> list[str]:
    """BIO tags of the tokens from gold spans (a token belongs to the span holding its first character)."""
    tags = ["O"] * len(tokens)
    for s, e, label in spans:
        inside = [i for i, (a, _) in enumerate(tokens) if s <= a < e]
        for k, i in enumerate(inside):
            tags[i] = ("B-" if k == 0 else "I-") + label
    return tags


def spans_of(tokens: list[tuple[int, int]], tags: list[str]) -> set[tuple[int, int, str]]:
    """Spans (start, end, type) from BIO tags; an I- after O or after another type starts a new span."""
    out: list[list] = []
    prev = "O"
    for (a, b), t in zip(tokens, tags):
        if t != "O":
            kind, label = t.split("-", 1)
            if kind == "I" and prev != "O" and prev.split("-", 1)[1] == label:
                out[-1][1] = b
            else:
                out.append([a, b, label])
        prev = t
    return {(s, e, label) for s, e, label in out}


def load(folder: str) -> dict[str, tuple[str, list[list[tuple[int, int]]], list[list[str]], set]]:
    """doc_id -> (text, token lines, tag lines, gold spans)."""
    docs = {}
    for doc_id, text, ann in read_brat_folder(folder):
        gold = {(e.start, e.end, e.type) for e in ann.entities.values()}
        lines = tokenized_lines(text)
        docs[doc_id] = (text, lines, [bio(toks, sorted(gold)) for toks in lines], gold)
    return docs


def main() -> None:
    """Train on train, score on dev, print the tables."""
    import sklearn_crfsuite  # a dev-only dependency (module docstring)

    shared = ROOT / ".." / "shared" / "corpora" / "meddocan"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", default=str(shared / "train"))
    ap.add_argument("--dev", default=str(shared / "dev"))
    ap.add_argument("--c1", type=float, default=0.1)
    ap.add_argument("--c2", type=float, default=0.1)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    t0 = time.time()
    train = load(args.train).values()
    x = [sentence_features([text[a:b] for a, b in toks]) for text, lines, _, _ in train for toks in lines]
    y = [tags for _, _, tag_lines, _ in train for tags in tag_lines]
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=args.c1, c2=args.c2, max_iterations=args.iterations)
    crf.fit(x, y)
    fit_s = time.time() - t0

    gold, pred, texts = {}, {}, {}
    for doc_id, (text, lines, _, doc_gold) in load(args.dev).items():
        texts[doc_id] = text
        gold[doc_id] = {(label, s, e) for s, e, label in doc_gold}
        pred[doc_id] = set()
        for toks in lines:
            tags = crf.predict_single(sentence_features([text[a:b] for a, b in toks]))
            pred[doc_id] |= {(label, s, e) for s, e, label in spans_of(toks, tags)}
    # the evaluation job's own MEDDOCAN scorer and per-label table, so the figures compare with docs/deid.md's
    result: dict[str, object] = {"train_seconds": round(fit_s, 1), **meddocan_scores(gold, pred, texts)}
    rows = per_label_table({(d, *x) for d, xs in gold.items() for x in xs},
                           {(d, *x) for d, xs in pred.items() for x in xs}, label_of=lambda x: x[1])
    result["per_type"] = rows
    print("| type | support | TP | FP | FN | P | R | F1 |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: -r["support"]):
        print(f"| {r['label']} | {r['support']} | {r['tp']} | {r['fp']} | {r['fn']} | {r['precision']:.3f} "
              f"| {r['recall']:.3f} | {r['f1']:.3f} |")
    print(f"\nsubtrack 1 strict P {result['subtrack1_strict_precision']:.4f} R {result['subtrack1_strict_recall']:.4f} "
          f"F1 {result['subtrack1_strict_f1']:.4f}; trained in {fit_s:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
