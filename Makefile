# Quick start:  make setup   (virtualenv + pinned dependencies + the whole pipeline on `local`)
#               make test    (the test suite)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP_VERSION := 25.3

.DEFAULT_GOAL := help
.PHONY: help setup install contract airflow-venv run test test-fast bench ui lock clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: install contract run  ## Install everything, infer the data contract if the config has none, run the pipeline

install: $(VENV)/.installed  ## Create .venv and install the pinned dependencies

$(VENV)/.installed: requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip check
	@touch $@

contract: install  ## Infer the raw data's contract (`schema:` in config/base.yaml) with `init`, unless it has one
	$(PY) src/main.py init --if-missing

airflow-venv: .airflow-venv/.installed  ## Create .airflow-venv with the pinned Airflow (for the DAG and its tests)

.airflow-venv/.installed: requirements-airflow.lock
	$(PYTHON) -m venv .airflow-venv
	.airflow-venv/bin/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	.airflow-venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-airflow.lock
	@touch $@

run: install  ## Run the whole pipeline on the local environment
	$(PY) src/main.py --environment local

test: install airflow-venv  ## Run the test suite (unit + integration, the Airflow DAG included)
	$(PY) -m pytest

test-fast: install  ## Run only the fast unit tests
	$(PY) -m pytest -m "not slow"

bench: install  ## Benchmarks: pipeline vs plain script, caching, scaling (about 15 minutes; bench/results.md)
	$(PY) bench/run.py

ui: install  ## Start the MLflow UI on the local runs (http://127.0.0.1:5000)
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db

lock:  ## Re-resolve requirements*.in into requirements.lock and requirements-runtime.lock (then update conda.yaml)
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet pip==$(PIP_VERSION)
	.lock-venv/bin/pip install --quiet -r requirements.in -r requirements-dev.in
	.lock-venv/bin/pip check
	{ sed -n '1,2p' requirements.lock; .lock-venv/bin/pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet pip==$(PIP_VERSION)
	.lock-venv/bin/pip install --quiet -c requirements.lock -r requirements.in
	{ sed -n '1,2p' requirements-runtime.lock; .lock-venv/bin/pip freeze --exclude-editable; } > requirements-runtime.lock.new
	mv requirements-runtime.lock.new requirements-runtime.lock
	rm -rf .lock-venv

clean:  ## Remove local run outputs: mlflow.db (+ lock), mlruns/, all the pipeline wrote under data/; keeps data/raw
	rm -rf mlflow.db mlflow.db.lock mlruns mlartifacts
	find data/interim data/processed data/snapshots -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
