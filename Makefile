# One command per habit. Every target installs what it needs first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PIP     := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt

RUN_STAMP := $(VENV)/.installed-run

.PHONY: install install-run install-gpu install-cpu run test lint bench bench-served bench-cluster bench-gpu bench-peers proto reliability clean chromium

# The development environment: the server with its dev extras (test, lint, benchmark tools) and the client.
install: $(STAMP)

# What serving needs only (make run): the server and the client with its LangChain extra, no dev tools.
install-run: $(RUN_STAMP)

# Each reinstalls only when the dependency list or the constraints change. The client (clients/python, its
# own package) is installed with its LangChain extra: the README's examples and tests/client use it.
$(RUN_STAMP): pyproject.toml clients/python/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) -e . -e 'clients/python[langchain]'
	if [ -f $(GPU_MARK) ]; then $(MAKE) --no-print-directory faiss-gpu; fi
	$(BIN)/python -m vecdb.embed.export --packaged
	touch $(RUN_STAMP)

# The development environment includes the runtime one: it stamps both.
$(STAMP): pyproject.toml clients/python/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) -e '.[dev]' -e 'clients/python[langchain]'
	if [ -f $(GPU_MARK) ]; then $(MAKE) --no-print-directory faiss-gpu; fi
	# The packaged model exported to ONNX (float32 and int8) inside the venv, offline (docs/embedding.md).
	$(BIN)/python -m vecdb.embed.export --packaged
	touch $(STAMP) $(RUN_STAMP)

# Headless Chromium for tests/e2e/test_docs_offline.py and tests/e2e/test_console.py (Debian's package),
# installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# FAISS's GPU build (docs/gpu.md). faiss-cpu and faiss-gpu ship the same `faiss` module, so one replaces
# the other: faiss-cpu goes (it is vecdb's declared dependency, so a later reinstall brings it back, and the
# install rule above swaps again while $(GPU_MARK) exists), then faiss-gpu's files are written afresh.
FAISS_GPU := faiss-gpu==1.15.1
GPU_MARK  := $(VENV)/.faiss-gpu

install-gpu: install
	$(MAKE) --no-print-directory faiss-gpu
	touch $(GPU_MARK)

install-cpu: install
	rm -f $(GPU_MARK)
	$(BIN)/pip uninstall -y -q faiss-gpu || true
	$(PIP) --force-reinstall --no-deps 'faiss-cpu>=1.15.1,<1.16'

.PHONY: faiss-gpu
faiss-gpu:
	$(BIN)/pip uninstall -y -q faiss-cpu || true
	$(PIP) '$(FAISS_GPU)'
	$(PIP) --force-reinstall --no-deps '$(FAISS_GPU)'

# The server on an embedded default: data in ./data, REST 127.0.0.1:8080, gRPC 127.0.0.1:50051.
run: install-run
	$(BIN)/vecdb serve

test: install chromium
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
	$(BIN)/python benchmarks/filters.py
	$(BIN)/python benchmarks/recall.py
	$(BIN)/python benchmarks/audit.py
	$(BIN)/python benchmarks/retrieval.py

# The served path against no-op gRPC and FastAPI servers and in-process search, interleaved (~8 min;
# benchmarks/results/served.{json,md}).
bench-served: install
	$(BIN)/python benchmarks/served.py

# Sharding over Ray on this machine: embedded vs 1, 2 and 4 shards (docs/scaling.md).
bench-cluster: install
	$(BIN)/python benchmarks/cluster.py

# vecdb against FAISS, hnswlib, Chroma, Milvus Lite and LanceDB (benchmarks/peers.py, ~30 min; README
# "Performance"). The peers live in their own environment, .venv-peers, never in the product's; it is
# (re)installed only when benchmarks/requirements-peers.txt changes.
PEERS_VENV := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

$(PEERS_STAMP): benchmarks/requirements-peers.txt
	test -x $(PEERS_VENV)/bin/python || $(PY) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --disable-pip-version-check -q -r benchmarks/requirements-peers.txt
	touch $(PEERS_STAMP)

bench-peers: install $(PEERS_STAMP)
	$(BIN)/python benchmarks/peers.py --peers-python $(PEERS_VENV)/bin/python

# GPU vs CPU at 1M x 384 (flat and IVF); the CPU half only where FAISS sees no GPU.
bench-gpu: install
	$(BIN)/python benchmarks/gpu.py

# Regenerate the gRPC code of the server and the client from proto/vecdb.proto (a test fails when stale).
proto: install
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
