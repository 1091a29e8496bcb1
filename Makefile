# Alphabet Soup Screening: `make run` starts the dashboard, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help run test lint format models sample bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

models: $(STAMP) ## train the default models on the demo data if they are missing
	$(PY) -m core ensure-models

run: models ## set up, make sure models exist, start the dashboard
	PYTHONMALLOC=malloc $(VENV)/bin/streamlit run serve.py

test: models ## set up, then the whole test suite
	$(PY) -m pytest -q

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## apply ruff formatting
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

sample: $(STAMP) ## regenerate assets/sample_applicants.csv
	$(PY) -m core sample

bench: models ## run the benchmarks on ../shared/data/charity_train.csv
	$(PY) bench/train.py
	$(PY) bench/score.py
	$(PY) bench/accuracy.py
	$(PY) bench/holdout.py
	$(PY) bench/explain.py
	$(PY) bench/app.py
	$(PY) bench/memory.py

clean: ## remove the virtual environment and runtime data
	rm -rf $(VENV) var
