"""``VecDBVectorStore`` (``vecdb_client.langchain``) against a real ``vecdb serve`` subprocess, over REST and
over gRPC, beyond LangChain's standard suite (``test_langchain_standard.py``). Pinned:

- Server-side embedding (no ``Embeddings``): ``from_texts`` / ``add_texts`` make a collection with the
  server's model; search, MMR (query embedded by ``/embed`` with the collection's model) and their async
  twins find the semantically right sentence; ``delete()`` keeps the model.
- ``filter=`` (the server's filter language) on similarity search, with score, by vector and MMR, sync and
  async, applied before top-k.
- Deletes: by ids (missing ids no error), by ``source=`` (``metadata["source"]`` when a string, or the
  explicit ``sources=`` of ``add_texts``; ``source_key`` changes or disables it), by ``filter=``; ``delete()``
  empties the collection and keeps its dim, metric, index and model; ``delete([])`` deletes nothing.
- ``get_by_ids``: request order, missing ids skipped. ``Document.id`` is the record id, a UUID4 string is
  made when missing, an id already stored is replaced, input documents are not mutated. Adding nothing
  returns ``[]`` and creates nothing; length mismatches are ``ValueError`` before anything is sent;
  ``batch_size`` splits the upserts without changing the result.
- Relevance: with unit-length vectors cosine, ip and l2 give the same relevance in [0, 1], best first, 1 for
  an exact match; ``relevance_function`` per metric; ``relevance_score_fn=`` replaces it;
  ``score_threshold`` filters; an existing collection's metric wins over the store's ``metric``; relevance
  stays in [0, 1] (no LangChain warning) for exact and opposite matches of float32 unit vectors, whose
  server score can be a hair outside [-1, 1].
- MMR: with two near-duplicates nearest, ``lambda_mult`` <= 0.5 picks a diverse second document where
  similarity search picks the duplicate; sync equals async.
- Retrievers: ``similarity`` (with ``k`` and ``filter``), ``mmr``, ``similarity_score_threshold``; invoke
  and ainvoke.
- Native async: every async method runs in a loop whose default executor refuses work.
- A missing collection reads as empty (and is not created by reads or deletes); the first write creates it
  with the store's metric and index, sync or async.
- ``close()`` called inside a running loop (``with store:`` in async code) leaves the loop's async client
  for ``aclose()`` to close, rather than dropping it open.

Async tests also call the sync methods (a blocking call inside the loop is fine here), so that one store
and one collection serve both; each async fixture closes the store's async client in the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from serverproc import ServerProcess

from vecdb_client import Client
from vecdb_client.aio import AsyncCollection
from vecdb_client.client import Collection
from vecdb_client.errors import CollectionNotFoundError, VecDBError
from vecdb_client.langchain import VecDBVectorStore, relevance_function
from vecdb_client.types import CollectionInfo, Metric

P = ParamSpec("P")
T = TypeVar("T")

MODEL = "all-MiniLM-L6-v2"
MODEL_DIM = 384
METRICS: tuple[Metric, ...] = ("cosine", "ip", "l2")
TOL = 1e-5

# ---- hand-made embeddings ----------------------------------------------------------------------------


def unit(*xs: float) -> list[float]:
    norm = math.sqrt(sum(x * x for x in xs))
    return [x / norm for x in xs]


def at(degrees: float) -> list[float]:
    """The unit vector at ``degrees`` in the xy-plane of 3-d space."""
    r = math.radians(degrees)
    return [math.cos(r), math.sin(r), 0.0]


class TableEmbeddings(Embeddings):
    """Vectors looked up by text (an unknown text is an error), with native async twins (no executor)."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def _vector(self, text: str) -> list[float]:
        if text not in self.table:
            raise KeyError(f"no vector for {text!r} in the test's table")
        return list(self.table[text])

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


#: Filter data: five documents at 0..60 degrees from the query "q", so unfiltered order is by angle.
FILTER_DOCS: list[tuple[str, float, dict[str, Any]]] = [
    ("en-2019", 0.0, {"lang": "en", "year": 2019}),
    ("en-2021", 15.0, {"lang": "en", "year": 2021}),
    ("de-2020", 30.0, {"lang": "de", "year": 2020}),
    ("de-2023", 45.0, {"lang": "de", "year": 2023}),
    ("fr-2022", 60.0, {"lang": "fr", "year": 2022, "draft": True}),
]
#: (filter, the matching ids in similarity order).
FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"lang": "de"}, ["de-2020", "de-2023"]),
    ({"lang": {"$eq": "en"}}, ["en-2019", "en-2021"]),
    ({"lang": {"$ne": "en"}}, ["de-2020", "de-2023", "fr-2022"]),
    ({"year": {"$gte": 2021}}, ["en-2021", "de-2023", "fr-2022"]),
    ({"year": {"$gt": 2021, "$lte": 2022}}, ["fr-2022"]),
    ({"$and": [{"lang": {"$in": ["en", "fr"]}}, {"year": {"$lt": 2022}}]}, ["en-2019", "en-2021"]),
    ({"$or": [{"lang": "fr"}, {"year": 2019}]}, ["en-2019", "fr-2022"]),
    ({"$not": {"lang": {"$nin": ["de"]}}}, ["de-2020", "de-2023"]),
    ({"draft": {"$exists": True}}, ["fr-2022"]),
    ({"lang": "xx"}, []),
]

#: Relevance data: unit vectors at these angles from the query "q" (which is exactly "a0").
ANGLES = [0.0, 20.0, 45.0, 90.0, 120.0, 150.0, 180.0]

#: MMR data: "dup_a" and "dup_b" are near-duplicates and the two nearest to "q"; "side" is a little further
#: from "q" but in another direction; "far" is orthogonal to "q".
MMR_TABLE = {
    "q": unit(1.0, 0.0, 0.0),
    "dup_a": unit(0.95, 0.31, 0.0),
    "dup_b": unit(0.95, 0.31, 0.03),
    "side": unit(0.9, 0.0, 0.44),
    "far": unit(0.0, 1.0, 0.0),
}
MMR_IDS = ["dup_a", "dup_b", "side", "far"]


def filter_table() -> dict[str, list[float]]:
    return {"q": at(0.0)} | {text: at(deg) for text, deg, _ in FILTER_DOCS}


def angle_table() -> dict[str, list[float]]:
    return {"q": at(0.0)} | {f"a{int(d)}": at(d) for d in ANGLES}


# ---- fixtures --------------------------------------------------------------------------------------------


def connection(server: ServerProcess, transport: str) -> dict[str, Any]:
    """The store's connection kwargs for ``transport``."""
    if transport == "grpc":
        return {"prefer_grpc": True, "grpc_url": server.grpc_target}
    return {"url": server.rest_url}


def fresh_name(tag: str, transport: str) -> str:
    return f"lcs_{tag}_{transport}_{uuid.uuid4().hex[:10]}"


class Env:
    """Makes stores on fresh collections; the fixture drops the collections and closes the stores."""

    def __init__(self, server: ServerProcess, transport: str) -> None:
        self.server = server
        self.transport = transport
        self.names: list[str] = []
        self.stores: list[VecDBVectorStore] = []
        self.admin = Client(server.rest_url)

    @property
    def conn(self) -> dict[str, Any]:
        return connection(self.server, self.transport)

    def name(self, tag: str) -> str:
        name = fresh_name(tag, self.transport)
        self.names.append(name)
        return name

    def track(self, store: VecDBVectorStore) -> VecDBVectorStore:
        self.stores.append(store)
        if store.collection_name not in self.names:
            self.names.append(store.collection_name)
        return store

    def store(self, embedding: Embeddings | None, name: str | None = None, **kwargs: Any) -> VecDBVectorStore:
        return self.track(VecDBVectorStore(name or self.name("s"), embedding, **self.conn, **kwargs))

    def info(self, name: str) -> CollectionInfo:
        return self.admin.collection(name).info()

    def exists(self, name: str) -> bool:
        return name in self.admin.list_collections()


@pytest.fixture(params=["rest", "grpc"])
def transport(request: pytest.FixtureRequest) -> str:
    """``"rest"`` or ``"grpc"`` (as conftest's; here so that this module needs only ``vecdb_server``)."""
    return str(request.param)


@pytest.fixture
async def env(vecdb_server: ServerProcess, transport: str) -> AsyncIterator[Env]:
    """Async so that it runs in the test's loop and can close the async clients the stores made there."""
    e = Env(vecdb_server, transport)
    try:
        yield e
    finally:
        for name in e.names:
            with contextlib.suppress(CollectionNotFoundError):
                e.admin.drop_collection(name)
        for store in e.stores:
            await store.aclose()
        e.admin.close()


def ids_of(docs: Sequence[Document]) -> list[str | None]:
    return [d.id for d in docs]


def pair_ids(pairs: Sequence[tuple[Document, float]]) -> list[str | None]:
    return [d.id for d, _ in pairs]


def filled(
    env: Env, table: dict[str, list[float]], docs: list[tuple[str, dict[str, Any]]], **kw: Any
) -> VecDBVectorStore:
    """A store over ``table`` holding ``docs`` (text, metadata), the text doubling as the id."""
    store = env.store(TableEmbeddings(table), **kw)
    texts = [t for t, _ in docs]
    assert store.add_texts(texts, [m for _, m in docs], ids=texts) == texts
    return store


# ---- 1. server-side embedding ------------------------------------------------------------------------------

SENTENCES = [
    "The cat sat on the mat",
    "Stock markets fell sharply on Monday",
    "The recipe calls for two cups of flour",
    "Heavy rain is expected over the weekend",
    "The striker scored twice in the final",
]


def test_server_side_embedding(env: Env) -> None:
    name = env.name("srvemb")
    metas = [{"i": i} for i in range(len(SENTENCES))]
    store = env.track(VecDBVectorStore.from_texts(SENTENCES, None, metas, collection_name=name, **env.conn))
    info = store.client.collection(name).info()
    assert (info.dim, info.metric, info.embedding["model"], info.count) == (MODEL_DIM, "cosine", MODEL, 5)

    top = store.similarity_search("a feline sat on the rug", k=1)
    assert [d.page_content for d in top] == ["The cat sat on the mat"]
    assert top[0].metadata == {"i": 0}
    pairs = store.similarity_search_with_score("a feline sat on the rug", k=5)
    assert pair_ids(pairs)[0] == top[0].id
    assert [s for _, s in pairs] == sorted((s for _, s in pairs), reverse=True)

    mmr = store.max_marginal_relevance_search("a feline sat on the rug", k=2, fetch_k=5)
    assert len(mmr) == 2 and mmr[0].page_content == "The cat sat on the mat"
    assert mmr[1].id != mmr[0].id

    [new_id] = store.add_texts(["A thunderstorm is on its way"], [{"i": 5}])
    assert store.similarity_search("lightning and thunder tonight", k=1)[0].id == new_id

    store.delete()  # empties it, keeps the server's model
    info = store.client.collection(name).info()
    assert (info.dim, info.embedding["model"], info.count) == (MODEL_DIM, MODEL, 0)
    store.add_texts(["The cat sat on the mat"], ids=["cat"])
    assert ids_of(store.similarity_search("a feline sat on the rug", k=3)) == ["cat"]


async def test_server_side_embedding_async(env: Env) -> None:
    name = env.name("asrvemb")
    store = env.track(
        await VecDBVectorStore.afrom_texts(
            SENTENCES,
            None,
            ids=[f"s{i}" for i in range(5)],
            collection_name=name,
            embedding_model=MODEL,
            **env.conn,
        )
    )
    info = store.client.collection(name).info()
    assert (info.dim, info.embedding["model"], info.count) == (MODEL_DIM, MODEL, 5)

    assert ids_of(await store.asimilarity_search("a feline sat on the rug", k=1)) == ["s0"]
    assert ids_of(await store.asimilarity_search("weather forecast: storms and showers", k=1)) == ["s3"]
    pairs = await store.asimilarity_search_with_score("football match goal", k=2)
    assert pair_ids(pairs)[0] == "s4"
    mmr = await store.amax_marginal_relevance_search("a feline sat on the rug", k=2, fetch_k=5)
    assert ids_of(mmr)[0] == "s0" and len(set(ids_of(mmr))) == 2
    assert ids_of(mmr) == ids_of(
        store.max_marginal_relevance_search("a feline sat on the rug", k=2, fetch_k=5)
    )

    assert await store.aadd_texts(["Bake the bread at 220 degrees"], ids=["bread"]) == ["bread"]
    assert ids_of(await store.asimilarity_search("oven baking a loaf", k=1)) == ["bread"]
    await store.adelete()
    info = store.client.collection(name).info()
    assert (info.dim, info.embedding["model"], info.count) == (MODEL_DIM, MODEL, 0)


# ---- 2. with an Embeddings: filters, deletes, ids ----------------------------------------------------------


async def test_filters(env: Env) -> None:
    store = filled(env, filter_table(), [(t, m) for t, _, m in FILTER_DOCS])
    q = at(0.0)
    assert ids_of(store.similarity_search("q", k=5)) == [t for t, _, _ in FILTER_DOCS]
    for flt, expected in FILTER_CASES:
        why = f"filter {flt}"
        assert ids_of(store.similarity_search("q", k=5, filter=flt)) == expected, why
        assert ids_of(await store.asimilarity_search("q", k=5, filter=flt)) == expected, why
        assert pair_ids(store.similarity_search_with_score("q", k=5, filter=flt)) == expected, why
        assert pair_ids(await store.asimilarity_search_with_score("q", k=5, filter=flt)) == expected, why
        assert ids_of(store.similarity_search_by_vector(q, k=5, filter=flt)) == expected, why
        assert ids_of(await store.asimilarity_search_by_vector(q, k=5, filter=flt)) == expected, why
        assert pair_ids(store.similarity_search_with_relevance_scores("q", k=5, filter=flt)) == expected, why
        mmr = store.max_marginal_relevance_search("q", k=5, fetch_k=5, filter=flt)
        assert set(ids_of(mmr)) == set(expected) and len(mmr) == len(expected), why
        amr = await store.amax_marginal_relevance_search("q", k=5, fetch_k=5, filter=flt)
        assert ids_of(amr) == ids_of(mmr), why
        bvec = await store.amax_marginal_relevance_search_by_vector(q, k=5, fetch_k=5, filter=flt)
        assert ids_of(bvec) == ids_of(store.max_marginal_relevance_search_by_vector(q, 5, 5, filter=flt))
        assert ids_of(bvec) == ids_of(mmr), why
    # the filter applies before top-k: the best match of the filter comes back, not nothing
    assert ids_of(store.similarity_search("q", k=1, filter={"lang": "de"})) == ["de-2020"]
    assert ids_of(await store.amax_marginal_relevance_search("q", k=1, fetch_k=1, filter={"lang": "fr"})) == [
        "fr-2022"
    ]
    # documents come back whole
    [doc] = store.similarity_search("q", k=1, filter={"draft": True})
    assert doc == Document(id="fr-2022", page_content="fr-2022", metadata=FILTER_DOCS[4][2])


async def test_deletes_by_ids_source_and_filter(env: Env) -> None:
    store = env.store(DeterministicFakeEmbedding(size=8))
    docs = [
        Document("a1", id="a1", metadata={"source": "a.txt", "n": 1}),
        Document("a2", id="a2", metadata={"source": "a.txt", "n": 2}),
        Document("b1", id="b1", metadata={"source": "b.txt", "n": 3}),
        Document("c1", id="c1", metadata={"source": 42}),  # not a string: no record source
        Document("e1", id="e1"),
    ]
    assert store.add_documents(docs) == ["a1", "a2", "b1", "c1", "e1"]
    # explicit sources win over metadata["source"]
    store.add_texts(
        ["x1", "x2"], [{"source": "a.txt"}, {"n": 5}], ids=["x1", "x2"], sources=["x.txt", "x.txt"]
    )
    col = store.client.collection(store.collection_name)
    assert {s.source: s.count for s in col.list_sources()} == {"a.txt": 2, "b.txt": 1, "x.txt": 2}
    assert [r.source for r in col.get(["a1", "c1", "e1", "x1"])] == ["a.txt", None, None, "x.txt"]
    # metadata is stored as is, "source" included
    assert store.get_by_ids(["x1"])[0].metadata == {"source": "a.txt"}

    assert store.delete(source="a.txt") is True
    left = store.get_by_ids(["a1", "a2", "b1", "c1", "e1", "x1", "x2"])
    assert ids_of(left) == ["b1", "c1", "e1", "x1", "x2"]
    assert store.delete(filter={"n": {"$gte": 3}}) is True  # b1 (3) and x2 (5)
    assert store.delete(["c1", "no-such-id"]) is True  # a missing id is no error
    assert ids_of(store.get_by_ids(["b1", "c1", "e1", "x1", "x2"])) == ["e1", "x1"]

    assert await store.adelete(source="x.txt") is True
    assert await store.adelete(filter={"no_field": {"$exists": True}}) is True  # matches nothing
    assert ids_of(await store.aget_by_ids(["e1", "x1"])) == ["e1"]
    assert await store.adelete(["e1", "gone"]) is True
    assert col.count() == 0


async def test_source_key(env: Env) -> None:
    emb = DeterministicFakeEmbedding(size=8)
    doc = Document("t", id="t", metadata={"source": "s.txt", "path": "p.txt"})
    off = env.store(emb, source_key=None)
    off.add_documents([doc])
    assert off.client.collection(off.collection_name).list_sources() == []
    other = env.store(emb, source_key="path")
    await other.aadd_documents([doc])
    assert [s.source for s in other.client.collection(other.collection_name).list_sources()] == ["p.txt"]
    await other.adelete(source="p.txt")
    assert await other.aget_by_ids(["t"]) == []


async def test_delete_with_an_empty_id_list_deletes_nothing(env: Env) -> None:
    # [] is "no ids": neither "everything" (None) nor an error (the server rejects an empty id list)
    store = filled(env, filter_table(), [("en-2019", {})])
    assert store.delete([]) is True
    assert await store.adelete([]) is True
    assert ids_of(store.get_by_ids(["en-2019"])) == ["en-2019"]
    empty = env.store(DeterministicFakeEmbedding(size=8))  # no collection yet
    assert empty.delete([]) is True and await empty.adelete([]) is True
    assert not env.exists(empty.collection_name)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_delete_all_keeps_the_collection(env: Env, use_async: bool) -> None:
    table = angle_table()
    store = filled(env, table, [("a0", {}), ("a20", {})], metric="l2", index={"type": "hnsw", "m": 8})
    name = store.collection_name
    before = env.info(name)
    assert (before.metric, before.index["type"], before.index["m"], before.count) == ("l2", "hnsw", 8, 2)
    if use_async:
        assert await store.adelete() is True
    else:
        assert store.delete() is True
    after = env.info(name)
    assert (after.dim, after.metric, after.index, after.embedding, after.count) == (
        before.dim,
        before.metric,
        before.index,
        None,
        0,
    )
    assert store.similarity_search("q") == []
    store.add_texts(["a45"], ids=["a45"])
    await store.aadd_texts(["a90"], ids=["a90"])
    assert pair_ids(store.similarity_search_with_score("q")) == ["a45", "a90"]
    d45 = store.similarity_search_with_score("q")[0][1]
    assert d45 == pytest.approx(2 - 2 * math.cos(math.radians(45)), abs=TOL)  # still l2


async def test_delete_all_of_a_missing_collection_creates_nothing(env: Env) -> None:
    store = env.store(DeterministicFakeEmbedding(size=8))
    assert store.delete() is True
    assert await store.adelete() is True
    assert store.delete(["x"]) is True
    assert await store.adelete(filter={"a": 1}) is True
    assert not env.exists(store.collection_name)


async def test_get_by_ids(env: Env) -> None:
    store = filled(env, filter_table(), [(t, m) for t, _, m in FILTER_DOCS])
    asked = ["fr-2022", "missing", "en-2019", "de-2020"]
    docs = store.get_by_ids(asked)
    assert ids_of(docs) == ["fr-2022", "en-2019", "de-2020"]
    assert docs[0] == Document(id="fr-2022", page_content="fr-2022", metadata=FILTER_DOCS[4][2])
    assert await store.aget_by_ids(asked) == docs
    assert ids_of(store.get_by_ids(["de-2020", "en-2019"])) == ["de-2020", "en-2019"]
    assert store.get_by_ids([]) == [] and await store.aget_by_ids([]) == []
    assert store.get_by_ids(["missing"]) == [] and await store.aget_by_ids(["nope"]) == []


def _check_generated(ids: list[str], given: list[str | None]) -> None:
    assert len(ids) == len(given)
    for got, want in zip(ids, given, strict=True):
        if want is not None:
            assert got == want
        else:
            assert isinstance(got, str) and uuid.UUID(got).version == 4, got
            assert got == str(uuid.UUID(got)), got  # the canonical 36-character form
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_document_ids(env: Env, use_async: bool) -> None:
    store = env.store(DeterministicFakeEmbedding(size=8))
    docs = [
        Document("one", id="id-1", metadata={"k": 1, "nested": {"x": [1, 2]}}),
        Document("two", metadata={"k": 2, "source": "f.txt"}),
        Document("three"),
    ]
    snapshot = [d.model_copy(deep=True) for d in docs]
    ids = await store.aadd_documents(docs) if use_async else store.add_documents(docs)
    _check_generated(ids, ["id-1", None, None])
    assert docs == snapshot and docs[1].id is None and docs[2].id is None  # inputs not mutated
    got = await store.aget_by_ids(ids) if use_async else store.get_by_ids(ids)
    assert got == [
        Document(id=i, page_content=d.page_content, metadata=d.metadata)
        for i, d in zip(ids, docs, strict=True)
    ]

    # no document has an id: all generated
    ids2 = store.add_documents([Document("four"), Document("five")])
    _check_generated(ids2, [None, None])
    # texts: generated where the id is None
    ids3 = store.add_texts(["six", "seven"], ids=["id-6", None])  # type: ignore[list-item]
    _check_generated(ids3, ["id-6", None])
    # an id already stored is replaced
    store.add_documents([Document("one, again", id="id-1")])
    assert store.get_by_ids(["id-1"]) == [Document(id="id-1", page_content="one, again")]
    assert store.client.collection(store.collection_name).count() == 7


async def test_from_documents_uses_document_ids(env: Env) -> None:
    emb = DeterministicFakeEmbedding(size=8)
    docs = [Document("one", id="d-1", metadata={"source": "s"}), Document("two")]
    snapshot = [d.model_copy(deep=True) for d in docs]
    s1 = env.track(VecDBVectorStore.from_documents(docs, emb, collection_name=env.name("fd"), **env.conn))
    s2 = env.track(
        await VecDBVectorStore.afrom_documents(docs, emb, collection_name=env.name("afd"), **env.conn)
    )
    assert docs == snapshot
    for store in (s1, s2):
        col = store.client.collection(store.collection_name)
        assert col.count() == 2
        assert ids_of(store.get_by_ids(["d-1"])) == ["d-1"]
        assert [s.source for s in col.list_sources()] == ["s"]


async def test_adding_nothing_creates_nothing(env: Env) -> None:
    store = env.store(DeterministicFakeEmbedding(size=8))
    assert store.add_texts([]) == []
    assert await store.aadd_texts([]) == []
    assert store.add_documents([]) == []
    assert await store.aadd_documents([]) == []
    name = env.name("fromnothing")
    env.track(
        VecDBVectorStore.from_texts([], DeterministicFakeEmbedding(size=8), collection_name=name, **env.conn)
    )
    server_side = env.store(None)
    assert server_side.add_texts([]) == [] and await server_side.aadd_texts([]) == []
    listed = env.admin.list_collections()
    assert store.collection_name not in listed and name not in listed
    assert server_side.collection_name not in listed


async def test_length_mismatch_is_a_value_error(env: Env) -> None:
    store = env.store(DeterministicFakeEmbedding(size=8))
    with pytest.raises(ValueError, match="metadatas"):
        store.add_texts(["a", "b"], [{}])
    with pytest.raises(ValueError, match="ids"):
        store.add_texts(["a", "b"], ids=["x"])
    with pytest.raises(ValueError, match="sources"):
        await store.aadd_texts(["a", "b"], sources=["s"])
    assert not env.exists(store.collection_name)


async def test_batches(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        VecDBVectorStore("x", DeterministicFakeEmbedding(size=8), batch_size=0)
    sent: list[list[str]] = []
    sync_upsert, async_upsert = Collection.upsert, AsyncCollection.upsert

    def spy(self: Collection, ids: Sequence[str], *args: Any, **kwargs: Any) -> int:
        sent.append(list(ids))
        return sync_upsert(self, ids, *args, **kwargs)

    async def aspy(self: AsyncCollection, ids: Sequence[str], *args: Any, **kwargs: Any) -> int:
        sent.append(list(ids))
        return await async_upsert(self, ids, *args, **kwargs)

    monkeypatch.setattr(Collection, "upsert", spy)
    monkeypatch.setattr(AsyncCollection, "upsert", aspy)
    store = env.store(DeterministicFakeEmbedding(size=8), batch_size=2)
    texts = [f"t{i}" for i in range(5)]
    ids = store.add_texts(texts, [{"i": i} for i in range(5)])
    ids += await store.aadd_texts(["t5", "t6", "t7"], ids=["i5", "i6", "i7"])
    assert len(ids) == 8 and ids[5:] == ["i5", "i6", "i7"]
    assert sent == [ids[0:2], ids[2:4], ids[4:5], ["i5", "i6"], ["i7"]]
    got = store.get_by_ids(ids)
    assert [d.page_content for d in got] == [*texts, "t5", "t6", "t7"]
    assert [d.metadata for d in got[:5]] == [{"i": i} for i in range(5)]


# ---- 3. relevance scores -----------------------------------------------------------------------------------


def test_relevance_function_values() -> None:
    cos, ip, l2 = relevance_function("cosine"), relevance_function("ip"), relevance_function("l2")
    for s, want in [(1.0, 1.0), (0.0, 0.5), (-1.0, 0.0), (0.5, 0.75), (-0.5, 0.25)]:
        assert cos(s) == pytest.approx(want)
        assert ip(s) == pytest.approx(want)
    for s, want in [(3.0, 1.0), (1.0000001, 1.0), (-2.5, 0.0), (-1.0000001, 0.0)]:
        assert ip(s) == want  # clamped
    for d, want in [(0.0, 1.0), (1.0, 0.75), (2.0, 0.5), (4.0, 0.0), (9.0, 0.0), (-1e-7, 1.0)]:
        assert l2(d) == pytest.approx(want)
        assert 0.0 <= l2(d) <= 1.0
    # unit vectors: l2 distance d = 2 - 2 cos, so the three agree
    for c in [-1.0, -0.3, 0.0, 0.4, 1.0]:
        assert cos(c) == pytest.approx(ip(c)) == pytest.approx(l2(2 - 2 * c))
    with pytest.raises(ValueError, match="unknown metric"):
        relevance_function("dot")  # type: ignore[arg-type]


async def test_relevance_scores_agree_across_metrics(env: Env) -> None:
    table = angle_table()
    docs = [(f"a{int(d)}", {"deg": d}) for d in ANGLES]
    expected_ids = [t for t, _ in docs]
    expected = [(1 + math.cos(math.radians(d))) / 2 for d in ANGLES]
    per_metric: dict[str, list[tuple[Document, float]]] = {}
    for metric in METRICS:
        store = filled(env, table, docs, metric=metric)
        assert env.info(store.collection_name).metric == metric
        pairs = store.similarity_search_with_relevance_scores("q", k=len(ANGLES))
        assert pairs == await store.asimilarity_search_with_relevance_scores("q", k=len(ANGLES))
        assert pair_ids(pairs) == expected_ids, metric
        scores = [s for _, s in pairs]
        assert all(0.0 <= s <= 1.0 for s in scores), (metric, scores)
        assert scores == sorted(scores, reverse=True), (metric, scores)
        assert scores[0] == pytest.approx(1.0, abs=1e-6), metric  # "q" is exactly "a0"
        assert scores == pytest.approx(expected, abs=TOL), metric
        per_metric[metric] = pairs
    for metric in ("ip", "l2"):
        for (d1, s1), (d2, s2) in zip(per_metric["cosine"], per_metric[metric], strict=True):
            assert d1 == d2
            assert s1 == pytest.approx(s2, abs=TOL), (metric, d1.id)


@pytest.mark.parametrize("metric", METRICS)
async def test_relevance_of_exact_and_opposite_matches_stays_in_the_unit_interval(
    env: Env, metric: Metric
) -> None:
    # Unit vectors normalized in float32 (as embedding models make them) and their opposites: the server's
    # float32 score of an exact match can be a hair above 1 (cosine, ip), of an opposite a hair below -1.
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(32, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    table = {f"v{i}": [float(x) for x in v] for i, v in enumerate(vecs)}
    table |= {f"n{i}": [-float(x) for x in v] for i, v in enumerate(vecs)}
    store = filled(env, table, [(t, {}) for t in table], metric=metric)
    queries = [t for t in table if t.startswith("v")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # LangChain warns about relevance outside [0, 1]
        results = {t: store.similarity_search_with_relevance_scores(t, k=len(table)) for t in queries}
        aresults = {
            t: await store.asimilarity_search_with_relevance_scores(t, k=len(table)) for t in queries[:4]
        }
    outside: list[tuple[str, str | None, float, float]] = []
    for t, pairs in [*results.items(), *aresults.items()]:
        (first, best), (last, worst) = pairs[0], pairs[-1]
        assert (first.id, last.id) == (t, "n" + t[1:]), t
        assert best == pytest.approx(1.0, abs=1e-6) and worst == pytest.approx(0.0, abs=1e-6), t
        for doc, rel in (pairs[0], pairs[-1]):
            if not 0.0 <= rel <= 1.0:
                score = next(
                    s for d, s in store.similarity_search_with_score(t, k=len(table)) if d.id == doc.id
                )
                outside.append((t, doc.id, rel, score))
    assert not outside, (
        f"{metric}: {len(outside)} relevance scores outside [0, 1], e.g. (query, document, relevance, "
        f"server score) {outside[:3]}: the server's float32 score of unit vectors lies a hair outside "
        f"[-1, 1] and relevance_function({metric!r}) does not clamp it"
    )
    assert [str(w.message)[:80] for w in caught] == []


async def test_relevance_score_fn_override_and_threshold(env: Env) -> None:
    table = angle_table()
    docs: list[tuple[str, dict[str, Any]]] = [(f"a{int(d)}", {}) for d in ANGLES]
    seen: list[float] = []

    def fn(score: float) -> float:
        seen.append(score)
        return (score + 1) / 4  # cosine score -> [0, 0.5]

    store = filled(env, table, docs, relevance_score_fn=fn)
    raw = store.similarity_search_with_score("q", k=3)
    pairs = store.similarity_search_with_relevance_scores("q", k=3)
    assert pair_ids(pairs) == pair_ids(raw)
    assert [s for _, s in pairs] == pytest.approx([(s + 1) / 4 for _, s in raw])
    assert seen == pytest.approx([s for _, s in raw])
    assert await store.asimilarity_search_with_relevance_scores("q", k=3) == pairs
    assert store.similarity_search_with_relevance_scores("q", k=7, score_threshold=0.45) == pairs[:2]

    # score_threshold with the default relevance: (1 + cos) / 2 >= 0.8 keeps 0, 20 and 45 degrees
    plain = filled(env, table, docs, metric="ip")
    kept = plain.similarity_search_with_relevance_scores("q", k=7, score_threshold=0.8)
    assert pair_ids(kept) == ["a0", "a20", "a45"]
    akept = await plain.asimilarity_search_with_relevance_scores("q", k=7, score_threshold=0.8)
    assert pair_ids(akept) == ["a0", "a20", "a45"]
    assert plain.similarity_search_with_relevance_scores("q", k=7, score_threshold=0.8, filter={"x": 1}) == []


async def test_existing_collection_metric_wins(env: Env) -> None:
    # vectors of length 0.9 and 0.5: the l2 relevance differs from what cosine's map would give
    table = {"q": [1.0, 0.0], "near": [0.9, 0.0], "half": [0.0, 0.5]}
    maker = filled(env, table, [("near", {}), ("half", {})], metric="l2")
    name = maker.collection_name
    l2 = relevance_function("l2")

    sync_store = env.store(TableEmbeddings(table), name=name)  # metric="cosine" by default
    configured: str = sync_store.metric
    assert configured == "cosine"
    distances = sync_store.similarity_search_with_score("q")
    assert [s for _, s in distances] == pytest.approx([0.01, 1.25])
    pairs = sync_store.similarity_search_with_relevance_scores("q")
    assert pair_ids(pairs) == ["near", "half"]
    assert [s for _, s in pairs] == pytest.approx([l2(0.01), l2(1.25)])  # 0.9975, 0.6875

    async_store = env.store(TableEmbeddings(table), name=name, metric="ip")
    apairs = await async_store.asimilarity_search_with_relevance_scores("q")
    assert [s for _, s in apairs] == pytest.approx([l2(0.01), l2(1.25)])
    # a write from a store with another metric does not change the collection's
    async_store.add_texts(["q"], ids=["q"])
    assert env.info(name).metric == "l2"


# ---- 4. maximal marginal relevance -------------------------------------------------------------------------


async def test_mmr_picks_a_diverse_second_document(env: Env) -> None:
    store = filled(env, MMR_TABLE, [(t, {"t": t}) for t in MMR_IDS])
    q = MMR_TABLE["q"]

    def mmr(lam: float) -> list[str | None]:
        return ids_of(store.max_marginal_relevance_search("q", k=2, fetch_k=4, lambda_mult=lam))

    assert ids_of(store.similarity_search("q", k=2)) == ["dup_a", "dup_b"]
    assert ids_of(await store.asimilarity_search("q", k=2)) == ["dup_a", "dup_b"]
    for lam in [0.0, 0.25, 0.5]:
        picked = mmr(lam)
        assert picked[0] == "dup_a" and picked[1] != "dup_b", (lam, picked)
        amr = await store.amax_marginal_relevance_search("q", k=2, fetch_k=4, lambda_mult=lam)
        by_vec = store.max_marginal_relevance_search_by_vector(q, k=2, fetch_k=4, lambda_mult=lam)
        aby_vec = await store.amax_marginal_relevance_search_by_vector(q, k=2, fetch_k=4, lambda_mult=lam)
        assert ids_of(amr) == ids_of(by_vec) == ids_of(aby_vec) == picked, lam
    assert mmr(0.5) == ["dup_a", "side"]
    assert mmr(0.0) == ["dup_a", "far"]
    assert mmr(1.0) == ["dup_a", "dup_b"]  # similarity only: the duplicate again
    # documents come back whole, fetch_k below k still gives k
    docs = await store.amax_marginal_relevance_search("q", k=3, fetch_k=1)
    assert len(docs) == 3
    assert all(d.page_content == d.id and d.metadata == {"t": d.id} for d in docs)


# ---- 5. retrievers -----------------------------------------------------------------------------------------


async def test_retrievers(env: Env) -> None:
    flt = filled(env, filter_table(), [(t, m) for t, _, m in FILTER_DOCS])
    r = flt.as_retriever(search_kwargs={"k": 2, "filter": {"year": {"$gte": 2021}}})
    assert ids_of(r.invoke("q")) == ["en-2021", "de-2023"]
    assert ids_of(await r.ainvoke("q")) == ["en-2021", "de-2023"]

    mmr_store = filled(env, MMR_TABLE, [(t, {}) for t in MMR_IDS])
    r = mmr_store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4, "lambda_mult": 0.5})
    assert ids_of(r.invoke("q")) == ["dup_a", "side"]
    assert ids_of(await r.ainvoke("q")) == ["dup_a", "side"]

    angles = filled(env, angle_table(), [(f"a{int(d)}", {}) for d in ANGLES])
    r = angles.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"k": 7, "score_threshold": 0.8}
    )
    assert ids_of(r.invoke("q")) == ["a0", "a20", "a45"]
    assert ids_of(await r.ainvoke("q")) == ["a0", "a20", "a45"]


# ---- 6. native async: no thread pool -----------------------------------------------------------------------


class RefusingExecutor(ThreadPoolExecutor):
    """A default executor that refuses work: any ``run_in_executor(None, ...)`` fails."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.refused: list[str] = []

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        self.refused.append(repr(fn))
        raise RuntimeError(f"the loop's default executor was asked to run {fn!r}")


async def _native_async_scenario(server: ServerProcess, transport: str) -> None:
    table = filter_table() | angle_table()
    emb = TableEmbeddings(table)
    conn = connection(server, transport)
    name1, name2 = fresh_name("native1", transport), fresh_name("native2", transport)
    texts = [t for t, _, _ in FILTER_DOCS]
    metas = [m | {"source": f"{m['lang']}.txt"} for _, _, m in FILTER_DOCS]
    stores: list[VecDBVectorStore] = []
    try:
        store = await VecDBVectorStore.afrom_texts(
            texts, emb, metas, ids=texts, collection_name=name1, **conn
        )
        stores.append(store)
        docs = [Document(f"a{int(d)}", id=f"a{int(d)}") for d in ANGLES]
        other = await VecDBVectorStore.afrom_documents(docs, emb, collection_name=name2, metric="l2", **conn)
        stores.append(other)

        assert await store.aadd_texts(["a90"], [{"lang": "xx"}], ids=["a90"]) == ["a90"]
        assert await store.aadd_documents([Document("a120", id="a120")]) == ["a120"]
        assert ids_of(await store.asimilarity_search("q", k=2)) == ["en-2019", "en-2021"]
        pairs = await store.asimilarity_search_with_score("q", k=2, filter={"lang": "de"})
        assert pair_ids(pairs) == ["de-2020", "de-2023"]
        assert ids_of(await store.asimilarity_search_by_vector(at(90.0), k=1)) == ["a90"]
        rel = await other.asimilarity_search_with_relevance_scores("q", k=3, score_threshold=0.5)
        assert pair_ids(rel) == ["a0", "a20", "a45"]
        mmr = await store.amax_marginal_relevance_search("q", k=2, fetch_k=5, filter={"lang": {"$ne": "xx"}})
        assert ids_of(mmr)[0] == "en-2019"
        assert len(await store.amax_marginal_relevance_search_by_vector(at(0.0), k=3)) == 3
        assert ids_of(await store.as_retriever(search_kwargs={"k": 1}).ainvoke("q")) == ["en-2019"]
        assert ids_of(await store.aget_by_ids(["a90", "nope", "fr-2022"])) == ["a90", "fr-2022"]
        assert await store.adelete(["a90"]) is True
        assert await store.adelete(source="de.txt") is True
        assert await store.adelete(filter={"lang": "en"}) is True
        assert ids_of(await store.aget_by_ids([*texts, "a120"])) == ["fr-2022", "a120"]
        assert await other.adelete() is True
        assert await other.asimilarity_search("q") == []
    finally:
        for s in stores:
            with contextlib.suppress(CollectionNotFoundError):
                s.client.drop_collection(s.collection_name)
            await s.aclose()


def test_async_methods_use_no_thread_pool(vecdb_server: ServerProcess, transport: str) -> None:
    executor = RefusingExecutor()
    try:
        # a loop of our own (pytest-asyncio's is not running during a sync test); the Runner's
        # loop_factory keeps it from becoming the thread's current loop
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            runner.get_loop().set_default_executor(executor)
            runner.run(_native_async_scenario(vecdb_server, transport))
    finally:
        executor.shutdown()
    assert executor.refused == [], f"the default executor was used: {executor.refused}"


async def test_sync_close_inside_a_running_loop_still_closes_the_async_client(env: Env) -> None:
    # e.g. ``with VecDBVectorStore(...) as store:`` in async code: __exit__ runs close() inside the loop
    store = env.store(DeterministicFakeEmbedding(size=8))
    await store.aadd_texts(["a"], ids=["a"])
    aclient = store._aclient()  # the AsyncClient the store made for this loop
    try:
        with store:
            assert ids_of(await store.aget_by_ids(["a"])) == ["a"]
        await store.aclose()
        await asyncio.sleep(0.05)  # a close scheduled as a task may run now
        try:
            await aclient.list_collections()
        except VecDBError as exc:
            assert "closed" in str(exc)
        else:
            raise AssertionError(
                "the store's AsyncClient for the running loop is still open after store.close() (inside "
                "the loop) and then await store.aclose(): close() forgets it without closing it"
            )
    finally:
        await aclient.close()  # the leak, closed here so that it does not fail a later test


# ---- 7. a collection that does not exist yet ---------------------------------------------------------------


async def test_reads_on_a_missing_collection_are_empty(env: Env) -> None:
    table = angle_table()
    store = env.store(TableEmbeddings(table), metric="ip", index={"type": "flat"})
    q = at(0.0)
    assert store.similarity_search("q") == [] and await store.asimilarity_search("q") == []
    assert store.similarity_search_with_score("q") == []
    assert await store.asimilarity_search_with_score("q", filter={"a": 1}) == []
    assert store.similarity_search_by_vector(q) == [] and await store.asimilarity_search_by_vector(q) == []
    assert store.similarity_search_with_relevance_scores("q") == []
    assert await store.asimilarity_search_with_relevance_scores("q") == []
    assert store.max_marginal_relevance_search("q") == []
    assert await store.amax_marginal_relevance_search("q") == []
    assert store.max_marginal_relevance_search_by_vector(q) == []
    assert await store.amax_marginal_relevance_search_by_vector(q) == []
    assert store.get_by_ids(["a0"]) == [] and await store.aget_by_ids(["a0"]) == []
    assert store.as_retriever().invoke("q") == []
    assert store.metric == "ip"
    # no embedding: the server would embed; reads still find nothing (and embed nothing)
    server_side = env.store(None)
    assert server_side.similarity_search("anything") == []
    assert await server_side.asimilarity_search("anything") == []
    assert server_side.max_marginal_relevance_search("anything") == []
    assert await server_side.amax_marginal_relevance_search("anything") == []
    listed = env.admin.list_collections()
    assert store.collection_name not in listed and server_side.collection_name not in listed

    # the first write creates the collection with the store's metric and index
    store.add_texts(["a0", "a45"], ids=["a0", "a45"])
    info = store.client.collection(store.collection_name).info()
    assert (info.dim, info.metric, info.index, info.count) == (3, "ip", {"type": "flat"}, 2)
    assert ids_of(store.similarity_search("q")) == ["a0", "a45"]


async def test_first_async_write_creates_the_collection(env: Env) -> None:
    store = env.store(TableEmbeddings(angle_table()), metric="l2", index={"type": "hnsw", "m": 12})
    assert await store.asimilarity_search("q") == []
    assert await store.aadd_texts(["a20"], ids=["a20"]) == ["a20"]
    info = store.client.collection(store.collection_name).info()
    assert (info.dim, info.metric, info.index["type"], info.index["m"], info.count) == (
        3,
        "l2",
        "hnsw",
        12,
        1,
    )
    default = env.store(TableEmbeddings(angle_table()))
    default.add_texts(["a0"])
    info = env.info(default.collection_name)
    assert (info.metric, info.index["type"], info.embedding) == ("cosine", "auto", None)
