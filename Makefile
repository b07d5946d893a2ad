# One command per habit. Every target installs what it needs first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PIP     := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install run test lint bench clean

install: $(STAMP)

# Reinstalls only when the dependency list or the constraints change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) -e '.[dev]'
	touch $(STAMP)

run: install
	@$(BIN)/python -m vecdb

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check vecdb tests benchmarks
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
