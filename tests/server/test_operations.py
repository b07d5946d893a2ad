"""The operation registry (``vecdb.operations``) is what the server serves and the client retries.

Each operation is declared once; these tests fail when the REST routes, the gRPC methods, auth's
operation lists, the shard actors' methods or the client's retry set drift from it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.routing import APIRoute

from tests.server.conftest import open_db
from vecdb import operations
from vecdb.cluster.shard import SHARD_METHODS
from vecdb.engine import CollectionAPI, DatabaseAPI
from vecdb.server import auth
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server.grpc_service import _op
from vecdb.server.metrics import Metrics
from vecdb.server.rest import create_app
from vecdb_client._calls import IDEMPOTENT


def test_names_are_unique_and_engine_methods() -> None:
    assert len(operations.BY_NAME) == len(operations.OPERATIONS)
    for op in operations.OPERATIONS:
        owner = CollectionAPI if op.target == "collection" else DatabaseAPI
        assert callable(getattr(owner, op.name, None)), f"{op.name} is not a {owner.__name__} method"


def test_auth_derives_from_the_registry() -> None:
    assert tuple(op.name for op in operations.OPERATIONS) == auth.OPERATIONS
    assert {op.name for op in operations.OPERATIONS if op.writes} == auth.WRITE_OPERATIONS
    assert {op.name for op in operations.OPERATIONS if op.target == "collection"} | {"info"} == SHARD_METHODS


def test_client_retries_exactly_the_idempotent_operations() -> None:
    """The client (its own package: it cannot import vecdb) keeps its own copy; it must not drift."""
    assert {op.name for op in operations.OPERATIONS if op.idempotent} == IDEMPOTENT


def test_rest_routes_are_the_registry(tmp_path: Path) -> None:
    db = open_db(tmp_path)
    try:
        app = create_app(
            db, authenticator=auth.Authenticator([]), metrics=Metrics(db), max_request_bytes=1 << 20
        )
        served = {
            (method, route.path)
            for route in app.routes
            if isinstance(route, APIRoute) and route.path.startswith("/v1/")
            for method in route.methods
        }
    finally:
        db.close()
    declared = {(r.method, r.path) for op in operations.OPERATIONS for r in op.routes}
    assert served == declared


def test_grpc_methods_are_the_registry() -> None:
    service = pb.DESCRIPTOR.services_by_name["VecDB"]
    declared = {rpc: op for op in operations.OPERATIONS for rpc in op.rpcs}
    assert set(service.methods_by_name) == set(declared)
    for name, method in service.methods_by_name.items():
        op = declared[name]
        assert _op(name) == op.name
        if method.client_streaming or method.server_streaming:
            assert op.streams, f"{name} streams: {op.name} must say so"
    for op in operations.OPERATIONS:
        if op.streams:
            assert any(
                service.methods_by_name[r].client_streaming or service.methods_by_name[r].server_streaming
                for r in op.rpcs
            ), op.name
