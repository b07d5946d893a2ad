"""``vecdb_client.Client`` against a real ``vecdb serve`` process, every test over REST and over gRPC.

Pinned:

- collections: ``create_collection`` (dim, metric, index spec, ``embedding={}``) returns a handle; ``info``,
  ``get_collection``, ``list_collections`` (sorted), ``drop_collection``; a dropped collection is
  ``CollectionNotFoundError`` for its handles too;
- upsert takes float32 and float64 arrays, lists of int lists, tuples and lists of 1-d arrays; a vector
  comes back (``include=["vector"]``) as a float32 ndarray equal to what was sent, as float32; an upsert
  of an existing id replaces the record;
- texts, metadatas (nesting, unicode, big integers, int vs float) and sources round trip exactly; ``get``
  answers in request order and skips missing ids; ``include`` picks fields (``[]``: ids only);
- delete by ids, by filter, by source returns how many went; ``count`` with a filter; ``list_sources`` is
  sorted with live counts;
- search: a 1-d query (array or list) is one query, a 2-d batch one list per row; best first; ``filter``,
  ``include``, ``params``; fewer than k hits when fewer records exist; l2 scores are squared distances;
- ``embed`` with the server's default model: (n, 384) float32 rows of unit norm;
- a collection with ``embedding={}``: upsert as texts alone (or with None rows), search with ``texts=``;
  the stored vector is ``embed(..., collection=name)`` of the text;
- ``AsyncClient`` (the ``aclient`` fixture) does the same basic round trip;
- congruence: the same script over REST and over gRPC gives the same transcript (results, error classes
  and details; scores and vectors to 1e-6).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from clientkit import assert_congruent, client_for, run_script, script_steps
from serverproc import ServerProcess

from vecdb_client import AsyncClient, AsyncCollection, Client, Collection
from vecdb_client.errors import CollectionNotFoundError, InvalidArgumentError
from vecdb_client.types import CollectionInfo, Hit, Record, SourceInfo

MODEL = "all-MiniLM-L6-v2"
MODEL_DIM = 384


def one_hot(i: int, dim: int = 4) -> list[float]:
    v = [0.0] * dim
    v[i] = 1.0
    return v


def ids_of(hits: list[Hit]) -> list[str]:
    return [h.id for h in hits]


# ---- collections ----------------------------------------------------------------------------------------


def test_collection_lifecycle(client: Client, unique_name: str) -> None:
    name, other, default = unique_name, f"{unique_name}-ip", f"{unique_name}-cos"
    col = client.create_collection(name, dim=3, metric="l2", index={"type": "hnsw"})
    assert isinstance(col, Collection)
    assert (col.name, col.client) == (name, client)
    assert client.transport_name in repr(col)

    info = col.info()
    assert isinstance(info, CollectionInfo)
    assert (info.name, info.dim, info.metric, info.count, info.sources, info.embedding) == (
        name,
        3,
        "l2",
        0,
        0,
        None,
    )
    assert info.index["type"] == "hnsw"
    assert client.get_collection(name).info() == info

    assert client.create_collection(other, dim=2, metric="ip").info().metric == "ip"
    assert client.create_collection(default, dim=2).info().metric == "cosine"
    names = client.list_collections()
    assert {name, other, default} <= set(names)
    assert names == sorted(names)

    for n in (name, other, default):
        client.drop_collection(n)
    assert not {name, other, default} & set(client.list_collections())
    with pytest.raises(CollectionNotFoundError):
        client.get_collection(name)
    with pytest.raises(CollectionNotFoundError):
        col.count()
    with pytest.raises(CollectionNotFoundError):
        client.drop_collection(name)


def test_collection_handle_needs_no_round_trip(client: Client, unique_name: str) -> None:
    col = client.collection(unique_name)  # does not exist yet: no error until used
    with pytest.raises(CollectionNotFoundError) as info:
        col.count()
    assert info.value.details == {"name": unique_name}
    client.create_collection(unique_name, dim=2)
    assert col.count() == 0
    client.drop_collection(unique_name)


# ---- upsert and get ---------------------------------------------------------------------------------------


def test_upsert_vector_forms_round_trip_as_float32(client: Client, unique_name: str) -> None:
    col = client.create_collection(unique_name, dim=3, metric="l2")
    rng = np.random.default_rng(7)
    f32 = rng.standard_normal((4, 3)).astype(np.float32)
    f64 = rng.standard_normal((3, 3))  # float64: sent as float32
    ints = [[1, 2, 3], [-4, 5, -6]]
    tuples = [(0.5, 0.25, 0.125)]
    rows = [np.array([1.5, -2.5, 1e-3], dtype=np.float64)]
    expected: dict[str, np.ndarray] = {}
    for prefix, vectors in (("f32", f32), ("f64", f64), ("int", ints), ("tup", tuples), ("row", rows)):
        ids = [f"{prefix}-{i}" for i in range(len(vectors))]
        assert col.upsert(ids, vectors) == len(ids)
        expected.update(zip(ids, np.asarray(vectors, dtype=np.float64).astype(np.float32), strict=True))
    assert col.count() == len(expected) == 11

    records = col.get(list(expected), include=["vector"])
    assert [r.id for r in records] == list(expected)
    for rec in records:
        assert isinstance(rec.vector, np.ndarray), rec
        assert rec.vector.dtype == np.float32 and rec.vector.shape == (3,), rec
        np.testing.assert_array_equal(rec.vector, expected[rec.id], err_msg=rec.id)
        assert (rec.text, rec.metadata, rec.source) == (None, {}, None)

    # An upsert of an existing id replaces the record (vector and columns).
    assert col.upsert(["f32-0"], [[9, 9, 9]], texts=["nine"]) == 1
    [rec] = col.get(["f32-0"], include=["vector", "text"])
    assert rec.text == "nine"
    assert rec.vector is not None
    np.testing.assert_array_equal(rec.vector, np.full(3, 9, dtype=np.float32))
    assert col.count() == 11
    client.drop_collection(unique_name)


METAS: list[dict[str, Any] | None] = [
    {
        "lang": "en",
        "n": 2**62,
        "f": 0.1,
        "one": 1,
        "one_f": 1.0,
        "neg": -3,
        "ok": True,
        "nil": None,
        "list": [1, "two", [3.5]],
        "obj": {"deep": {"er": "é✓"}},
        "dot.key": "k",
    },
    {},
    None,
    {"lang": "fr"},
]
TEXTS: list[str | None] = ["plain", "", None, "ünïcode ✓\nnew line\ttab"]
SOURCES: list[str | None] = ["docs/a.md", "docs/a.md", None, "ß/ü 1.txt"]


def test_columns_round_trip(client: Client, unique_name: str) -> None:
    col = client.create_collection(unique_name, dim=4)
    ids = ["r0", "r1", "r2", "r3"]
    assert col.upsert(ids, [one_hot(i) for i in range(4)], TEXTS, METAS, SOURCES) == 4

    records = col.get(["r3", "missing", "r0", "r2", "r1"])  # request order, missing skipped
    assert [r.id for r in records] == ["r3", "r0", "r2", "r1"]
    by_id = {r.id: r for r in records}
    for i, rid in enumerate(ids):
        rec = by_id[rid]
        assert isinstance(rec, Record)
        assert rec.text == TEXTS[i], rid
        assert rec.metadata == (METAS[i] or {}), rid
        assert rec.source == SOURCES[i], rid
        assert rec.vector is None, rid  # not in the default include
    # JSON keeps integers and floats apart, and big integers exact.
    meta = by_id["r0"].metadata
    assert type(meta["one"]) is int and type(meta["one_f"]) is float and meta["n"] == 2**62

    [only_vector] = col.get(["r0"], include=["vector"])
    assert (only_vector.text, only_vector.metadata, only_vector.source) == (None, {}, None)
    assert only_vector.vector is not None
    np.testing.assert_array_equal(only_vector.vector, np.asarray(one_hot(0), dtype=np.float32))
    [ids_only] = col.get(["r3"], include=[])
    assert ids_only == Record("r3")
    [meta_only] = col.get(["r3"], include=["metadata"])
    assert meta_only == Record("r3", metadata={"lang": "fr"})
    assert col.get(["nope"]) == []
    client.drop_collection(unique_name)


# ---- delete, count, sources -------------------------------------------------------------------------------


def _docs(col: Collection) -> None:
    metas: list[dict[str, Any]] = [
        {"lang": "en", "year": 2019},
        {"lang": "en", "year": 2021},
        {"lang": "fr", "year": 2022},
        {"lang": "fr", "year": 2018},
        {"lang": "de", "year": 2024},
        {"year": 2020},
    ]
    sources = ["s/a", "s/a", "s/b", None, "s/b", "s/c"]
    vectors = np.random.default_rng(3).random((6, 4)).astype(np.float32) + 0.1
    col.upsert([f"d{i}" for i in range(6)], vectors, metadatas=metas, sources=sources)


def test_count_with_filter_and_list_sources(client: Client, unique_name: str) -> None:
    col = client.create_collection(unique_name, dim=4)
    _docs(col)
    assert col.count() == 6
    assert col.count(filter={}) == 6
    assert col.count(filter={"lang": "en"}) == 2
    assert col.count(filter={"year": {"$gte": 2020, "$lt": 2024}}) == 3
    assert col.count(filter={"$or": [{"lang": "de"}, {"lang": {"$exists": False}}]}) == 2
    assert col.count(filter={"lang": {"$nin": ["en", "fr"]}}) == 2
    sources = col.list_sources()
    assert all(isinstance(s, SourceInfo) for s in sources)
    assert sources == [SourceInfo("s/a", 2), SourceInfo("s/b", 2), SourceInfo("s/c", 1)]
    assert col.info().sources == 3
    client.drop_collection(unique_name)


def test_delete_by_ids_filter_and_source(client: Client, unique_name: str) -> None:
    col = client.create_collection(unique_name, dim=4)
    _docs(col)
    assert col.delete(["d0", "missing"]) == 1
    assert col.delete(filter={"lang": "fr"}) == 2  # d2, d3
    assert col.delete(source="s/b") == 1  # d4 (d2 is gone already)
    assert col.delete(source="s/none") == 0
    assert col.count() == 2
    assert [r.id for r in col.get([f"d{i}" for i in range(6)], include=[])] == ["d1", "d5"]
    assert col.list_sources() == [SourceInfo("s/a", 1), SourceInfo("s/c", 1)]
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        col.delete()
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        col.delete(["d1"], source="s/a")
    assert col.count() == 2
    client.drop_collection(unique_name)


# ---- search -----------------------------------------------------------------------------------------------


def test_search_queries_filters_and_includes(client: Client, unique_name: str) -> None:
    col = client.create_collection(unique_name, dim=4)
    vectors = [one_hot(0), one_hot(1), one_hot(2), [1, 1, 0, 0], [0, 0, 1, 1]]
    metas = [{"g": "x"}, {"g": "y"}, {"g": "x"}, {"g": "y"}, {"g": "x"}]
    texts = ["e0", "e1", "e2", "e01", "e23"]
    col.upsert(["e0", "e1", "e2", "e01", "e23"], vectors, texts, metas, ["src"] * 5)

    one_np = col.search(np.array(one_hot(1), dtype=np.float32), k=2)
    one_list = col.search(one_hot(1), k=2)
    assert len(one_np) == 1 and ids_of(one_np[0]) == ["e1", "e01"]
    assert [[h.to_dict() for h in hs] for hs in one_list] == [[h.to_dict() for h in hs] for hs in one_np]
    top = one_np[0][0]
    assert isinstance(top, Hit) and top.score == pytest.approx(1.0, abs=1e-6)
    assert (top.text, top.metadata, top.source, top.vector) == ("e1", {"g": "y"}, "src", None)

    batch = col.search(np.eye(4, dtype=np.float64)[:3], k=3)
    assert len(batch) == 3
    for i, hits in enumerate(batch):
        assert hits[0].id == f"e{i}"
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)

    assert len(col.search(one_hot(0), k=50)[0]) == 5  # fewer than k exist
    [filtered] = col.search(one_hot(1), k=5, filter={"g": "x"})
    assert set(ids_of(filtered)) == {"e0", "e2", "e23"}
    [with_vectors] = col.search(one_hot(3), k=1, include=["vector"])
    assert with_vectors[0].id == "e23" and with_vectors[0].text is None
    assert with_vectors[0].vector is not None and with_vectors[0].vector.dtype == np.float32
    np.testing.assert_array_equal(with_vectors[0].vector, np.asarray([0, 0, 1, 1], dtype=np.float32))
    [ids_only] = col.search(one_hot(0), k=1, include=[])
    assert ids_only[0] == Hit("e0", ids_only[0].score)
    client.drop_collection(unique_name)


def test_search_params_and_l2_scores(client: Client, unique_name: str) -> None:
    col = client.create_collection(unique_name, dim=4, metric="l2", index={"type": "hnsw"})
    col.upsert([f"v{i}" for i in range(4)], [one_hot(i) for i in range(4)])
    [hits] = col.search(one_hot(2), k=4, params={"ef_search": 32})
    assert hits[0].id == "v2" and hits[0].score == pytest.approx(0.0, abs=1e-6)
    # l2: the squared distance, lower first.
    assert [h.score for h in hits[1:]] == pytest.approx([2.0, 2.0, 2.0], abs=1e-5)
    assert ids_of(col.search(one_hot(2), k=1)[0]) == ["v2"]
    assert ids_of(col.search(one_hot(2), k=1, params={"target_recall": 0.99})[0]) == ["v2"]
    with pytest.raises(InvalidArgumentError, match="target_recall"):
        col.search(one_hot(2), k=1, params={"target_recall": 0})
    client.drop_collection(unique_name)


# ---- embedding --------------------------------------------------------------------------------------------


def test_embed_default_model(client: Client) -> None:
    vectors, model = client.embed(["hello"])
    assert model == MODEL
    assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
    assert vectors.shape == (1, MODEL_DIM)
    assert float(np.linalg.norm(vectors[0])) == pytest.approx(1.0, abs=1e-4)
    single, _ = client.embed("hello")  # one string is one text
    np.testing.assert_allclose(single, vectors, atol=1e-5)
    two, _ = client.embed(["hello", "something else entirely"])
    assert two.shape == (2, MODEL_DIM)
    np.testing.assert_allclose(two[0], vectors[0], atol=1e-5)
    assert float(two[0] @ two[1]) < 0.9


def test_text_collection_upsert_and_search_by_text(client: Client, unique_name: str) -> None:
    col = client.create_collection(unique_name, embedding={})  # the default model; dim from it
    info = col.info()
    assert (info.dim, info.embedding["model"]) == (MODEL_DIM, MODEL)
    texts = [
        "The cat sat on the mat and purred.",
        "Stock markets fell sharply on Monday.",
        "Python is a programming language.",
    ]
    assert col.upsert(["cat", "market", "code"], texts=texts, metadatas=[{"k": 1}, {"k": 2}, {"k": 3}]) == 3
    # A None row is embedded, a given vector kept as sent.
    own = np.zeros(MODEL_DIM, dtype=np.float32)
    own[0] = 1.0
    assert col.upsert(["soup", "own"], [None, own], texts=["A recipe for tomato soup.", "own vector"]) == 2
    assert col.count() == 5

    [hits] = col.search(texts="a kitten sleeping on a rug", k=2)
    assert hits[0].id == "cat" and hits[0].text == texts[0]
    batch = col.search(texts=["shares dropped on the exchange", "how to cook dinner"], k=1)
    assert [ids_of(h) for h in batch] == [["market"], ["soup"]]
    [filtered] = col.search(texts=["a kitten sleeping on a rug"], k=5, filter={"k": {"$gte": 2}})
    assert set(ids_of(filtered)) == {"market", "code"}

    stored = {r.id: r.vector for r in col.get(["cat", "own"], include=["vector"])}
    embedded, model = client.embed(texts[0], collection=unique_name)
    assert model == MODEL
    assert stored["cat"] is not None and stored["own"] is not None
    np.testing.assert_allclose(stored["cat"], embedded[0], atol=1e-5)
    np.testing.assert_array_equal(stored["own"], own)
    client.drop_collection(unique_name)


# ---- async ------------------------------------------------------------------------------------------------


async def test_async_client_round_trip(aclient: AsyncClient, unique_name: str) -> None:
    col = await aclient.create_collection(unique_name, dim=4)
    assert isinstance(col, AsyncCollection) and aclient.transport_name in repr(col)
    assert await col.upsert(["a", "b"], np.eye(4)[:2], texts=["x", "y"], sources=["s", None]) == 2
    assert [r.id for r in await col.get(["b", "a"])] == ["b", "a"]
    [hits] = await col.search(one_hot(1), k=1)
    assert (hits[0].id, hits[0].text) == ("b", "y")
    assert await col.count(filter={}) == 2
    assert await col.list_sources() == [SourceInfo("s", 1)]
    assert (await col.info()).count == 2
    assert unique_name in await aclient.list_collections()
    assert (await aclient.get_collection(unique_name)).name == unique_name
    assert await col.delete(source="s") == 1
    vectors, model = await aclient.embed(["hello"])
    assert (vectors.shape, model) == ((1, MODEL_DIM), MODEL)
    await aclient.drop_collection(unique_name)
    with pytest.raises(CollectionNotFoundError):
        await col.count()


# ---- congruence -------------------------------------------------------------------------------------------


def test_rest_and_grpc_give_the_same_transcript(vecdb_server: ServerProcess, unique_name: str) -> None:
    transcripts = {}
    for transport in ("rest", "grpc"):
        name = f"{unique_name}-{transport}"
        with client_for(transport, vecdb_server.rest_url, vecdb_server.grpc_target) as c:
            transcripts[transport] = run_script(c, name, script_steps(name))
    rest, grpc = transcripts["rest"], transcripts["grpc"]
    outcomes = {entry[0]: entry[1:] for entry in rest}
    # The script did what it means to (so that the comparison is not of two failures).
    assert outcomes["create"][0] == "ok" and outcomes["in list"] == ("ok", True)
    assert outcomes["upsert array"] == ("ok", 6)
    assert outcomes["wrong dim"][:2] == ("error", "DimensionMismatchError")
    assert outcomes["k zero"][:2] == ("error", "InvalidArgumentError")
    assert outcomes["bad filter"][:2] == ("error", "InvalidFilterError")
    assert outcomes["count after"] == ("ok", 3)  # b, d, f
    assert outcomes["gone"] == ("error", "CollectionNotFoundError", {"name": "<col>"})
    oks = [e for e in rest if e[1] == "ok"]
    assert len(oks) == len(rest) - 4, rest
    assert_congruent(rest, grpc, tol=1e-6, what="REST and gRPC transcripts")
