"""Memory: what info()["memory"] accounts, bounded RocksDB caches, streamed index checkpoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecdb import Database
from vecdb.config import IndexSettings, Settings, StorageSettings
from vecdb.errors import CorruptionError
from vecdb.storage import read_checkpoint, read_checkpoint_stream, write_checkpoint_stream

N, DIM = 6_000, 32


def _data(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def _settings(**storage: Any) -> Settings:
    return Settings(index=IndexSettings(merge_min_records=1_000), storage=StorageSettings(**storage))


@pytest.mark.parametrize(("storage", "bytes_per_dim"), [("flat", 4), ("sq8", 1), ("fp16", 2)])
def test_memory_accounts_each_index_part(tmp_path: Path, storage: str, bytes_per_dim: int) -> None:
    x = _data()
    with Database(tmp_path, settings=_settings()) as db:
        col = db.create_collection("c", dim=DIM, index={"type": "hnsw", "storage": storage})
        col.upsert([str(i) for i in range(N)], x)
        assert col.wait_for_index(timeout=120)
        mem = col.info()["memory"]
        index = mem["index"]
        assert index["ann_vectors"] == N * DIM * bytes_per_dim  # the graph's own storage, compressed or not
        assert index["ann_graph"] > N * 4  # at least one link per vector
        assert index["delta_vectors"] == 0 and index["build"] == 0
        assert set(mem["store"]) == {"memtables", "block_cache", "table_readers"}
        assert mem["total"] == sum(index.values()) + sum(mem["store"].values())
        col.upsert(["extra"], x[:1])
        assert col.info()["memory"]["index"]["delta_vectors"] == DIM * 4
        # Compressed storage still answers with exact scores (re-ranked from the stored vectors).
        q = x[:5] + 0.01
        hits = col.search(q, k=3, include=["vector"])
        for qi, row in zip(q, hits, strict=True):
            qn = qi / np.linalg.norm(qi)
            for h in row:
                v = np.asarray(h.vector)
                assert h.score == pytest.approx(float(qn @ (v / np.linalg.norm(v))), abs=1e-5)
        assert [row[0].id for row in hits] == [str(i) for i in range(5)]


def test_memory_accounts_the_recall_audits_cached_view(tmp_path: Path) -> None:
    x = _data()
    settings = Settings(index=IndexSettings(merge_min_records=1_000, audit_fraction=1.0))
    with Database(tmp_path, settings=settings) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index={"type": "hnsw"})
        col.upsert([str(i) for i in range(N)], x)
        assert col.wait_for_index(timeout=120)
        assert col.info()["memory"]["index"]["audit"] == 0  # nothing audited yet: no view
        col.search(x[:20] + 0.01, k=5)  # every query sampled: a batch of 16 starts the audit at once
        deadline = time.monotonic() + 60
        while col.info()["index_state"]["recall"]["audit"]["samples"] < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        mem = col.info()["memory"]
        assert mem["index"]["audit"] == N * (8 + 4)  # a label (int64) and an l2 norm (float32) a vector
        assert mem["total"] == sum(mem["index"].values()) + sum(mem["store"].values())


def test_rocksdb_caches_stay_within_their_settings(tmp_path: Path) -> None:
    x = _data(20_000)
    with Database(tmp_path, settings=_settings(block_cache_mb=1, write_buffer_mb=1)) as db:
        col = db.create_collection("c", dim=DIM, index={"type": "flat"})
        for i in range(0, len(x), 2_000):
            col.upsert([str(j) for j in range(i, i + 2_000)], x[i : i + 2_000], texts=["t" * 100] * 2_000)
            assert col.info()["memory"]["store"]["memtables"] <= 3 << 20
        ids = [str(i) for i in range(len(x))]
        for i in range(0, len(ids), 1_000):
            assert len(col.get(ids[i : i + 1_000], include=["text"])) == 1_000  # read through the cache
        store = col.info()["memory"]["store"]
        assert 0 < store["block_cache"] <= 1 << 20
    # 20k records of ~2.3 KB each went through: the cache held at most 1 MiB of them at any time.
    with Database(tmp_path, settings=_settings(block_cache_mb=8)) as db:
        col = db.get_collection("c")
        assert col.count() == len(x)
        for i in range(0, len(ids), 1_000):
            col.get(ids[i : i + 1_000], include=["text"])
        assert (1 << 20) < col.info()["memory"]["store"]["block_cache"] <= 8 << 20


def _write(path: Path, payload: bytes, seq: int = 7) -> None:
    def produce(sink: Any) -> None:
        for i in range(0, len(payload), 1000):
            sink(payload[i : i + 1000])

    write_checkpoint_stream(path, seq, {"kind": "test"}, produce)


def _read_all(read: Any) -> bytes:
    parts = []
    while chunk := read(777):
        parts.append(chunk)
    return b"".join(parts)


def test_streamed_checkpoint_round_trips_and_matches_the_whole_file_format(tmp_path: Path) -> None:
    payload = np.random.default_rng(1).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    path = tmp_path / "x.ckpt"
    _write(path, payload)
    assert read_checkpoint_stream(path, _read_all) == (7, {"kind": "test"}, payload)
    whole = read_checkpoint(path)  # one format: the whole-file reader reads a streamed file
    assert (whole.seq, whole.meta, whole.payload.tobytes()) == (7, {"kind": "test"}, payload)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend"])
def test_streamed_checkpoint_refuses_damage_before_reading_it(tmp_path: Path, damage: str) -> None:
    payload = bytes(range(256)) * 40
    path = tmp_path / "x.ckpt"
    _write(path, payload)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-100] ^= 1
    elif damage == "truncate":
        del data[-10:]
    else:
        data += b"\0"
    path.write_bytes(bytes(data))
    consumed = []
    with pytest.raises(CorruptionError):
        read_checkpoint_stream(path, consumed.append)
    assert consumed == []  # the payload is never handed over before its checksum is verified


def test_streamed_checkpoint_refuses_a_payload_not_read_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "x.ckpt"
    _write(path, b"x" * 5_000)
    with pytest.raises(CorruptionError, match="past its index"):
        read_checkpoint_stream(path, lambda read: read(100))
