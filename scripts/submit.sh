#!/usr/bin/env bash
# Submit a clinlake job to a Spark cluster (standalone, YARN, k8s) the way a data engineer would:
# the project's code travels as an archive built from this checkout (a wheel, or a zip of clinlake/ + udfs/
# when no wheel can be built offline), the Spark NLP / Delta jars with --jars, and the Python environment is
# either already on every worker (CLINLAKE_PYTHON, the default: this .venv's interpreter, i.e. a shared image)
# or shipped as a packed environment (CLINLAKE_PACKED_ENV=env.tar.gz from venv-pack/conda-pack, --archives).
#
# Usage:
#   scripts/submit.sh build                                   # (re)build dist/clinlake_code.zip only
#   scripts/submit.sh [--master URL] [--conf k=v]... [--rebuild] jobs/<job>.py [job args...]
# Examples:
#   scripts/submit.sh --master spark://127.0.0.1:7077 jobs/ingest_notes.py --lake /data/lake --input raw/ --format parquet
#   CLINLAKE_PACKED_ENV=dist/env.tar.gz scripts/submit.sh --master yarn jobs/extract_concepts.py --env cluster
# Environment:
#   SPARK_MASTER         default master when --master is not given (default local[2])
#   CLINLAKE_PYTHON      interpreter path valid on every worker (default: <repo>/.venv/bin/python)
#   CLINLAKE_PACKED_ENV  packed environment tar.gz; workers then run ./environment/bin/python from it
#   CLINLAKE_JARS_LOCAL  1 = the jars already sit at the same paths on every node (local: URIs, nothing copied)
#   SUBMIT_EXTRA         extra spark-submit options (word-split), e.g. "--executor-memory 2g --driver-memory 2g"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${CLINLAKE_DRIVER_PYTHON:-$ROOT/.venv/bin/python}"
SPARK_SUBMIT="${SPARK_SUBMIT:-$ROOT/.venv/bin/spark-submit}"
CODE_ZIP="$ROOT/dist/clinlake_code.zip"

build_code() {
  # A wheel is the unit a data engineer ships; Spark extracts .zip archives, so the wheel (a zip) is renamed.
  mkdir -p "$ROOT/dist"
  rm -f "$ROOT"/dist/clinlake-*.whl
  if (cd "$ROOT" && "$PY" -m pip wheel --no-deps -q -w dist . >/dev/null 2>&1); then
    cp "$ROOT"/dist/clinlake-*.whl "$CODE_ZIP.tmp"
    echo "submit.sh: built $(ls "$ROOT"/dist/clinlake-*.whl) -> $CODE_ZIP" >&2
  else
    # Offline fallback: the same packages (with their data files) zipped from the checkout.
    (cd "$ROOT" && "$PY" - "$CODE_ZIP.tmp" <<'EOF'
import sys, zipfile
from pathlib import Path
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for pkg in ("clinlake", "udfs"):
        for p in sorted(Path(pkg).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                z.write(p, p.as_posix())
EOF
    )
    echo "submit.sh: no wheel could be built (offline?); zipped clinlake/ + udfs/ -> $CODE_ZIP" >&2
  fi
  mv "$CODE_ZIP.tmp" "$CODE_ZIP"
}

MASTER="${SPARK_MASTER:-local[2]}"
CONFS=()
REBUILD=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    build) build_code; exit 0 ;;
    --master) MASTER="$2"; shift 2 ;;
    --conf) CONFS+=(--conf "$2"); shift 2 ;;
    --rebuild) REBUILD=1; shift ;;
    --) shift; break ;;
    -*) echo "submit.sh: unknown option $1 (spark-submit options go in SUBMIT_EXTRA)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { echo "usage: scripts/submit.sh [--master URL] [--conf k=v] jobs/<job>.py [args]" >&2; exit 2; }
JOB="$1"; shift
[[ -f "$JOB" || -f "$ROOT/$JOB" ]] || { echo "submit.sh: job script not found: $JOB" >&2; exit 2; }
[[ -f "$JOB" ]] || JOB="$ROOT/$JOB"
[[ -f "$ROOT/jars/classpath.txt" ]] || { echo "submit.sh: jars/classpath.txt missing: run make setup" >&2; exit 2; }
if [[ $REBUILD -eq 1 || ! -f "$CODE_ZIP" ]]; then build_code; fi

JARS="$(tr -d '\n' < "$ROOT/jars/classpath.txt")"
if [[ "${CLINLAKE_JARS_LOCAL:-0}" == "1" ]]; then
  JARS="$(echo "$JARS" | sed -e 's#^#local:#' -e 's#,#,local:#g')"
fi
ARCHIVES="$CODE_ZIP#clinlake_code"
if [[ -n "${CLINLAKE_PACKED_ENV:-}" ]]; then
  ARCHIVES="$ARCHIVES,$CLINLAKE_PACKED_ENV#environment"
  WORKER_PY="./environment/bin/python"
else
  WORKER_PY="${CLINLAKE_PYTHON:-$ROOT/.venv/bin/python}"
fi

# The driver runs the job script from this checkout (client mode); the executors' Python workers import the
# shipped code first (PYTHONPATH is relative to each executor's working folder, where archives are unpacked).
export PYSPARK_DRIVER_PYTHON="$PY"
# shellcheck disable=SC2086
exec "$SPARK_SUBMIT" \
  --master "$MASTER" \
  --name "clinlake-$(basename "$JOB" .py)" \
  --jars "$JARS" \
  --archives "$ARCHIVES" \
  --conf "spark.executorEnv.PYTHONPATH=clinlake_code" \
  --conf "spark.pyspark.python=$WORKER_PY" \
  --conf "spark.pyspark.driver.python=$PY" \
  "${CONFS[@]}" ${SUBMIT_EXTRA:-} \
  "$JOB" "$@"
