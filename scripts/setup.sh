#!/usr/bin/env bash
# One-time, idempotent set-up: .venv with pinned Python deps, and the JVM jars from Maven Central
# (jvm/pom.xml) into the git-ignored jars/ folder, pruned of what pyspark already ships.
# Each half re-runs only when its input file changed (stamp = sha256 of pyproject.toml / jvm/pom.xml).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .setup-stamps

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' not found on PATH ($2)" >&2; exit 1; }; }
need "$PY" "Python 3.10-3.12"
need java "Java 17"
need mvn "Maven 3"

py_hash=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .setup-stamps/venv 2>/dev/null)" != "$py_hash" ]; then
  echo "setup: creating .venv and installing pinned Python dependencies (pyproject.toml)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$py_hash" > .setup-stamps/venv
else
  echo "setup: .venv up to date"
fi

pom_hash=$( (cat jvm/pom.xml jvm/connect/pom.xml scripts/prune_jars.py) | sha256sum | cut -c1-16)
if [ ! -s jars/classpath.txt ] || [ "$(cat .setup-stamps/jars 2>/dev/null)" != "$pom_hash" ]; then
  echo "setup: resolving JVM jars from Maven Central (jvm/pom.xml) into jars/"
  rm -rf jars && mkdir -p jars
  mvn -q -B -f jvm/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$PWD/jars"
  .venv/bin/python scripts/prune_jars.py jars
  # The Spark Connect server jar lives apart (jars/connect/): only `jobs/sql.py --serve` loads it.
  mvn -q -B -f jvm/connect/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$PWD/jars/connect"
  echo "$pom_hash" > .setup-stamps/jars
else
  echo "setup: jars up to date ($(tr ',' '\n' < jars/classpath.txt | wc -l) jars)"
fi
