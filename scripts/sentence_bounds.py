"""How many gold spans fit inside one sentence, for the configured sentence detector and Spark NLP's defaults.

A span that crosses a sentence bound cannot come back whole from a NerDL model (NerConverter never joins a
chunk across sentences), so this count is a ceiling on strict recall. Development tool: reads ../shared.

    .venv/bin/python scripts/sentence_bounds.py [--docs 300] [DIR ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clinlake.config import load_config  # noqa: E402
from clinlake.corpora.readers import read_brat_corpus  # noqa: E402
from clinlake.ner.settings import with_model_defaults  # noqa: E402
from clinlake.ner.tokens import fit_text_pipeline  # noqa: E402
from clinlake.spark import build_spark  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"
DEFAULT_DIRS = ["meddocan/train", "meddocan/dev", "cantemist/train"]
VARIANTS = {
    "spark-nlp default": {"sentence_bounds": None, "detect_lists": True, "sentence_bounds_only": False},
    "detect_lists false": {"sentence_bounds": None, "detect_lists": False, "sentence_bounds_only": False},
    "configured": {},
}


def crossing(bounds: list[tuple[int, int]], spans: list[tuple[int, int]]) -> int:
    """Spans [start, end) not inside any one sentence [begin, end)."""
    return sum(1 for s, e in spans if not any(b <= s and e <= f for b, f in bounds))


def main() -> None:
    """Print, per directory and detector, sentences and gold spans not inside one sentence."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", default=DEFAULT_DIRS, help="brat folders under ../shared/corpora")
    ap.add_argument("--docs", type=int, default=300, help="first N notes of each folder (sorted)")
    args = ap.parse_args()
    cfg = with_model_defaults(load_config("local", [], lake=tempfile.mkdtemp(prefix="sentence-bounds-")))
    spark = build_spark(cfg, "sentence_bounds")
    print("| folder | detector | sentences | gold spans | not inside one sentence |")
    print("|---|---|---:|---:|---:|")
    for d in args.dirs:
        corpus = read_brat_corpus(SHARED / d)
        ids = sorted(corpus.notes)[: args.docs]
        df = spark.createDataFrame([(i, corpus.notes[i]) for i in ids], "doc_id string, note_text string").cache()
        for name, override in VARIANTS.items():
            text_cfg = OmegaConf.merge(cfg.models.text, override)
            rows = fit_text_pipeline(spark, text_cfg).transform(df).selectExpr(
                "doc_id", "transform(sentence, s -> array(s.begin, s.end + 1)) AS b").collect()
            n_sent = n_span = n_cross = 0
            for r in rows:
                bounds = [(b[0], b[1]) for b in r["b"]]
                spans = [(m.start, m.end) for m in (corpus.mentions or {}).get(r["doc_id"], [])]
                n_sent += len(bounds)
                n_span += len(spans)
                n_cross += crossing(bounds, spans)
            print(f"| {d} | {name} | {n_sent} | {n_span} | {n_cross} |", flush=True)
        df.unpersist()
    spark.stop()


if __name__ == "__main__":
    main()
