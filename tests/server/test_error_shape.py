"""Errors on the wire: the REST body ``{"error": {"code", "message", "details"}}`` and the gRPC status
plus ``vecdb-error-code`` / ``vecdb-error-details`` trailing metadata. Bad input is never a 5xx /
INTERNAL / UNKNOWN."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import numpy as np
import pytest

from vecdb import Database
from vecdb.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidFilterError,
    InvalidIdError,
    InvalidMetadataError,
    InvalidNameError,
    InvalidSourceError,
    InvalidVectorError,
    LimitExceededError,
    NotFoundError,
    VecDBError,
    error_class_for_code,
)
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from tests.server.conftest import GrpcServer

DIM = 4


@pytest.fixture(scope="module")
def docs(shared_db: Database) -> Database:
    """The module's database: cosine collections "docs" (one record, "a") and "other" of dimension DIM.

    Shared by every test here: the failing calls change nothing; the few that succeed write ids of their own.
    """
    shared_db.create_collection("docs", DIM).upsert(["a"], [[1, 0, 0, 0]], metadatas=[{"n": 1}])
    shared_db.create_collection("other", DIM)
    return shared_db


# ---- REST -----------------------------------------------------------------------------------------------


def assert_error_body(
    r: httpx.Response, status: int, code: str, details: dict[str, Any] | None = None
) -> None:
    assert r.status_code < 500, r.text
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert isinstance(body, dict)
    assert list(body) == ["error"]
    err = body["error"]
    assert list(err) == ["code", "message", "details"]
    assert isinstance(err["code"], str)
    assert err["code"] == code
    assert isinstance(err["message"], str)
    assert err["message"]
    assert isinstance(err["details"], dict)
    if details is not None:
        assert err["details"] == details


JSON = {"content-type": "application/json"}

#: (id, method, path, json body or raw bytes, expected class, expected details or None)
REST_CASES: list[tuple[str, str, str, Any, type[VecDBError], dict[str, Any] | None]] = [
    (
        "dimension-mismatch",
        "POST",
        "/v1/collections/docs/upsert",
        {"ids": ["x"], "vectors": [[1, 2, 3]]},
        DimensionMismatchError,
        {"index": 0, "expected": DIM, "got": 3},
    ),
    (
        "query-dimension-mismatch",
        "POST",
        "/v1/collections/docs/search",
        {"vectors": [[1, 0, 0, 0], [1, 0]]},
        DimensionMismatchError,
        {"index": 1, "expected": DIM, "got": 2},
    ),
    (
        "nan-vector",
        "POST",
        "/v1/collections/docs/upsert",
        b'{"ids":["x"],"vectors":[[NaN,1,0,0]]}',
        InvalidVectorError,
        {"index": 0},
    ),
    (
        "inf-vector",
        "POST",
        "/v1/collections/docs/search",
        b'{"vectors":[[1,-Infinity,0,0]]}',
        InvalidVectorError,
        {"index": 0},
    ),
    (
        "nan-metadata",
        "POST",
        "/v1/collections/docs/upsert",
        b'{"ids":["x"],"vectors":[[1,0,0,0]],"metadatas":[{"v":NaN}]}',
        InvalidMetadataError,
        {"index": 0, "id": "x"},
    ),
    (
        "nan-filter",
        "POST",
        "/v1/collections/docs/search",
        b'{"vectors":[[1,0,0,0]],"filter":{"n":NaN}}',
        InvalidFilterError,
        {"path": "filter.n"},
    ),
    (
        "zero-vector-cosine",
        "POST",
        "/v1/collections/docs/upsert",
        {"ids": ["x"], "vectors": [[0, 0, 0, 0]]},
        InvalidVectorError,
        {"index": 0},
    ),
    (
        "empty-id",
        "POST",
        "/v1/collections/docs/upsert",
        {"ids": [""], "vectors": [[1, 0, 0, 0]]},
        InvalidIdError,
        {"index": 0},
    ),
    ("empty-source", "POST", "/v1/collections/docs/delete", {"source": ""}, InvalidSourceError, None),
    (
        "bad-filter",
        "POST",
        "/v1/collections/docs/search",
        {"vectors": [[1, 0, 0, 0]], "filter": {"n": {"$regex": "x"}}},
        InvalidFilterError,
        {"path": "filter.n.$regex"},
    ),
    (
        "count-filter-not-json",
        "GET",
        "/v1/collections/docs/count?filter=%7Bbad",
        None,
        InvalidFilterError,
        {},
    ),
    (
        "count-filter-not-object",
        "GET",
        "/v1/collections/docs/count?filter=%5B1%5D",
        None,
        InvalidFilterError,
        {"path": "filter"},
    ),
    ("delete-no-selector", "POST", "/v1/collections/docs/delete", {}, InvalidArgumentError, {}),
    (
        "delete-two-selectors",
        "POST",
        "/v1/collections/docs/delete",
        {"ids": ["a"], "source": "s"},
        InvalidArgumentError,
        {},
    ),
    (
        "unknown-include",
        "POST",
        "/v1/collections/docs/get",
        {"ids": ["a"], "include": ["bogus"]},
        InvalidArgumentError,
        {},
    ),
    (
        "bad-params",
        "POST",
        "/v1/collections/docs/search",
        {"vectors": [[1, 0, 0, 0]], "params": {"ef_search": 0}},
        InvalidArgumentError,
        {"field": "ef_search"},
    ),
    (
        "k-zero",
        "POST",
        "/v1/collections/docs/search",
        {"vectors": [[1, 0, 0, 0]], "k": 0},
        InvalidArgumentError,
        {},
    ),
    (
        "k-too-large",
        "POST",
        "/v1/collections/docs/search",
        {"vectors": [[1, 0, 0, 0]], "k": 10**6},
        LimitExceededError,
        {"limit": 10_000},
    ),
    (
        "bad-index-spec",
        "POST",
        "/v1/collections",
        {"name": "x", "dim": 4, "index": {"type": "btree"}},
        InvalidConfigError,
        {"field": "index.type"},
    ),
    ("bad-dim", "POST", "/v1/collections", {"name": "x", "dim": 0}, InvalidConfigError, {"field": "dim"}),
    ("bad-name", "GET", "/v1/collections/bad%20name", None, InvalidNameError, {"name": "bad name"}),
    (
        "bad-name-create",
        "POST",
        "/v1/collections",
        {"name": "a/b", "dim": 4},
        InvalidNameError,
        {"name": "a/b"},
    ),
    ("unknown-collection", "GET", "/v1/collections/nope", None, CollectionNotFoundError, {"name": "nope"}),
    (
        "unknown-collection-search",
        "POST",
        "/v1/collections/nope/search",
        {"vectors": [[1]]},
        CollectionNotFoundError,
        {"name": "nope"},
    ),
    (
        "unknown-collection-drop",
        "DELETE",
        "/v1/collections/nope",
        None,
        CollectionNotFoundError,
        {"name": "nope"},
    ),
    (
        "duplicate-collection",
        "POST",
        "/v1/collections",
        {"name": "docs", "dim": 4},
        CollectionExistsError,
        {"name": "docs"},
    ),
    ("unknown-route", "GET", "/v2/nothing", None, NotFoundError, {}),
    ("unknown-route-v1", "POST", "/v1/collections/docs/frobnicate", {}, NotFoundError, {}),
]

#: Request validation (pydantic) failures: 400 invalid_argument with details.errors.
VALIDATION_CASES: list[tuple[str, str, str, Any]] = [
    ("wrong-types", "POST", "/v1/collections/docs/upsert", {"ids": "a", "vectors": "x"}),
    ("vector-of-strings", "POST", "/v1/collections/docs/upsert", {"ids": ["a"], "vectors": [["x", "y"]]}),
    ("missing-field", "POST", "/v1/collections/docs/upsert", {"vectors": [[1, 0, 0, 0]]}),
    ("extra-field", "POST", "/v1/collections/docs/search", {"vectors": [[1, 0, 0, 0]], "kk": 3}),
    ("k-not-int", "POST", "/v1/collections/docs/search", {"vectors": [[1, 0, 0, 0]], "k": "many"}),
    ("malformed-json", "POST", "/v1/collections/docs/upsert", b'{"ids": ["a"], "vectors": [[1,'),
    ("not-an-object", "POST", "/v1/collections/docs/get", b'["a"]'),
    ("empty-body", "POST", "/v1/collections/docs/get", b""),
]


@pytest.fixture
def client(docs: Database, shared_rest: httpx.AsyncClient) -> httpx.AsyncClient:
    return shared_rest


async def send(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    if body is None:
        return await client.request(method, path)
    if isinstance(body, bytes):
        return await client.request(method, path, content=body, headers=JSON)
    return await client.request(method, path, json=body)


@pytest.mark.parametrize(
    ("method", "path", "body", "cls", "details"), [c[1:] for c in REST_CASES], ids=[c[0] for c in REST_CASES]
)
async def test_rest_error(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: Any,
    cls: type[VecDBError],
    details: dict[str, Any] | None,
) -> None:
    r = await send(client, method, path, body)
    assert_error_body(r, cls.http_status, cls.code, details)


@pytest.mark.parametrize(
    ("method", "path", "body"), [c[1:] for c in VALIDATION_CASES], ids=[c[0] for c in VALIDATION_CASES]
)
async def test_rest_validation_error(client: httpx.AsyncClient, method: str, path: str, body: Any) -> None:
    r = await send(client, method, path, body)
    assert_error_body(r, 400, "invalid_argument")
    err = r.json()["error"]
    assert list(err["details"]) == ["errors"]
    assert err["details"]["errors"]
    for item in err["details"]["errors"]:
        assert list(item) == ["loc", "msg", "type"]
        assert all(isinstance(p, str) for p in item["loc"])
        assert isinstance(item["msg"], str)
        assert isinstance(item["type"], str)


async def test_rest_method_not_allowed(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/collections/docs")
    assert_error_body(r, 405, "method_not_allowed", {})


async def test_rest_body_over_limit_with_content_length(
    client: httpx.AsyncClient, max_request_bytes: int
) -> None:
    body = b'{"ids": ["a"], "vectors": [[1, 0, 0, 0]], "texts": ["' + b"x" * max_request_bytes + b'"]}'
    r = await client.post("/v1/collections/docs/upsert", content=body, headers=JSON)
    assert int(r.request.headers["content-length"]) > max_request_bytes
    assert_error_body(r, 413, "limit_exceeded", {"limit": max_request_bytes})


async def test_rest_body_at_limit_is_accepted(client: httpx.AsyncClient, max_request_bytes: int) -> None:
    head, tail = b'{"ids": ["at-limit"], "vectors": [[1, 0, 0, 0]], "texts": ["', b'"]}'
    body = head + b"x" * (max_request_bytes - len(head) - len(tail)) + tail
    assert len(body) == max_request_bytes
    r = await client.post("/v1/collections/docs/upsert", content=body, headers=JSON)
    assert r.status_code == 200, r.text


async def test_rest_body_over_limit_chunked(client: httpx.AsyncClient, max_request_bytes: int) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"ids": ["a"], "vectors": [[1, 0, 0, 0]], "texts": ["'
        for _ in range(4):
            yield b"x" * (max_request_bytes // 2)
        yield b'"]}'

    r = await client.post("/v1/collections/docs/upsert", content=chunks(), headers=JSON)
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert_error_body(r, 413, "limit_exceeded", {"limit": max_request_bytes})


async def test_rest_chunked_body_under_limit_is_accepted(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"ids": ["chunked"], '
        yield b'"vectors": [[0, 1, 0, 0]]}'

    r = await client.post("/v1/collections/docs/upsert", content=chunks(), headers=JSON)
    assert r.status_code == 200, r.text
    assert r.json() == {"count": 1}


async def test_rest_errors_leave_nothing_written(client: httpx.AsyncClient) -> None:
    body = {"ids": ["ok", "bad"], "vectors": [[1, 0, 0, 0], [1, 0]]}
    assert (await client.post("/v1/collections/docs/upsert", json=body)).status_code == 400
    r = await client.post("/v1/collections/docs/get", json={"ids": ["ok", "bad"]})
    assert r.json() == {"records": []}


# ---- gRPC -----------------------------------------------------------------------------------------------


def assert_grpc_error(
    call: Callable[[], Any], cls: type[VecDBError], details: dict[str, Any] | None = None
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), err.details()
    assert err.code() == grpc.StatusCode[cls.grpc_code], err.details()
    assert err.details()
    md = dict(err.trailing_metadata() or ())
    assert md["vecdb-error-code"] == cls.code, err.details()
    got = json.loads(md["vecdb-error-details"])
    assert isinstance(got, dict)
    if details is not None:
        assert got == details
    return err


def vec(*rows: list[float]) -> pb.Vectors:
    return convert.to_proto_vectors(np.array(rows, dtype=np.float32))


def rec(rid: str = "x", **kw: Any) -> pb.RecordData:
    return pb.RecordData(id=rid, **kw)


Q = [1.0, 0.0, 0.0, 0.0]

#: (id, rpc, request, expected class, expected details or None)
GRPC_CASES: list[tuple[str, str, Any, type[VecDBError], dict[str, Any] | None]] = [
    (
        "dimension-mismatch",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec()], vectors=vec([1, 2, 3])),
        DimensionMismatchError,
        {"index": 0, "expected": DIM, "got": 3},
    ),
    (
        "query-dimension-mismatch",
        "Search",
        pb.SearchRequest(collection="docs", queries=vec([1, 2])),
        DimensionMismatchError,
        {"index": 0, "expected": DIM, "got": 2},
    ),
    (
        "packed-not-multiple",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec()], vectors=pb.Vectors(dim=4, data=b"\0" * 15)),
        InvalidArgumentError,
        {},
    ),
    (
        "packed-queries-not-multiple",
        "Search",
        pb.SearchRequest(collection="docs", queries=pb.Vectors(dim=4, data=b"\0" * 17)),
        InvalidArgumentError,
        {},
    ),
    (
        "packed-dim0-with-data",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec()], vectors=pb.Vectors(dim=0, data=b"\0" * 4)),
        InvalidArgumentError,
        {},
    ),
    (
        "no-vectors",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec()]),
        InvalidArgumentError,
        None,
    ),
    ("no-queries", "Search", pb.SearchRequest(collection="docs"), InvalidArgumentError, None),
    (
        "more-vectors-than-records",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec()], vectors=vec(Q, Q)),
        InvalidArgumentError,
        {"expected": 1, "got": 2},
    ),
    (
        "nan-vector",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec()], vectors=vec([np.nan, 1, 0, 0])),
        InvalidVectorError,
        {"index": 0},
    ),
    (
        "inf-query",
        "Search",
        pb.SearchRequest(collection="docs", queries=vec([np.inf, 1, 0, 0])),
        InvalidVectorError,
        {"index": 0},
    ),
    (
        "zero-vector-cosine",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec()], vectors=vec([0, 0, 0, 0])),
        InvalidVectorError,
        {"index": 0},
    ),
    (
        "metadata-json-malformed",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec(metadata_json="{bad")], vectors=vec(Q)),
        InvalidMetadataError,
        {},
    ),
    (
        "metadata-json-nan",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec(metadata_json='{"v": NaN}')], vectors=vec(Q)),
        InvalidMetadataError,
        {},
    ),
    (
        "metadata-json-not-object",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec(metadata_json="[1]")], vectors=vec(Q)),
        InvalidMetadataError,
        {"index": 0, "id": "x"},
    ),
    (
        "empty-id",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec("")], vectors=vec(Q)),
        InvalidIdError,
        {"index": 0},
    ),
    (
        "empty-source",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec(source="")], vectors=vec(Q)),
        InvalidSourceError,
        None,
    ),
    ("no-records", "Upsert", pb.UpsertRequest(collection="docs"), InvalidArgumentError, {}),
    (
        "search-filter-json-malformed",
        "Search",
        pb.SearchRequest(collection="docs", queries=vec(Q), filter_json="{bad"),
        InvalidFilterError,
        {},
    ),
    (
        "search-filter-invalid",
        "Search",
        pb.SearchRequest(collection="docs", queries=vec(Q), filter_json='{"n": {"$regex": 1}}'),
        InvalidFilterError,
        {"path": "filter.n.$regex"},
    ),
    (
        "count-filter-json-malformed",
        "Count",
        pb.CountRequest(collection="docs", filter_json="not json"),
        InvalidFilterError,
        {},
    ),
    (
        "count-filter-not-object",
        "Count",
        pb.CountRequest(collection="docs", filter_json="[1]"),
        InvalidFilterError,
        {"path": "filter"},
    ),
    (
        "delete-filter-json-malformed",
        "Delete",
        pb.DeleteRequest(collection="docs", filter_json="{bad"),
        InvalidFilterError,
        {},
    ),
    (
        "delete-filter-empty",
        "Delete",
        pb.DeleteRequest(collection="docs", filter_json=""),
        InvalidFilterError,
        {},
    ),
    (
        "delete-filter-empty-object",
        "Delete",
        pb.DeleteRequest(collection="docs", filter_json="{}"),
        InvalidFilterError,
        {},
    ),
    ("delete-no-selector", "Delete", pb.DeleteRequest(collection="docs"), InvalidArgumentError, {}),
    (
        "delete-empty-ids",
        "Delete",
        pb.DeleteRequest(collection="docs", ids=pb.IdList()),
        InvalidArgumentError,
        {},
    ),
    (
        "delete-empty-source",
        "Delete",
        pb.DeleteRequest(collection="docs", source=""),
        InvalidSourceError,
        None,
    ),
    ("get-no-ids", "Get", pb.GetRequest(collection="docs"), InvalidArgumentError, {}),
    (
        "get-unknown-include",
        "Get",
        pb.GetRequest(collection="docs", ids=["a"], include=pb.Include(fields=["bogus"])),
        InvalidArgumentError,
        {},
    ),
    (
        "search-unknown-include",
        "Search",
        pb.SearchRequest(collection="docs", queries=vec(Q), include=pb.Include(fields=["score"])),
        InvalidArgumentError,
        {},
    ),
    (
        "search-bad-params",
        "Search",
        pb.SearchRequest(collection="docs", queries=vec(Q), params=pb.SearchParams(ef_search=0)),
        InvalidArgumentError,
        {"field": "ef_search"},
    ),
    (
        "k-too-large",
        "Search",
        pb.SearchRequest(collection="docs", queries=vec(Q), k=10**6),
        LimitExceededError,
        {"limit": 10_000},
    ),
    (
        "index-json-malformed",
        "CreateCollection",
        pb.CreateCollectionRequest(name="x", dim=4, index_json="{bad"),
        InvalidConfigError,
        {},
    ),
    (
        "index-json-not-object",
        "CreateCollection",
        pb.CreateCollectionRequest(name="x", dim=4, index_json="[1]"),
        InvalidConfigError,
        {},
    ),
    (
        "index-json-unknown-type",
        "CreateCollection",
        pb.CreateCollectionRequest(name="x", dim=4, index_json='{"type": "btree"}'),
        InvalidConfigError,
        {"field": "index.type"},
    ),
    (
        "dim-zero",
        "CreateCollection",
        pb.CreateCollectionRequest(name="x", dim=0),
        InvalidConfigError,
        {"field": "dim"},
    ),
    (
        "bad-metric",
        "CreateCollection",
        pb.CreateCollectionRequest(name="x", dim=4, metric="hamming"),
        InvalidConfigError,
        {"field": "metric"},
    ),
    (
        "bad-name",
        "CreateCollection",
        pb.CreateCollectionRequest(name="a b", dim=4),
        InvalidNameError,
        {"name": "a b"},
    ),
    (
        "duplicate-collection",
        "CreateCollection",
        pb.CreateCollectionRequest(name="docs", dim=4),
        CollectionExistsError,
        {"name": "docs"},
    ),
    (
        "unknown-collection",
        "GetCollection",
        pb.CollectionRequest(name="nope"),
        CollectionNotFoundError,
        {"name": "nope"},
    ),
    (
        "unknown-collection-drop",
        "DropCollection",
        pb.CollectionRequest(name="nope"),
        CollectionNotFoundError,
        {"name": "nope"},
    ),
    (
        "unknown-collection-search",
        "Search",
        pb.SearchRequest(collection="nope", queries=vec(Q)),
        CollectionNotFoundError,
        {"name": "nope"},
    ),
    (
        "unknown-collection-sources",
        "ListSources",
        pb.CollectionRequest(name="nope"),
        CollectionNotFoundError,
        {"name": "nope"},
    ),
]

#: Every RPC that names a collection, with an empty name.
EMPTY_NAME_CASES: list[tuple[str, Any]] = [
    ("CreateCollection", pb.CreateCollectionRequest(dim=4)),
    ("GetCollection", pb.CollectionRequest()),
    ("DropCollection", pb.CollectionRequest()),
    ("Upsert", pb.UpsertRequest(records=[rec()], vectors=vec(Q))),
    ("Get", pb.GetRequest(ids=["a"])),
    ("Delete", pb.DeleteRequest(ids=pb.IdList(ids=["a"]))),
    ("Search", pb.SearchRequest(queries=vec(Q))),
    ("Count", pb.CountRequest()),
    ("ListSources", pb.CollectionRequest()),
]


@pytest.fixture
def grpc_stub(docs: Database, shared_grpc: GrpcServer) -> pb_grpc.VecDBStub:
    return shared_grpc.stub


@pytest.mark.parametrize(
    ("rpc", "request_", "cls", "details"), [c[1:] for c in GRPC_CASES], ids=[c[0] for c in GRPC_CASES]
)
def test_grpc_error(
    grpc_stub: pb_grpc.VecDBStub,
    rpc: str,
    request_: Any,
    cls: type[VecDBError],
    details: dict[str, Any] | None,
) -> None:
    assert_grpc_error(lambda: getattr(grpc_stub, rpc)(request_), cls, details)


@pytest.mark.parametrize(("rpc", "request_"), EMPTY_NAME_CASES, ids=[c[0] for c in EMPTY_NAME_CASES])
def test_grpc_empty_collection_name(grpc_stub: pb_grpc.VecDBStub, rpc: str, request_: Any) -> None:
    assert_grpc_error(lambda: getattr(grpc_stub, rpc)(request_), InvalidNameError, {"name": ""})


def test_grpc_stream_naming_two_collections(grpc_stub: pb_grpc.VecDBStub, docs: Database) -> None:
    stream = [
        pb.UpsertRequest(collection="docs", records=[rec("s1")], vectors=vec(Q)),
        pb.UpsertRequest(collection="other", records=[rec("s2")], vectors=vec(Q)),
    ]
    assert_grpc_error(lambda: grpc_stub.UpsertStream(iter(stream)), InvalidArgumentError, {})
    assert docs.get_collection("other").get(["s2"]) == []


def test_grpc_stream_without_collection(grpc_stub: pb_grpc.VecDBStub) -> None:
    stream = [pb.UpsertRequest(records=[rec("s1")], vectors=vec(Q))]
    assert_grpc_error(lambda: grpc_stub.UpsertStream(iter(stream)), InvalidArgumentError, {})


def test_grpc_stream_bad_batch(grpc_stub: pb_grpc.VecDBStub) -> None:
    stream = [
        pb.UpsertRequest(collection="docs", records=[rec("s1")], vectors=vec(Q)),
        pb.UpsertRequest(records=[rec("s2")], vectors=pb.Vectors(dim=4, data=b"\0" * 3)),
    ]
    assert_grpc_error(lambda: grpc_stub.UpsertStream(iter(stream)), InvalidArgumentError, {})


def test_grpc_message_over_limit_is_resource_exhausted(
    grpc_stub: pb_grpc.VecDBStub, max_request_bytes: int
) -> None:
    # gRPC itself rejects it (no vecdb metadata), but as RESOURCE_EXHAUSTED, not INTERNAL.
    request = pb.SearchRequest(
        collection="docs", queries=pb.Vectors(dim=4, data=b"\0" * (max_request_bytes + 16))
    )
    with pytest.raises(grpc.RpcError) as info:
        grpc_stub.Search(request)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_grpc_error_classes_match_rest(grpc_stub: pb_grpc.VecDBStub) -> None:
    """The trailing code names a class whose gRPC status is the one sent: clients can rebuild it."""
    err = assert_grpc_error(
        lambda: grpc_stub.GetCollection(pb.CollectionRequest(name="nope")), CollectionNotFoundError
    )
    code = dict(err.trailing_metadata())["vecdb-error-code"]
    cls = error_class_for_code(code)
    assert cls is CollectionNotFoundError
    assert grpc.StatusCode[cls.grpc_code] == err.code()


# ---- inputs echoed into errors: non-ASCII and long ------------------------------------------------------

#: Bad inputs whose error message and details quote non-ASCII text the client sent.
NON_ASCII_CASES: list[tuple[str, str, Any, type[VecDBError]]] = [
    ("name", "GetCollection", pb.CollectionRequest(name="é"), InvalidNameError),
    (
        "duplicate-id",
        "Upsert",
        pb.UpsertRequest(collection="docs", records=[rec("é"), rec("é")], vectors=vec(Q, Q)),
        DuplicateIdError,
    ),
    (
        "filter-field",
        "Count",
        pb.CountRequest(collection="docs", filter_json='{"ü": {"$bad": 1}}'),
        InvalidFilterError,
    ),
]


@pytest.mark.parametrize(
    ("rpc", "request_", "cls"), [c[1:] for c in NON_ASCII_CASES], ids=[c[0] for c in NON_ASCII_CASES]
)
def test_grpc_non_ascii_in_error_details(
    grpc_stub: pb_grpc.VecDBStub, rpc: str, request_: Any, cls: type[VecDBError]
) -> None:
    assert_grpc_error(lambda: getattr(grpc_stub, rpc)(request_), cls)


def test_grpc_long_input_in_error(grpc_stub: pb_grpc.VecDBStub) -> None:
    assert_grpc_error(
        lambda: grpc_stub.GetCollection(pb.CollectionRequest(name="x" * 20_000)), InvalidNameError
    )


@pytest.mark.parametrize("name", ["é", "x" * 20_000])
async def test_rest_non_ascii_and_long_input_in_error(client: httpx.AsyncClient, name: str) -> None:
    r = await client.get(f"/v1/collections/{name}")
    assert_error_body(r, 400, "invalid_name", {"name": name[:100]})


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/collections/docs/search", {"vectors": [[1, 0, 0, 0]], "k": True}),
        ("/v1/collections", {"name": "booldim", "dim": True}),
        ("/v1/collections/docs/upsert", {"ids": ["lax"], "vectors": [[True, "2", 0, 0]]}),
    ],
    ids=["k", "dim", "vector"],
)
async def test_rest_bool_is_not_a_number(client: httpx.AsyncClient, path: str, body: Any) -> None:
    r = await client.post(path, json=body)
    assert r.status_code == 400, r.text


def test_grpc_metadata_with_an_integer_beyond_64_bits_is_rejected(stub: pb_grpc.VecDBStub) -> None:
    """As over REST: the JSON text keeps the integer exact, and the engine refuses it."""
    stub.CreateCollection(pb.CreateCollectionRequest(name="bigint", dim=2))
    record = pb.RecordData(id="a", metadata_json='{"x": 123456789012345678901234567890}')
    with pytest.raises(grpc.RpcError) as info:
        stub.Upsert(
            pb.UpsertRequest(
                collection="bigint", records=[record], vectors=convert.to_proto_vectors([[1, 2]])
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(info.value.trailing_metadata())["vecdb-error-code"] == "invalid_metadata"
