"""Writers and readers on one collection at once: no errors, no lost writes, consistent counts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from vecdb import Database
from vecdb.config import Settings, StorageSettings
from vecdb.errors import ClosedError


def test_writers_and_readers(tmp_path: Path) -> None:
    settings = Settings(storage=StorageSettings(checkpoint_every_ops=5, sync_writes=False))
    errors: list[BaseException] = []
    written: dict[int, set[str]] = {}
    with Database(tmp_path, settings=settings) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        stop = time.monotonic() + 3.0

        def writer(w: int) -> None:
            rng = np.random.default_rng(w)
            mine: set[str] = set()
            i = 0
            try:
                while time.monotonic() < stop:
                    ids = [f"w{w}-{i + j}" for j in range(20)]
                    col.upsert(
                        ids, rng.normal(size=(20, 8)), metadatas=[{"w": w}] * 20, sources=[f"s{w}"] * 20
                    )
                    mine.update(ids)
                    if i % 60 == 40:
                        gone = sorted(mine)[:10]
                        assert col.delete(gone) == 10
                        mine.difference_update(gone)
                    i += 20
            except BaseException as exc:
                errors.append(exc)
            written[w] = mine

        def reader(r: int) -> None:
            rng = np.random.default_rng(100 + r)
            try:
                while time.monotonic() < stop:
                    for hits in col.search(rng.normal(size=(3, 8)), k=5, filter={"w": r % 2}):
                        assert all(h.metadata["w"] == r % 2 for h in hits)
                        assert len({h.id for h in hits}) == len(hits)
                    col.count()
                    col.list_sources()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
        threads += [threading.Thread(target=reader, args=(r,)) for r in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "deadlock"
        assert not errors, errors
        expected = set().union(*written.values())
        assert col.count() == len(expected) == col.info()["index_state"]["vectors"]
        assert len(col.get(sorted(expected))) == len(expected)
    with Database(tmp_path, settings=settings) as db:
        col = db.get_collection("c")
        assert col.count() == len(expected) == col.info()["index_state"]["vectors"]


def test_close_during_searches_is_clean(tmp_path: Path) -> None:
    db = Database(tmp_path)
    col = db.create_collection("c", dim=4, metric="l2")
    col.upsert([str(i) for i in range(500)], np.random.default_rng(0).normal(size=(500, 4)))
    outcomes: list[str] = []

    def reader() -> None:
        while True:
            try:
                col.search(np.ones((4, 4)), k=3)
            except ClosedError:
                outcomes.append("closed")
                return
            except BaseException as exc:
                outcomes.append(repr(exc))
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    db.close()
    for t in threads:
        t.join(timeout=10)
    assert outcomes == ["closed"] * 3
