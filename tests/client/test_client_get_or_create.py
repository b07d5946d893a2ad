"""get_or_create_collection over REST and gRPC, sync and async, against a real server: a snippet that
sets up its collection can run again."""

from __future__ import annotations

import pytest

from vecdb_client import AsyncClient, Client
from vecdb_client.errors import CollectionExistsError


def test_get_or_create_is_rerunnable(client: Client, unique_name: str) -> None:
    col = client.get_or_create_collection(unique_name, dim=3, metric="l2")
    col.upsert(["a"], [[1.0, 2.0, 3.0]])
    again = client.get_or_create_collection(unique_name, dim=3, metric="l2")
    assert again.count() == 1
    assert client.get_or_create_collection(unique_name).count() == 1  # nothing given: anything matches
    with pytest.raises(CollectionExistsError) as err:
        client.get_or_create_collection(unique_name, dim=4, metric="ip")
    assert err.value.details["differences"] == {
        "dim": {"existing": 3, "requested": 4},
        "metric": {"existing": "l2", "requested": "ip"},
    }
    with pytest.raises(CollectionExistsError):  # the plain create still refuses an existing name
        client.create_collection(unique_name, dim=3)
    client.drop_collection(unique_name)


async def test_get_or_create_async(aclient: AsyncClient, unique_name: str) -> None:
    col = await aclient.get_or_create_collection(unique_name, embedding={})
    await col.upsert(["n1"], texts=["The cat sat on the mat"])
    again = await aclient.get_or_create_collection(unique_name, embedding={})
    assert await again.count() == 1
    info = await again.info()
    assert info.metric == "cosine"
    await aclient.drop_collection(unique_name)
