"""Damaged storage is detected, never served as a partial answer (issue 18: H1-H3, M3-M5, M7, M8).

Each test damages RocksDB's own files (WAL, table files of every column family, MANIFEST), a snapshot
or a checkpoint the way a disk, an operator or a crash can, then checks that vecdb either answers
completely and correctly or raises ``CorruptionError`` (and reports the collection as damaged).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecdb.config import Limits, Settings
from vecdb.engine.check import check_data_dir
from vecdb.engine.database import Database
from vecdb.errors import (
    CollectionExistsError,
    CorruptionError,
    DatabaseLockedError,
    LimitExceededError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    StorageError,
    TooManyOpenFilesError,
)
from vecdb.storage.translate import translate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from damage import flip, table_file_of

DIM = 8
N = 3000
NAME = "c"
CFS = ("records", "vectors", "ids", "sources")


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def fill(db: Database, name: str = NAME, n: int = N, seed: int = 0) -> Any:
    col = db.create_collection(name, DIM, "cosine", index={"type": "flat"})
    ids = [f"r{i:05d}" for i in range(n)]
    col.upsert(
        ids,
        vectors(n, seed),
        texts=[f"text {i} " * 8 for i in range(n)],
        metadatas=[{"g": i % 10, "i": i} for i in range(n)],
        sources=[f"s{i % 5}" for i in range(n)],
    )
    return col


def store_dir(data: Path, name: str = NAME) -> Path:
    return data / "collections" / name / "store"


# ---- H1: the write-ahead log ----------------------------------------------------------------------

_CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from vecdb.engine.database import Database
    db = Database(sys.argv[1])
    col = db.create_collection("c", 8, "cosine", index={"type": "flat"})
    rng = np.random.default_rng(0)
    for b in range(20):
        col.upsert([f"r{b}-{i}" for i in range(5)], rng.standard_normal((5, 8)).astype(np.float32))
    col.delete([f"r{b}-0" for b in range(10)])
    print(col.count(), col.seq, flush=True)
    os._exit(0)  # a crash: nothing flushed or closed, the last writes live in the WAL only
    """
)


def crash_after_writes(path: Path) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _CRASHING_WRITER, str(path)], capture_output=True, check=True, timeout=120
    )
    count, seq = out.stdout.split()
    return int(count), int(seq)


def wal_files(path: Path) -> list[Path]:
    return sorted(store_dir(path).glob("*.log"), key=lambda p: p.stat().st_size)


def test_crash_alone_loses_nothing(tmp_path: Path) -> None:
    count, seq = crash_after_writes(tmp_path)
    with Database(tmp_path) as db:
        col = db.get_collection(NAME)
        assert (col.count(), col.seq) == (count, seq) == (90, 21)
        assert db.damaged() == {}


@pytest.mark.parametrize("damage", ["bitflip", "truncated_tail", "deleted", "emptied"])
def test_damaged_wal_is_detected_not_rolled_back(tmp_path: Path, damage: str) -> None:
    crash_after_writes(tmp_path)
    wal = wal_files(tmp_path)[-1]
    assert wal.stat().st_size > 1000
    if damage == "bitflip":
        flip(wal)
    elif damage == "truncated_tail":
        os.truncate(wal, wal.stat().st_size - 40)
    elif damage == "deleted":
        wal.unlink()
    else:
        os.truncate(wal, 0)
    with Database(tmp_path) as db:
        for _ in range(2):  # refused each time, never opened empty or short
            with pytest.raises(CorruptionError):
                db.get_collection(NAME)
        assert list(db.damaged()) == [NAME]
    [result] = check_data_dir(tmp_path)
    assert not result.ok


def test_store_behind_its_index_checkpoint_is_refused(tmp_path: Path) -> None:
    """An older copy of the store put back (with no watermark to tell): the checkpoint still knows."""
    with Database(tmp_path) as db:
        col = fill(db, n=100)
        col.checkpoint()
        old = tmp_path / "old-store"
        shutil.copytree(store_dir(tmp_path), old)
        col.upsert(["late"], vectors(1, 9))
    shutil.rmtree(store_dir(tmp_path))
    shutil.copytree(old, store_dir(tmp_path))
    (tmp_path / "collections" / NAME / "seq.watermark").unlink()
    with Database(tmp_path) as db, pytest.raises(CorruptionError, match="acknowledged writes are missing"):
        db.get_collection(NAME)


def test_clean_close_then_wal_deleted_loses_nothing(tmp_path: Path) -> None:
    """After a clean close everything is in table files: a WAL removed then is no loss, no alarm."""
    with Database(tmp_path) as db:
        fill(db, n=200)
    for wal in wal_files(tmp_path):
        wal.unlink()
    with Database(tmp_path) as db:
        assert db.get_collection(NAME).count() == 200
        assert db.damaged() == {}


# ---- H2: table files of every column family ---------------------------------------------------------


def every_read(db: Database) -> dict[str, Any]:
    """Run every kind of read; each either answers or raises CorruptionError (recorded as such)."""
    out: dict[str, Any] = {}

    def attempt(key: str, fn: Any) -> None:
        try:
            out[key] = fn()
        except CorruptionError:
            out[key] = CorruptionError

    attempt("open", lambda: db.get_collection(NAME))
    if out["open"] is CorruptionError:
        return out
    col = db.get_collection(NAME)
    attempt("scroll", lambda: sorted(r.id for r in col.iter_records(limit=500)))
    attempt("get", lambda: [r.id for r in col.get([f"r{i:05d}" for i in range(N)])])
    attempt(
        "search", lambda: len(col.search(vectors(1, 0)[0], k=N, include=["text", "metadata", "vector"])[0])
    )
    attempt("count", lambda: col.count(filter={"g": 3}))
    attempt("verify", col.verify)
    attempt("delete_source", lambda: col.delete(source="s2"))
    return out


@pytest.mark.parametrize("cf", CFS)
def test_damaged_table_file_never_gives_a_partial_answer(tmp_path: Path, cf: str) -> None:
    with Database(tmp_path) as db:
        fill(db)
    flip(table_file_of(store_dir(tmp_path), cf), 0.4)
    expected_ids = [f"r{i:05d}" for i in range(N)]
    with Database(tmp_path) as db:
        got = every_read(db)
        complete = {
            "scroll": expected_ids,
            "get": expected_ids,
            "search": N,
            "count": N // 10,
            "delete_source": N // 5,
        }
        for key, value in got.items():
            if key in complete:
                assert value is CorruptionError or value == complete[key], (key, value)
        assert CorruptionError in got.values(), got  # found somewhere, by verify at the latest
        assert list(db.damaged()) == [NAME]
    [result] = check_data_dir(tmp_path)
    assert not result.ok and result.problems


def test_damaged_manifest_of_rocksdb_is_corruption_not_locked(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        fill(db, n=100)
    manifest = next(store_dir(tmp_path).glob("MANIFEST-*"))
    flip(manifest, 0.3)
    with Database(tmp_path) as db, pytest.raises(CorruptionError):
        db.get_collection(NAME)


def test_rocksdb_errors_are_translated_by_their_status_prefix() -> None:
    checksum = Exception("Corruption: block checksum mismatch: stored = 1, computed = 2 in /x/000009.sst")
    err = translate(checksum, "store")
    assert type(err) is CorruptionError and "/x/" not in err.message  # contains "lock", is not a lock
    assert (
        type(translate(Exception("IO error: lock hold by current process: /x/LOCK"), "s"))
        is DatabaseLockedError
    )
    assert type(translate(Exception("IO error: While open a file: /x/1.sst: Too many open files"), "s")) is (
        TooManyOpenFilesError
    )
    assert type(translate(Exception("Invalid argument: Column family not found"), "s")) is StorageError


_FD_STARVED = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from vecdb.engine.database import Database
    from vecdb.errors import VecDBError
    soft, hard = int(sys.argv[2]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with Database(sys.argv[1]) as db:
        for i in range(200):
            try:
                db.create_collection(f"c{i}", 4, "l2", index={"type": "flat"})
            except VecDBError as exc:
                print(type(exc).__name__, exc.code)
                break
        else:
            print("no error")
    """
)


def test_running_out_of_file_descriptors_is_its_own_error(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = 160 if hard == resource.RLIM_INFINITY or hard >= 160 else hard
    out = subprocess.run(
        [sys.executable, "-c", _FD_STARVED, str(tmp_path), str(limit)],
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    )
    assert out.stdout.split() == ["TooManyOpenFilesError", "too_many_open_files"], out.stderr[-2000:]


# ---- H3: snapshots ------------------------------------------------------------------------------------


@pytest.mark.parametrize("old_style", [False, True], ids=["checksummed", "no_file_list"])
def test_damaged_snapshot_is_refused_and_leaves_nothing(tmp_path: Path, old_style: bool) -> None:
    with Database(tmp_path) as db:
        fill(db)
        snap = db.create_snapshot(NAME, "s1")
        assert (snap.records, snap.seq) == (N, 1)
        folder = tmp_path / "snapshots" / NAME / "s1"
        meta = __import__("orjson").loads((folder / "snapshot.json").read_bytes())
        assert meta["stored"] == N and "store/CURRENT" in meta["files"]
        if old_style:
            del meta["files"]
            (folder / "snapshot.json").write_bytes(__import__("orjson").dumps(meta))
        # The snapshot's table files are hard links to the live store's: damage a copy only.
        sst = table_file_of(folder / "store", "records")
        copy = sst.read_bytes()
        sst.unlink()
        sst.write_bytes(copy)
        flip(sst, 0.4)
        with pytest.raises(CorruptionError):
            db.restore_snapshot(NAME, "s1", target="back")
        assert db.list_collections() == [NAME]
        assert not [p for p in (tmp_path / "collections").iterdir() if p.name != NAME]
        assert db.get_collection(NAME).count() == N  # the original is untouched
    results = {r.name: r for r in check_data_dir(tmp_path)}
    assert results[NAME].ok and not results[f"{NAME}/s1"].ok


def test_intact_snapshot_restores_exactly(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        col = fill(db)
        db.create_snapshot(NAME, "s1")
        col.delete(source="s1")
        back = db.restore_snapshot(NAME, "s1", target="back")
        assert back.count() == N and back.verify()["records"] == N
        assert col.count() == N - N // 5
    assert all(r.ok for r in check_data_dir(tmp_path))


def test_one_damaged_snapshot_json_hides_no_other_snapshot(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        fill(db, n=50)
        db.create_snapshot(NAME, "a")
        db.create_snapshot(NAME, "b")
        (tmp_path / "snapshots" / NAME / "a" / "snapshot.json").write_text("{not json")
        assert [s.name for s in db.list_snapshots(NAME)] == ["b"]


def test_snapshot_operations_on_one_name_are_serialized(tmp_path: Path) -> None:
    """Create, delete and restore racing on one snapshot name: only the clean, expected errors."""
    expected = (SnapshotExistsError, SnapshotNotFoundError, CollectionExistsError)
    unexpected: list[BaseException] = []
    with Database(tmp_path) as db:
        fill(db, n=200)

        def worker(k: int) -> None:
            for i in range(12):
                try:
                    op = (k + i) % 3
                    if op == 0:
                        db.create_snapshot(NAME, "same")
                    elif op == 1:
                        db.delete_snapshot(NAME, "same")
                    else:
                        db.restore_snapshot(NAME, "same", target=f"t{k}-{i}")
                except expected:
                    pass
                except BaseException as exc:
                    unexpected.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=240)
        assert not unexpected, unexpected[:3]
        for name in db.list_collections():
            assert db.get_collection(name).count() == 200


# ---- M5: a checkpoint of another collection -----------------------------------------------------------


def test_foreign_index_checkpoint_is_never_loaded(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        a = fill(db, "a", n=40, seed=1)
        b = fill(db, "b", n=40, seed=2)
        a.checkpoint()
        b.checkpoint()
    shutil.copy(tmp_path / "collections" / "a" / "index.ckpt", tmp_path / "collections" / "b" / "index.ckpt")
    with Database(tmp_path) as db:
        b = db.get_collection("b")
        queries = vectors(40, 2)
        hits = b.search(queries, k=1)
        assert [row[0].id for row in hits] == [f"r{i:05d}" for i in range(40)]  # 40 of 40 right


# ---- M7: distinct metadata keys -----------------------------------------------------------------------


def test_distinct_metadata_keys_are_capped(tmp_path: Path) -> None:
    settings = Settings(limits=Limits(max_metadata_fields=50))
    with Database(tmp_path, settings=settings) as db:
        col = db.create_collection(NAME, DIM, "l2", index={"type": "flat"})
        col.upsert(
            [f"a{i}" for i in range(10)], vectors(10), metadatas=[{f"k{i}": i, "x": 1} for i in range(10)]
        )
        with pytest.raises(LimitExceededError) as info:
            col.upsert([f"b{i}" for i in range(45)], vectors(45), metadatas=[{f"n{i}": i} for i in range(45)])
        assert info.value.details == {"limit": 50, "existing": 11, "new": 45}
        assert col.count() == 10  # nothing of the rejected batch was written
        col.upsert(["c"], vectors(1), metadatas=[{"k1": 2, "x": 3}])  # known keys: always fine
        col.delete(ids=[f"a{i}" for i in range(10)])  # their keys go with them
        col.upsert([f"b{i}" for i in range(45)], vectors(45), metadatas=[{f"n{i}": i} for i in range(45)])


# ---- the data directory's lock ------------------------------------------------------------------------


def test_deleting_the_lock_file_does_not_let_a_second_database_in(tmp_path: Path) -> None:
    with Database(tmp_path):
        (tmp_path / "LOCK").unlink()
        with pytest.raises(DatabaseLockedError):
            Database(tmp_path)
