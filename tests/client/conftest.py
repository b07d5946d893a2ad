"""Fixtures of the client tests: real ``vecdb serve`` subprocesses and ``vecdb_client`` clients of them.

- ``vecdb_server`` (session-scoped, shared by every module here, the LangChain tests included): one server
  with no API keys and built-in embedding on (its default model loads on first use), on free ports over a
  temporary data directory. At the end of the session it gets SIGTERM and must exit 0 within 15 s, and
  must not have exited by itself before. Tests on it must create collections under names of their own
  (``unique_name``) and must not stop it.
- ``server_factory``: ``start(*args, wait=True, rest_port=None, grpc_port=None)`` for tests that need a
  server of their own (API keys, late start); each gets its own data directory and the same clean-exit
  check at teardown.
- ``transport``: ``"rest"`` or ``"grpc"`` (parametrized); ``client`` / ``aclient``: a ``Client`` /
  ``AsyncClient`` of ``vecdb_server`` over it (gRPC: ``prefer_grpc=True``, ``grpc_url`` the server's
  gRPC target), closed at teardown.
- ``unique_name``: a collection name no other test uses (valid: letters, digits, ``_``, ``-``; <= 64).
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from clientkit import (
    TRANSPORTS,
    StartServer,
    async_client_for,
    client_for,
    start_server,
    stop_checked,
)
from serverproc import ServerProcess

from vecdb_client import AsyncClient, Client

_names = itertools.count()


@pytest.fixture(scope="session")
def vecdb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ready server for the whole session (no API keys, embedding on); checked to exit 0 at the end."""
    sp = start_server(tmp_path_factory.mktemp("vecdb-server"))
    yield sp
    stop_checked([sp])


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[StartServer]:
    """``start(*args, wait=True, rest_port=None, grpc_port=None)``: a server of the test's own, each on a
    fresh data directory; at teardown each must exit 0 on SIGTERM (unless the test stopped it itself)."""
    started: list[ServerProcess] = []

    def start(
        *args: str, wait: bool = True, rest_port: int | None = None, grpc_port: int | None = None
    ) -> ServerProcess:
        base = tmp_path / f"server{len(started)}"
        sp = start_server(base, *args, rest_port=rest_port, grpc_port=grpc_port, wait=wait)
        started.append(sp)
        return sp

    yield start
    stop_checked(started)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """``"rest"`` or ``"grpc"``."""
    return str(request.param)


@pytest.fixture
def client(vecdb_server: ServerProcess, transport: str) -> Iterator[Client]:
    """A ``Client`` of ``vecdb_server`` over ``transport``."""
    with client_for(transport, vecdb_server.rest_url, vecdb_server.grpc_target) as c:
        yield c


@pytest.fixture
async def aclient(vecdb_server: ServerProcess, transport: str) -> AsyncIterator[AsyncClient]:
    """An ``AsyncClient`` of ``vecdb_server`` over ``transport``."""
    async with async_client_for(transport, vecdb_server.rest_url, vecdb_server.grpc_target) as c:
        yield c


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A collection name unique in the session: a counter and the test's name, at most 50 characters (so
    that a test may append a short suffix of its own)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")
    return f"t{next(_names):03d}-{slug}"[:50].rstrip("-")
