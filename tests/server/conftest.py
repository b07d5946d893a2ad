"""Fixtures for the server tests: a Database, the REST app behind an in-process httpx client, and a gRPC
server on an ephemeral loopback port with a stub; each open and with API keys (API_KEYS).

Function-scoped fixtures (``db``, ``rest``, ``rest_auth``, ``grpc_server``, ``stub``, ``grpc_auth``) give
every test a fresh data directory. Creating a collection costs two RocksDB opens, so tests that only read
(or write under names of their own) share one database per module: ``shared_db`` with ``shared_rest``,
``shared_rest_auth``, ``shared_grpc`` and ``shared_grpc_auth`` over it.
"""

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
#: The REST body / gRPC message limit of the servers here (small, so that the limit is cheap to hit).
MAX_REQUEST_BYTES = 64 << 10


def open_db(path: Path) -> Database:
    # No fsync per write: these tests are about the wire, not durability.
    return Database(path, settings=Settings(storage=StorageSettings(sync_writes=False)))


def make_app(db: Database, keys: Sequence[str] = (), *, ready: bool = True) -> FastAPI:
    app = create_app(
        db, authenticator=Authenticator(keys), metrics=Metrics(db), max_request_bytes=MAX_REQUEST_BYTES
    )
    app.state.ready = ready
    return app


def make_client(app: FastAPI) -> httpx.AsyncClient:
    # raise_app_exceptions=False: an unexpected exception shows as the 500 the server would send, so the
    # "never a 5xx for bad input" assertions see it as a status code.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@dataclass
class GrpcServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    channel: grpc.Channel
    stub: pb_grpc.VecDBStub


def run_grpc_server(db: Database, keys: Sequence[str] = ()) -> Iterator[GrpcServer]:
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
def max_request_bytes() -> int:
    """The body/message limit the servers here run with."""
    return MAX_REQUEST_BYTES


# ---- one database per test ------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with open_db(tmp_path / "data") as database:
        yield database


@pytest.fixture
def app(db: Database) -> FastAPI:
    """The open REST app over ``db``, marked ready."""
    return make_app(db)


@pytest.fixture
async def rest(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` (no API key)."""
    async with make_client(app) as client:
        yield client


@pytest.fixture
async def rest_auth(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a REST app with API_KEYS over ``db`` (it sends no key by default)."""
    async with make_client(make_app(db, API_KEYS)) as client:
        yield client


@pytest.fixture
def grpc_server(db: Database) -> Iterator[GrpcServer]:
    """An open (no API key) gRPC server over ``db`` on 127.0.0.1 with a connected stub."""
    yield from run_grpc_server(db)


@pytest.fixture
def stub(grpc_server: GrpcServer) -> pb_grpc.VecDBStub:
    return grpc_server.stub


@pytest.fixture
def grpc_auth(db: Database) -> Iterator[GrpcServer]:
    """A gRPC server with API_KEYS over ``db``."""
    yield from run_grpc_server(db, API_KEYS)


# ---- one database per module ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with open_db(tmp_path_factory.mktemp("shared") / "data") as database:
        yield database


@pytest.fixture(scope="module")
def _shared_app(shared_db: Database) -> FastAPI:
    return make_app(shared_db)


@pytest.fixture(scope="module")
def _shared_app_auth(shared_db: Database) -> FastAPI:
    return make_app(shared_db, API_KEYS)


@pytest.fixture
async def shared_rest(_shared_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(_shared_app) as client:
        yield client


@pytest.fixture
async def shared_rest_auth(_shared_app_auth: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(_shared_app_auth) as client:
        yield client


@pytest.fixture(scope="module")
def shared_grpc(shared_db: Database) -> Iterator[GrpcServer]:
    yield from run_grpc_server(shared_db)


@pytest.fixture(scope="module")
def shared_grpc_auth(shared_db: Database) -> Iterator[GrpcServer]:
    yield from run_grpc_server(shared_db, API_KEYS)
