"""update over REST and gRPC, sync and async, against a real server: the same merge and errors."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb_client import AsyncClient, Client
from vecdb_client.errors import InvalidArgumentError, NotFoundError


def test_update_metadata_only(client: Client, unique_name: str) -> None:
    col = client.create_collection(unique_name, dim=3, metric="l2")
    vecs = np.eye(3, dtype=np.float32)
    col.upsert(
        ["a", "b"], vecs[:2], texts=["ta", "tb"], metadatas=[{"k": 1, "drop": "x"}, {}], sources=["s", "s"]
    )
    assert col.update(["a"], metadatas=[{"k": 2, "drop": None}]) == 1
    assert col.update(["b"], texts=["tb2"], sources=["t"]) == 1
    a, b = col.get(["a", "b"], include=["text", "metadata", "source", "vector"])
    assert (a.metadata, a.text, a.source) == ({"k": 2}, "ta", "s")
    assert (b.metadata, b.text, b.source) == ({}, "tb2", "t")
    np.testing.assert_array_equal(a.vector, vecs[0])
    assert col.count(filter={"k": 2}) == 1
    with pytest.raises(NotFoundError) as err:
        col.update(["a", "nope"], metadatas=[{"k": 3}, {"k": 3}])
    assert err.value.details["missing"] == ["nope"]
    with pytest.raises(InvalidArgumentError, match="changes nothing"):
        col.update(["a"], metadatas=[None])
    assert col.get(["a"])[0].metadata == {"k": 2}
    client.drop_collection(unique_name)


async def test_update_async(aclient: AsyncClient, unique_name: str) -> None:
    col = await aclient.create_collection(unique_name, dim=2)
    await col.upsert(["a"], [[1.0, 0.0]], metadatas=[{"v": 1}])
    assert await col.update(["a"], metadatas=[{"w": 2}]) == 1
    (rec,) = await col.get(["a"])
    assert rec.metadata == {"v": 1, "w": 2}
    await aclient.drop_collection(unique_name)
