"""Crash-test writer for capacity + TTL: ``python ttl_writer.py DATA_DIR SEED EVICTION``.

Opens the database at DATA_DIR (checkpointing every few writes, purging expired records often), creates
collection ``c`` (capacity MAX_RECORDS, the given eviction policy) if it is missing, prints ``READY``
and then runs random operations forever, until the parent SIGKILLs it.

Protocol on stdout, one line each, flushed at once:

    READY                  the collection is open
    BEGIN <json op>        about to call the engine; the JSON describes the op completely
    ACK <json result>      the call returned: a count (upsert, delete), the ids returned in order (get,
                           search), or {"error": "limit_exceeded"} (an upsert larger than the capacity)

Ops::

    {"op": "upsert", "records": [[id, version, expiry], ...]}   expiry: "none", "ttl" (the whole call has
        ttl=FAR), "future" (expires_at now + FAR) or "past" (expires_at in the past: invisible at once)
    {"op": "delete", "ids": [id, ...]}
    {"op": "get", "ids": [id, ...]}
    {"op": "search", "id": id, "version": version, "k": k}      the query is that record's vector

A record's vector is ``vector_for(id, version)`` and its metadata ``{"v": version}``; versions are unique
per run (``SEED * 10**6 + counter``). The test module imports this file for those and the constants.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from typing import Any

import numpy as np

DIM = 8
COLLECTION = "c"
MAX_RECORDS = 30
POOL: list[str] = [f"k{n}" for n in range(90)]
FAR = 3600.0
CHECKPOINT_EVERY_OPS = 4
PURGE_SECONDS = 0.05
INDEX: dict[str, Any] = {"type": "hnsw", "m": 4, "ef_construction": 16, "ef_search": 256}


def vector_for(rid: str, version: int) -> np.ndarray:
    digest = hashlib.blake2b(f"{rid}\x00{version}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    return rng.standard_normal(DIM).astype(np.float32)


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    from vecdb.config import IndexSettings, Settings, StorageSettings
    from vecdb.engine.database import Database
    from vecdb.errors import CollectionNotFoundError, LimitExceededError

    data_dir, seed, eviction = argv[0], int(argv[1]), argv[2]
    settings = Settings(
        storage=StorageSettings(
            sync_writes=False, checkpoint_every_ops=CHECKPOINT_EVERY_OPS, expiry_purge_seconds=PURGE_SECONDS
        ),
        index=IndexSettings(merge_min_records=4, merge_ratio=0.01, tombstone_share=0.3),
    )
    db = Database(data_dir, settings=settings)
    try:
        col = db.get_collection(COLLECTION)
    except CollectionNotFoundError:
        col = db.create_collection(
            COLLECTION,
            DIM,
            index=INDEX,
            max_records=MAX_RECORDS,
            eviction=eviction,  # type: ignore[arg-type]
        )
    _emit("READY")
    rng = random.Random(seed)
    counter = seed * 10**6
    latest: dict[str, int] = {}
    while True:
        r = rng.random()
        result: Any
        if r < 0.5:
            size = MAX_RECORDS + 1 if rng.random() < 0.03 else rng.randint(1, 8)
            ids = rng.sample(POOL, size)
            whole_ttl = rng.random() < 0.2
            records: list[tuple[str, int, str]] = []
            for rid in ids:
                counter += 1
                expiry = "ttl" if whole_ttl else rng.choice(["none", "none", "future", "past"])
                records.append((rid, counter, expiry))
            _emit("BEGIN " + json.dumps({"op": "upsert", "records": records}))
            now = time.time()
            expires = None
            if not whole_ttl and any(e != "none" for _, _, e in records):
                expires = [{"none": None, "future": now + FAR, "past": now - 5}[e] for _, _, e in records]
            try:
                result = col.upsert(
                    ids,
                    np.stack([vector_for(rid, v) for rid, v, _ in records]),
                    metadatas=[{"v": v} for _, v, _ in records],
                    ttl=FAR if whole_ttl else None,
                    expires_at=expires,
                )
                latest.update((rid, v) for rid, v, _ in records)
            except LimitExceededError:
                result = {"error": "limit_exceeded"}
        elif r < 0.65:
            ids = [rng.choice(POOL) for _ in range(rng.randint(1, 4))]
            _emit("BEGIN " + json.dumps({"op": "delete", "ids": ids}))
            result = col.delete(ids)
        elif r < 0.82:
            ids = [rng.choice(POOL) for _ in range(rng.randint(1, 4))]
            _emit("BEGIN " + json.dumps({"op": "get", "ids": ids}))
            result = [rec.id for rec in col.get(ids, include=[])]
        else:
            if not latest:
                continue
            rid = rng.choice(sorted(latest))
            k = rng.randint(1, 4)
            _emit("BEGIN " + json.dumps({"op": "search", "id": rid, "version": latest[rid], "k": k}))
            hits = col.search(vector_for(rid, latest[rid]), k=k, include=[])
            result = [h.id for h in hits[0]]
        _emit("ACK " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
