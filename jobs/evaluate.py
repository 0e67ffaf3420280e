"""Job evaluate: score a corpus split with the shared task's official metrics (submission files or deployed pipeline).

python jobs/evaluate.py --task {deid,ner,coding,assertion} --corpus {meddocan,codiesp,cantemist,pharmaconer,nubes,pairs}
    --data PATH --out METRICS.json [--predictions PATH] [--model-alias champion] [--lake DIR] [--set key=value ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from a checkout

from clinlake.evaluation.run import main  # noqa: E402

if __name__ == "__main__":
    main()
