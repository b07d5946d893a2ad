"""API keys over both transports: for every operation, no key and a wrong key are 401/UNAUTHENTICATED, a
read-only key may read but gets 403/PERMISSION_DENIED for writes, an admin key may do everything."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vecdb import Database
from vecdb.errors import AuthenticationError, PermissionDeniedError, VecDBError
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server.auth import OPERATIONS, WRITE_OPERATIONS, Authenticator
from vecdb.server.grpc_service import SERVICE_NAME

if TYPE_CHECKING:
    from tests.server.conftest import GrpcServer

DIM = 4
ADMIN, READ = "adm", "ro"


@pytest.fixture(scope="module")
def data(shared_db: Database) -> Database:
    """The module's database. Reads go to "docs"; each transport T in ("rest", "grpc") writes under names
    of its own, so the tests can share it: it creates "new-T", drops "victim-T", upserts "up-T" and
    "stream-T", deletes "del-T" and the source "src-T"."""
    ids = ["a", "del-rest", "del-grpc", "in-rest", "in-grpc"]
    vectors = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]
    sources = [None, None, None, "src-rest", "src-grpc"]
    shared_db.create_collection("docs", DIM).upsert(ids, vectors, sources=sources)
    for t in ("rest", "grpc"):
        shared_db.create_collection(f"victim-{t}", DIM)
        shared_db.create_snapshot("docs", f"del-{t}")
    shared_db.create_snapshot("docs", "base")
    return shared_db


def state(db: Database) -> tuple[list[str], int, int, list[str], Any]:
    """What a write changes: collections, the count and sequence number of docs (an update changes only
    the latter), its snapshots, its full-text index."""
    snapshots = [s.name for s in db.list_snapshots("docs")]
    docs = db.get_collection("docs")
    return db.list_collections(), docs.count(), docs.seq, snapshots, docs.info()["text_index"]


# ---- REST -----------------------------------------------------------------------------------------------

#: operation -> the REST requests that run it: (method, path, json body or None)
REST_OPS: dict[str, list[tuple[str, str, Any]]] = {
    "create_collection": [("POST", "/v1/collections", {"name": "new-rest", "dim": DIM})],
    "list_collections": [("GET", "/v1/collections", None)],
    "get_collection": [("GET", "/v1/collections/docs", None)],
    "drop_collection": [("DELETE", "/v1/collections/victim-rest", None)],
    # each transport sets a spec of its own, so that each call changes the state
    "set_text_index": [("PUT", "/v1/collections/docs/text_index", {"tokenizer": "standard"})],
    "upsert": [("POST", "/v1/collections/docs/upsert", {"ids": ["up-rest"], "vectors": [[0, 1, 0, 0]]})],
    "get": [("POST", "/v1/collections/docs/get", {"ids": ["a"]})],
    "delete": [
        ("POST", "/v1/collections/docs/delete", {"ids": ["del-rest"]}),
        ("DELETE", "/v1/collections/docs/sources/src-rest", None),
    ],
    "replace_source": [
        ("PUT", "/v1/collections/docs/sources/rep-rest", {"ids": ["rep-rest-1"], "vectors": [[0, 0, 0, 1]]})
    ],
    "update": [("POST", "/v1/collections/docs/update", {"ids": ["a"], "metadatas": [{"touched": 1}]})],
    "search": [("POST", "/v1/collections/docs/search", {"vectors": [[1, 0, 0, 0]]})],
    "count": [("GET", "/v1/collections/docs/count?filter=%7B%22x%22%3A1%7D", None)],
    "list_sources": [("GET", "/v1/collections/docs/sources", None)],
    "embed": [("POST", "/v1/embed", {"texts": ["hello"]})],
    "scroll": [("POST", "/v1/collections/docs/scroll", {"limit": 2})],
    "create_snapshot": [("POST", "/v1/collections/docs/snapshots", {"name": "new-rest"})],
    "list_snapshots": [("GET", "/v1/collections/docs/snapshots", None)],
    "delete_snapshot": [("DELETE", "/v1/collections/docs/snapshots/del-rest", None)],
    "restore_snapshot": [
        ("POST", "/v1/collections/docs/snapshots/base/restore", {"target": "restored-rest"})
    ],
}


def test_rest_table_covers_every_operation() -> None:
    assert set(REST_OPS) == set(OPERATIONS)
    assert set(WRITE_OPERATIONS) < set(OPERATIONS)


async def rest_call(
    client: httpx.AsyncClient, method: str, path: str, body: Any, authorization: str | None
) -> httpx.Response:
    headers = {} if authorization is None else {"authorization": authorization}
    return await client.request(method, path, json=body, headers=headers)


def assert_rest_denied(r: httpx.Response, cls: type[VecDBError]) -> None:
    assert r.status_code == cls.http_status, r.text
    body = r.json()
    assert body["error"]["code"] == cls.code
    assert body["error"]["details"] == {}
    assert isinstance(body["error"]["message"], str)


@pytest.mark.parametrize("op", OPERATIONS)
async def test_rest_operation(op: str, shared_rest_auth: httpx.AsyncClient, data: Database) -> None:
    for method, path, body in REST_OPS[op]:
        before = state(data)
        for authorization in (None, "Bearer nope", "Bearer adm2", f"Bearer {READ}:read"):
            r = await rest_call(shared_rest_auth, method, path, body, authorization)
            assert_rest_denied(r, AuthenticationError)
        r = await rest_call(shared_rest_auth, method, path, body, f"Bearer {READ}")
        if op in WRITE_OPERATIONS:
            assert_rest_denied(r, PermissionDeniedError)
        else:
            assert r.status_code == 200, r.text
        assert state(data) == before  # nothing denied (or read) changed anything
        r = await rest_call(shared_rest_auth, method, path, body, f"Bearer {ADMIN}")
        assert r.status_code in (200, 201), r.text
        if op in WRITE_OPERATIONS:
            assert state(data) != before


@pytest.mark.parametrize(
    "authorization",
    ["adm", "Basic adm", "Token adm", "Bearer", "Bearer ", "Bearer:adm", "bearer-adm"],
)
async def test_rest_bearer_scheme_required(shared_rest_auth: httpx.AsyncClient, authorization: str) -> None:
    r = await shared_rest_auth.get("/v1/collections", headers={"authorization": authorization})
    assert_rest_denied(r, AuthenticationError)


@pytest.mark.parametrize("authorization", ["Bearer adm", "bearer adm", "BEARER adm", "Bearer  adm "])
async def test_rest_bearer_scheme_is_case_insensitive(
    shared_rest_auth: httpx.AsyncClient, authorization: str
) -> None:
    r = await shared_rest_auth.get("/v1/collections", headers={"authorization": authorization})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_rest_ops_endpoints_need_no_key(shared_rest_auth: httpx.AsyncClient, path: str) -> None:
    r = await shared_rest_auth.get(path)
    assert r.status_code == 200, r.text


async def test_rest_metrics_need_a_key_of_any_role(shared_rest_auth: httpx.AsyncClient) -> None:
    """/metrics names collections (``vecdb_records{collection}``): with keys configured it needs one."""
    r = await shared_rest_auth.get("/metrics")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    assert "collection=" not in r.text
    for key in (ADMIN, READ):
        r = await shared_rest_auth.get("/metrics", headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text


async def test_rest_denials_are_counted(rest_auth: httpx.AsyncClient) -> None:
    await rest_auth.get("/v1/collections")
    await rest_auth.delete("/v1/collections/victim", headers={"authorization": f"Bearer {READ}"})
    text = (await rest_auth.get("/metrics", headers={"authorization": f"Bearer {READ}"})).text
    assert (
        'vecdb_requests_total{code="unauthenticated",operation="list_collections",transport="rest"} 1.0'
        in text
    )
    assert (
        'vecdb_requests_total{code="permission_denied",operation="drop_collection",transport="rest"} 1.0'
        in text
    )


async def test_rest_open_server_needs_no_key(data: Database, shared_rest: httpx.AsyncClient) -> None:
    assert (await shared_rest.get("/v1/collections/docs")).status_code == 200
    # A key sent to an open server is ignored, whatever it is.
    r = await shared_rest.get("/v1/collections/docs", headers={"authorization": "Bearer whatever"})
    assert r.status_code == 200


# ---- gRPC -----------------------------------------------------------------------------------------------


def _vec(*rows: list[float]) -> pb.Vectors:
    return convert.to_proto_vectors(np.array(rows, dtype=np.float32))


#: operation -> the gRPC calls that run it: (rpc, request factory)
GRPC_OPS: dict[str, list[tuple[str, Callable[[], Any]]]] = {
    "create_collection": [("CreateCollection", lambda: pb.CreateCollectionRequest(name="new-grpc", dim=DIM))],
    "list_collections": [("ListCollections", pb.ListCollectionsRequest)],
    "get_collection": [("GetCollection", lambda: pb.CollectionRequest(name="docs"))],
    "drop_collection": [("DropCollection", lambda: pb.CollectionRequest(name="victim-grpc"))],
    "set_text_index": [
        (
            "SetTextIndex",
            lambda: pb.SetTextIndexRequest(collection="docs", text_index_json='{"tokenizer": "whitespace"}'),
        )
    ],
    "upsert": [
        (
            "Upsert",
            lambda: pb.UpsertRequest(
                collection="docs", records=[pb.RecordData(id="up-grpc")], vectors=_vec([0, 1, 0, 0])
            ),
        ),
        (
            "UpsertStream",
            lambda: iter(
                [
                    pb.UpsertRequest(
                        collection="docs",
                        records=[pb.RecordData(id="stream-grpc")],
                        vectors=_vec([0, 0, 1, 0]),
                    )
                ]
            ),
        ),
    ],
    "update": [
        (
            "Update",
            lambda: pb.UpdateRequest(
                collection="docs", records=[pb.RecordPatch(id="a", metadata_json='{"touched": 2}')]
            ),
        )
    ],
    "get": [("Get", lambda: pb.GetRequest(collection="docs", ids=["a"]))],
    "delete": [
        ("Delete", lambda: pb.DeleteRequest(collection="docs", ids=pb.IdList(ids=["del-grpc"]))),
        ("Delete", lambda: pb.DeleteRequest(collection="docs", source="src-grpc")),
    ],
    "replace_source": [
        (
            "ReplaceSource",
            lambda: pb.ReplaceSourceRequest(
                collection="docs",
                source="rep-grpc",
                records=[pb.RecordData(id="rep-grpc-1")],
                vectors=_vec([0, 0, 0, 1]),
            ),
        )
    ],
    "search": [("Search", lambda: pb.SearchRequest(collection="docs", queries=_vec([1, 0, 0, 0])))],
    "count": [("Count", lambda: pb.CountRequest(collection="docs", filter_json='{"x": 1}'))],
    "list_sources": [("ListSources", lambda: pb.CollectionRequest(name="docs"))],
    "embed": [("Embed", lambda: pb.EmbedRequest(texts=["hello"]))],
    "scroll": [("Scroll", lambda: pb.ScrollRequest(collection="docs", limit=2))],
    "create_snapshot": [("CreateSnapshot", lambda: pb.SnapshotRequest(collection="docs", name="new-grpc"))],
    "list_snapshots": [("ListSnapshots", lambda: pb.CollectionRequest(name="docs"))],
    "delete_snapshot": [("DeleteSnapshot", lambda: pb.SnapshotRequest(collection="docs", name="del-grpc"))],
    "restore_snapshot": [
        (
            "RestoreSnapshot",
            lambda: pb.RestoreSnapshotRequest(collection="docs", name="base", target="restored-grpc"),
        )
    ],
}


def test_grpc_table_covers_every_operation() -> None:
    assert set(GRPC_OPS) == set(OPERATIONS)
    rpcs = {rpc for calls in GRPC_OPS.values() for rpc, _ in calls}
    service = pb.DESCRIPTOR.services_by_name["VecDB"]
    assert rpcs == {m.name for m in service.methods}


def grpc_call(server: GrpcServer, rpc: str, make: Callable[[], Any], authorization: str | None) -> Any:
    metadata = () if authorization is None else (("authorization", authorization),)
    reply = getattr(server.stub, rpc)(make(), metadata=metadata, timeout=10)
    return list(reply) if rpc == "Scroll" else reply  # a stream fails as it is read


def assert_grpc_denied(call: Callable[[], Any], cls: type[VecDBError]) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode[cls.grpc_code], info.value.details()
    md = dict(info.value.trailing_metadata() or ())
    assert md["vecdb-error-code"] == cls.code
    assert json.loads(md["vecdb-error-details"]) == {}


@pytest.mark.parametrize("op", OPERATIONS)
def test_grpc_operation(op: str, shared_grpc_auth: GrpcServer, data: Database) -> None:
    for rpc, make in GRPC_OPS[op]:

        def call(authorization: str | None, rpc: str = rpc, make: Callable[[], Any] = make) -> Any:
            return grpc_call(shared_grpc_auth, rpc, make, authorization)

        before = state(data)
        for authorization in (None, "Bearer nope", "Bearer adm2", f"Bearer {READ}:read"):
            assert_grpc_denied(lambda a=authorization: call(a), AuthenticationError)
        if op in WRITE_OPERATIONS:
            assert_grpc_denied(lambda: call(f"Bearer {READ}"), PermissionDeniedError)
        else:
            call(f"Bearer {READ}")
        assert state(data) == before
        call(f"Bearer {ADMIN}")
        if op in WRITE_OPERATIONS:
            assert state(data) != before


@pytest.mark.parametrize("authorization", ["adm", "Basic adm", "Bearer", "Bearer ", "bearer-adm"])
def test_grpc_bearer_scheme_required(shared_grpc_auth: GrpcServer, authorization: str) -> None:
    assert_grpc_denied(
        lambda: grpc_call(shared_grpc_auth, "ListCollections", pb.ListCollectionsRequest, authorization),
        AuthenticationError,
    )


def test_grpc_bearer_scheme_is_case_insensitive(shared_grpc_auth: GrpcServer) -> None:
    for authorization in ("Bearer adm", "bearer adm", "BEARER ro"):
        grpc_call(shared_grpc_auth, "ListCollections", pb.ListCollectionsRequest, authorization)


def test_grpc_health_and_reflection_need_no_key(shared_grpc_auth: GrpcServer) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health_stub = health_pb2_grpc.HealthStub(shared_grpc_auth.channel)
    reply = health_stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(shared_grpc_auth.channel)
    (response,) = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    assert SERVICE_NAME in {s.name for s in response.list_services_response.service}


def test_grpc_open_server_needs_no_key(data: Database, shared_grpc: GrpcServer) -> None:
    grpc_call(shared_grpc, "GetCollection", lambda: pb.CollectionRequest(name="docs"), None)
    grpc_call(shared_grpc, "GetCollection", lambda: pb.CollectionRequest(name="docs"), "Bearer whatever")


# ---- the key list ---------------------------------------------------------------------------------------


def test_authenticator_roles() -> None:
    # A key holding a colon needs its role spelled out (as in Settings): "with:colon" alone is an error.
    auth = Authenticator(["adm", "ro:read", "also:admin", "with:colon:admin"])
    assert auth.enabled
    for key in ("adm", "also", "with:colon"):
        for op in OPERATIONS:
            auth.check(f"Bearer {key}", op)
    for op in OPERATIONS:
        if op in WRITE_OPERATIONS:
            with pytest.raises(PermissionDeniedError):
                auth.check("Bearer ro", op)
        else:
            auth.check("Bearer ro", op)
    for bad in ("Bearer ro:read", "Bearer also:admin", "Bearer with", "Bearer ad"):
        with pytest.raises(AuthenticationError):
            auth.check(bad, "list_collections")
    assert not Authenticator([]).enabled
    Authenticator([]).check(None, "drop_collection")


async def test_rest_key_is_checked_before_the_body(rest_auth: httpx.AsyncClient) -> None:
    """No key and a malformed body: 401 with a Bearer challenge, not a 400 that describes the schema."""
    r = await rest_auth.post("/v1/collections", json={"nonsense": True})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthenticated"
