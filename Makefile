# Every target has a "## help" line; `make` alone lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Pass-through: `make tune DATASET=digits TRIALS=30 MAX_EPOCHS=10` passes each
# variable given as its `tuner tune` flag (--dataset, --trials, --max-epochs); the
# defaults are tuner's own (`tuner tune --help`). ARGS passes any other flags.
TUNE_VARS := DATASET SPACE STUDY TRIALS TIMEOUT MAX_EPOCHS PATIENCE SAMPLER PRUNER SEED
ARGS ?=
FORMAT ?= keras,savedmodel,mlflow,onnx

TUNE_ARGS := $(foreach v,$(TUNE_VARS),$(if $($(v)),--$(shell echo $(v) | tr A-Z_ a-z-) $($(v)))) $(ARGS)

.PHONY: help install tune test test-fast ui lint docs clean bench bench-quick readme-figures

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on this
# project's machines) every process would otherwise compile its ~3,000 imported modules from
# source, 5-10 s a start (a tiny study: 44 s before, 26 s after).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade uv
	$(BIN)/uv pip install --compile-bytecode --python $(BIN)/python -e '.[dev,postgres,jax,onnx]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its dev, postgres, jax and onnx extras

tune: $(STAMP) ## run a study on the default dataset (DATASET= SPACE= TRIALS= MAX_EPOCHS= ...)
	$(BIN)/tuner tune $(TUNE_ARGS)

# Tests run in parallel, one per core up to 4 (most of a test's time is one Python
# thread or a wait); those marked `serial` run alone afterwards.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))

test: $(STAMP) ## run every test (CI): studies, browser and PostgreSQL included (TEST_JOBS=)
	@$(BIN)/python -m compileall -q tuner  # the project's own modules, for the same reason
	@rc=0; $(BIN)/python -m pytest -n $(TEST_JOBS) -m "not serial" || rc=$$?; \
	$(BIN)/python -m pytest -m serial || rc=$$?; exit $$rc

test-fast: $(STAMP) ## the unit tier: no study runs, no browser, no PostgreSQL (under 2 minutes)
	$(BIN)/python -m pytest -m "not slow and not browser and not postgres and not gpu"


export: $(STAMP) ## export the best model of the latest study to exports/ (STUDY= FORMAT= ARGS=--refit)
	$(BIN)/tuner export $(if $(STUDY),--study $(STUDY)) --out exports/$(or $(STUDY),latest)-$$(date +%Y%m%d-%H%M%S) \
		--format $(FORMAT) $(ARGS)

notebook: $(STAMP) ## run notebooks/analysis.ipynb headless (STUDY= COMPARE=) into notebooks/out/
	$(BIN)/python -m tuner.cli.notebook $(if $(or $(STUDY),$(DATASET)),--study $(or $(STUDY),$(DATASET))) \
		$(if $(COMPARE),--compare-with $(COMPARE))

dashboard: $(STAMP) ## serve optuna-dashboard over the study storage on 127.0.0.1:8080
	$(BIN)/optuna-dashboard sqlite:///studies/optuna.db --host 127.0.0.1 --port 8080

ui: $(STAMP) ## serve the MLflow UI over the local store on 127.0.0.1:5000; prints each study's link
	$(BIN)/tuner ui

readme-figures: $(STAMP) ## rerun `make tune` in a fresh clone of HEAD and write README.md's figures from it
	$(BIN)/python bench/readme_tune.py

bench-windowing: $(STAMP) ## load and window a 1,000,000-row series (seq_len 336): time and memory
	$(BIN)/python bench/windowing.py

bench: $(STAMP) ## benchmarks B1-B11 in full (about three hours here; ONLY=B9 for a subset) -> BENCHMARKS.md
	cd bench && ../$(BIN)/python run.py $(if $(ONLY),--only $(ONLY))

bench-quick: $(STAMP) ## short benchmarks B1-B11 (under 15 minutes) -> bench/results/quick/
	cd bench && ../$(BIN)/python run.py --quick $(if $(ONLY),--only $(ONLY))

lint: $(STAMP) ## ruff, mypy and the import rule (import-linter contract in pyproject.toml)
	$(BIN)/ruff check tuner tests search_spaces bench
	$(BIN)/ruff format --check tuner tests search_spaces bench
	$(BIN)/mypy
	$(BIN)/lint-imports

docs: $(STAMP) ## build the docs site (docs/, API reference from the docstrings) into site/, --strict
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean: ## remove local stores, caches and the virtual environment
	rm -rf $(VENV) studies mlflow/mlflow.db mlflow/artifacts exports logs site .pytest_cache .mypy_cache .ruff_cache
