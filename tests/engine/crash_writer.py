"""Crash-test writer: ``python crash_writer.py DATA_DIR SEED``.

Opens the database at DATA_DIR (checkpointing every few writes, so that kills often land while a
checkpoint is being written or the op-log truncated), creates collection ``c`` if it is missing, prints
``READY`` and then writes random operations forever, until the parent SIGKILLs it.

Protocol on stdout, one line each, flushed at once:

    READY                  the collection is open
    BEGIN <json op>        about to call the engine; the JSON describes the op completely
    ACK <n>                the call returned n

Op JSON (records are compact: text, metadata and vector follow from ``(id, version)`` and ``g``)::

    {"op": "upsert", "records": [[id, version, g, source_or_null], ...]}
    {"op": "delete_ids", "ids": [id, ...]}                      (may repeat ids, may name missing ones)
    {"op": "delete_source", "source": source}
    {"op": "delete_filter", "filter": {...}}                    ($and, equality, $in, $gte, $lt only)
    {"op": "replace_source", "source": source, "records": [[id, version, g], ...]}   (may be empty)

A record is: text ``f"{id}:v{version}"``, metadata ``{"v": version, "g": g}``, vector
``vector_for(id, version)``. Versions are unique per run (``SEED * 10**6 + counter``), so every write of
an id stores a different vector. The test module imports this file for ``vector_for`` and the id pool.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from typing import Any

import numpy as np

DIM = 16
METRIC = "cosine"
COLLECTION = "c"
CHECKPOINT_EVERY_OPS = 3
GROUPS = 8
#: ~2000 ids, a few of them non-ASCII, so that upserts often replace existing records.
POOL_IDS: list[str] = [f"id{n}" if n % 50 else f"ид-{n}" for n in range(2000)]
SOURCES: list[str] = ["a", "b", "c", "doc/ü.txt", "e", "f"]


def vector_for(rid: str, version: int) -> np.ndarray:
    """The float32 vector of version ``version`` of record ``rid``: deterministic, never zero."""
    digest = hashlib.blake2b(f"{rid}\x00{version}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    return rng.standard_normal(DIM).astype(np.float32)


def text_for(rid: str, version: int) -> str:
    return f"{rid}:v{version}"


def metadata_for(version: int, g: int) -> dict[str, Any]:
    return {"v": version, "g": g}


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Writer:
    def __init__(self, col: Any, seed: int) -> None:
        self.col = col
        self.rng = random.Random(seed)
        self.version_base = seed * 10**6
        self.counter = 0

    def _version(self) -> int:
        self.counter += 1
        return self.version_base + self.counter

    def _source(self) -> str | None:
        return None if self.rng.random() < 0.3 else self.rng.choice(SOURCES)

    def _records(self, n: int) -> list[tuple[str, int, int]]:
        ids = self.rng.sample(POOL_IDS, n)
        return [(rid, self._version(), self.rng.randrange(GROUPS)) for rid in ids]

    def _filter(self) -> dict[str, Any]:
        kind = self.rng.randrange(3)
        if kind == 0:
            return {"g": self.rng.randrange(GROUPS)}
        if kind == 1:
            return {"g": {"$in": self.rng.sample(range(GROUPS), 2)}}
        # Older versions (earlier rounds, earlier in this run) of the upper groups.
        cut = self.version_base + self.rng.randrange(self.counter + 1)
        return {"$and": [{"g": {"$gte": self.rng.randrange(GROUPS // 2, GROUPS)}}, {"v": {"$lt": cut}}]}

    def step(self) -> None:
        col = self.col
        r = self.rng.random()
        if r < 0.45:
            recs = [(*rec, self._source()) for rec in self._records(self.rng.randint(1, 200))]
            _emit("BEGIN " + json.dumps({"op": "upsert", "records": recs}))
            n = col.upsert(
                [x[0] for x in recs],
                np.stack([vector_for(x[0], x[1]) for x in recs]),
                texts=[text_for(x[0], x[1]) for x in recs],
                metadatas=[metadata_for(x[1], x[2]) for x in recs],
                sources=[x[3] for x in recs],
            )
        elif r < 0.60:
            ids = [self.rng.choice(POOL_IDS) for _ in range(self.rng.randint(1, 100))]
            _emit("BEGIN " + json.dumps({"op": "delete_ids", "ids": ids}))
            n = col.delete(ids=ids)
        elif r < 0.68:
            source = self.rng.choice(SOURCES)
            _emit("BEGIN " + json.dumps({"op": "delete_source", "source": source}))
            n = col.delete(source=source)
        elif r < 0.76:
            flt = self._filter()
            _emit("BEGIN " + json.dumps({"op": "delete_filter", "filter": flt}))
            n = col.delete(filter=flt)
        else:
            source = self.rng.choice(SOURCES)
            recs3 = self._records(self.rng.choice([0, *range(1, 61)]))
            op = {"op": "replace_source", "source": source, "records": recs3}
            _emit("BEGIN " + json.dumps(op))
            vectors = (
                np.stack([vector_for(x[0], x[1]) for x in recs3])
                if recs3
                else np.empty((0, DIM), dtype=np.float32)
            )
            n = col.replace_source(
                source,
                [x[0] for x in recs3],
                vectors,
                texts=[text_for(x[0], x[1]) for x in recs3],
                metadatas=[metadata_for(x[1], x[2]) for x in recs3],
            )
        _emit(f"ACK {n}")


def main(argv: list[str]) -> None:
    from vecdb.config import Settings, StorageSettings
    from vecdb.engine.database import Database
    from vecdb.errors import CollectionNotFoundError

    data_dir, seed = argv[0], int(argv[1])
    settings = Settings(storage=StorageSettings(checkpoint_every_ops=CHECKPOINT_EVERY_OPS))
    db = Database(data_dir, settings=settings)
    try:
        col = db.get_collection(COLLECTION)
    except CollectionNotFoundError:
        col = db.create_collection(COLLECTION, DIM, METRIC)
    _emit("READY")
    writer = Writer(col, seed)
    while True:
        writer.step()


if __name__ == "__main__":
    main(sys.argv[1:])
