"""Full-text and hybrid search on the wire: the REST bodies and routes, the gRPC fields, and their errors.

Results are compared across transports in tests/congruence/test_congruence_text.py; here: shapes (an
``explain`` only when asked, ranks as integers), the ``PUT .../text_index`` body (a spec, or ``null``;
an empty body is an error, never a silent drop), filters as query parameters, and malformed JSON fields.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest

from tests.server.conftest import GrpcServer
from vecdb import Database
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb

DIM = 2
TEXTS = ["the faiss index", "rocksdb stores records", "hybrid search fuses bm25 and vectors", None]


@pytest.fixture(scope="module")
def data(shared_db: Database) -> Database:
    col = shared_db.create_collection("kw", DIM, text_index={})
    col.upsert(["a", "b", "c", "d"], [[1, 0], [0, 1], [1, 1], [1, -1]], texts=TEXTS)
    shared_db.create_collection("plain", DIM).upsert(["a"], [[1, 0]], texts=["faiss"])
    return shared_db


async def test_text_search_with_explain(shared_rest: httpx.AsyncClient, data: Database) -> None:
    body = {"texts": ["faiss index"], "mode": "text", "k": 3, "include": ["text", "explain"]}
    r = await shared_rest.post("/v1/collections/kw/search", json=body)
    assert r.status_code == 200, r.text
    (hits,) = r.json()["results"]
    assert [h["id"] for h in hits] == ["a"]
    assert hits[0]["explain"] == {"text": {"rank": 1, "score": hits[0]["score"]}}
    assert isinstance(hits[0]["explain"]["text"]["rank"], int)


async def test_hits_have_no_explain_unless_asked(shared_rest: httpx.AsyncClient, data: Database) -> None:
    for body in (
        {"texts": ["faiss"], "mode": "text"},
        {"vectors": [[1, 0]], "k": 2},
        {"vectors": [[1, 0]], "texts": ["faiss"], "mode": "hybrid"},
    ):
        r = await shared_rest.post("/v1/collections/kw/search", json=body)
        assert r.status_code == 200, r.text
        for hit in r.json()["results"][0]:
            assert "explain" not in hit, (body, hit)


async def test_hybrid_explains_both_branches(shared_rest: httpx.AsyncClient, data: Database) -> None:
    body = {
        "vectors": [[1, 0]],
        "texts": ["faiss"],
        "mode": "hybrid",
        "k": 4,
        "include": ["explain"],
        "fusion": {"method": "weighted", "alpha": 0.5},
    }
    r = await shared_rest.post("/v1/collections/kw/search", json=body)
    assert r.status_code == 200, r.text
    (hits,) = r.json()["results"]
    assert hits[0]["id"] == "a"  # first in both branches
    assert set(hits[0]["explain"]) == {"vector", "text"}
    assert all(set(h) == {"id", "score", "text", "metadata", "source", "vector", "explain"} for h in hits)


async def test_count_text_filter_is_a_query_parameter(shared_rest: httpx.AsyncClient, data: Database) -> None:
    tf = json.dumps({"$contains": "faiss"})
    r = await shared_rest.get("/v1/collections/kw/count", params={"text_filter": tf})
    assert r.status_code == 200, r.text
    assert r.json() == {"count": 1}
    r = await shared_rest.get(
        "/v1/collections/kw/count", params={"text_filter": tf, "filter": json.dumps({"x": 1})}
    )
    assert r.json() == {"count": 0}
    r = await shared_rest.get("/v1/collections/kw/count", params={"text_filter": "{not json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_filter"
    assert "text_filter" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"texts": ["x"], "mode": 3}, "invalid_argument"),  # strict: the mode is a string
        ({"texts": ["x"], "mode": "text", "text_filter": "faiss"}, "invalid_argument"),  # not an object
        ({"texts": ["x"], "mode": "text", "text_filter": {"$like": "x"}}, "invalid_filter"),
        ({"texts": ["x"], "mode": "hybrid", "fusion": {"method": "rrf", "k": 0}}, "invalid_argument"),
        ({"texts": ["x"], "mode": "text", "bogus": 1}, "invalid_argument"),
    ],
)
async def test_search_rejects_bad_text_arguments(
    shared_rest: httpx.AsyncClient, data: Database, body: dict[str, Any], code: str
) -> None:
    r = await shared_rest.post("/v1/collections/kw/search", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code


async def test_set_text_index_route(rest: httpx.AsyncClient, db: Database) -> None:
    r = await rest.post(
        "/v1/collections", json={"name": "c", "dim": DIM, "text_index": {"tokenizer": "jieba"}}
    )
    assert r.status_code == 201, r.text
    assert r.json()["text_index"]["tokenizer"] == "jieba"
    db.get_collection("c").upsert(["z"], [[1, 0]], texts=["向量数据库支持中文全文检索"])
    url = "/v1/collections/c/text_index"
    # an empty body is not a drop: the spec (or null) is required
    r = await rest.put(url, content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert db.get_collection("c").info()["text_index"] is not None
    r = await rest.put(url, json={"tokenizer": "standard"})
    assert r.status_code == 200, r.text
    assert r.json() == {"text_index": db.get_collection("c").info()["text_index"]}
    assert r.json()["text_index"]["documents"] == 1
    r = await rest.put(url, json={"tokenizer": "nope"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_config"
    r = await rest.put(url, json=[1])
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_argument"
    r = await rest.put(url, content=b"null", headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"text_index": None}
    assert (await rest.get("/v1/collections/c")).json()["text_index"] is None
    r = await rest.put("/v1/collections/ghost/text_index", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == "collection_not_found"


async def test_delete_and_scroll_by_text_filter(rest: httpx.AsyncClient, db: Database) -> None:
    col = db.create_collection("c", DIM, text_index={})
    col.upsert(["a", "b", "c"], [[1, 0], [0, 1], [1, 1]], texts=["keep me", "drop me", "drop this too"])
    r = await rest.post("/v1/collections/c/scroll", json={"text_filter": {"$contains": "drop"}})
    assert [rec["id"] for rec in r.json()["records"]] == ["b", "c"]
    r = await rest.post("/v1/collections/c/delete", json={"text_filter": {"$contains": "drop"}})
    assert r.json() == {"count": 2}
    assert [rec.id for rec in col.get(["a", "b", "c"])] == ["a"]


# ---- gRPC -------------------------------------------------------------------------------------------------


def _error(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    md = dict(info.value.trailing_metadata() or ())
    return info.value.code(), md["vecdb-error-code"]


def test_grpc_text_search_and_explain(shared_grpc: GrpcServer, data: Database) -> None:
    req = pb.SearchRequest(
        collection="kw", texts=["faiss index"], mode="text", include=pb.Include(fields=["explain"])
    )
    (res,) = shared_grpc.stub.Search(req, timeout=10).results
    assert [h.id for h in res.hits] == ["a"]
    assert json.loads(res.hits[0].explain_json) == {
        "text": {"rank": 1, "score": pytest.approx(res.hits[0].score)}
    }
    plain = pb.SearchRequest(collection="kw", texts=["faiss index"], mode="text")
    (res,) = shared_grpc.stub.Search(plain, timeout=10).results
    assert res.hits[0].explain_json == ""


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (pb.SearchRequest(collection="kw", texts=["x"], mode="text", text_filter_json="{"), "invalid_filter"),
        (pb.SearchRequest(collection="kw", texts=["x"], mode="hybrid", fusion_json="[1"), "invalid_argument"),
        (pb.SearchRequest(collection="kw", texts=["x"], mode="boolean"), "invalid_argument"),
        (pb.CountRequest(collection="kw", text_filter_json="nope"), "invalid_filter"),
        (pb.ScrollRequest(collection="kw", text_filter_json="{}x"), "invalid_filter"),
        (pb.DeleteRequest(collection="kw", text_filter_json="{"), "invalid_filter"),
        (pb.SetTextIndexRequest(collection="kw", text_index_json="{"), "invalid_config"),
        (pb.CreateCollectionRequest(name="x", dim=2, text_index_json="{"), "invalid_config"),
        (pb.SearchRequest(collection="plain", texts=["faiss"], mode="text"), "invalid_argument"),
    ],
)
def test_grpc_rejects_malformed_text_fields(
    shared_grpc: GrpcServer, data: Database, request_: Any, code: str
) -> None:
    rpc = {
        "SearchRequest": "Search",
        "CountRequest": "Count",
        "ScrollRequest": "Scroll",
        "DeleteRequest": "Delete",
        "SetTextIndexRequest": "SetTextIndex",
        "CreateCollectionRequest": "CreateCollection",
    }[type(request_).__name__]

    def call() -> Any:
        reply = getattr(shared_grpc.stub, rpc)(request_, timeout=10)
        return list(reply) if rpc == "Scroll" else reply

    status, got = _error(call)
    assert got == code
    assert status == grpc.StatusCode.INVALID_ARGUMENT
    assert data.get_collection("kw").count() == 4  # nothing deleted


def test_grpc_set_text_index(grpc_server: GrpcServer, db: Database) -> None:
    db.create_collection("c", DIM).upsert(["a"], [[1, 0]], texts=["faiss index"])
    stub = grpc_server.stub
    reply = stub.SetTextIndex(pb.SetTextIndexRequest(collection="c", text_index_json="{}"), timeout=10)
    assert convert.from_proto_text_index(reply) == db.get_collection("c").info()["text_index"]
    info = convert.from_proto_collection_info(stub.GetCollection(pb.CollectionRequest(name="c"), timeout=10))
    assert info["text_index"]["documents"] == 1
    reply = stub.SetTextIndex(pb.SetTextIndexRequest(collection="c"), timeout=10)  # empty: drop
    assert reply.text_index_json == ""
    assert db.get_collection("c").info()["text_index"] is None
