"""``VecDBVectorStore`` keyword and hybrid search against a real ``vecdb serve`` subprocess, over REST and
gRPC, sync and async. Pinned:

- ``text_index=`` makes the store's collection with a full-text index (kept by ``delete()``, which empties
  the collection by making it again);
- ``similarity_search*(..., mode="text" | "hybrid", fusion=...)`` with the server's model, and with a
  LangChain ``Embeddings`` (hybrid then sends the query's vector with its text);
- ``where_document`` (Chroma's name for the full-text filter) in every mode, by vector, and in ``delete``;
- a retriever: ``as_retriever(search_kwargs={"mode": "hybrid"})``, ``invoke`` and ``ainvoke``;
- relevance scores need ``mode="vector"`` (BM25 and fused scores are not similarities) unless the store
  has a ``relevance_score_fn``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from serverproc import ServerProcess

from vecdb_client import Client
from vecdb_client.errors import CollectionNotFoundError, InvalidArgumentError
from vecdb_client.langchain import VecDBVectorStore

TEXTS = {
    "err": "Error E4021 means the snapshot manifest checksum did not match.",
    "cat": "Cats sleep for most of the day and hunt at night.",
    "db": "A vector database stores embeddings and finds nearest neighbours quickly.",
    "rust": "The borrow checker in Rust prevents data races at compile time.",
    "draft": "Draft: notes about a database that nobody reviewed yet.",
}
IDS = list(TEXTS)


@pytest.fixture(params=["rest", "grpc"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Stores:
    def __init__(self, server: ServerProcess, transport: str) -> None:
        self.server, self.transport = server, transport
        self.made: list[VecDBVectorStore] = []

    def make(self, **kwargs: Any) -> VecDBVectorStore:
        name = f"lch_{self.transport}_{uuid.uuid4().hex[:10]}"
        if self.transport == "grpc":
            conn: dict[str, Any] = {"prefer_grpc": True, "grpc_url": self.server.grpc_target}
        else:
            conn = {"url": self.server.rest_url}
        store = VecDBVectorStore(name, **conn, **kwargs)
        self.made.append(store)
        store.add_texts([TEXTS[i] for i in IDS], [{"n": n} for n in range(len(IDS))], ids=IDS)
        return store


@pytest.fixture
async def stores(vecdb_server: ServerProcess, transport: str) -> AsyncIterator[Stores]:
    s = Stores(vecdb_server, transport)
    try:
        yield s
    finally:
        for store in s.made:
            with contextlib.suppress(CollectionNotFoundError):
                store.client.drop_collection(store.collection_name)
            await store.aclose()


def ids(docs: list[Document]) -> list[str | None]:
    return [d.id for d in docs]


async def test_text_and_hybrid_with_the_server_model(stores: Stores) -> None:
    store = stores.make(text_index={})
    assert store.collection.info().text_index is not None
    assert ids(store.similarity_search("E4021", k=1, mode="text")) == ["err"]
    assert ids(await store.asimilarity_search("E4021", k=1, mode="text")) == ["err"]
    hybrid = store.similarity_search("what does E4021 mean", k=3, mode="hybrid")
    assert ids(hybrid)[0] == "err"
    assert ids(await store.asimilarity_search("what does E4021 mean", k=3, mode="hybrid")) == ids(hybrid)
    pairs = store.similarity_search_with_score(
        "E4021 snapshot", k=2, mode="hybrid", fusion={"method": "rrf", "k": 10}
    )
    assert pairs[0][0].id == "err" and pairs[0][1] > pairs[1][1] > 0
    weighted = await store.asimilarity_search_with_score(
        "vector database", k=2, mode="hybrid", fusion={"method": "weighted", "alpha": 0.9}
    )
    assert weighted[0][0].id == "db" and 0 < weighted[0][1] <= 1
    assert store.similarity_search("E4021", mode="text", filter={"n": {"$gt": 0}}) == []
    with pytest.raises(InvalidArgumentError):
        store.similarity_search("x", mode="hybrid", fusion={"method": "max"})


async def test_where_document(stores: Stores) -> None:
    store = stores.make(text_index={})
    not_draft = {"$not_contains": "draft"}
    for mode in ("vector", "text", "hybrid"):
        docs = store.similarity_search("database", k=5, mode=mode, where_document=not_draft)  # type: ignore[arg-type]
        assert docs and "draft" not in ids(docs), mode
        adocs = await store.asimilarity_search("database", k=5, mode=mode, where_document=not_draft)  # type: ignore[arg-type]
        assert ids(adocs) == ids(docs), mode
    vector = store.embeddings  # None: the server's model; by vector needs a vector from it
    assert vector is None
    query, _ = store.client.embed(["database"], collection=store.collection_name)
    only = {"$contains": "database"}
    assert sorted(ids(store.similarity_search_by_vector(query[0].tolist(), k=5, where_document=only))) == [
        "db",
        "draft",
    ]
    by_vec = await store.asimilarity_search_by_vector(query[0].tolist(), k=5, where_document=only)
    assert sorted(ids(by_vec)) == ["db", "draft"]
    mmr = store.max_marginal_relevance_search("database", k=2, fetch_k=5, where_document=only)
    assert sorted(ids(mmr)) == ["db", "draft"]
    ammr = await store.amax_marginal_relevance_search("database", k=5, where_document={"$contains": "night"})
    assert ids(ammr) == ["cat"]
    assert store.delete(where_document={"$contains": "draft"}) is True
    assert ids(store.get_by_ids(IDS)) == ["err", "cat", "db", "rust"]
    assert await store.adelete(where_document={"$contains": "night"}, filter={"n": 1}) is True
    assert ids(store.get_by_ids(IDS)) == ["err", "db", "rust"]


async def test_hybrid_with_langchain_embeddings(stores: Stores) -> None:
    """A LangChain Embeddings: hybrid sends the query's vector with its text (the text branch finds it)."""
    store = stores.make(embedding=DeterministicFakeEmbedding(size=16), text_index={"tokenizer": "whitespace"})
    assert store.collection.info().embedding is None
    assert ids(store.similarity_search("E4021", k=1, mode="hybrid")) == ["err"]
    assert ids(await store.asimilarity_search("E4021", k=1, mode="text")) == ["err"]


async def test_retriever_search_kwargs(stores: Stores) -> None:
    store = stores.make(text_index={})
    r = store.as_retriever(search_kwargs={"mode": "hybrid", "k": 2})
    assert ids(r.invoke("E4021"))[0] == "err"
    assert ids(await r.ainvoke("E4021"))[0] == "err"
    r = store.as_retriever(
        search_kwargs={"mode": "text", "k": 3, "where_document": {"$contains": "database"}}
    )
    assert sorted(ids(r.invoke("database notes"))) == ["db", "draft"]


async def test_relevance_scores_need_vector_mode(stores: Stores) -> None:
    store = stores.make(text_index={})
    with pytest.raises(ValueError, match="mode='vector'"):
        store.similarity_search_with_relevance_scores("E4021", k=2, mode="hybrid")
    with pytest.raises(ValueError, match="mode='vector'"):
        await store.asimilarity_search_with_relevance_scores("E4021", k=2, mode="text")
    pairs = store.similarity_search_with_relevance_scores("E4021", k=2)  # vector mode: as before
    assert all(0 <= s <= 1 for _, s in pairs)
    scaled = VecDBVectorStore(
        store.collection_name, client=store.client, relevance_score_fn=lambda s: min(1.0, s * 10)
    )
    got = scaled.similarity_search_with_relevance_scores("E4021", k=1, mode="hybrid")
    assert got[0][0].id == "err" and 0 < got[0][1] <= 1


async def test_delete_all_keeps_the_text_index(stores: Stores) -> None:
    store = stores.make(text_index={"tokenizer": "whitespace"})
    assert store.delete() is True
    info = store.collection.info()
    assert info.count == 0
    assert info.text_index is not None and info.text_index["tokenizer"] == "whitespace"
    assert await store.adelete() is True
    assert store.collection.info().text_index == info.text_index
    store.add_texts(["E4021 again"], ids=["again"])
    assert ids(store.similarity_search("E4021", mode="text")) == ["again"]


def test_text_mode_without_a_text_index_is_an_error(vecdb_server: ServerProcess) -> None:
    with Client(vecdb_server.rest_url) as client:
        store = VecDBVectorStore(f"lch_plain_{uuid.uuid4().hex[:10]}", client=client)
        try:
            store.add_texts(["hello"], ids=["h"])
            with pytest.raises(InvalidArgumentError, match="set_text_index"):
                store.similarity_search("hello", mode="text")
        finally:
            client.drop_collection(store.collection_name)
