"""Generate a NerDL TensorFlow graph (blstm_<tags>_<dim>_<lstm>_<chars>.pb) with Spark NLP's own builder.

A build-time tool, never needed at run time. It runs under a separate interpreter that has TensorFlow 2.12
(TF pins numpy differently from the product's .venv), and borrows Spark NLP's Python package from .venv:

    python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.12.1 tensorflow-addons==0.20.0
    /tmp/tfvenv/bin/python scripts/build_nerdl_graph.py --tags 43 --dim 100 --out clinlake/ner/graphs

Point a recogniser at the folder with models.ner.models.<m>.graph_dir (models.deid.graph_dir for the deid model).
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Parse the sizes and write the graph into --out."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, required=True, help="tag count the graph must hold (BIO: 2 x labels + 1)")
    ap.add_argument("--dim", type=int, required=True, help="word embedding size")
    ap.add_argument("--lstm", type=int, default=128, help="BiLSTM units per direction (bundled graphs: 128)")
    ap.add_argument("--chars", type=int, default=200, help="distinct characters the char CNN can hold")
    ap.add_argument("--out", default=str(ROOT / "clinlake" / "ner" / "graphs"), help="folder to write into")
    args = ap.parse_args(argv)
    # Spark NLP's builder lives in the product's environment; TensorFlow in this one.
    sys.path.extend(glob.glob(str(ROOT / ".venv" / "lib" / "python3*" / "site-packages")))
    from sparknlp.training.tfgraphs import tf_graph  # noqa: PLC0415 - needs the path above

    Path(args.out).mkdir(parents=True, exist_ok=True)
    tf_graph.build("ner_dl", build_params={"embeddings_dim": args.dim, "nchars": args.chars, "ntags": args.tags,
                                           "lstm_size": args.lstm, "is_medical": False},
                   model_location=args.out, model_filename="auto")
    print(f"{args.out}/blstm_{args.tags}_{args.dim}_{args.lstm}_{args.chars}.pb")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
