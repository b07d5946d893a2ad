"""Recovery: damaged or missing checkpoints and manifests, the directory lock, reopen, op-log replay."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecdb.config import Settings, StorageSettings
from vecdb.engine.database import Database
from vecdb.errors import CollectionNotFoundError, CorruptionError, DatabaseLockedError
from vecdb.storage.checkpoint import read_checkpoint

DIM = 8
NAME = "c"
# An expected record: (text, metadata, source, vector bytes).
State = dict[str, tuple[str | None, dict[str, Any], str | None, bytes]]


def vec(i: int, version: int = 1) -> np.ndarray:
    return np.random.default_rng([i, version]).standard_normal(DIM).astype(np.float32)


def rec(i: int, version: int = 1) -> tuple[Any, ...]:
    """(id, vector, text, metadata, source) of version ``version`` of record ``i``."""
    return f"r{i}", vec(i, version), f"text {i} v{version}", {"i": i, "v": version, "g": i % 4}, f"s{i % 5}"


def upsert(col: Any, records: list[tuple[Any, ...]], state: State) -> None:
    ids, vecs, texts, metas, sources = zip(*records, strict=True)
    col.upsert(list(ids), np.stack(vecs), list(texts), list(metas), list(sources))
    for rid, v, text, meta, src in records:
        state[rid] = (text, meta, src, v.tobytes())


def delete_ids(col: Any, ids: list[str], state: State) -> None:
    col.delete(ids=ids)
    for rid in ids:
        state.pop(rid, None)


def snapshot(col: Any, ids: list[str]) -> State:
    return {
        r.id: (r.text, r.metadata, r.source, r.vector.tobytes())
        for r in col.get(ids, include=["text", "metadata", "source", "vector"])
    }


def check_collection(col: Any, state: State) -> None:
    """Records exact, counts equal, every record found first by its own vector, no ghosts."""
    assert snapshot(col, [*sorted(state), "r-never"]) == state
    info = col.info()
    assert col.count() == len(state) == info["count"] == info["index_state"]["vectors"]
    if not state:
        return
    ids = sorted(state)
    queries = np.stack([np.frombuffer(state[rid][3], dtype=np.float32) for rid in ids])
    hits = col.search(queries, k=1)
    assert [row[0].id for row in hits] == ids
    assert all(row[0].score == pytest.approx(1.0, abs=1e-4) for row in hits)
    everything = col.search(queries[:1], k=len(state))[0]
    assert sorted(h.id for h in everything) == ids


def build(path: Path) -> State:
    """A collection with 300 records, then deletes, replacements and a replace_source; closed."""
    state: State = {}
    with Database(path) as db:
        col = db.create_collection(NAME, DIM, "cosine")
        upsert(col, [rec(i) for i in range(300)], state)
        delete_ids(col, [f"r{i}" for i in range(0, 300, 7)], state)
        upsert(col, [rec(i, 2) for i in range(1, 300, 5)], state)
        col.replace_source("s3", ["r1000", "r1001"], np.stack([vec(1000), vec(1001)]))
        for rid in [r for r, v in state.items() if v[2] == "s3"]:
            del state[rid]
        for i in (1000, 1001):
            state[f"r{i}"] = (None, {}, "s3", vec(i).tobytes())
        col.delete(filter={"g": 2})
        for rid in [r for r, v in state.items() if v[1].get("g") == 2]:
            del state[rid]
    return state


def rebuild_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage()]


@pytest.fixture
def vecdb_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="vecdb")
    return caplog


# ---- (a) damaged index checkpoints ---------------------------------------------------------------


def checkpoint_seq_of(data: bytes) -> int:
    return int.from_bytes(data[8:16], "little")  # after the 8-byte magic


@pytest.mark.parametrize(
    "damage",
    ["deleted", "empty", "truncated_header", "truncated_payload", "garbage", "bitflip", "stale"],
)
def test_damaged_checkpoint_is_rebuilt_from_the_store(
    tmp_path: Path, damage: str, vecdb_logs: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db"
    ckpt = path / "collections" / NAME / "index.ckpt"
    state: State = {}
    with Database(path) as db:
        upsert(db.create_collection(NAME, DIM, "cosine"), [rec(i) for i in range(200)], state)
    old = ckpt.read_bytes()
    with Database(path) as db:  # later writes the old checkpoint does not cover; the op-log is truncated
        col = db.get_collection(NAME)
        delete_ids(col, [f"r{i}" for i in range(0, 200, 3)], state)
        upsert(col, [rec(i, 2) for i in range(1, 200, 3)] + [rec(i) for i in range(200, 260)], state)
    data = ckpt.read_bytes()
    assert read_checkpoint(ckpt).seq > checkpoint_seq_of(old)
    if damage == "deleted":
        ckpt.unlink()
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "truncated_header":
        ckpt.write_bytes(data[:20])
    elif damage == "truncated_payload":
        ckpt.write_bytes(data[: len(data) - 100])
    elif damage == "garbage":
        ckpt.write_bytes(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    elif damage == "bitflip":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x10
        ckpt.write_bytes(bytes(flipped))
    else:  # "stale": a valid checkpoint from before the last writes, whose op-log is gone
        ckpt.write_bytes(old)

    vecdb_logs.clear()
    with Database(path) as db:
        col = db.get_collection(NAME)
        assert rebuild_warnings(vecdb_logs), f"{damage}: expected a logged rebuild"
        check_collection(col, state)
        # Filters and sources come from the store, not the index, but must agree after a rebuild too.
        assert col.count(filter={"g": 1}) == sum(1 for v in state.values() if v[1]["g"] == 1)
        seq = col.info()["seq"]
    # The rebuilt index was checkpointed again, and the next open uses it.
    assert read_checkpoint(ckpt).seq == seq
    vecdb_logs.clear()
    with Database(path) as db:
        col = db.get_collection(NAME)
        assert not rebuild_warnings(vecdb_logs)
        assert col.info()["checkpoint_seq"] == seq
        check_collection(col, state)


def test_checkpoint_for_another_configuration_is_rebuilt(
    tmp_path: Path, vecdb_logs: pytest.LogCaptureFixture
) -> None:
    """A checkpoint copied from a collection with another metric is not trusted."""
    state: State = {}
    with Database(tmp_path / "db") as db:
        upsert(db.create_collection(NAME, DIM, "cosine"), [rec(i) for i in range(50)], state)
        other = db.create_collection("other", DIM, "l2")
        upsert(other, [rec(i) for i in range(50)], {})
    cols = tmp_path / "db" / "collections"
    shutil.copyfile(cols / "other" / "index.ckpt", cols / NAME / "index.ckpt")
    vecdb_logs.clear()
    with Database(tmp_path / "db") as db:
        col = db.get_collection(NAME)
        assert rebuild_warnings(vecdb_logs)
        check_collection(col, state)


# ---- (b) damaged or missing manifests ------------------------------------------------------------


@pytest.mark.parametrize(
    "damage", ["missing", "garbage", "empty", "truncated", "not_object", "wrong_name", "bad_format", "no_dim"]
)
def test_damaged_manifest_raises_corruption_and_keeps_the_data(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "db"
    state = build(path)
    with Database(path) as db:
        upsert(db.create_collection("other", DIM, "l2"), [rec(i) for i in range(10)], {})
    col_dir = path / "collections" / NAME
    manifest = col_dir / "collection.json"
    original = manifest.read_bytes()
    store_files = sorted(p.relative_to(col_dir) for p in col_dir.rglob("*"))
    if damage == "missing":
        manifest.unlink()
    elif damage == "garbage":
        manifest.write_bytes(b"\x00\xff{not json at all")
    elif damage == "empty":
        manifest.write_bytes(b"")
    elif damage == "truncated":
        manifest.write_bytes(original[: len(original) // 2])
    elif damage == "not_object":
        manifest.write_bytes(b"[1, 2, 3]")
    elif damage == "wrong_name":
        manifest.write_bytes(original.replace(b'"name": "c"', b'"name": "d"'))
    elif damage == "bad_format":
        manifest.write_bytes(original.replace(b'"format": 1', b'"format": 99'))
    else:
        manifest.write_bytes(original.replace(b'"dim": 8,', b""))
    assert damage == "missing" or manifest.read_bytes() != original

    for _ in range(2):  # a reopen changes nothing: still an error, the data still there
        with Database(path) as db:
            assert NAME in db.list_collections()
            for _ in range(2):  # not cached as half-open either
                with pytest.raises(CorruptionError) as exc_info:
                    db.get_collection(NAME)
                message = str(exc_info.value)
                assert exc_info.value.code == "corruption"
                assert "'c'" in message and "manifest" in message, message
                if damage not in ("wrong_name", "bad_format", "no_dim"):
                    assert str(manifest) in message and "store" in message, message
            # The other collection is unaffected.
            assert db.get_collection("other").count() == 10
        assert (col_dir / "store").is_dir()
        remaining = sorted(p.relative_to(col_dir) for p in col_dir.rglob("*"))
        assert set(store_files) - {Path("collection.json")} <= set(remaining)

    manifest.write_bytes(original)
    with Database(path) as db:
        check_collection(db.get_collection(NAME), state)


# ---- (c) the directory lock ----------------------------------------------------------------------

_TRY_OPEN = """
import sys, time
from vecdb.engine.database import Database
from vecdb.errors import DatabaseLockedError
t = time.perf_counter()
try:
    Database(sys.argv[1]).close()
    print("OPENED", time.perf_counter() - t)
except DatabaseLockedError as exc:
    print("LOCKED", time.perf_counter() - t, exc.code)
"""

_HOLD_OPEN = """
import sys, time
from vecdb.engine.database import Database
db = Database(sys.argv[1])
db.get_collection("c").count()
print("HOLDING", flush=True)
time.sleep(600)
"""


def try_open_in_subprocess(path: Path) -> tuple[str, float]:
    """(OPENED or LOCKED, seconds the open took in the child). The timeout catches an open that blocks."""
    proc = subprocess.run(
        [sys.executable, "-c", _TRY_OPEN, str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    word, seconds, *_ = proc.stdout.split()
    return word, float(seconds)


def test_second_process_gets_database_locked_error_quickly(tmp_path: Path) -> None:
    path = tmp_path / "db"
    build(path)
    db = Database(path)
    try:
        db.get_collection(NAME)
        word, seconds = try_open_in_subprocess(path)
        assert word == "LOCKED"
        assert seconds < 5.0, f"the open blocked for {seconds:.1f} s instead of failing at once"
    finally:
        db.close()
    word, _ = try_open_in_subprocess(path)
    assert word == "OPENED"


def test_database_locked_by_another_process_until_it_dies(tmp_path: Path) -> None:
    path = tmp_path / "db"
    state = build(path)
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_OPEN, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"HOLDING", proc.stderr.read() if proc.stderr else ""
        t0 = time.monotonic()
        with pytest.raises(DatabaseLockedError, match="in use"):
            Database(path)
        assert time.monotonic() - t0 < 5.0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    # The lock dies with its holder: no stale lock after a crash.
    with Database(path) as db:
        check_collection(db.get_collection(NAME), state)


def test_second_database_in_the_same_process_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "db"
    state = build(path)
    first = Database(path)
    try:
        col = first.get_collection(NAME)
        for _ in range(2):
            t0 = time.monotonic()
            with pytest.raises(DatabaseLockedError) as exc_info:
                Database(path)
            assert time.monotonic() - t0 < 5.0
            assert exc_info.value.code == "database_locked"
        with pytest.raises(DatabaseLockedError):
            Database(str(path / "." / "collections" / ".."))  # the same directory, spelled differently
        # The failed attempts did not disturb the first handle.
        upsert(col, [rec(5000)], state)
        check_collection(col, state)
    finally:
        first.close()
    with Database(path) as db:
        check_collection(db.get_collection(NAME), state)


# ---- (d) reopen without changes ------------------------------------------------------------------


def test_reopen_without_changes_gives_identical_results(
    tmp_path: Path, vecdb_logs: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db"
    state = build(path)
    ckpt = path / "collections" / NAME / "index.ckpt"
    queries = np.random.default_rng(7).standard_normal((20, DIM)).astype(np.float32)

    def results(col: Any) -> list[Any]:
        plain = col.search(queries, k=15)
        filtered = col.search(queries, k=15, filter={"g": {"$in": [0, 3]}})
        return [[(h.id, h.score, h.text, h.metadata, h.source) for h in row] for row in plain + filtered]

    with Database(path) as db:
        col = db.get_collection(NAME)
        first = results(col)
        seq = col.info()["seq"]
    ckpt_bytes, ckpt_mtime = ckpt.read_bytes(), ckpt.stat().st_mtime_ns
    assert read_checkpoint(ckpt).seq == seq

    for _ in range(2):
        vecdb_logs.clear()
        with Database(path) as db:
            col = db.get_collection(NAME)
            assert not vecdb_logs.records, [r.getMessage() for r in vecdb_logs.records]
            info = col.info()
            assert info["seq"] == info["checkpoint_seq"] == seq  # loaded, not rebuilt or replayed
            assert results(col) == first  # ids and scores bit for bit
            check_collection(col, state)
        # Nothing changed, so close wrote no new checkpoint.
        assert ckpt.read_bytes() == ckpt_bytes
        assert ckpt.stat().st_mtime_ns == ckpt_mtime


# ---- (e) SIGKILL before a checkpoint: the op-log replays -----------------------------------------

_CHILD = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("vecdb_tests_recovery_child", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.child_main(sys.argv[2], sys.argv[3])
"""

NO_CHECKPOINTS = StorageSettings(checkpoint_every_ops=10**9, checkpoint_every_records=10**9)


def script(col: Any, checkpoint_midway: bool) -> int:
    """Writes of every kind; with ``checkpoint_midway``, an explicit checkpoint after the first half.

    Returns the sequence number the checkpoint covers (0 without one).
    """
    col.upsert(
        [f"r{i}" for i in range(400)],
        np.stack([vec(i) for i in range(400)]),
        [f"t{i}" for i in range(400)],
        [{"g": i % 4, "i": i} for i in range(400)],
        [f"s{i % 5}" for i in range(400)],
    )
    col.delete(ids=[f"r{i}" for i in range(0, 400, 9)])
    ckpt_seq = 0
    if checkpoint_midway:
        col.checkpoint()
        ckpt_seq = col.info()["checkpoint_seq"]
    for step in range(10):  # many small ops, so the replay covers a long op-log
        ids = [f"r{i}" for i in range(step, 400, 13)]
        col.upsert(ids, np.stack([vec(int(x[1:]), 2 + step) for x in ids]), metadatas=[{"g": 9}] * len(ids))
        col.delete(ids=[f"r{step * 31 % 400}", "r-missing"])
    col.delete(source="s2")
    col.delete(filter={"$and": [{"g": 1}, {"i": {"$lt": 200}}]})
    col.replace_source(
        "s4", ["r4", "n1", "n2"], np.stack([vec(4, 99), vec(5001), vec(5002)]), ["x", "y", "z"]
    )
    col.upsert([f"n{i}" for i in range(3, 40)], np.stack([vec(5000 + i) for i in range(3, 40)]))
    return int(ckpt_seq)


def child_main(data_dir: str, mode: str) -> None:
    sync = mode != "nosync"
    settings = Settings(storage=NO_CHECKPOINTS.model_copy(update={"sync_writes": sync}))
    db = Database(data_dir, settings=settings)
    col = db.create_collection(NAME, DIM, "cosine")
    ckpt_seq = script(col, checkpoint_midway=mode == "checkpoint")
    print("DONE", ckpt_seq, col.info()["seq"], flush=True)
    time.sleep(600)


ALL_IDS = [f"r{i}" for i in range(400)] + [f"n{i}" for i in range(40)]


@pytest.mark.parametrize("mode", ["never", "checkpoint", "nosync"])
def test_sigkill_before_checkpoint_loses_nothing(
    tmp_path: Path, mode: str, vecdb_logs: pytest.LogCaptureFixture
) -> None:
    # The reference: the same writes, closed cleanly.
    with Database(tmp_path / "ref", settings=Settings(storage=NO_CHECKPOINTS)) as ref_db:
        ref = ref_db.create_collection(NAME, DIM, "cosine")
        script(ref, checkpoint_midway=False)
        expected = snapshot(ref, ALL_IDS)
        expected_seq = ref.info()["seq"]
    assert 300 < len(expected) < 440

    path = tmp_path / "db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, __file__, str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline().split()
        assert line[:1] == [b"DONE"], proc.stderr.read().decode()
        ckpt_seq, last_seq = int(line[1]), int(line[2])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert last_seq == expected_seq
    ckpt = path / "collections" / NAME / "index.ckpt"
    if mode == "checkpoint":
        assert 0 < ckpt_seq < last_seq
        assert read_checkpoint(ckpt).seq == ckpt_seq
    else:
        assert not ckpt.exists()

    vecdb_logs.clear()
    with Database(path) as db:
        col = db.get_collection(NAME)
        info = col.info()
        assert info["seq"] == last_seq
        if mode == "checkpoint":
            # Loaded the checkpoint and replayed the op-log past it: no rebuild.
            assert not rebuild_warnings(vecdb_logs), rebuild_warnings(vecdb_logs)
        else:
            assert rebuild_warnings(vecdb_logs)
        assert snapshot(col, ALL_IDS) == expected
        check_collection(col, expected)
        assert col.count(filter={"g": 9}) == sum(1 for v in expected.values() if v[1].get("g") == 9)
    # The reopen checkpointed; the next one starts from that checkpoint alone.
    assert read_checkpoint(ckpt).seq == last_seq
    with Database(path) as db:
        assert snapshot(db.get_collection(NAME), ALL_IDS) == expected


# ---- (f) leftovers of interrupted creates and drops ----------------------------------------------


def test_leftover_creating_and_dropped_dirs_are_removed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "db"
    state = build(path)
    cols = path / "collections"
    # A half-created collection: a complete copy of one, never renamed into place.
    with Database(tmp_path / "donor") as donor:
        upsert(donor.create_collection("ghost", DIM, "cosine"), [rec(i) for i in range(5)], {})
    leftovers = [
        cols / f".creating-ghost-{uuid.uuid4().hex}",
        cols / f".creating-{NAME}-{uuid.uuid4().hex}",
        cols / f".dropped-old-{uuid.uuid4().hex}",
    ]
    shutil.copytree(tmp_path / "donor" / "collections" / "ghost", leftovers[0])
    leftovers[1].mkdir()
    (leftovers[1] / "collection.json").write_bytes(b'{"format": 1, "name": "c"')
    shutil.copytree(tmp_path / "donor" / "collections" / "ghost", leftovers[2])
    os.chmod(leftovers[2] / "collection.json", 0o400)

    with Database(path) as db:
        assert sorted(p.name for p in cols.iterdir()) == [NAME]
        assert db.list_collections() == [NAME]
        with pytest.raises(CollectionNotFoundError):
            db.get_collection("ghost")
        check_collection(db.get_collection(NAME), state)
        ghost = db.create_collection("ghost", DIM, "cosine")
        assert ghost.count() == 0
