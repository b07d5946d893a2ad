"""Fixtures for the server tests: a Database, the REST app behind an in-process httpx client, and a gRPC
server on an ephemeral loopback port with a stub; each with and without API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from fastapi import FastAPI
from grpc_health.v1 import health

from vecdb import Database
from vecdb.config import Settings, StorageSettings
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc
from vecdb.server.auth import Authenticator
from vecdb.server.grpc_service import create_grpc_server
from vecdb.server.metrics import Metrics
from vecdb.server.rest import create_app

#: The keys of the authenticated variants: "adm" is an admin key, "ro" a read-only one.
API_KEYS = ("adm", "ro:read")
#: The REST body limit of the ``rest`` fixtures (small, so that the 413 path is cheap to hit).
MAX_REQUEST_BYTES = 64 << 10


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    # No fsync per write: these tests are about the wire, not durability.
    settings = Settings(storage=StorageSettings(sync_writes=False))
    with Database(tmp_path / "data", settings=settings) as database:
        yield database


def make_app(db: Database, keys: Sequence[str] = (), max_request_bytes: int = MAX_REQUEST_BYTES) -> FastAPI:
    return create_app(
        db, authenticator=Authenticator(keys), metrics=Metrics(db), max_request_bytes=max_request_bytes
    )


def make_client(app: FastAPI) -> httpx.AsyncClient:
    # raise_app_exceptions=False: an unexpected exception shows as the 500 the server would send, so the
    # "never a 5xx for bad input" assertions see it as a status code.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
def app(db: Database) -> FastAPI:
    """The REST app, not yet ready (``app.state.ready`` is False)."""
    return make_app(db)


@pytest.fixture
async def rest(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the open (no API key) REST app, marked ready."""
    app.state.ready = True
    async with make_client(app) as client:
        yield client


@pytest.fixture
async def rest_auth(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the REST app with API_KEYS (no key sent by default)."""
    app = make_app(db, API_KEYS)
    app.state.ready = True
    async with make_client(app) as client:
        yield client


@dataclass
class GrpcServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    channel: grpc.Channel
    stub: pb_grpc.VecDBStub


def _grpc_server(db: Database, keys: Sequence[str]) -> Iterator[GrpcServer]:
    server, port, health_servicer = create_grpc_server(
        db,
        authenticator=Authenticator(keys),
        metrics=Metrics(db),
        address="127.0.0.1:0",
        workers=4,
        max_message_bytes=MAX_REQUEST_BYTES,
    )
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield GrpcServer(server, port, health_servicer, channel, pb_grpc.VecDBStub(channel))
    finally:
        channel.close()
        server.stop(None).wait()


@pytest.fixture
def grpc_server(db: Database) -> Iterator[GrpcServer]:
    """An open (no API key) gRPC server on 127.0.0.1 with a connected stub."""
    yield from _grpc_server(db, ())


@pytest.fixture
def stub(grpc_server: GrpcServer) -> pb_grpc.VecDBStub:
    return grpc_server.stub


@pytest.fixture
def grpc_auth(db: Database) -> Iterator[GrpcServer]:
    """A gRPC server with API_KEYS."""
    yield from _grpc_server(db, API_KEYS)


@pytest.fixture
def max_request_bytes() -> int:
    """The body/message limit the server fixtures run with."""
    return MAX_REQUEST_BYTES


@pytest.fixture
def api_keys() -> tuple[str, ...]:
    """The keys of the ``*_auth`` fixtures."""
    return API_KEYS
