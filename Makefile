# Two commands: `make run` (set up, then run the pipeline end to end) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp

export PATH := $(BIN):$(PATH)
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export PYTHONUNBUFFERED := 1
export PREFECT_HOME ?= $(abspath .prefect)

.PHONY: setup run test lint bench perf flows clean

setup: $(STAMP)

# (Re)install the locked set when the venv is missing or the lock/project changed.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==26.3"
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	dvc repro
	@echo "Done. See: dvc metrics show; metrics/promotion.json; artifacts/monitoring/; evidently ui --workspace monitoring/workspace"

test: $(STAMP)
	python -m pytest -q

lint: $(STAMP)
	ruff check aim flows tests bench && ruff format --check aim flows tests bench

bench: $(STAMP)
	python bench/prepare_throughput.py --repeat 3

# Training / inference speed of DeepFM and the AIM stages, side by side with FuxiCTR (1M rows).
perf: $(STAMP)
	python bench/perf.py

# Serve the Prefect deployments of prefect.yaml (weekly search, daily retrain) until Ctrl-C.
flows: $(STAMP)
	python -m flows.serve

clean:
	rm -rf $(VENV) data/prepared data/warehouse.duckdb data/raw
