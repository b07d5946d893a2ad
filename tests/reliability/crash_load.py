"""Load and model for ``test_crash_server.py``: worker threads that write to a real server and know exactly
what each of their acknowledged calls did.

Every worker owns a disjoint slice of the collection: ids ``w{W}-{n}``, sources ``w{W}-src{n}`` and records
with metadata ``{"w": W, ...}``, so its model of that slice is exact whatever the other workers do. A
worker runs one call at a time; an acknowledged write is applied to the model, and the write in flight
when the server died stays ``pending``: after the restart the slice must equal the model either without
it or with all of it.

A record of version ``v`` is: vector ``vector_for(id, v)`` (deterministic), text ``f"{id}:v{v}"``,
metadata ``{"w": W, "v": v, "g": g}`` and its source (or None). Versions are unique per worker for the
whole run, so every write of an id stores a different vector and a stale record is always visible.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecdb_client import Client
from vecdb_client.client import Collection
from vecdb_client.errors import DeadlineExceededError, UnavailableError, VecDBError

__all__ = [
    "COLLECTION",
    "DIM",
    "Model",
    "Op",
    "Snapshot",
    "Worker",
    "apply_op",
    "expected_snapshot",
    "random_vectors",
    "read_snapshot",
    "vector_for",
]

DIM = 8
METRIC = "cosine"
COLLECTION = "crash"
IDS_PER_WORKER = 300
SOURCES_PER_WORKER = 6
GROUPS = 4
CALL_TIMEOUT_S = 60.0

#: A worker's slice: id -> (version, g, source).
Model = dict[str, tuple[int, int, str | None]]
#: One write, complete enough to replay on a model (records are ``[id, version, g, source]``).
Op = dict[str, Any]
#: A record as read back: id -> (text, metadata, source, vector bytes).
Snapshot = dict[str, tuple[str | None, dict[str, Any], str | None, bytes]]

TRANSPORT_ERRORS = (UnavailableError, DeadlineExceededError)


def vector_for(rid: str, version: int) -> np.ndarray:
    """The float32 vector of version ``version`` of ``rid``: deterministic, never zero."""
    digest = hashlib.blake2b(f"{rid}\x00{version}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    return rng.standard_normal(DIM).astype(np.float32) + np.float32(0.01)


def text_for(rid: str, version: int) -> str:
    return f"{rid}:v{version}"


def metadata_for(worker: int, version: int, g: int) -> dict[str, Any]:
    return {"w": worker, "v": version, "g": g}


def apply_op(model: Model, op: Op) -> int:
    """Apply ``op`` to ``model`` in place; return what the server should have answered."""
    kind = op["op"]
    if kind == "upsert":
        for rid, version, g, source in op["records"]:
            model[rid] = (version, g, source)
        return len(op["records"])
    if kind == "replace_source":
        source, records = op["source"], op["records"]
        gone = {rid for rid, (_, _, src) in model.items() if src == source}
        gone |= {rid for rid, _, _, _ in records if rid in model}
        for rid in gone:
            del model[rid]
        for rid, version, g, _ in records:
            model[rid] = (version, g, source)
        return len(records) if records else len(gone)
    if kind == "delete_ids":
        gone = {rid for rid in op["ids"] if rid in model}
    elif kind == "delete_source":
        gone = {rid for rid, (_, _, src) in model.items() if src == op["source"]}
    elif kind == "delete_filter":
        gone = {rid for rid, (_, g, _) in model.items() if g == op["g"]}
    else:
        raise AssertionError(f"unknown op {kind!r}")
    for rid in gone:
        del model[rid]
    return len(gone)


def expected_snapshot(worker: int, model: Model) -> Snapshot:
    return {
        rid: (text_for(rid, v), metadata_for(worker, v, g), src, vector_for(rid, v).tobytes())
        for rid, (v, g, src) in model.items()
    }


def read_snapshot(col: Collection, ids: list[str]) -> Snapshot:
    out: Snapshot = {}
    for r in col.get(ids, include=["text", "metadata", "source", "vector"]):
        assert r.vector is not None and r.vector.shape == (DIM,), f"{r.id}: vector {r.vector!r}"
        out[r.id] = (r.text, r.metadata, r.source, np.asarray(r.vector, dtype=np.float32).tobytes())
    return out


def random_vectors(rng: random.Random, n: int) -> np.ndarray:
    """``n`` query vectors drawn from ``rng`` (so a seed replays them)."""
    return np.random.default_rng(rng.randrange(1 << 32)).standard_normal((n, DIM)).astype(np.float32)


def describe_op(op: Op | None) -> str:
    if op is None:
        return "a read (count, searches)"
    if op["op"] in ("upsert", "replace_source"):
        head = f"{op['op']} of {len(op['records'])} records"
        return head + (f" into {op['source']}" if op["op"] == "replace_source" else "")
    if op["op"] == "delete_ids":
        return f"delete_ids of {len(op['ids'])} ids"
    if op["op"] == "delete_source":
        return f"delete_source {op['source']}"
    return f"delete_filter g={op['g']}"


def describe_diff(got: Snapshot, want: Snapshot, limit: int = 6) -> str:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(rid for rid in set(want) & set(got) if want[rid] != got[rid])
    lines = [f"{len(missing)} missing, {len(extra)} unexpected, {len(changed)} differing"]
    lines += [f"    missing {rid}: want {want[rid][:3]}" for rid in missing[:limit]]
    lines += [f"    unexpected {rid}: got {got[rid][:3]}" for rid in extra[:limit]]
    for rid in changed[:limit]:
        same = "same vector" if want[rid][3] == got[rid][3] else "DIFFERENT vector"
        lines.append(f"    differs {rid}: want {want[rid][:3]}, got {got[rid][:3]} ({same})")
    return "\n".join(lines)


def make_client(transport: str, rest_url: str, grpc_target: str, retries: int = 0) -> Client:
    if transport == "grpc":
        return Client(
            rest_url, grpc_url=grpc_target, prefer_grpc=True, timeout=CALL_TIMEOUT_S, retries=retries
        )
    return Client(rest_url, timeout=CALL_TIMEOUT_S, retries=retries)


@dataclass
class Worker:
    """One client thread's slice, model and counters; lives for the whole run (one thread per round)."""

    index: int
    transport: str  # "rest" or "grpc"
    rng: random.Random
    model: Model = field(default_factory=dict)
    counter: int = 0
    pending: Op | None = None  # the write in flight when a call failed
    acked: Counter[str] = field(default_factory=Counter)
    searches: int = 0
    # Per round, reset by ``start``:
    failed_at: float | None = None  # monotonic time of the transport error that ended the round
    failure: str = ""
    violations: list[str] = field(default_factory=list)  # wrong answers from a live server
    thread: threading.Thread | None = None

    @property
    def ids(self) -> list[str]:
        return [f"w{self.index}-{n}" for n in range(IDS_PER_WORKER)]

    @property
    def sources(self) -> list[str]:
        return [f"w{self.index}-src{n}" for n in range(SOURCES_PER_WORKER)]

    # ---- the op stream ---------------------------------------------------------------------------

    def _version(self) -> int:
        self.counter += 1
        return self.counter

    def _records(self, n: int, source: str | None) -> list[list[Any]]:
        ids = self.rng.sample(self.ids, n)
        return [[rid, self._version(), self.rng.randrange(GROUPS), source] for rid in ids]

    def next_op(self) -> Op | None:
        """The next write, or None for a read (search and count)."""
        r = self.rng.random()
        if r < 0.40:
            # Mostly small batches; now and then most of the slice at once (a longer write to cut short).
            n = self.rng.randint(100, IDS_PER_WORKER) if self.rng.random() < 0.1 else self.rng.randint(1, 40)
            recs = self._records(n, None)
            for rec in recs:
                rec[3] = None if self.rng.random() < 0.2 else self.rng.choice(self.sources)
            return {"op": "upsert", "records": recs}
        if r < 0.55:
            ids = [self.rng.choice(self.ids) for _ in range(self.rng.randint(1, 20))]
            return {"op": "delete_ids", "ids": ids}
        if r < 0.63:
            return {"op": "delete_source", "source": self.rng.choice(self.sources)}
        if r < 0.68:
            return {"op": "delete_filter", "g": self.rng.randrange(GROUPS)}
        if r < 0.78:
            source = self.rng.choice(self.sources)
            return {
                "op": "replace_source",
                "source": source,
                "records": self._records(self.rng.choice([0, *range(1, 21)]), source),
            }
        return None

    def execute(self, col: Collection, op: Op) -> int:
        kind, w = op["op"], self.index
        if kind in ("upsert", "replace_source"):
            recs = op["records"]
            vectors = (
                np.stack([vector_for(rid, v) for rid, v, _, _ in recs])
                if recs
                else np.empty((0, DIM), dtype=np.float32)
            )
            texts = [text_for(rid, v) for rid, v, _, _ in recs]
            metas = [metadata_for(w, v, g) for _, v, g, _ in recs]
            ids = [rid for rid, _, _, _ in recs]
            if kind == "upsert":
                return col.upsert(ids, vectors, texts=texts, metadatas=metas, sources=[r[3] for r in recs])
            return col.replace_source(op["source"], ids, vectors, texts=texts, metadatas=metas)
        if kind == "delete_ids":
            return col.delete(op["ids"])
        if kind == "delete_source":
            return col.delete(source=op["source"])
        return col.delete(filter={"$and": [{"w": w}, {"g": op["g"]}]})

    def read(self, col: Collection) -> None:
        """Searches and a count; the slice changes only through this thread, so they are exact."""
        self.searches += 1
        live = set(self.model)
        n = col.count(filter={"w": self.index})
        if n != len(live):
            self.violations.append(f"count(w={self.index}) = {n}, the model has {len(live)}")
        # A filter admitting this few records is searched exactly: every live record, nothing else.
        if live:
            probe = self.rng.choice(sorted(live))
            q = vector_for(probe, self.model[probe][0])
            hits = col.search(q, k=len(live), filter={"w": self.index}, include=[])[0]
            got = {h.id for h in hits}
            if got != live:
                self.violations.append(
                    f"filtered search of w{self.index}: {len(got - live)} not live "
                    f"({sorted(got - live)[:5]}), {len(live - got)} live missing ({sorted(live - got)[:5]})"
                )
            elif hits[0].id != probe and abs(hits[0].score - 1.0) > 1e-4:
                self.violations.append(f"searching {probe}'s vector found {hits[0].id} first")
        # Unfiltered: the other workers' records too; only errors matter.
        col.search(random_vectors(self.rng, 2), k=10)

    # ---- the thread --------------------------------------------------------------------------------

    def start(self, rest_url: str, grpc_target: str) -> None:
        self.failed_at, self.failure, self.violations = None, "", []
        self.thread = threading.Thread(
            target=self._run, args=(rest_url, grpc_target), name=f"crash-w{self.index}", daemon=True
        )
        self.thread.start()

    def join(self, timeout: float) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"worker {self.index} still running {timeout} s after the kill"

    def _run(self, rest_url: str, grpc_target: str) -> None:
        with make_client(self.transport, rest_url, grpc_target) as client:
            col = client.collection(COLLECTION)
            while True:
                op = self.next_op()
                self.pending = op
                try:
                    if op is None:
                        self.read(col)
                        continue
                    n = self.execute(col, op)
                except TRANSPORT_ERRORS as exc:
                    self.failed_at = time.monotonic()
                    self.failure = f"{type(exc).__name__}: {exc}"
                    return
                except VecDBError as exc:  # a live server refusing a valid call
                    self.failed_at = time.monotonic()
                    self.failure = f"{type(exc).__name__}: {exc}"
                    self.violations.append(f"{describe_op(op)} failed: {self.failure}")
                    return
                except Exception as exc:  # a bug here or in the client: fail the round, loudly
                    self.failed_at = time.monotonic()
                    self.failure = f"{type(exc).__name__}: {exc}"
                    self.violations.append(f"{describe_op(op)} raised {traceback.format_exc()}")
                    return
                expected = apply_op(self.model, op)
                self.pending = None
                self.acked[op["op"]] += 1
                if n != expected:
                    self.violations.append(f"{describe_op(op)} returned {n}, the model says {expected}")
