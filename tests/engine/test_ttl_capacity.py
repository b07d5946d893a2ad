"""Per-record time to live (``ttl`` / ``expires_at``) and collection capacity (fifo / lru eviction).

Pinned here:

- TTL visibility: from its expiry time on, a record is never returned by get or search (flat index,
  HNSW searched through a selector, auto with a tiny threshold), nor counted by count (with and without
  a filter), list_sources or info's count and sources, even with the purger effectively off (so reads
  exclude it, not the purger). With a fast purger it is deleted from the store and the index (info seq
  advances) and a reopen shows it gone. Per-record ``expires_at`` mixes None (never), the past (invisible
  at once) and the future; one number covers every record; re-upserting an id replaces its expiry (no
  ttl: permanent again; a ttl: expires now).
- TTL across reopen: closed before expiry and reopened after, the record is invisible at once (purger
  off: still stored) and the purger deletes it; reopened before expiry, it is visible until then.
- Validation: bad ``ttl`` / ``expires_at`` (<= 0, NaN, inf, bool, str, containers, both given, wrong
  list length) is InvalidArgumentError naming the field; nothing is written or evicted.
- Capacity: eviction order of fifo (write order; a re-upsert is a new write) and lru (written, or
  returned by get or search; reads in result order) against a model over deterministic random sequences
  of upserts (some records already expired), searches, gets, deletes and oversized batches, with the
  purger off (the physical contents are modelled too: expired records are evicted first, in write
  order) and fast (only what is visible is modelled). Count never exceeds max_records; a batch of more
  than max_records is LimitExceededError with nothing written; replacing ids in a full collection
  evicts nothing; replace_source evicts in the same batch; eviction is durable: after reopen the live
  ids are the same and index == store; recency after reopen starts from write order (lru). Capacity is
  in info and survives reopen; eviction defaults to fifo; invalid configs are InvalidConfigError.
- Crash: a writer (ttl_writer.py) upserting into a capacity collection with ttl / expires_at and reading
  (lru) is SIGKILLed; on reopen the visible records are exactly the model's after the acknowledged ops
  (plus, perhaps, the pending one), at most max_records are stored, and index and store agree.

Open bugs, pinned by tests that fail until fixed: an int beyond float range as ttl / expires_at raises
OverflowError (not InvalidArgumentError); max_records with more digits than Python will print raises
ValueError (not InvalidConfigError).
"""

from __future__ import annotations

import importlib.util
import math
import random
import signal
import subprocess
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from vecdb import Collection, Database, Settings
from vecdb.config import IndexSettings, StorageSettings
from vecdb.errors import InvalidArgumentError, InvalidConfigError, LimitExceededError
from vecdb.types import Hit, Record

DIM = 4
NO_PURGE = 3600.0  # the largest interval allowed: the purger never runs within a test
FAST_PURGE = 0.05
FAR = 3600.0  # seconds: a time to live that never runs out within a test
# Tiny thresholds: the HNSW / auto indexes build their ANN part from a handful of vectors, and
# exact_max_admitted=0 makes every filtered (or expiry-excluding) search go through the ANN selector.
SMALL_INDEX = IndexSettings(
    merge_min_records=3, merge_ratio=0.01, tombstone_share=0.3, ivf_train_min=4, exact_max_admitted=0
)
HNSW: dict[str, Any] = {"type": "hnsw", "m": 4, "ef_construction": 16, "ef_search": 256}
INDEXES = [
    pytest.param({"type": "flat"}, id="flat"),
    pytest.param(HNSW, id="hnsw"),
    pytest.param({"type": "auto", "threshold": 5}, id="auto"),
]


def make_settings(purge: float = NO_PURGE) -> Settings:
    return Settings(storage=StorageSettings(sync_writes=False, expiry_purge_seconds=purge), index=SMALL_INDEX)


@contextmanager
def opened(path: Path, purge: float = NO_PURGE) -> Iterator[Database]:
    with Database(path, settings=make_settings(purge)) as db:
        yield db


def vecs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def ids_of(items: list[Record] | list[Hit]) -> list[str]:
    return [r.id for r in items]


def sleep_until(when: float) -> None:
    """Sleep until the wall clock (what expiry is measured in) is past ``when``."""
    while (left := when - time.time()) > 0:
        time.sleep(left + 0.005)


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


def stored(col: Collection) -> int:
    """Records physically in the collection (expired ones not yet purged included)."""
    return len(col._records)


def visible_ids(col: Collection) -> set[str]:
    """The live ids, read from the in-memory bitmaps: unlike get and search, this is no use (lru)."""
    live = col._records.all - col._records.expired(time.time())
    return {col._records.ids[lb] for lb in live}


def assert_index_matches_store(col: Collection) -> None:
    state = col.info()["index_state"]
    assert state["vectors"] == stored(col), f"index holds {state['vectors']} vectors, store {stored(col)}"


# ---- TTL: visibility --------------------------------------------------------------------------------

PERM = [f"p{i}" for i in range(12)]
TEMP = [f"t{i}" for i in range(6)]


def _fill(col: Collection, ttl: float) -> tuple[np.ndarray, float, float]:
    """12 permanent and 6 ttl'd records; returns (all vectors, time before, time after the ttl upsert).

    Sources: "shared" holds permanent and ttl'd records, "tmp" only ttl'd ones; metadata ``g`` splits
    both halves, ``kind`` tells them apart.
    """
    v = vecs(18)
    col.upsert(
        PERM,
        v[:12],
        metadatas=[{"g": i % 2, "kind": "perm"} for i in range(12)],
        sources=["shared" if i % 3 == 0 else None for i in range(12)],
    )
    before = time.time()
    col.upsert(
        TEMP,
        v[12:],
        metadatas=[{"g": i % 2, "kind": "temp"} for i in range(6)],
        sources=["shared", "tmp"] * 3,
        ttl=ttl,
    )
    return v, before, time.time()


@pytest.mark.parametrize("index", INDEXES)
def test_expired_records_are_invisible_before_any_purge(tmp_path: Path, index: dict[str, Any]) -> None:
    ttl = 1.0
    with opened(tmp_path / "d") as db:
        col = db.create_collection("c", dim=DIM, index=index)
        v, before, after = _fill(col, ttl)
        assert col.wait_for_index(timeout=30)
        if index["type"] != "flat":
            state = col.info()["index_state"]
            assert (state["kind"], state["ann_vectors"]) == ("hnsw", 18), state

        # Before expiry (well within the second): everything is visible.
        assert ids_of(col.get(TEMP)) == TEMP
        assert col.count() == 18 and col.count({"kind": "temp"}) == 3 * 2
        assert {s.source: s.count for s in col.list_sources()} == {"shared": 7, "tmp": 3}
        assert col.search(v[12:13], k=1)[0][0].id == "t0"
        assert time.time() < before + ttl, "the checks before expiry ran past it: machine too slow"

        sleep_until(after + ttl)
        assert ids_of(col.get(PERM + TEMP)) == PERM
        for row in col.search(v, k=18):
            assert sorted(ids_of(row)) == sorted(PERM)
        for row in col.search(v[12:], k=3):  # a ttl'd record's own vector no longer finds it
            assert len(row) == 3 and not set(ids_of(row)) & set(TEMP)
        assert col.search(v[12:], k=5, filter={"kind": "temp"}) == [[]] * 6
        g0 = col.search(v[:1], k=18, filter={"g": 0})[0]
        assert sorted(ids_of(g0)) == sorted(PERM[0::2])
        assert sorted(ids_of(col.search(v[:1], k=18, filter={"$not": {"g": 0}})[0])) == sorted(PERM[1::2])
        assert col.count() == 12
        assert (col.count({"kind": "temp"}), col.count({"g": 0}), col.count({"kind": "perm"})) == (0, 6, 12)
        assert [(s.source, s.count) for s in col.list_sources()] == [("shared", 4)]
        info = col.info()
        assert (info["count"], info["sources"]) == (12, 1)
        # Read-time exclusion: the purger never ran, the records are still stored and indexed.
        assert stored(col) == 18 and info["index_state"]["vectors"] == 18


@pytest.mark.parametrize("index", [INDEXES[0], INDEXES[1]])
def test_purger_deletes_expired_records(tmp_path: Path, index: dict[str, Any]) -> None:
    with opened(tmp_path / "d", purge=FAST_PURGE) as db:
        col = db.create_collection("c", dim=DIM, index=index)
        v, _, after = _fill(col, ttl=0.3)
        seq = col.info()["seq"]
        sleep_until(after + 0.3)
        wait_until(lambda: stored(col) == 12, what="the purger")
        info = col.info()
        assert info["seq"] > seq, "purging is a write: it must advance seq"
        assert (info["count"], info["index_state"]["vectors"]) == (12, 12)
        assert col._store.lookup_labels(TEMP) == [None] * 6
        assert [(s.source, s.count) for s in col.list_sources()] == [("shared", 4)]
    with opened(tmp_path / "d") as db:
        col = db.get_collection("c")
        assert stored(col) == 12 and col.count() == 12
        assert col.get(TEMP) == []
        assert sorted(ids_of(col.search(v[12:13], k=18)[0])) == sorted(PERM)
        assert_index_matches_store(col)


def test_expires_at_per_record_mixes_never_past_and_future(tmp_path: Path) -> None:
    ids = ["past", "never", "soon", "later"]
    with opened(tmp_path / "d") as db:
        col = db.create_collection("c", dim=DIM)
        now = time.time()
        soon = now + 0.4
        assert col.upsert(ids, vecs(4), sources=["s"] * 4, expires_at=[now - 10, None, soon, now + FAR]) == 4
        # In the past: invisible at once (it was written and is stored, nothing returns it).
        assert ids_of(col.get(ids)) == ["never", "soon", "later"]
        assert stored(col) == 4 and col.count() == 3 and col.info()["count"] == 3
        assert [(s.source, s.count) for s in col.list_sources()] == [("s", 3)]
        assert "past" not in ids_of(col.search(vecs(4)[:1], k=4)[0])
        sleep_until(soon)
        assert ids_of(col.get(ids)) == ["never", "later"]
        assert col.count() == 2
        assert sorted(ids_of(col.search(vecs(4)[:1], k=4)[0])) == ["later", "never"]

        # One number for every record of the call; an int is a number too.
        col.upsert(["a", "b"], vecs(2, 1), expires_at=1)  # 1970
        assert col.get(["a", "b"]) == [] and col.count() == 2
        col.upsert(["c", "d"], vecs(2, 2), expires_at=int(now + FAR))
        assert ids_of(col.get(["c", "d"])) == ["c", "d"]
        # A list of Nones (or a tuple) is accepted: those records never expire.
        col.upsert(["e", "f"], vecs(2, 3), expires_at=(None, None))
        assert col.count() == 6


def test_reupsert_replaces_expiry(tmp_path: Path) -> None:
    with opened(tmp_path / "d") as db:
        col = db.create_collection("c", dim=DIM)
        start = time.time()
        col.upsert(["a", "b", "c"], vecs(3), ttl=0.4)
        col.upsert(["d", "e"], vecs(2, 1))
        col.upsert(["a"], vecs(1, 2))  # no ttl: permanent again
        col.upsert(["b"], vecs(1, 3), ttl=FAR)  # a later expiry
        col.upsert(["d"], vecs(1, 4), ttl=0.4)  # permanent until now: expires with the others
        col.upsert(["e"], vecs(1, 5), expires_at=[start - 1])  # already past
        assert ids_of(col.get(["a", "b", "c", "d", "e"])) == ["a", "b", "c", "d"]
        sleep_until(time.time() + 0.4)
        assert ids_of(col.get(["a", "b", "c", "d", "e"])) == ["a", "b"]
        assert col.count() == 2
    with opened(tmp_path / "d") as db:
        col = db.get_collection("c")
        assert ids_of(col.get(["a", "b", "c", "d", "e"])) == ["a", "b"]


# ---- TTL: across reopen -----------------------------------------------------------------------------


def test_expiry_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "d"
    v = vecs(3)
    with opened(path) as db:
        col = db.create_collection("c", dim=DIM)
        col.upsert(["perm"], v[:1])
        col.upsert(["early"], v[1:2], ttl=0.4)
        col.upsert(["late"], v[2:], ttl=1.6)
        late = time.time() + 1.6
        assert col.count() == 3
    early = late - 1.2
    sleep_until(early)
    # Reopened after "early" expired (purger off): invisible at once, though still stored.
    with opened(path) as db:
        col = db.get_collection("c")
        assert ids_of(col.get(["perm", "early", "late"])) == ["perm", "late"]
        assert col.count() == 2 and stored(col) == 3
        assert sorted(ids_of(col.search(v[1:2], k=3)[0])) == ["late", "perm"]
        assert time.time() < late, "reopen took longer than the margin before 'late' expires"
    # Reopened with a fast purger: "early" is deleted; "late" stays visible until its time.
    with opened(path, purge=FAST_PURGE) as db:
        col = db.get_collection("c")
        wait_until(lambda: stored(col) == 2, what="the purger to delete 'early'")
        if time.time() < late - 0.1:
            assert ids_of(col.get(["late"])) == ["late"]
        sleep_until(late)
        assert ids_of(col.get(["perm", "early", "late"])) == ["perm"]
        wait_until(lambda: stored(col) == 1, what="the purger to delete 'late'")
        assert_index_matches_store(col)


# ---- TTL: validation --------------------------------------------------------------------------------

FUTURE = 4_000_000_000.0  # 2096

#: (case, upsert kwargs, the error's ``field`` detail or None, text the message must hold)
BAD_EXPIRY: list[tuple[str, dict[str, Any], str | None, str]] = [
    ("ttl zero", {"ttl": 0}, "ttl", "positive"),
    ("ttl zero float", {"ttl": 0.0}, "ttl", "positive"),
    ("ttl negative", {"ttl": -1.5}, "ttl", "positive"),
    ("ttl nan", {"ttl": math.nan}, "ttl", "nan"),
    ("ttl inf", {"ttl": math.inf}, "ttl", "inf"),
    ("ttl -inf", {"ttl": -math.inf}, "ttl", "inf"),
    ("ttl true", {"ttl": True}, "ttl", "True"),
    ("ttl false", {"ttl": False}, "ttl", "False"),
    ("ttl str", {"ttl": "5"}, "ttl", "'5'"),
    ("ttl list", {"ttl": [5, 5]}, "ttl", "[5, 5]"),
    ("expires_at zero", {"expires_at": 0}, "expires_at", "positive"),
    ("expires_at negative", {"expires_at": -FUTURE}, "expires_at", "positive"),
    ("expires_at nan", {"expires_at": math.nan}, "expires_at", "nan"),
    ("expires_at inf", {"expires_at": math.inf}, "expires_at", "inf"),
    ("expires_at true", {"expires_at": True}, "expires_at", "True"),
    ("expires_at str", {"expires_at": "2030-01-01"}, "expires_at", "2030-01-01"),
    ("expires_at dict", {"expires_at": {"x": FUTURE}}, "expires_at", "expires_at"),
    ("expires_at item zero", {"expires_at": [0, None]}, "expires_at[0]", "positive"),
    ("expires_at item negative", {"expires_at": [FUTURE, -1]}, "expires_at[1]", "positive"),
    ("expires_at item nan", {"expires_at": [FUTURE, math.nan]}, "expires_at[1]", "nan"),
    ("expires_at item inf", {"expires_at": [math.inf, FUTURE]}, "expires_at[0]", "inf"),
    ("expires_at item bool", {"expires_at": [None, False]}, "expires_at[1]", "False"),
    ("expires_at item str", {"expires_at": [FUTURE, "x"]}, "expires_at[1]", "'x'"),
    ("expires_at item nested", {"expires_at": [[FUTURE], None]}, "expires_at[0]", "expires_at[0]"),
    ("both", {"ttl": 5, "expires_at": FUTURE}, None, "not both"),
    ("both, expires_at all None", {"ttl": 5, "expires_at": [None, None]}, None, "not both"),
]
#: (case, expires_at, expected length details) for lists of the wrong length (2 ids are sent).
BAD_LENGTH: list[tuple[str, list[Any]]] = [
    ("empty", []),
    ("short", [FUTURE]),
    ("long", [FUTURE, None, FUTURE]),
]


@pytest.fixture
def full(tmp_path: Path) -> Iterator[Collection]:
    """A collection at its capacity (2): "keep" (permanent, text "kept") and "other"."""
    with opened(tmp_path / "d") as db:
        col = db.create_collection("c", dim=DIM, max_records=2)
        col.upsert(["keep", "other"], vecs(2), texts=["kept", "other"])
        yield col


def _assert_unchanged(col: Collection, seq: int) -> None:
    assert col.info()["seq"] == seq, "a rejected upsert wrote a batch"
    got = col.get(["keep", "other", "x"], include=["text"])
    assert [(r.id, r.text) for r in got] == [("keep", "kept"), ("other", "other")], got
    assert stored(col) == 2


@pytest.mark.parametrize(("case", "kwargs", "field", "text"), BAD_EXPIRY, ids=[c[0] for c in BAD_EXPIRY])
def test_bad_expiry_is_rejected_and_writes_nothing(
    full: Collection, case: str, kwargs: dict[str, Any], field: str | None, text: str
) -> None:
    seq = full.info()["seq"]
    with pytest.raises(InvalidArgumentError) as info:
        full.upsert(["x", "keep"], vecs(2, 9), texts=["new x", "new keep"], **kwargs)
    assert type(info.value) is InvalidArgumentError, case
    assert text in str(info.value), str(info.value)
    if field is not None:
        assert info.value.details == {"field": field}
    _assert_unchanged(full, seq)


@pytest.mark.parametrize(("case", "expires_at"), BAD_LENGTH, ids=[c[0] for c in BAD_LENGTH])
def test_expires_at_list_of_wrong_length_is_rejected(
    full: Collection, case: str, expires_at: list[Any]
) -> None:
    seq = full.info()["seq"]
    with pytest.raises(InvalidArgumentError) as info:
        full.upsert(["x", "keep"], vecs(2, 9), texts=["new x", "new keep"], expires_at=expires_at)
    assert type(info.value) is InvalidArgumentError
    assert info.value.details == {"field": "expires_at", "expected": 2, "got": len(expires_at)}
    _assert_unchanged(full, seq)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ttl": 10**400}, "ttl"),
        ({"expires_at": 10**400}, "expires_at"),
        ({"expires_at": [None, 10**400]}, "expires_at[1]"),
    ],
    ids=["ttl", "expires_at", "expires_at item"],
)
def test_integer_expiry_beyond_float_range_is_invalid_argument(
    full: Collection, kwargs: dict[str, Any], field: str
) -> None:
    """An int too large for a float is a bad number like inf (InvalidArgumentError), not an OverflowError.
    Over REST the JSON layer rejects such numbers first (400)."""
    seq = full.info()["seq"]
    try:
        full.upsert(["x", "keep"], vecs(2, 9), texts=["new x", "new keep"], **kwargs)
    except InvalidArgumentError as exc:
        assert exc.details == {"field": field}
    except Exception as exc:  # the point is which class comes out
        pytest.fail(
            f"upsert with {field}=10**400 raised {type(exc).__name__}: {exc} instead of "
            "InvalidArgumentError (math.isfinite overflows on an int beyond float range)"
        )
    else:
        pytest.fail("an expiry of 10**400 was accepted")
    _assert_unchanged(full, seq)


# ---- capacity: configuration ------------------------------------------------------------------------

#: (max_records, eviction, the error's field)
BAD_CAPACITY: list[tuple[Any, Any, str]] = [
    (0, None, "max_records"),
    (-1, "fifo", "max_records"),
    (True, None, "max_records"),
    (2.0, None, "max_records"),
    ("3", None, "max_records"),
    ((1 << 40) + 1, None, "max_records"),
    (None, "lru", "eviction"),
    (None, "fifo", "eviction"),
    (3, "LRU", "eviction"),
    (3, "random", "eviction"),
    (3, "", "eviction"),
    (3, 1, "eviction"),
]


@pytest.mark.parametrize(("max_records", "eviction", "field"), BAD_CAPACITY)
def test_invalid_capacity_is_rejected(db: Database, max_records: Any, eviction: Any, field: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        db.create_collection("c", dim=DIM, max_records=max_records, eviction=eviction)
    assert info.value.details == {"field": field}
    assert db.list_collections() == []


def test_max_records_with_more_digits_than_python_prints_is_invalid_config(db: Database) -> None:
    """An int past Python's 4300-digit str() limit is InvalidConfigError too (the message must not print
    it)."""
    try:
        db.create_collection("c", dim=DIM, max_records=10**5000)
    except InvalidConfigError as exc:
        assert exc.details == {"field": "max_records"}
    except Exception as exc:  # the point is which class comes out
        pytest.fail(
            f"create_collection(max_records=10**5000) raised {type(exc).__name__}: {str(exc)[:80]} "
            "instead of InvalidConfigError (parse_capacity formats the int with !r)"
        )
    else:
        pytest.fail("max_records=10**5000 was accepted")
    assert db.list_collections() == []


def test_capacity_is_in_info_and_survives_reopen(tmp_path: Path) -> None:
    with opened(tmp_path / "d") as db:
        assert db.create_collection("plain", dim=DIM).info()["capacity"] is None
        assert db.create_collection("dflt", dim=DIM, max_records=5).info()["capacity"] == {
            "max_records": 5,
            "eviction": "fifo",
        }
        lru = db.create_collection("lru", dim=DIM, max_records=1, eviction="lru")
        assert lru.info()["capacity"] == {"max_records": 1, "eviction": "lru"}
        big = db.create_collection("big", dim=DIM, max_records=1 << 40, eviction="fifo")
        assert big.info()["capacity"] == {"max_records": 1 << 40, "eviction": "fifo"}
        lru.upsert(["a"], vecs(1))
        lru.upsert(["b"], vecs(1, 1))
        assert ids_of(lru.get(["a", "b"])) == ["b"]
    manifest = orjson.loads((tmp_path / "d" / "collections" / "lru" / "collection.json").read_bytes())
    assert manifest["capacity"] == {"max_records": 1, "eviction": "lru"}
    with opened(tmp_path / "d") as db:
        assert db.get_collection("plain").info()["capacity"] is None
        assert db.get_collection("dflt").info()["capacity"] == {"max_records": 5, "eviction": "fifo"}
        lru = db.get_collection("lru")
        assert lru.info()["capacity"] == {"max_records": 1, "eviction": "lru"}
        lru.upsert(["c"], vecs(1, 2))  # still capped after reopen
        assert ids_of(lru.get(["a", "b", "c"])) == ["c"] and lru.count() == 1


# ---- capacity: eviction, case by case ---------------------------------------------------------------


def test_fifo_evicts_in_write_order_and_ignores_reads(db: Database) -> None:
    col = db.create_collection("c", dim=DIM, max_records=3)
    v = vecs(6)
    col.upsert(["a", "b", "c"], v[:3])
    assert ids_of(col.get(["a"])) == ["a"]
    assert col.search(v[:1], k=1)[0][0].id == "a"
    col.upsert(["d"], v[3:4])  # reads are no use in fifo: a, the oldest written, goes
    assert visible_ids(col) == {"b", "c", "d"}
    col.upsert(["b"], v[1:2])  # a re-upsert is a new write: c is now the oldest
    col.upsert(["e"], v[4:5])
    assert visible_ids(col) == {"d", "b", "e"}
    col.upsert(["f", "g"], vecs(2, 1))  # one write evicting two
    assert visible_ids(col) == {"e", "f", "g"} and col.count() == 3 == stored(col)


def test_lru_counts_writes_gets_and_searches_as_use(db: Database) -> None:
    col = db.create_collection("c", dim=DIM, max_records=3, eviction="lru")
    v = vecs(6)
    col.upsert(["a", "b", "c"], v[:3])
    assert ids_of(col.get(["a"])) == ["a"]  # order of use: b c a
    col.upsert(["d"], v[3:4])
    assert visible_ids(col) == {"c", "a", "d"}
    assert col.search(v[2:3], k=1)[0][0].id == "c"  # a d c
    col.upsert(["e"], v[4:5])
    assert visible_ids(col) == {"d", "c", "e"}
    col.upsert(["d"], v[3:4])  # c e d
    assert col.get(["zzz"]) == [] and col.count() == 3  # missing ids and counting use nothing
    col.upsert(["f"], v[5:6])
    assert visible_ids(col) == {"e", "d", "f"}
    # Hits a score_threshold drops are not returned, so they are no use: e d f -> only f is used.
    hits = col.search(v[5:6], k=3, score_threshold=0.9999)[0]
    assert ids_of(hits) == ["f"]
    col.upsert(["g"], vecs(1, 7))
    assert visible_ids(col) == {"d", "f", "g"}


def test_lru_recency_after_reopen_is_write_order(tmp_path: Path) -> None:
    with opened(tmp_path / "d") as db:
        col = db.create_collection("c", dim=DIM, max_records=3, eviction="lru")
        col.upsert(["a", "b", "c"], vecs(3))
        col.get(["a"])  # use order b c a: gone with the process
    with opened(tmp_path / "d") as db:
        col = db.get_collection("c")
        col.upsert(["d"], vecs(1, 1))  # write order a b c: a goes
        assert visible_ids(col) == {"b", "c", "d"}
        col.get(["b"])  # c d b
        col.upsert(["e"], vecs(1, 2))
        assert visible_ids(col) == {"d", "b", "e"}


def test_expired_records_are_evicted_first(tmp_path: Path) -> None:
    for eviction in ("fifo", "lru"):
        with opened(tmp_path / eviction) as db:
            col = db.create_collection("c", dim=DIM, max_records=3, eviction=eviction)
            v = vecs(6)
            col.upsert(["old", "mid"], v[:2])
            col.upsert(["short"], v[2:3], ttl=0.5)  # the newest and, under lru, the most used
            deadline = time.time() + 0.5
            col.upsert(["past"], v[3:4], expires_at=time.time() - 1)  # at capacity: "old" goes
            assert visible_ids(col) == {"mid", "short"} and stored(col) == 3
            assert ids_of(col.get(["short"])) == ["short"]
            sleep_until(deadline)
            assert stored(col) == 3 and col.count() == 1  # purger off: both expired still stored
            col.upsert(["new"], v[4:5])  # evicts an expired record, not "mid"
            assert visible_ids(col) == {"mid", "new"} and stored(col) == 3
            col.upsert(["new2"], v[5:6])  # evicts the other expired one
            assert visible_ids(col) == {"mid", "new", "new2"} and stored(col) == 3
            col.upsert(["new3"], v[:1])  # nothing expired left: the oldest live record goes
            assert visible_ids(col) == {"new", "new2", "new3"}, eviction


def test_batch_larger_than_capacity_writes_nothing(db: Database) -> None:
    col = db.create_collection("c", dim=DIM, max_records=3)
    col.upsert(["a", "b"], vecs(2))
    seq = col.info()["seq"]
    for batch in (["w", "x", "y", "z"], ["a", "b", "x", "y"]):
        with pytest.raises(LimitExceededError) as info:
            col.upsert(batch, vecs(4, 1))
        assert info.value.details == {"limit": 3}
        assert "max_records 3" in str(info.value)
        assert col.info()["seq"] == seq and visible_ids(col) == {"a", "b"} and stored(col) == 2
    col.upsert(["x", "y", "z"], vecs(3, 2))  # exactly max_records: everything older goes
    assert visible_ids(col) == {"x", "y", "z"}


def test_replacing_ids_in_a_full_collection_evicts_nothing(db: Database) -> None:
    for eviction in ("fifo", "lru"):
        col = db.create_collection(eviction, dim=DIM, max_records=3, eviction=eviction)
        col.upsert(["a", "b", "c"], vecs(3))
        col.upsert(["c", "a", "b"], vecs(3, 1), texts=["c2", "a2", "b2"])
        col.upsert(["b"], vecs(1, 2), texts=["b3"])
        assert visible_ids(col) == {"a", "b", "c"} and stored(col) == 3
        col.upsert(["d"], vecs(1, 3))  # write order now c a b: c goes
        assert visible_ids(col) == {"a", "b", "d"}, eviction
        got = col.get(["a", "b"], include=["text"])
        assert [(r.id, r.text) for r in got] == [("a", "a2"), ("b", "b3")]


def test_delete_frees_capacity(db: Database) -> None:
    col = db.create_collection("c", dim=DIM, max_records=3)
    col.upsert(["a", "b", "c"], vecs(3))
    assert col.delete(["b"]) == 1
    col.upsert(["d"], vecs(1, 1))
    assert visible_ids(col) == {"a", "c", "d"}


def test_replace_source_evicts_in_the_same_batch(db: Database) -> None:
    col = db.create_collection("c", dim=DIM, max_records=4)
    col.upsert(["a", "b", "c", "d"], vecs(4), sources=["s", None, "s", None])
    seq = col.info()["seq"]
    # s's a and c are replaced by three records: one more than they free, so b (the oldest left) goes.
    assert col.replace_source("s", ["x", "y", "z"], vecs(3, 1)) == 3
    assert col.info()["seq"] == seq + 1, "the replacement and the eviction must be one batch"
    assert visible_ids(col) == {"d", "x", "y", "z"}
    assert [(s.source, s.count) for s in col.list_sources()] == [("s", 3)]
    with pytest.raises(LimitExceededError):
        col.replace_source("s", ["1", "2", "3", "4", "5"], vecs(5, 2))
    assert col.info()["seq"] == seq + 1


# ---- capacity: against a model ----------------------------------------------------------------------

POOL = [f"r{i}" for i in range(14)]
MAX = 5


@dataclass
class CapacityModel:
    """What a capacity collection holds, and in which order it evicts.

    ``live``: visible records, least recently used (lru) / oldest written (fifo) first. ``dead``: records
    written already expired, in write order (physically there until evicted, deleted or purged).
    """

    max_records: int
    lru: bool
    live: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)
    dead: OrderedDict[str, None] = field(default_factory=OrderedDict)
    written: dict[str, int] = field(default_factory=dict)  # id -> write serial
    serial: int = 0

    def upsert(self, records: list[tuple[str, np.ndarray, bool]]) -> None:
        """``records``: (id, vector, written already expired)."""
        for rid, _, _ in records:
            self.live.pop(rid, None)
            self.dead.pop(rid, None)
        overflow = len(self.live) + len(self.dead) + len(records) - self.max_records
        assert len(records) <= self.max_records
        for _ in range(max(overflow, 0)):
            (self.dead if self.dead else self.live).popitem(last=False)
        for rid, vec, expired in records:
            self.serial += 1
            self.written[rid] = self.serial
            if expired:
                self.dead[rid] = None
            else:
                self.live[rid] = vec

    def use(self, ids: list[str]) -> None:
        if self.lru:
            for rid in ids:
                self.live.move_to_end(rid)

    def delete(self, ids: list[str]) -> tuple[int, int]:
        """Delete; returns (live records deleted, expired ones deleted)."""
        unique = set(ids)
        live = [rid for rid in unique if self.live.pop(rid, None) is not None]
        dead = [rid for rid in unique if rid in self.dead]
        for rid in dead:
            del self.dead[rid]
        return len(live), len(dead)

    def reopen(self) -> None:
        """Recency is not stored: after a reopen it is write order."""
        self.live = OrderedDict(sorted(self.live.items(), key=lambda kv: self.written[kv[0]]))


@dataclass
class ModelRun:
    col: Collection
    model: CapacityModel
    rng: random.Random
    purging: bool  # a fast purger runs: expired records leave at any moment, so only the visible is checked
    counter: int = 0

    def step(self) -> None:
        col, model, rng = self.col, self.model, self.rng
        r = rng.random()
        if r < 0.45:
            batch = rng.sample(POOL, rng.randint(1, 3))
            kinds = [rng.choice(["perm", "perm", "perm", "past", "future"]) for _ in batch]
            v = np.random.default_rng(self.counter).standard_normal((len(batch), DIM)).astype(np.float32)
            self.counter += 1
            now = time.time()
            if all(k == "perm" for k in kinds):
                expires: Any = None
            elif all(k == "future" for k in kinds):
                expires = "ttl"
            else:
                expires = [{"perm": None, "past": now - 5, "future": now + FAR}[k] for k in kinds]
            if expires == "ttl":
                n = col.upsert(batch, v, ttl=FAR)
            else:
                n = col.upsert(batch, v, expires_at=expires)
            assert n == len(batch)
            model.upsert([(rid, v[i], kinds[i] == "past") for i, rid in enumerate(batch)])
        elif r < 0.5:
            seq = col.info()["seq"]
            with pytest.raises(LimitExceededError):
                col.upsert(rng.sample(POOL, MAX + 1), vecs(MAX + 1, 99))
            if not self.purging:  # a purge may commit meanwhile; check() still shows nothing was written
                assert col.info()["seq"] == seq
        elif r < 0.7:
            q = np.random.default_rng(1000 + self.counter).standard_normal((1, DIM)).astype(np.float32)
            self.counter += 1
            k = rng.randint(1, 3)
            hits = ids_of(col.search(q, k=k)[0])
            assert len(hits) == min(k, len(model.live)) and set(hits) <= set(model.live), hits
            if model.live:
                scores = {rid: _cosine(q[0], vec) for rid, vec in model.live.items()}
                assert scores[hits[0]] >= max(scores.values()) - 1e-5, "search missed the best live record"
            model.use(hits)
        elif r < 0.85:
            ids = [rng.choice(POOL) for _ in range(rng.randint(1, 3))]
            got = ids_of(col.get(ids, include=[]))
            want = [rid for rid in dict.fromkeys(ids) if rid in model.live]
            assert got == want
            model.use(got)
        else:
            ids = [rng.choice(POOL) for _ in range(rng.randint(1, 2))]
            n = col.delete(ids)
            live, dead = model.delete(ids)
            # Deleting an expired record that is still stored counts it (see the module report).
            assert live <= n <= live + dead
        self.check()

    def check(self) -> None:
        col, model = self.col, self.model
        assert visible_ids(col) == set(model.live)
        assert col.count() == len(model.live) <= model.max_records
        assert stored(col) <= model.max_records
        if not self.purging:
            assert stored(col) == len(model.live) + len(model.dead)
            assert {col._records.ids[lb] for lb in col._records.all} == set(model.live) | set(model.dead)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _check_reopened(col: Collection, model: CapacityModel) -> None:
    """After a reopen: the same live records (vectors included), and index == store."""
    assert col.count() == len(model.live) == col.info()["count"]
    got = col.get(POOL, include=["vector"])
    assert sorted(ids_of(got)) == sorted(model.live)
    for rec in got:
        np.testing.assert_array_equal(rec.vector, model.live[rec.id])
    if model.live:
        everything = col.search(vecs(1, 5), k=len(POOL))[0]
        assert sorted(ids_of(everything)) == sorted(model.live)
    assert_index_matches_store(col)
    assert stored(col) <= model.max_records


@pytest.mark.parametrize(
    ("eviction", "purge", "index", "seed"),
    [
        ("fifo", NO_PURGE, {"type": "flat"}, 1),
        ("lru", NO_PURGE, {"type": "auto", "threshold": 5}, 2),
        ("fifo", FAST_PURGE, HNSW, 3),
        ("lru", FAST_PURGE, {"type": "flat"}, 4),
    ],
    ids=["fifo-flat", "lru-auto", "fifo-hnsw-purging", "lru-flat-purging"],
)
def test_eviction_order_matches_model(
    tmp_path: Path, eviction: str, purge: float, index: dict[str, Any], seed: int
) -> None:
    path = tmp_path / "d"
    model = CapacityModel(MAX, lru=eviction == "lru")
    rng = random.Random(seed)
    for phase, steps in enumerate((70, 40)):
        if phase:
            # A reopen that only checks (its reads are use under lru, forgotten by the next reopen).
            with opened(path, purge) as db:
                model.reopen()
                col = db.get_collection("c")
                _check_reopened(col, model)
                assert col.info()["capacity"] == {"max_records": MAX, "eviction": eviction}
        with opened(path, purge) as db:
            if phase == 0:
                col = db.create_collection(
                    "c",
                    dim=DIM,
                    index=index,
                    max_records=MAX,
                    eviction=eviction,  # type: ignore[arg-type]
                )
            else:
                col = db.get_collection("c")
            model.reopen()
            run = ModelRun(col, model, rng, purging=purge != NO_PURGE, counter=1000 * phase)
            for i in range(steps):
                try:
                    run.step()
                except AssertionError as exc:
                    raise AssertionError(f"phase {phase}, step {i} (seed {seed}): {exc}") from exc
            assert col.wait_for_index(timeout=30)
    with opened(path, purge) as db:
        model.reopen()
        _check_reopened(db.get_collection("c"), model)


# ---- crash: SIGKILL a writer ------------------------------------------------------------------------

WRITER_PATH = Path(__file__).with_name("ttl_writer.py")
READY_TIMEOUT_S = 60.0


def _load_writer() -> Any:
    spec = importlib.util.spec_from_file_location("vecdb_tests_ttl_writer", WRITER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tw = _load_writer()


@dataclass
class CrashModel:
    """Visible records of the writer's collection: id -> version, in eviction order (see CapacityModel)."""

    lru: bool
    live: OrderedDict[str, int] = field(default_factory=OrderedDict)
    dead: OrderedDict[str, None] = field(default_factory=OrderedDict)
    written: dict[str, int] = field(default_factory=dict)

    def copy(self) -> CrashModel:
        return CrashModel(self.lru, OrderedDict(self.live), OrderedDict(self.dead), dict(self.written))

    def apply(self, op: dict[str, Any], result: Any) -> None:
        kind = op["op"]
        if kind == "upsert":
            recs = op["records"]
            if len(recs) > tw.MAX_RECORDS:
                assert result in (None, {"error": "limit_exceeded"}), result
                return
            assert result in (None, len(recs)), (op, result)  # None: pending, not acknowledged
            for rid, _, _ in recs:
                self.live.pop(rid, None)
                self.dead.pop(rid, None)
            overflow = len(self.live) + len(self.dead) + len(recs) - tw.MAX_RECORDS
            for _ in range(max(overflow, 0)):
                (self.dead if self.dead else self.live).popitem(last=False)
            for rid, version, expiry in recs:
                self.written[rid] = version
                if expiry == "past":
                    self.dead[rid] = None
                else:
                    self.live[rid] = version
        elif kind == "delete":
            unique = set(op["ids"])
            live = sum(1 for rid in unique if self.live.pop(rid, None) is not None)
            dead = [rid for rid in unique if rid in self.dead]
            for rid in dead:
                del self.dead[rid]
            if result is not None:
                assert live <= result <= live + len(dead), (op, result)
        elif kind in ("get", "search"):
            if result is not None:  # acknowledged: the ids it returned, in order
                assert set(result) <= set(self.live), (op, result, list(self.live))
                if kind == "search":
                    assert len(result) == min(op["k"], len(self.live)), (op, result)
                if kind == "get":
                    assert result == [rid for rid in dict.fromkeys(op["ids"]) if rid in self.live]
                if self.lru:
                    for rid in result:
                        self.live.move_to_end(rid)
        else:
            raise AssertionError(f"unknown op {kind!r}")

    def reopen(self) -> None:
        self.live = OrderedDict(sorted(self.live.items(), key=lambda kv: self.written[kv[0]]))


def _run_writer(data: Path, seed: int, eviction: str, log_dir: Path, delay: float) -> bytes:
    out_path, err_path = log_dir / f"w{seed}.out", log_dir / f"w{seed}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER_PATH), str(data), str(seed), eviction], stdout=out, stderr=err
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while b"READY\n" not in out_path.read_bytes():
            assert proc.poll() is None, f"writer exited early:\n{err_path.read_text()[-4000:]}"
            assert time.monotonic() < deadline, "writer never got ready"
            time.sleep(0.01)
        time.sleep(delay)
        assert proc.poll() is None, f"writer exited on its own:\n{err_path.read_text()[-4000:]}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out_path.read_bytes()


def _parse(raw: bytes) -> tuple[list[tuple[dict[str, Any], Any]], dict[str, Any] | None]:
    """(acknowledged ops with their results, the op begun but not acknowledged). A last line without
    its newline was cut by the kill."""
    acked: list[tuple[dict[str, Any], Any]] = []
    pending: dict[str, Any] | None = None
    for line in raw.split(b"\n")[:-1]:
        if line == b"READY":
            continue
        if line.startswith(b"BEGIN "):
            assert pending is None, "BEGIN after BEGIN"
            pending = orjson.loads(line[6:])
        elif line.startswith(b"ACK "):
            assert pending is not None, "ACK without BEGIN"
            acked.append((pending, orjson.loads(line[4:])))
            pending = None
        else:
            raise AssertionError(f"unexpected writer line {line[:200]!r}")
    return acked, pending


def _verify_crash(col: Collection, candidates: list[CrashModel], context: str) -> int:
    got = {r.id: r for r in col.get(tw.POOL, include=["metadata", "vector"])}
    versions = {rid: r.metadata["v"] for rid, r in got.items()}
    chosen = next((i for i, m in enumerate(candidates) if dict(m.live) == versions), None)
    assert chosen is not None, (
        f"{context}: visible records {sorted(versions.items())} match neither the acknowledged model "
        f"{sorted(candidates[0].live.items())} nor acknowledged + pending op"
    )
    for rid, rec in got.items():
        np.testing.assert_array_equal(rec.vector, tw.vector_for(rid, versions[rid]))
    assert col.count() == len(versions) == col.info()["count"] <= tw.MAX_RECORDS
    assert stored(col) <= tw.MAX_RECORDS, f"{context}: {stored(col)} records stored"
    assert_index_matches_store(col)
    if versions:
        q = np.stack([tw.vector_for(rid, v) for rid, v in list(versions.items())[:4]])
        rows = col.search(q, k=len(tw.POOL))
        for row in rows:  # every visible record is in the index, nothing else is
            assert sorted(ids_of(row)) == sorted(versions), f"{context}: index and store disagree"
        for rid, row in zip(versions, rows, strict=False):
            assert row[0].id == rid and row[0].score == pytest.approx(1.0, abs=1e-4)
    return chosen


@pytest.mark.slow
@pytest.mark.parametrize("eviction", ["fifo", "lru"])
def test_sigkill_writer_keeps_capacity_and_acknowledged_records(tmp_path: Path, eviction: str) -> None:
    rng = random.Random(7 if eviction == "fifo" else 8)
    data, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    model = CrashModel(lru=eviction == "lru")
    total = 0
    for rnd in range(4):
        seed = rnd + 1 + (100 if eviction == "lru" else 0)
        context = f"{eviction} round {rnd} (writer seed {seed})"
        acked, pending = _parse(_run_writer(data, seed, eviction, logs, rng.uniform(0.3, 0.9)))
        model.reopen()  # the writer opened the collection afresh: recency is write order
        for op, result in acked:
            model.apply(op, result)
        total += len(acked)
        candidates = [model]
        if pending is not None:
            after = model.copy()
            after.apply(pending, None)
            candidates.append(after)
        with opened(data) as db:
            col = db.get_collection("c")
            assert col.info()["capacity"] == {"max_records": tw.MAX_RECORDS, "eviction": eviction}
            model = candidates[_verify_crash(col, candidates, context)]
    assert total > 20, f"the writer acknowledged only {total} ops in 4 rounds"
