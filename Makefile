# Quick start:  make setup   (uv + .venv from uv.lock + the whole pipeline on `local`)
#               make test    (the test suite)
# Needs only Python 3.11+, make, git and a package index: uv is installed into .tools/ when it is not on PATH.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
TOOLS  := .tools
UV_VERSION := 0.13.9
# uv from PATH when there is one, else the copy this Makefile installs (`make setup UV=...` picks another).
UV ?= $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)
UV_DEP := $(filter $(TOOLS)/bin/uv,$(UV))
# `make lock LOCK_ARGS=--upgrade` moves every package to its newest allowed version; plain `make lock` keeps the
# locked versions and changes only what pyproject.toml's edits need.
LOCK_ARGS ?=
EXPORT := $(UV) export --quiet --frozen --no-hashes --no-emit-project
# Extra options for JupyterLab, e.g. `make notebook JUPYTER_ARGS="--no-browser --port 8890"`; as root (in a
# container, say) JupyterLab refuses to start without --allow-root.
JUPYTER_ARGS ?=
# Options for bench/large.py, e.g. `make bench-large LARGE_ARGS="--rows 1000000 --max-train-rows 0"` (0: no sample).
LARGE_ARGS ?=
# Options for bench/dask_bench.py, e.g. `make bench-dask DASK_ARGS="--rows 10000000 --compare-rows 1000000"`.
DASK_ARGS ?=
JUPYTER_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

# uv reads its own index settings (UV_DEFAULT_INDEX, UV_INDEX_URL); a mirror set for pip is used by uv too.
ifdef PIP_INDEX_URL
ifeq ($(origin UV_INDEX_URL)$(origin UV_DEFAULT_INDEX),undefinedundefined)
export UV_DEFAULT_INDEX := $(PIP_INDEX_URL)
endif
endif
# uv.lock names PyPI's files, and uv takes a lock made on another index for a stale one: with an index set, the
# same pins are installed from requirements.lock (exported from uv.lock) with `uv pip sync` instead of `uv sync`.
INDEX := $(strip $(or $(UV_DEFAULT_INDEX),$(UV_INDEX_URL)))
# ... and one set for uv is used by pip when it installs uv itself.
PIP_INDEX_ARGS := $(if $(PIP_INDEX_URL),,$(addprefix --index-url ,$(or $(UV_DEFAULT_INDEX),$(UV_INDEX_URL))))
# MLflow sends usage telemetry to its maintainers unless told not to; what make runs does not (set it to false to
# send it). A command run directly (python src/main.py) follows MLflow's own default.
export MLFLOW_DISABLE_TELEMETRY ?= true
# Modules compiled to bytecode when installed: a machine or image with PYTHONDONTWRITEBYTECODE set would otherwise
# compile MLflow, pandas and SQLAlchemy from source in every command (about 3 s each).
export UV_COMPILE_BYTECODE ?= 1
.DEFAULT_GOAL := help
.PHONY: help setup install python-check contract airflow-venv run lint test test-fast bench bench-large bench-dask bench-serving bench-monitor bench-setup notebook ui lock clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: install contract run  ## Install everything, infer the data contract if the config has none, run the pipeline

python-check:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]'

$(TOOLS)/bin/uv: | python-check
	@echo "uv is not on PATH: installing uv $(UV_VERSION) into $(TOOLS)/ (make UV=/path/to/uv uses another)"
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --disable-pip-version-check $(PIP_INDEX_ARGS) uv==$(UV_VERSION)

# --python only when .venv is created: given for an existing .venv whose interpreter uv sees under another path (a
# pyenv shim, say), uv would rebuild it every time.
# A uv.lock that no longer fits pyproject.toml (a project just made, or a library pin moved by `copier update`) is
# locked again first, keeping every version it can (`make lock`).
install: python-check $(UV_DEP)  ## Create .venv with exactly the packages of uv.lock (uv sync), tests and notebooks included
	@$(if $(wildcard uv.lock),$(UV) lock --check --quiet 2>/dev/null ||) { echo "uv.lock does not fit pyproject.toml \
	(a project just made, or a library pin moved): locking it again, keeping every version it can"; \
	$(MAKE) --no-print-directory lock LOCK_ARGS=--quiet; }
ifeq ($(INDEX),)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked $(if $(wildcard $(PY)),,--python $(PYTHON))
else
	@echo "package index $(INDEX): installing the pins of requirements.lock from it"
	$(if $(wildcard $(PY)),,$(UV) venv --python $(PYTHON) $(VENV))
	$(UV) pip sync --python $(PY) requirements.lock
endif
	$(UV) pip check --python $(PY)

contract: install  ## Infer the raw data's contract (`schema:` in config/base.yaml) with `init`, unless it has one
	$(PY) src/main.py init --if-missing

airflow-venv: .airflow-venv/.installed  ## Create .airflow-venv with the pinned Airflow (for the DAG and its tests)

# The DAG file imports mlsteps.dag (standard library and Airflow only): the library goes in without its
# dependencies, from where uv.lock takes it (this repository's folder, or the git source a project pins).
.airflow-venv/.installed: requirements-airflow.lock uv.lock | python-check $(UV_DEP)
	$(UV) venv --clear --python $(PYTHON) .airflow-venv
	$(UV) pip install --python .airflow-venv/bin/python -r requirements-airflow.lock
	$(EXPORT) --no-dev --no-header --no-annotate | grep mlsteps > .airflow-venv/mlsteps.txt
	$(UV) pip install --python .airflow-venv/bin/python --no-deps -r .airflow-venv/mlsteps.txt
	@touch $@

run: install  ## Run the whole pipeline on the local environment
	$(PY) src/main.py --environment local

lint: install  ## Lint, format and types: ruff check, ruff format --check, mypy on src/ (pyproject.toml says how strict)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The tests run on every core (pytest-xdist); the slowest 15 are listed at the end, with the total time.
# The Airflow virtualenv only where a test runs the DAG (the template's tests/test_containers.py).
test: install $(if $(wildcard tests/test_containers.py),airflow-venv) lint  ## Lint and type checks, then the test suite (unit + integration, the Airflow DAG included)
	$(PY) -m pytest -n auto --dist worksteal --durations=15

test-fast: install  ## Run only the fast unit tests
	$(PY) -m pytest -n auto -m "not slow"

bench: install  ## Benchmarks: first run vs an MLflow script and a plain script, re-runs, scaling to 5M rows (about 30 minutes; bench/results.md)
	$(PY) bench/run.py

bench-large: install  ## The pipeline step by step on 10M generated rows (~3 GB CSV), training on a sample (bench/large_results.md)
	$(PY) bench/large.py $(LARGE_ARGS)

bench-dask: install  ## The dask engine: 50M generated rows on a LocalCluster, and 10M side by side with pandas (bench/dask_results.md, docs/benchmarks.md)
	$(PY) bench/dask_bench.py --docs $(DASK_ARGS)

bench-serving: install  ## Serving benchmark: serve (checks, log, keys) vs mlflow models serve; into docs/benchmarks.md
	$(PY) bench/serving.py --docs

bench-monitor: install  ## Monitoring benchmark: monitor on 100k and 1M logged rows vs pandas; into docs/monitoring.md
	$(PY) bench/monitor.py --docs

bench-setup: install  ## Set-up time on a fresh clone: uv against pip, cold and warm package caches
	$(PY) bench/setup_time.py

notebook: install  ## Open notebooks/ in JupyterLab, the project's .venv as its kernel (Ctrl-C stops it)
	@echo "JupyterLab on notebooks/ with the kernel of $(VENV): open the URL it prints below (Ctrl-C stops it)"
	$(PY) -m jupyter lab --notebook-dir=notebooks $(JUPYTER_ROOT) $(JUPYTER_ARGS)

ui: install  ## Start the MLflow UI on the local runs (http://127.0.0.1:5000)
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db

lock: | python-check $(UV_DEP)  ## Re-resolve pyproject.toml into uv.lock, then export requirements*.lock and conda.yaml from it
	$(UV) lock $(LOCK_ARGS)
	$(EXPORT) --all-groups -o requirements.lock
	$(EXPORT) --no-dev --no-emit-package mlsteps -o requirements-runtime.lock
	{ sed -n '1,/^  - pip:$$/p' conda.yaml; \
	  $(EXPORT) --no-dev --no-header --no-annotate | sed 's/^/      - /'; } > conda.yaml.new
	mv conda.yaml.new conda.yaml

clean:  ## Remove local run outputs: mlflow.db (+ lock), mlruns/, .pipeline/, all the pipeline wrote under data/; keeps data/raw
	rm -rf mlflow.db mlflow.db.lock mlruns mlartifacts .pipeline
	find data/interim data/processed data/snapshots -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
