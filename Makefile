# Two commands do everything: `make demo` and `make test`. Both run set-up first (idempotent).
SHELL := /bin/bash
PY := .venv/bin/python
ENV ?= local
SIZES ?= 10000 100000
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast test-cluster test-all eval bench bench-nerdl bench-resolver clean-lake clean

setup:
	@bash scripts/setup.sh

demo: setup
	@$(PY) scripts/demo.py --env $(ENV)

# The CI suite: everything but the full-corpus trainings, whole-dev-split evaluations, the standalone-cluster
# test (each 10-30 min here; `make test-cluster`, `make test-all`) and the `extended` variants (pyproject.toml).
# Two xdist workers, a whole test file each (module fixtures built once): the many job subprocesses and JVM
# start-ups overlap; the longest files go first (tests/conftest.py LONGEST_FIRST, --no-loadscope-reorder).
# Three workers were slower on 2 cores, so one worker per core, and no fewer than two; at most one per 8 GB of memory
# (a worker's JVM has a 4 GB driver and its tests start job subprocesses). PYTEST_WORKERS=n overrides.
# Timings and where the time goes: docs/hardening.md "Suite time".
PYTEST_WORKERS ?= $(shell python3 -c "import os; mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30; \
	print(max(2, min(len(os.sched_getaffinity(0)), int(mem // 8))))" 2>/dev/null || echo 2)
test: setup
	@$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not training and not dev_eval and not cluster and not extended" $(PYTEST_ARGS)

test-cluster: setup
	@$(PY) -m pytest -m cluster $(PYTEST_ARGS)

test-fast: setup
	@$(PY) -m pytest -m "not slow and not cluster and not training and not dev_eval and not extended" $(PYTEST_ARGS)

test-all: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

eval: setup
	@$(PY) scripts/run_eval.py --out reports/eval $(EVAL_ARGS)

bench: setup
	@$(PY) scripts/bench.py --sizes $(SIZES) --out bench

# NerDL serving throughput of registered models, e.g.
# make bench-nerdl NERDL_ARGS="--env full --lake L --set mlflow.dir=M --models deid-ner-es@champion --data DIR"
bench-nerdl: setup
	@$(PY) scripts/bench_nerdl.py $(NERDL_ARGS) --out bench

# Resolver serving throughput (mentions/s per core) and build times of registered versions, e.g.
# make bench-resolver RESOLVER_ARGS="--env full --lake L --set mlflow.dir=M --aliases champion --corpus codiesp --data DIR"
bench-resolver: setup
	@$(PY) scripts/bench_resolver.py $(RESOLVER_ARGS) --out bench

clean-lake:
	rm -rf lake mlruns

clean: clean-lake
	rm -rf .venv jars .setup-stamps
