"""vecdb embedded (the engine in-process) and vecdb over gRPC / REST (a real ``vecdb serve`` process).

Runs with the product's Python. Records carry the metadata dict (``source`` and ``n``) and the same
``source`` as vecdb's record-level source, so delete-by-source uses the engine's per-source delete;
filtered search uses the metadata filter ``{"source": ...}``. Searches ask for ``include=[]`` (ids and
scores only). The collection uses vecdb's defaults: cosine, index ``auto`` (exact until 20,000 records,
then HNSW m=32, ef_construction=100, ef_search=64).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _peers.harness import proc_memory

EF_SWEEP = (16, 32, 64, 128, 256, 512)
NAME = "bench"
READY_TIMEOUT_S = 600.0
INDEX_TIMEOUT_S = 3600.0
SETTLE_POLLS = 3
MERGE_MIN, MERGE_RATIO = 2000, 0.05  # the server's defaults: index.merge_min_records, index.merge_ratio


def _ids(hits: list[Any]) -> list[int]:
    return [int(h.id) for h in hits]


class _Vecdb:
    exact = False
    transport = "embedded"

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.index_spec = job.get("vecdb_index")  # None: the default ("auto")

    def describe(self) -> dict[str, Any]:
        return {
            "library": "vecdb",
            "transport": self.transport,
            "index": self.index_spec or {"type": "auto", "threshold": 20000},
            "default_search": {"ef_search": 64},
            "metric": "cosine",
            "returns": "ids and scores (include=[])",
            "filter": 'metadata filter {"source": "file7.txt"} (roaring bitmaps; exact plan at 1%)',
            "delete": "delete(source=...): the engine's per-source delete (one atomic RocksDB batch)",
        }

    def default_params(self) -> dict[str, Any]:
        return {}

    def sweep(self) -> list[dict[str, Any]]:
        return [{"ef_search": v} for v in EF_SWEEP]

    # a collection-like handle: the engine's Collection or the client's Collection
    col: Any

    def insert(self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        self.col.upsert(ids, vectors, metadatas=metas, sources=[m["source"] for m in metas])

    def search(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[int]:
        return _ids(self.col.search(q, k=k, include=[], params=params or None)[0])

    def search_batch(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[list[int]] | None:
        return [_ids(r) for r in self.col.search(q, k=k, include=[], params=params or None)]

    def search_filtered(self, q: np.ndarray, k: int, source: str, params: dict[str, Any]) -> list[int]:
        return _ids(self.col.search(q, k=k, filter={"source": source}, include=[], params=params or None)[0])

    def delete_source(self, source: str) -> dict[str, Any]:
        return {"call": "delete(source=...)", "deleted": int(self.col.delete(source=source))}

    def check_deleted(self, source: str, ids: list[str]) -> dict[str, int]:
        return {
            "get_by_id": len(self.col.get(ids, include=[])),
            "count_by_filter": int(self.col.count({"source": source})),
            "in_list_sources": int(any(s.source == source for s in self.col.list_sources())),
        }

    def peaks(self) -> dict[str, int]:
        return {}


class VecdbEmbedded(_Vecdb):
    transport = "embedded"

    def create(self, work: Path, dim: int, n: int) -> None:
        from vecdb import Database

        self.path = work / "db"
        self.db = Database(self.path)
        self.col = self.db.create_collection(NAME, dim=dim, metric="cosine", index=self.index_spec)

    def finish_ingest(self) -> dict[str, Any]:
        ok = self.col.wait_for_index(timeout=INDEX_TIMEOUT_S)
        info = self.col.info()
        return {"wait_for_index": ok, "index_state": info["index_state"], "memory": info.get("memory")}

    def close(self) -> dict[str, Any]:
        self.db.close()
        return {"call": "Database.close() (checkpoints the index)"}

    def reopen(self) -> None:
        from vecdb import Database

        self.db = Database(self.path)
        self.col = self.db.get_collection(NAME)

    def shutdown(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Served(_Vecdb):
    """A ``vecdb serve`` subprocess on free ports and a ``vecdb_client.Client`` of it."""

    prefer_grpc = False
    proc: subprocess.Popen[bytes] | None = None

    def create(self, work: Path, dim: int, n: int) -> None:
        self.work = work
        self.server_peak = 0
        self.ready_s: list[float] = []
        self._start()
        self.col = self.client.create_collection(NAME, dim=dim, metric="cosine", index=self.index_spec)

    def _start(self) -> None:
        import httpx

        from vecdb_client import Client

        rest, grpc_port = _free_port(), _free_port()
        self.log = (self.work / f"server-{len(self.ready_s)}.log").open("ab")
        cmd = [
            sys.executable,
            "-m",
            "vecdb",
            "serve",
            "--data-dir",
            str(self.work / "db"),
            "--rest-port",
            str(rest),
            "--grpc-port",
            str(grpc_port),
        ]
        started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ))
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(timeout=1.0) as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"vecdb serve exited with {self.proc.returncode}; see {self.log.name}")
                try:
                    if http.get(f"http://127.0.0.1:{rest}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"vecdb serve not ready in {READY_TIMEOUT_S} s")
                time.sleep(0.02)
        self.ready_s.append(time.perf_counter() - started)
        if self.prefer_grpc:
            self.client = Client(prefer_grpc=True, grpc_url=f"127.0.0.1:{grpc_port}", timeout=600.0)
        else:
            self.client = Client(f"http://127.0.0.1:{rest}", timeout=600.0)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["server"] = "vecdb serve (defaults: sync writes on, embedding on but unused) in its own process"
        d["memory"] = "total = client worker peak + server peak (VmHWM read before stopping it)"
        return d

    def finish_ingest(self) -> dict[str, Any]:
        # The server has no wait call: poll the collection's index state until no build is running and
        # none is due (the delta buffer below the server's default merge threshold, max(2000, 5% of the
        # ANN index)), seen on SETTLE_POLLS polls in a row: a single poll can land in the instant between
        # one background job finishing and the next one starting, and see "building": null then.
        deadline = time.monotonic() + INDEX_TIMEOUT_S
        polls = settled = 0
        while settled < SETTLE_POLLS:
            state = self.col.info().index_state
            polls += 1
            due = state.get("delta_vectors", 0) >= max(MERGE_MIN, MERGE_RATIO * state.get("ann_vectors", 0))
            idle = state.get("building") is None and not (due and state.get("kind") != "flat")
            settled = settled + 1 if idle else 0
            if time.monotonic() > deadline:
                return {"indexed": False, "index_state": state, "polls": polls}
            time.sleep(0.1)
        return {"indexed": True, "index_state": state, "polls": polls}

    def _server_peak(self) -> int:
        if self.proc is not None and self.proc.poll() is None:
            self.server_peak = max(self.server_peak, proc_memory(self.proc.pid).get("VmHWM", 0))
        return self.server_peak

    def peaks(self) -> dict[str, int]:
        return {"server": self._server_peak()}

    def current(self) -> dict[str, int]:
        """The server's RSS now (bytes)."""
        alive = self.proc is not None and self.proc.poll() is None
        return {"server": proc_memory(self.proc.pid).get("VmRSS", 0) if alive and self.proc else 0}

    def _stop(self) -> int | None:
        self._server_peak()
        self.client.close()
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        self.proc = None
        return rc

    def close(self) -> dict[str, Any]:
        rc = self._stop()
        return {"call": "SIGTERM to vecdb serve (drains, checkpoints)", "exit_code": rc}

    def reopen(self) -> None:
        self._start()
        self.col = self.client.collection(NAME)

    def shutdown(self) -> None:
        if self.proc is not None:
            self._stop()

    def extra(self) -> dict[str, Any]:
        return {"server_ready_s": self.ready_s}


class VecdbGrpc(_Served):
    transport = "grpc"
    prefer_grpc = True


class VecdbRest(_Served):
    transport = "rest"
    prefer_grpc = False
