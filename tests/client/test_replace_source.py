"""``replace_source`` through the client, over REST and gRPC, sync and async: a source's records are
swapped in one write (old ids gone, new ones there with that source), other sources untouched, no ids
deletes the source, texts are embedded on collections with a model, and bad input raises the same class
on both transports."""

from __future__ import annotations

import pytest

from vecdb_client import AsyncClient, Client
from vecdb_client.errors import CollectionNotFoundError, DimensionMismatchError, InvalidSourceError


def test_replace_source_swaps_one_source(client: Client, unique_name: str) -> None:
    col = client.create_collection(unique_name, dim=2)
    try:
        col.upsert(["a1", "a2", "b1"], [[1, 0], [0, 1], [1, 1]], sources=["a.md", "a.md", "b.md"])
        n = col.replace_source("a.md", ["a3"], [[1, 0.5]], texts=["new"], metadatas=[{"v": 2}])
        assert n == 1
        assert {s.source: s.count for s in col.list_sources()} == {"a.md": 1, "b.md": 1}
        assert [r.id for r in col.get(["a1", "a2", "a3", "b1"])] == ["a3", "b1"]
        (a3,) = col.get(["a3"])
        assert (a3.text, a3.metadata, a3.source) == ("new", {"v": 2}, "a.md")
        col.replace_source("a.md", [])
        assert [s.source for s in col.list_sources()] == ["b.md"]
        with pytest.raises(DimensionMismatchError):
            col.replace_source("b.md", ["b2"], [[1, 0, 0]])
        assert [r.id for r in col.get(["b1", "b2"])] == ["b1"], "a rejected replace writes nothing"
        with pytest.raises(InvalidSourceError):
            col.replace_source(3, ["x"], [[1, 0]])  # type: ignore[arg-type]
    finally:
        client.drop_collection(unique_name)
    with pytest.raises(CollectionNotFoundError):
        client.collection(unique_name).replace_source("a.md", ["x"], [[1, 0]])


def test_replace_source_embeds_texts(client: Client, unique_name: str) -> None:
    col = client.create_collection(unique_name, embedding={})
    try:
        col.replace_source("notes/cat.md", ["c0", "c1"], texts=["Cats purr.", "Cats sleep a lot."])
        hits = col.search(texts="a sleeping kitten", k=1)[0]
        assert hits[0].id == "c1" and hits[0].source == "notes/cat.md"
    finally:
        client.drop_collection(unique_name)


async def test_async_replace_source(aclient: AsyncClient, unique_name: str) -> None:
    col = await aclient.create_collection(unique_name, dim=2)
    try:
        await col.upsert(["a1"], [[1, 0]], sources=["dir/a b.md"])
        assert await col.replace_source("dir/a b.md", ["a2"], [[0, 1]]) == 1
        assert [s.source for s in await col.list_sources()] == ["dir/a b.md"]
        assert [r.id for r in await col.get(["a1", "a2"])] == ["a2"]
    finally:
        await aclient.drop_collection(unique_name)
