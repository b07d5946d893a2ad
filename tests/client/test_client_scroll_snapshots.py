"""Scroll and snapshots through the client, over REST and gRPC (a real ``vecdb serve``): the same pages,
the same errors, and snapshots that restore to what was there."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb_client import AsyncClient, Client, SnapshotInfo
from vecdb_client.errors import (
    CollectionExistsError,
    InvalidArgumentError,
    InvalidNameError,
    LimitExceededError,
    SnapshotExistsError,
    SnapshotNotFoundError,
)

DIM = 4


def filled(client: Client, name: str, n: int = 230) -> np.ndarray:
    col = client.create_collection(name, DIM, "l2")
    x = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    col.upsert(
        [f"r{i:04d}" for i in range(n)],
        x,
        texts=[f"t{i}" for i in range(n)],
        metadatas=[{"n": i} for i in range(n)],
        sources=[f"s{i % 3}" for i in range(n)],
    )
    return x


def test_scroll_pages_through_everything(client: Client, unique_name: str) -> None:
    x = filled(client, unique_name)
    col = client.collection(unique_name)
    page, cursor = col.scroll(limit=100, include=["text", "metadata", "source", "vector"])
    assert [r.id for r in page] == [f"r{i:04d}" for i in range(100)] and cursor is not None
    assert page[5].text == "t5" and page[5].metadata == {"n": 5} and page[5].source == "s2"
    assert page[5].vector is not None and np.allclose(page[5].vector, x[5])
    page2, _ = col.scroll(cursor, limit=100, include=[])
    assert page2[0].id == "r0100" and page2[0].text is None
    records = list(col.iter_records(limit=64, filter={"n": {"$gte": 200}}))
    assert [r.id for r in records] == [f"r{i:04d}" for i in range(200, 230)]
    assert len(list(col.iter_records(limit=1000))) == 230


async def test_async_scroll(aclient: AsyncClient, unique_name: str) -> None:
    col = await aclient.create_collection(unique_name, DIM, "l2")
    await col.upsert([f"a{i}" for i in range(30)], np.ones((30, DIM)))
    ids = [r.id async for r in col.iter_records(limit=7)]
    assert ids == sorted(f"a{i}" for i in range(30))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"cursor": "not-a-cursor"}, InvalidArgumentError),
        ({"limit": 0}, InvalidArgumentError),
        ({"limit": 10**9}, LimitExceededError),
        ({"filter": {"n": {"$nope": 1}}}, InvalidArgumentError),
    ],
)
def test_scroll_errors_are_the_same_on_both_transports(
    client: Client, unique_name: str, kwargs: dict, error: type[Exception]
) -> None:
    client.create_collection(unique_name, DIM, "l2")
    with pytest.raises(error):
        client.collection(unique_name).scroll(**kwargs)


def test_snapshots_over_the_wire(client: Client, unique_name: str) -> None:
    x = filled(client, unique_name)
    col = client.collection(unique_name)
    before = [[h.id for h in row] for row in col.search(x[:3], k=5)]
    snap = client.create_snapshot(unique_name, "one")
    assert isinstance(snap, SnapshotInfo)
    assert (snap.collection, snap.name, snap.records, snap.dim, snap.metric) == (
        unique_name,
        "one",
        230,
        DIM,
        "l2",
    )
    col.delete(source="s0")
    auto = client.create_snapshot(unique_name)
    assert [s.name for s in client.list_snapshots(unique_name)] == ["one", auto.name]
    with pytest.raises(SnapshotExistsError):
        client.create_snapshot(unique_name, "one")
    with pytest.raises(InvalidNameError):
        client.create_snapshot(unique_name, "../etc")
    with pytest.raises(CollectionExistsError):
        client.restore_snapshot(unique_name, "one")
    target = f"{unique_name}-r"
    restored = client.restore_snapshot(unique_name, "one", target)
    assert restored.name == target and restored.count() == 230
    assert [[h.id for h in row] for row in restored.search(x[:3], k=5)] == before
    client.delete_snapshot(unique_name, "one")
    with pytest.raises(SnapshotNotFoundError):
        client.delete_snapshot(unique_name, "one")
    with pytest.raises(SnapshotNotFoundError):
        client.restore_snapshot(unique_name, "one", f"{unique_name}-x")
    assert [s.name for s in client.list_snapshots(unique_name)] == [auto.name]
    client.drop_collection(unique_name)
    assert client.restore_snapshot(unique_name, auto.name).count() == 230 - 77
