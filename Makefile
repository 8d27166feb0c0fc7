# Developer entry points. `make run` starts Airflow with the incident_response DAG on this machine;
# `make test` is what CI runs (.ci/run). Every Airflow setting can be overridden from the environment,
# e.g. `AIRFLOW__API__PORT=8090 make run` or `AIRFLOW_HOME=/tmp/af make run`. The UI listens on 127.0.0.1
# only (SimpleAuthManager keeps plaintext passwords); `AIRFLOW__API__HOST=0.0.0.0 make run` shares it.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV := $(BIN)/uv
# Stamps record which lock files the venv was last synced with, so re-runs are a no-op.
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed

PYTEST_ARGS ?=
RUN_ARGS ?=
# `make bench BENCH=embedded_load` runs bench/bench_embedded_load.py alone.
BENCH ?= *
# Arguments for the benchmark(s), e.g. `make bench BENCH=alert_to_page BENCH_ARGS="--trials 3"`.
BENCH_ARGS ?=
LOCK_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run run-celery bench eval test lint fmt lock chromium clean distclean

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-11s %s\n", $$1, $$2}'

venv: $(DEV_STAMP)  ## Create .venv with the runtime and dev locks installed

run: $(RUNTIME_STAMP)  ## Start Airflow locally and trigger a demo incident (Ctrl-C stops it)
	$(BIN)/python -m scripts.local_airflow $(RUN_ARGS)

# PostgreSQL on 127.0.0.1:5432 (user postgres) and Redis on 6379 by default; CELERY_WORKERS=3 for three.
run-celery: $(RUNTIME_STAMP)  ## The same on the CeleryExecutor, PostgreSQL and Redis, with 2 Celery workers
	$(BIN)/python -m scripts.local_airflow --celery $(RUN_ARGS)

bench: $(DEV_STAMP)  ## Run the benchmarks in bench/ one after another, then the summary of ratios and the chart
	@status=0; for script in bench/bench_$(BENCH).py; do \
		echo "== $$script"; $(BIN)/python $$script $(BENCH_ARGS) || status=1; \
	done; echo "== bench/summary.py"; $(BIN)/python bench/summary.py || status=1; exit $$status

# EVAL_CASES=DIR, EVAL_OUT=FILE, EVAL_MODEL_CONN=conn_id and EVAL_REPEAT=k are read from the environment
# (or `make eval EVAL_REPEAT=3`); connections are Airflow's, e.g. AIRFLOW_CONN_LLM_DEFAULT.
eval: $(RUNTIME_STAMP)  ## Score the diagnosis on the labelled incidents in eval/cases (no Airflow started)
	AIRFLOW_HOME="$${AIRFLOW_HOME:-$(CURDIR)/.airflow}" $(BIN)/python -m scripts.run_eval

test: lint chromium  ## Lint and type-check, then run the whole test suite (what CI runs)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)  ## Run ruff and mypy (strict on include/)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict include
	$(BIN)/mypy plugins

fmt: $(DEV_STAMP)  ## Format the code and apply ruff's safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: | $(UV)  ## Re-pin requirements*.txt from requirements*.in (LOCK_ARGS=--upgrade to upgrade)
	$(UV) pip compile requirements.in --python-version 3.11 -o requirements.txt $(LOCK_ARGS)
	$(UV) pip compile requirements-dev.in --python-version 3.11 -o requirements-dev.txt $(LOCK_ARGS)

# The browser tests drive Debian's chromium; install it when we can (root with apt-get).
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian chromium for the browser tests ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	else \
		echo "note: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get)"; \
	fi

clean:  ## Remove caches and the default local Airflow home (.airflow/)
	rm -rf .pytest_cache .ruff_cache .hypothesis .airflow
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean  ## Also remove .venv
	rm -rf $(VENV)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): | $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"

# `install`, not `sync`: `make run` after `make test` must not uninstall the test tools.
$(RUNTIME_STAMP): requirements.txt | $(UV)
	$(UV) pip install --python $(BIN)/python -r requirements.txt
	touch $@

# `sync` makes the venv exactly the locks (uv keeps itself, pip and setuptools).
$(DEV_STAMP): requirements.txt requirements-dev.txt | $(UV)
	$(UV) pip sync --python $(BIN)/python requirements.txt requirements-dev.txt
	touch $@ $(RUNTIME_STAMP)
