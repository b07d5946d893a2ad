"""Scroll (every record in id order, page by page, while writes go on) and snapshots (online, consistent
copies that restore to a collection answering exactly as the original did at snapshot time)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vecdb import Database
from vecdb.config import IndexSettings, Settings, StorageSettings
from vecdb.errors import (
    CollectionExistsError,
    CorruptionError,
    InvalidArgumentError,
    InvalidNameError,
    LimitExceededError,
    SnapshotExistsError,
    SnapshotNotFoundError,
)

DIM = 8


def settings() -> Settings:
    return Settings(
        storage=StorageSettings(sync_writes=False),
        index=IndexSettings(merge_min_records=200, ivf_train_min=400),
    )


@pytest.fixture
def db(tmp_path: Path) -> Database:
    with Database(tmp_path / "db", settings=settings()) as database:
        yield database  # type: ignore[misc]


def fill(db: Database, name: str = "docs", n: int = 1000, index: dict | None = None) -> np.ndarray:
    col = db.create_collection(name, DIM, "l2", index or {"type": "flat"})
    x = np.random.default_rng(1).standard_normal((n, DIM)).astype(np.float32)
    col.upsert(
        [f"r{i:05d}" for i in range(n)],
        x,
        texts=[f"text {i}" for i in range(n)],
        metadatas=[{"n": i, "even": i % 2 == 0} for i in range(n)],
        sources=[f"s{i % 10}" for i in range(n)],
    )
    return x


def scroll_all(col, **kwargs) -> list:  # type: ignore[no-untyped-def]
    out, cursor, pages = [], None, 0
    while True:
        records, cursor = col.scroll(cursor, **kwargs)
        out += records
        pages += 1
        if cursor is None:
            return out
        assert pages < 100_000


# ---- scroll ----------------------------------------------------------------------------------------------


def test_scroll_visits_every_record_once_in_id_order(db: Database) -> None:
    fill(db)
    col = db.get_collection("docs")
    records = scroll_all(col, limit=97, include=["text", "metadata", "source", "vector"])
    ids = [r.id for r in records]
    assert ids == sorted(ids, key=lambda s: s.encode()) and len(ids) == len(set(ids)) == 1000
    assert records[3].text == "text 3" and records[3].metadata == {"n": 3, "even": False}
    assert records[3].source == "s3" and records[3].vector is not None and records[3].vector.shape == (DIM,)
    page, cursor = col.scroll(limit=1000)
    assert len(page) == 1000 and cursor is None  # the last page says so at once


def test_scroll_orders_by_utf8_bytes_and_takes_odd_ids(db: Database) -> None:
    col = db.create_collection("u", 2, "l2")
    ids = ["b", "a", "é", "Z", "a b", "😀", "aa", "\x01", "日本"]
    col.upsert(ids, np.ones((len(ids), 2)))
    got = [r.id for r in scroll_all(col, limit=2)]
    assert got == sorted(ids, key=lambda s: s.encode())


def test_scroll_with_filter_and_include(db: Database) -> None:
    fill(db)
    col = db.get_collection("docs")
    records = scroll_all(col, limit=50, filter={"even": True}, include=[])
    assert [r.id for r in records] == [f"r{i:05d}" for i in range(0, 1000, 2)]
    assert all(r.text is None and r.metadata == {} and r.source is None for r in records)


def test_scroll_filter_admitting_nothing_far_away_ends(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filtered page scans a bounded number of ids: it may come back short with a cursor."""
    monkeypatch.setattr("vecdb.engine.collection.SCROLL_SCAN", 100)
    fill(db)
    col = db.get_collection("docs")
    page, cursor = col.scroll(limit=10, filter={"n": 999})
    assert page == [] and cursor is not None
    records = scroll_all(col, limit=10, filter={"n": 999})
    assert [r.id for r in records] == ["r00999"]


def test_scroll_skips_expired_records(db: Database) -> None:
    col = db.create_collection("ttl", 2, "l2")
    col.upsert(["a", "b"], np.ones((2, 2)))
    col.upsert(["c"], np.ones((1, 2)), expires_at=time.time() - 1)
    assert [r.id for r in scroll_all(col)] == ["a", "b"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"cursor": "nope"}, InvalidArgumentError),
        ({"cursor": "v1.@@@"}, InvalidArgumentError),
        ({"cursor": "v1."}, InvalidArgumentError),
        ({"cursor": 5}, InvalidArgumentError),
        ({"limit": 0}, InvalidArgumentError),
        ({"limit": True}, InvalidArgumentError),
        ({"limit": "10"}, InvalidArgumentError),
        ({"limit": 10**9}, LimitExceededError),
        ({"filter": {"n": {"$bad": 1}}}, InvalidArgumentError),
        ({"include": ["nope"]}, InvalidArgumentError),
    ],
)
def test_scroll_rejects_bad_arguments(db: Database, kwargs: dict, error: type[Exception]) -> None:
    col = db.create_collection("bad", 2, "l2")
    with pytest.raises(error):
        col.scroll(**kwargs)


def test_scroll_while_a_writer_runs(db: Database) -> None:
    """The promise: none appears twice, none that existed for the whole scroll is missed, anything seen
    existed at some point; writes are not blocked (the writer makes progress during the scroll)."""
    col = db.create_collection("live", DIM, "l2", {"type": "hnsw"})
    rng = np.random.default_rng(2)
    stable = [f"s{i:05d}" for i in range(3000)]  # never touched by the writer
    col.upsert(stable, rng.standard_normal((3000, DIM)))
    churn = [f"c{i:05d}" for i in range(3000)]
    col.upsert(churn[:1500], rng.standard_normal((1500, DIM)))
    stop = threading.Event()
    writes = 0
    ever: set[str] = set(churn[:1500])

    def writer() -> None:
        nonlocal writes
        wrng = np.random.default_rng(3)
        while not stop.is_set():
            ids = [churn[int(i)] for i in wrng.choice(3000, 20, replace=False)]
            ever.update(ids)
            col.upsert(ids, wrng.standard_normal((20, DIM)))  # new ones, and re-upserts (new labels)
            col.delete([churn[int(i)] for i in wrng.choice(3000, 10, replace=False)])
            writes += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            records, cursor = col.scroll(cursor, limit=50, include=[])
            seen += [r.id for r in records]
            pages += 1
            time.sleep(0.002)
            if cursor is None:
                break
        writes_during = writes
    finally:
        stop.set()
        thread.join()
    assert len(seen) == len(set(seen)), "a record appeared twice"
    assert set(stable) <= set(seen), "a record that existed for the whole scroll was missed"
    assert set(seen) - set(stable) <= ever, "a record that never existed appeared"
    assert seen == sorted(seen)
    assert writes_during > 0 and pages > 60


# ---- snapshots -------------------------------------------------------------------------------------------


def answers(col, queries: np.ndarray) -> tuple:  # type: ignore[no-untyped-def]
    return (
        col.count(),
        [[(h.id, round(h.score, 4)) for h in row] for row in col.search(queries, k=10)],
        [[h.id for h in row] for row in col.search(queries, k=10, filter={"even": True})],
        sorted((s.source, s.count) for s in col.list_sources()),
        [r.id for r in scroll_all(col, limit=500, include=[])],
    )


@pytest.mark.parametrize("index", [{"type": "flat"}, {"type": "hnsw"}, {"type": "ivf", "nlist": 8}])
def test_snapshot_restores_exactly_what_was_there(db: Database, index: dict) -> None:
    fill(db, n=1500, index=index)
    col = db.get_collection("docs")
    col.wait_for_index()
    col.delete(source="s3")
    q = np.random.default_rng(5).standard_normal((4, DIM)).astype(np.float32)
    before = answers(col, q)
    snap = db.create_snapshot("docs", "first")
    assert (snap.collection, snap.name, snap.records, snap.dim, snap.metric) == (
        "docs",
        "first",
        1350,
        DIM,
        "l2",
    )
    assert snap.seq == col.seq and snap.bytes > 0
    col.upsert(["late"], np.zeros((1, DIM)))  # after the snapshot: not in it
    col.delete(source="s4")
    restored = db.restore_snapshot("docs", "first", "copy")
    restored.wait_for_index()
    assert answers(restored, q) == before
    assert restored.info()["index"] == col.info()["index"]
    assert db.get_collection("docs").count() == 1350 - 150 + 1  # the original went on


def test_snapshot_while_writes_and_reads_go_on(db: Database) -> None:
    """Online: a writer and a reader keep going while snapshots are taken; every snapshot restores to a
    state some prefix of the writer's acknowledged batches produced (count = 100 x batches)."""
    col = db.create_collection("busy", DIM, "l2", {"type": "hnsw"})
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        rng = np.random.default_rng(7)
        i = 0
        while not stop.is_set():
            col.upsert([f"b{i}-{j}" for j in range(100)], rng.standard_normal((100, DIM)))
            i += 1

    def reader() -> None:
        rng = np.random.default_rng(8)
        try:
            while not stop.is_set():
                col.search(rng.standard_normal((1, DIM)), k=5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        snaps = []
        for i in range(5):
            time.sleep(0.1)
            snaps.append(db.create_snapshot("busy", f"s{i}"))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    counts = [s.records for s in snaps]
    assert counts == sorted(counts) and counts[-1] > 0
    for s in snaps:
        assert s.records % 100 == 0  # one batch is all or nothing
        restored = db.restore_snapshot("busy", s.name, f"r_{s.name}")
        assert restored.count() == s.records
        assert restored.seq == s.seq


def test_snapshot_directory_moves_to_another_machine(db: Database, tmp_path: Path) -> None:
    """A snapshot is a directory: copied elsewhere (another data directory, another machine), it
    restores there; the copy is not changed by restoring it."""
    x = fill(db, n=500)
    snap = db.create_snapshot("docs")
    src = db.path / "snapshots" / "docs" / snap.name
    moved = tmp_path / "usb" / "docs-backup"
    shutil.copytree(src, moved)
    before = sorted(p.name for p in moved.rglob("*"))
    with Database(tmp_path / "other", settings=settings()) as other:
        col = other.restore_snapshot_dir(moved, "docs")
        assert col.count() == 500
        hits = col.search(x[:1], k=1)
        assert hits[0][0].id == "r00000"
    assert sorted(p.name for p in moved.rglob("*")) == before


def test_snapshot_lifecycle_and_errors(db: Database) -> None:
    fill(db, n=50)
    assert db.list_snapshots("docs") == []
    a = db.create_snapshot("docs", "a")
    b = db.create_snapshot("docs")  # named by the UTC time
    assert [s.name for s in db.list_snapshots("docs")] == ["a", b.name]
    with pytest.raises(SnapshotExistsError):
        db.create_snapshot("docs", "a")
    with pytest.raises(InvalidNameError):
        db.create_snapshot("docs", "../x")
    with pytest.raises(CollectionExistsError):
        db.restore_snapshot("docs", "a")  # the collection still exists
    with pytest.raises(SnapshotNotFoundError):
        db.restore_snapshot("docs", "nope", "x")
    with pytest.raises(SnapshotNotFoundError):
        db.delete_snapshot("docs", "nope")
    db.drop_collection("docs")
    assert [s.name for s in db.list_snapshots("docs")] == ["a", b.name]  # snapshots outlive it
    assert db.restore_snapshot("docs", "a").count() == 50
    db.delete_snapshot("docs", "a")
    assert [s.name for s in db.list_snapshots("docs")] == [b.name]
    assert a.name not in os.listdir(db.path / "snapshots" / "docs")


def test_damaged_snapshot_is_refused_and_leaves_nothing(db: Database, tmp_path: Path) -> None:
    fill(db, n=20)
    snap = db.create_snapshot("docs", "s")
    src = db.path / "snapshots" / "docs" / "s"
    broken = tmp_path / "broken"
    shutil.copytree(src, broken)
    (broken / "snapshot.json").unlink()
    with pytest.raises(CorruptionError, match="not a vecdb snapshot"):
        db.restore_snapshot_dir(broken, "x")
    shutil.copytree(src, tmp_path / "noseq")
    meta = (tmp_path / "noseq" / "snapshot.json").read_text().replace(f'"seq": {snap.seq}', '"seq": 999')
    (tmp_path / "noseq" / "snapshot.json").write_text(meta)
    with pytest.raises(CorruptionError, match="sequence"):
        db.restore_snapshot_dir(tmp_path / "noseq", "y")
    assert db.list_collections() == ["docs"]
    assert not [p for p in (db.path / "collections").iterdir() if p.name.startswith(".")]


def test_a_snapshot_cut_short_is_cleaned_on_open(tmp_path: Path) -> None:
    with Database(tmp_path / "db", settings=settings()) as db:
        fill(db, n=10)
        db.create_snapshot("docs", "ok")
    half = tmp_path / "db" / "snapshots" / "docs" / ".creating-x-123"
    half.mkdir()
    with Database(tmp_path / "db", settings=settings()) as db:
        assert not half.exists()
        assert [s.name for s in db.list_snapshots("docs")] == ["ok"]
