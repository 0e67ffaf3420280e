"""Cut a coded CodiEsp sample from ../shared/corpora for the demo's and CI's code suggester (run once by a
developer; the output is committed).

The first 40 CodiEsp train cases (sorted by file name) with their D and P code lists, in CodiEsp's own layout
(text_files/ + trainD.tsv + trainP.tsv), so `jobs/train_suggester.py` reads it like the full split.
CodiEsp: CC BY 4.0 (attribution in sample/README.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT.parent / "shared" / "corpora" / "codiesp" / "train"
OUT = ROOT / "sample" / "corpora" / "codiesp" / "train"
N_NOTES = 40


def main() -> None:
    """Write sample/corpora/codiesp/train/{text_files/, trainD.tsv, trainP.tsv}."""
    docs = [p.stem for p in sorted((SRC / "text_files").glob("*.txt"))][:N_NOTES]
    (OUT / "text_files").mkdir(parents=True, exist_ok=True)
    for doc in docs:
        shutil.copy(SRC / "text_files" / f"{doc}.txt", OUT / "text_files" / f"{doc}.txt")
    keep = set(docs)
    for name in ("trainD.tsv", "trainP.tsv"):
        lines = [line for line in (SRC / name).read_text(encoding="utf-8").splitlines()
                 if line.split("\t", 1)[0] in keep]
        (OUT / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(docs)} notes -> {OUT}")


if __name__ == "__main__":
    main()
