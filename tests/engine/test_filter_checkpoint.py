"""The filter bitmaps' checkpoint (vecdb/engine/filter_state.py): a reopen restores them without reading
every record, and answers every filter exactly as the open scan's rebuild does, or falls back to the scan.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import flip, table_file_of

from vecdb.config import Settings, StorageSettings
from vecdb.engine import Database
from vecdb.engine.check import check_data_dir
from vecdb.engine.filter_state import FILTER_CHECKPOINT_FILE, REWRITE_MIN
from vecdb.errors import CorruptionError
from vecdb.filters import parse_filter
from vecdb.storage import read_checkpoint, write_checkpoint

NAME = "c"
DIM = 4
N = 300
#: Checkpoints only when asked (or at close): the tests decide what the op-log holds.
QUIET = Settings(storage=StorageSettings(checkpoint_every_ops=10**9, checkpoint_every_records=10**9))

FILTERS: list[dict[str, Any]] = [
    {"s": "v3"},
    {"s": {"$ne": "v3"}},
    {"n": {"$gte": 100, "$lt": 180}},
    {"n": {"$in": list(range(0, 600, 3))}},  # a long $in: the numeric column
    {"f": {"$lt": 0.25}},
    {"big": {"$gt": 2**60 + 150}},  # ints past 2**53: the column's exact re-check
    {"big": 2**60 + 7},
    {"b": True},
    {"z": None},
    {"lst": {"$exists": True}},
    {"obj": {"$exists": False}},
    {"uni": "中文 é"},
    {"$or": [{"s": "v1"}, {"n": {"$lt": 10}}]},
    {"$not": {"b": False}},
    {"mixed": {"$gt": 5}},
    {"mixed": "5"},
]


def meta(i: int) -> dict[str, Any]:
    m: dict[str, Any] = {"s": f"v{i % 7}", "n": i * 2, "f": (i % 10) / 10, "big": 2**60 + i, "b": i % 2 == 0}
    if i % 3 == 0:
        m["z"] = None
    if i % 4 == 0:
        m["lst"] = [i, "x"]
    if i % 5 == 0:
        m["obj"] = {"a": i}
    if i % 6 == 0:
        m["uni"] = "中文 é"
    m["mixed"] = i if i % 2 else str(i % 10)
    return m


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def fill(col: Any, start: int = 0, n: int = N) -> None:
    ids = [f"r{i}" for i in range(start, start + n)]
    col.upsert(
        ids,
        vectors(n, start),
        metadatas=[meta(i) for i in range(start, start + n)],
        sources=[f"src{i % 9}/文件.txt" for i in range(start, start + n)],
        expires_at=[time.time() + 3600 if i % 11 == 0 else None for i in range(start, start + n)],
    )


def answers(col: Any) -> dict[str, Any]:
    """What a reader sees of the filter state: every filter's ids, sources with counts, fields, expiry."""
    out: dict[str, Any] = {}
    for flt in FILTERS:
        bm = col._records.evaluate(parse_filter(flt))
        out[repr(flt)] = sorted(col._records.ids[lb] for lb in bm)
    out["sources"] = sorted((s.source, s.count) for s in col.list_sources())
    out["fields"] = sorted(col._records.fields)
    out["expiry"] = sorted((col._records.ids[lb], t) for lb, t in col._records.expiry.items())
    out["count"] = col.count()
    return out


def scanned_answers(path: Path) -> dict[str, Any]:
    """The same, from a reopen that rebuilds the bitmaps by the open scan (no filter checkpoint)."""
    (path / "collections" / NAME / FILTER_CHECKPOINT_FILE).unlink(missing_ok=True)
    with Database(path, settings=QUIET) as db:
        col = db.get_collection(NAME)
        assert not col._filters.restored
        return answers(col)


def test_reopen_restores_the_bitmaps_and_answers_as_the_scan(tmp_path: Path) -> None:
    with Database(tmp_path, settings=QUIET) as db:
        col = db.create_collection(NAME, DIM, "cosine")
        fill(col)
        col.delete(ids=["r5", "r6"])  # removals before the checkpoint are simply absent from it
        before = answers(col)
    ckpt = read_checkpoint(tmp_path / "collections" / NAME / FILTER_CHECKPOINT_FILE)
    with Database(tmp_path, settings=QUIET) as db:
        col = db.get_collection(NAME)
        assert col._filters.restored
        assert col._filters.checkpoint_seq == ckpt.seq == col.seq
        assert answers(col) == before
        # ...and keeps working: the restored structures take writes like scanned ones.
        col.delete(ids=["r7"])
        fill(col, N, 20)
        after = answers(col)
    assert scanned_answers(tmp_path) == after
    assert all(before[repr(f)] for f in FILTERS[:13])  # the filters select something


def restore_copy(db: Database, caplog: pytest.LogCaptureFixture) -> tuple[Any, list[str]]:
    """A snapshot opened as a new collection: the store as of now, the checkpoints as last written (the
    op-log between them is replayed), as after a crash. Returns it and why its first open scanned (the
    restore opens it twice: the second open finds the checkpoint the first one's close wrote)."""
    info = db.create_snapshot(NAME)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vecdb.engine.filter_state"):
        copy = db.restore_snapshot(NAME, info.name, target="copy")
    return copy, [r.getMessage() for r in caplog.records if "filter checkpoint not used" in r.getMessage()]


def test_additions_after_the_checkpoint_are_replayed_from_the_op_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Database(tmp_path, settings=QUIET) as db:
        col = db.create_collection(NAME, DIM, "cosine")
        fill(col)
        col.checkpoint()
        fill(col, N, 50)  # additions only
        col.upsert(["new-a"], vectors(1, 9), metadatas=[{"n": 3, "s": "v3"}], sources=["src1/文件.txt"])
        copy, scanned = restore_copy(db, caplog)
        assert copy._filters.restored and not scanned
        assert copy.seq == col.seq
        assert answers(copy) == answers(col)
        assert copy.count(filter={"s": "v3"}) == col.count(filter={"s": "v3"})


@pytest.mark.parametrize("change", ["delete", "upsert-existing", "delete-source"])
def test_removals_after_the_checkpoint_fall_back_to_the_scan(
    tmp_path: Path, change: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Database(tmp_path, settings=QUIET) as db:
        col = db.create_collection(NAME, DIM, "cosine")
        fill(col)
        col.checkpoint()
        if change == "delete":
            col.delete(ids=["r1", "r2"])
        elif change == "upsert-existing":
            col.upsert(["r3"], vectors(1, 5), metadatas=[{"s": "changed"}])
        else:
            col.delete(source="src2/文件.txt")
        copy, scanned = restore_copy(db, caplog)
        assert len(scanned) == 1 and "removed records of the checkpoint" in scanned[0], scanned
        assert answers(copy) == answers(col)


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign", "garbage", "other-format"])
def test_a_bad_filter_checkpoint_only_costs_the_scan(tmp_path: Path, damage: str) -> None:
    with Database(tmp_path, settings=QUIET) as db:
        fill(db.create_collection(NAME, DIM, "cosine"))
    path = tmp_path / "collections" / NAME / FILTER_CHECKPOINT_FILE
    expected = scanned_answers(tmp_path)  # (rewrites the checkpoint at its close)
    ckpt = read_checkpoint(path)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "foreign":
        write_checkpoint(path, ckpt.seq, {**ckpt.meta, "store": "another-store"}, ckpt.payload)
    elif damage == "garbage":  # a valid file (CRC and all) whose dump does not decode
        payload = np.frombuffer(b"\x07" * len(ckpt.payload), dtype=np.uint8)
        write_checkpoint(path, ckpt.seq, ckpt.meta, payload)
    else:
        write_checkpoint(path, ckpt.seq, {**ckpt.meta, "format": 999}, ckpt.payload)
    [checked] = [r for r in check_data_dir(tmp_path) if r.kind == "collection"]
    assert not checked.problems  # `vecdb check`: reported, never fatal
    if damage != "garbage":  # (the check reads the file, it does not decode the dump)
        assert checked.facts["filter_checkpoint"] != f"seq {ckpt.seq}"
    with Database(tmp_path, settings=QUIET) as db:
        col = db.get_collection(NAME)
        assert not col._filters.restored
        assert answers(col) == expected
        assert db.damaged() == {}
    [checked] = [r for r in check_data_dir(tmp_path) if r.kind == "collection"]
    assert checked.facts["filter_checkpoint"] == f"seq {ckpt.seq}"  # rewritten at the close


def test_a_checkpoint_that_disagrees_with_the_store_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A well-formed checkpoint of this store whose records do not match it (here: an older one passed
    off as current) is caught by the record count the open reads, and the scan rebuilds the bitmaps."""
    path = tmp_path / "collections" / NAME / FILTER_CHECKPOINT_FILE
    with Database(tmp_path, settings=QUIET) as db:
        col = db.create_collection(NAME, DIM, "cosine")
        fill(col, 0, 100)
        col.checkpoint()
        old = read_checkpoint(path)
        fill(col, 100, 50)
        expected = answers(col)
    current = read_checkpoint(path)
    write_checkpoint(path, current.seq, old.meta, old.payload)  # 100 records' bitmaps, the seq of 150
    with caplog.at_level(logging.WARNING), Database(tmp_path, settings=QUIET) as db:
        col = db.get_collection(NAME)
        assert not col._filters.restored
        assert answers(col) == expected
    assert any("disagrees with the store" in r.getMessage() for r in caplog.records)


def test_damaged_records_still_refuse_the_open_that_restores(tmp_path: Path) -> None:
    """The open no longer decodes every record, but it still reads every block of them: a damaged
    records table refuses the collection, as the open scan did (tests/engine/test_integrity.py)."""
    with Database(tmp_path, settings=QUIET) as db:
        fill(db.create_collection(NAME, DIM, "cosine"), 0, 2000)
    flip(table_file_of(tmp_path / "collections" / NAME / "store", "records"), 0.4)
    with Database(tmp_path, settings=QUIET) as db:
        with pytest.raises(CorruptionError):
            db.get_collection(NAME)
        assert list(db.damaged()) == [NAME]


def test_background_checkpoints_space_out_the_dump(tmp_path: Path) -> None:
    """An index checkpoint does not rewrite the dump until enough changed; close always does."""
    with Database(tmp_path, settings=QUIET) as db:
        col = db.create_collection(NAME, DIM, "cosine")
        fill(col, 0, 50)
        col.checkpoint()  # on request: written
        first = col._filters.checkpoint_seq
        assert first == col.seq
        fill(col, 50, 10)
        col._checkpoint()  # a background checkpoint: 10 changes < REWRITE_MIN, dump kept
        assert col._filters.checkpoint_seq == first < col.seq
        assert col._vectors.checkpoint_seq == col.seq
        assert len(list(col._store.oplog_after(first))) == col.seq - first  # the op-log is kept for it
        assert REWRITE_MIN > 10
    with Database(tmp_path, settings=QUIET) as db:
        col = db.get_collection(NAME)
        assert col._filters.restored and col._filters.checkpoint_seq == col.seq  # close wrote it


def test_snapshots_carry_the_filter_checkpoint(tmp_path: Path) -> None:
    with Database(tmp_path, settings=QUIET) as db:
        col = db.create_collection(NAME, DIM, "cosine")
        fill(col)
        col.checkpoint()
        info = db.create_snapshot(NAME)
        snap_dir = tmp_path / "snapshots" / NAME / info.name
        assert (snap_dir / FILTER_CHECKPOINT_FILE).exists()
        copy = db.restore_snapshot(NAME, info.name, target="copy")
        assert copy._filters.restored
        assert answers(copy) == answers(col)


def test_capped_and_text_indexed_collections_still_scan_and_agree(tmp_path: Path) -> None:
    """Their use order and text index need the open scan: it runs, and the bitmaps are restored beside."""
    with Database(tmp_path, settings=QUIET) as db:
        text = db.create_collection("t", DIM, "cosine", text_index={})
        text.upsert(["a", "b"], vectors(2), texts=["red fox", "blue whale"], metadatas=[{"n": 1}, {"n": 2}])
        capped = db.create_collection("cap", DIM, "cosine", max_records=3)
        capped.upsert(["x", "y", "z"], vectors(3), metadatas=[{"n": 1}, {"n": 2}, {"n": 3}])
    with Database(tmp_path, settings=QUIET) as db:
        text = db.get_collection("t")
        assert text._filters.restored
        assert [h.id for h in text.search(texts="whale", mode="text", k=2)[0]] == ["b"]
        assert text.count(filter={"n": 2}) == 1
        capped = db.get_collection("cap")
        assert capped._filters.restored
        capped.upsert(["w"], vectors(1, 3), metadatas=[{"n": 4}])  # evicts the oldest: x
        assert sorted(r.id for r in capped.iter_records()) == ["w", "y", "z"]
        assert capped.count(filter={"n": {"$gte": 2}}) == 3
