"""Build the PHI phrase list (clinlake.deid.phrases) from a brat training split, MEDDOCAN train by default.

A phrase is an annotated mention of one of the labels; it is kept when it has at least --min-chars characters
and, over its whole-word occurrences in the training texts, the annotators gave exactly that span that label in
at least --min-precision of them ("Madrid" yes; a word that is a place only now and then, no). Development tool:
reads ../shared; the product reads only the TSV it writes.

    .venv/bin/python scripts/make_deid_phrases.py [--out sample/deid/phi_phrases.tsv]
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clinlake.corpora.readers import read_brat_corpus  # noqa: E402
from clinlake.deid.phrases import LETTER, find_phrases  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LABELS = "INSTITUCION,HOSPITAL,CENTRO_SALUD,TERRITORIO,PAIS"


def main() -> None:
    """Write phrase, label, gold, occurrences for every phrase that passes the filters."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default=str(ROOT / ".." / "shared" / "corpora" / "meddocan" / "train"))
    ap.add_argument("--labels", default=LABELS, help="comma-separated PHI labels")
    ap.add_argument("--min-chars", type=int, default=4)
    ap.add_argument("--min-precision", type=float, default=0.5)
    ap.add_argument("--out", default=str(ROOT / "sample" / "deid" / "phi_phrases.tsv"))
    args = ap.parse_args()
    labels = set(args.labels.split(","))
    corpus = read_brat_corpus(args.train)
    by_phrase: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    gold: set[tuple[str, int, int, str]] = set()
    for doc, mentions in (corpus.mentions or {}).items():
        for m in mentions:
            gold.add((doc, m.start, m.end, m.label))
            if m.label in labels:
                by_phrase[corpus.notes[doc][m.start:m.end]][m.label] += 1
    rows = []
    for phrase, counts in by_phrase.items():
        if len(phrase) < args.min_chars or "\n" in phrase or "\t" in phrase or not LETTER.search(phrase):
            continue  # postal codes and other numbers: the context rules' job, not a list's
        label = counts.most_common(1)[0][0]
        seen = hit = 0
        for doc, text in corpus.notes.items():  # the product's matcher, so the filter measures what it will match
            for m in find_phrases(text, ((phrase, label),)):
                seen += 1
                hit += (doc, m.start, m.end, label) in gold
        if seen and hit / seen >= args.min_precision:
            rows.append((phrase, label, hit, seen))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as fh:  # no quoting: phrases hold no tab or newline
        fh.write("phrase\tlabel\tgold\toccurrences\n")
        fh.writelines(f"{p}\t{lab}\t{hit}\t{seen}\n" for p, lab, hit, seen in sorted(rows))
    print(f"{len(rows)} phrases of {len(by_phrase)} -> {args.out}")


if __name__ == "__main__":
    main()
