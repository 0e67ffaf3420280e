"""Write sample/vocab/gazetteer_precision.tsv: how often each gazetteer phrase is annotated vs how often it occurs.

For every (label, phrase) of sample/vocab/gazetteer.tsv, counted in the training split its label comes from
(CodiEsp train for DIAGNOSTICO/PROCEDIMIENTO, CANTEMIST train + dev2 for MORFOLOGIA_NEOPLASIA): `annotated` = gold
mentions with that phrase, `occurrences` = times the phrase's tokens occur in the texts (case-blind). The
gazetteer recogniser drops phrases whose annotated / occurrences is below `models.recogniser.precision.min_precision`
(clinlake.recognise.phrases_by_label). Development tool: reads ../shared/corpora, never run by the product.

    .venv/bin/python scripts/make_gazetteer_precision.py [--corpora ../shared/corpora]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    """Count and write the TSV."""
    from clinlake.vocab.gazetteer import _brat_annotations, phrase_key, phrase_precision
    from scripts.make_vocab_sample import CANTEMIST_TRAIN

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    ap.add_argument("--gazetteer", type=Path, default=ROOT / "sample" / "vocab" / "gazetteer.tsv")
    ap.add_argument("--out", type=Path, default=ROOT / "sample" / "vocab" / "gazetteer_precision.tsv")
    args = ap.parse_args()
    phrases: dict[str, set[str]] = defaultdict(set)
    with open(args.gazetteer, encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            phrases[r["label"]].add(r["mention"])
    codiesp = args.corpora / "codiesp" / "train"
    cd_texts = [p.read_text(encoding="utf-8") for p in sorted((codiesp / "text_files").glob("*.txt"))]
    cd_gold: dict[str, list[str]] = defaultdict(list)
    seen = set()
    for line in (codiesp / "trainX.tsv").read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) >= 5 and tuple(cols) not in seen:   # the same verbatim-duplicate rule as the gazetteer
            seen.add(tuple(cols))
            cd_gold[cols[1]].append(cols[3])
    ct_texts: list[str] = []
    ct_gold: dict[str, list[str]] = defaultdict(list)
    for split in CANTEMIST_TRAIN:  # the splits the gazetteer's CANTEMIST mentions come from
        cantemist = args.corpora / "cantemist" / split
        ct_texts += [p.read_text(encoding="utf-8") for p in sorted(cantemist.glob("*.txt"))]
        for mention, label, _ in _brat_annotations(cantemist):
            ct_gold[label].append(mention)
    rows = []
    for label in sorted(phrases):
        texts, gold = (ct_texts, ct_gold) if label == "MORFOLOGIA_NEOPLASIA" else (cd_texts, cd_gold)
        counts = phrase_precision(texts, gold[label], phrases[label])
        rows += [(key, label, a, m) for key, (a, m) in counts.items()]
        # The rule conf/base.yaml applies (min_precision 0.25, min_occurrences 3), so the count printed is what leaves.
        low = sum(1 for _, (a, m) in counts.items() if m >= 3 and a / m < 0.25)
        print(f"{label}: {len(counts)} phrase keys, {low} annotated in < 25 % of 3 or more occurrences",
              file=sys.stderr)
    with open(args.out, "w", encoding="utf-8", newline="") as fh:
        fh.write("phrase_key\tlabel\tannotated\toccurrences\n")
        for key, label, a, m in sorted(rows, key=lambda r: (r[1], r[0])):
            fh.write(f"{key}\t{label}\t{a}\t{m}\n")
    print(f"{len(rows)} rows -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
