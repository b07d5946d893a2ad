# One command per habit. Every target installs what it needs first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PIP     := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install run test lint bench proto clean

install: $(STAMP)

# Reinstalls only when the dependency list or the constraints change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) -e '.[dev]'
	touch $(STAMP)

# The server on an embedded default: data in ./data, REST 127.0.0.1:8080, gRPC 127.0.0.1:50051.
run: install
	$(BIN)/vecdb serve

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check vecdb tests benchmarks scripts
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/engine.py

# Regenerate vecdb/server/_generated from proto/vecdb.proto (a test fails when it is stale).
proto: install
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
