# One command per habit. Every target installs what it needs first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PIP     := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install run test lint bench proto reliability clean

install: $(STAMP)

# Reinstalls only when the dependency list or the constraints change.
# The client (clients/python, its own package) is installed with its LangChain extra: tests/client runs it.
$(STAMP): pyproject.toml clients/python/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) -e '.[dev]' -e 'clients/python[langchain]'
	touch $(STAMP)

# The server on an embedded default: data in ./data, REST 127.0.0.1:8080, gRPC 127.0.0.1:50051.
run: install
	$(BIN)/vecdb serve

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check vecdb clients tests benchmarks scripts examples
	$(BIN)/mypy

# The long reliability run (docs/guarantees.md): crash rounds, minutes of concurrent load, many fuzz examples;
# writes benchmarks/results/reliability.{json,md}.
reliability: install
	VECDB_RELIABILITY=long $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/reliability

bench: install
	$(BIN)/python benchmarks/engine.py

# Regenerate the gRPC code of the server and the client from proto/vecdb.proto (a test fails when stale).
proto: install
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
