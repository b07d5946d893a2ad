"""Transport behaviour of the clients, with real processes and sockets (no mocks): retries, timeouts,
lifecycle, argument checks of the constructor.

Pinned:

- nothing listening: an idempotent call (list, count, search) raises UnavailableError after its retries,
  having waited about the backoff (at least half of each delay: jitter); a non-idempotent call
  (create_collection, delete, drop) raises UnavailableError at once, without a retry; same for
  AsyncClient;
- a server that starts about 1 s after an idempotent call began (``retries=8, backoff=0.2``): the call
  succeeds;
- a listener that accepts and never answers: REST with ``timeout=0.5`` raises DeadlineExceededError within
  a few seconds (not retried); gRPC (no HTTP/2 ever spoken) raises UnavailableError or
  DeadlineExceededError within a bounded time;
- ``with Client(...)`` / ``async with AsyncClient(...)`` close on exit; calls after close raise VecDBError
  ("closed"), from handles too; ``close()`` is idempotent;
- AsyncClient gives the same transcript as Client for the same script, over both transports;
- bad URLs, bad gRPC URLs, a non-positive timeout and negative retries raise ValueError; ``prefer_grpc``
  without ``grpc_url`` means the REST host on port 50051, and ``grpc_url`` without ``prefer_grpc`` is REST.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from clientkit import (
    TRANSPORTS,
    StartServer,
    assert_congruent,
    async_client_for,
    client_for,
    run_script,
    run_script_async,
    script_steps,
)
from serverproc import ServerProcess, free_port

from vecdb_client import AsyncClient, Client
from vecdb_client.errors import DeadlineExceededError, UnavailableError, VecDBError

#: Generous bounds: the machine may be slow, but a hang is a failure.
SLACK_S = 10.0


def dead_endpoint() -> tuple[str, str]:
    """A REST URL and a gRPC target where nothing listens (ports just freed)."""
    return f"http://127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"


def min_backoff(retries: int, backoff: float, cap: float = 2.0) -> float:
    """The least total sleep of ``retries`` retries: each delay is at least half of min(cap, b * 2**i)."""
    return sum(min(cap, backoff * 2.0**i) * 0.5 for i in range(retries))


# ---- (a) nothing listening --------------------------------------------------------------------------------

IDEMPOTENT: dict[str, Callable[[Client], Any]] = {
    "list_collections": lambda c: c.list_collections(),
    "count": lambda c: c.collection("x").count(),
    "search": lambda c: c.collection("x").search([1.0, 0.0]),
}
NON_IDEMPOTENT: dict[str, Callable[[Client], Any]] = {
    "create_collection": lambda c: c.create_collection("x", dim=2),
    "delete": lambda c: c.collection("x").delete(["a"]),
    "drop_collection": lambda c: c.drop_collection("x"),
}


@pytest.mark.parametrize("op", list(IDEMPOTENT))
def test_idempotent_call_retries_then_unavailable(transport: str, op: str) -> None:
    retries, backoff = 3, 0.1
    with client_for(transport, *dead_endpoint(), timeout=2.0, retries=retries, backoff=backoff) as c:
        start = time.monotonic()
        with pytest.raises(UnavailableError):
            IDEMPOTENT[op](c)
        elapsed = time.monotonic() - start
    least = min_backoff(retries, backoff)  # 0.35 s
    assert elapsed >= least * 0.9, f"{op} gave up after {elapsed:.2f} s: it did not wait {least:.2f} s"
    assert elapsed < least * 4 + SLACK_S, f"{op} took {elapsed:.2f} s"


@pytest.mark.parametrize("op", list(NON_IDEMPOTENT))
def test_non_idempotent_call_is_not_retried(transport: str, op: str) -> None:
    # With backoff=2.0 a single retry would sleep at least 1 s first.
    with client_for(transport, *dead_endpoint(), timeout=2.0, retries=5, backoff=2.0) as c:
        start = time.monotonic()
        with pytest.raises(UnavailableError):
            NON_IDEMPOTENT[op](c)
        elapsed = time.monotonic() - start
    assert elapsed < 1.0, f"{op} took {elapsed:.2f} s: was it retried?"


async def test_async_client_retries_then_unavailable(transport: str) -> None:
    retries, backoff = 3, 0.2
    async with async_client_for(
        transport, *dead_endpoint(), timeout=2.0, retries=retries, backoff=backoff
    ) as c:
        start = time.monotonic()
        with pytest.raises(UnavailableError):
            await c.collection("x").count()
        elapsed = time.monotonic() - start
        assert elapsed >= min_backoff(retries, backoff) * 0.9, elapsed
        assert elapsed < SLACK_S, elapsed

        start = time.monotonic()
        with pytest.raises(UnavailableError):
            await c.create_collection("x", dim=2)
        assert time.monotonic() - start < 1.0


# ---- (b) a server that comes up during the retries --------------------------------------------------


def test_call_succeeds_when_the_server_starts_during_retries(
    transport: str, server_factory: StartServer
) -> None:
    rest_port, grpc_port = free_port(), free_port()
    started: list[ServerProcess] = []
    timer = threading.Timer(
        1.0, lambda: started.append(server_factory(rest_port=rest_port, grpc_port=grpc_port, wait=False))
    )
    url, target = f"http://127.0.0.1:{rest_port}", f"127.0.0.1:{grpc_port}"
    with client_for(transport, url, target, timeout=5.0, retries=8, backoff=0.2) as c:
        start = time.monotonic()
        timer.start()
        try:
            names = c.list_collections()
        finally:
            timer.join()
        elapsed = time.monotonic() - start
    assert names == []
    assert len(started) == 1
    assert 0.9 <= elapsed < 30.0, elapsed  # it waited for the server (which started after 1 s)


# ---- (c) a listener that never answers --------------------------------------------------------------------


class BlackHole:
    """A TCP listener on a free loopback port that accepts connections and never reads or writes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="black-hole", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def test_rest_call_to_silent_server_raises_deadline_exceeded(black_hole: BlackHole) -> None:
    with Client(f"http://127.0.0.1:{black_hole.port}", timeout=0.5, retries=3, backoff=0.2) as c:
        start = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            c.collection("x").count()  # idempotent, yet not retried: the server may be working on it
        elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 5.0, elapsed
    assert black_hole.accepted, "the client never connected"


def test_grpc_call_to_silent_server_fails_in_bounded_time(black_hole: BlackHole) -> None:
    target = f"127.0.0.1:{black_hole.port}"
    with Client("http://127.0.0.1:1", grpc_url=target, prefer_grpc=True, timeout=0.5, retries=1) as c:
        start = time.monotonic()
        with pytest.raises((UnavailableError, DeadlineExceededError)):
            c.collection("x").count()
        elapsed = time.monotonic() - start
    assert elapsed < SLACK_S, elapsed
    assert black_hole.accepted, "the client never connected"


async def test_async_call_to_silent_server_fails_in_bounded_time(
    transport: str, black_hole: BlackHole
) -> None:
    url, target = f"http://127.0.0.1:{black_hole.port}", f"127.0.0.1:{black_hole.port}"
    async with async_client_for(transport, url, target, timeout=0.5, retries=1) as c:
        start = time.monotonic()
        with pytest.raises((UnavailableError, DeadlineExceededError)) as info:
            await c.list_collections()
        elapsed = time.monotonic() - start
    if transport == "rest":
        assert type(info.value) is DeadlineExceededError
    assert elapsed < SLACK_S, elapsed


# ---- (d) lifecycle ----------------------------------------------------------------------------------------


def test_context_manager_closes_and_close_is_idempotent(vecdb_server: ServerProcess, transport: str) -> None:
    with client_for(transport, vecdb_server.rest_url, vecdb_server.grpc_target) as c:
        assert isinstance(c.list_collections(), list)
        handle = c.collection("anything")
    for call in (c.list_collections, handle.count, lambda: c.create_collection("x", dim=2)):
        with pytest.raises(VecDBError, match="closed"):
            call()
    c.close()
    c.close()
    with pytest.raises(VecDBError, match="closed"):
        c.embed(["x"])

    plain = client_for(transport, vecdb_server.rest_url, vecdb_server.grpc_target)
    plain.close()
    plain.close()
    with pytest.raises(VecDBError, match="closed"):
        plain.list_collections()


async def test_async_context_manager_closes_and_close_is_idempotent(
    vecdb_server: ServerProcess, transport: str
) -> None:
    async with async_client_for(transport, vecdb_server.rest_url, vecdb_server.grpc_target) as c:
        assert isinstance(await c.list_collections(), list)
        handle = c.collection("anything")
    with pytest.raises(VecDBError, match="closed"):
        await c.list_collections()
    with pytest.raises(VecDBError, match="closed"):
        await handle.count()
    await c.close()
    await c.close()

    unused = async_client_for(transport, vecdb_server.rest_url, vecdb_server.grpc_target)
    await unused.close()  # never connected
    await unused.close()
    with pytest.raises(VecDBError, match="closed"):
        await unused.list_collections()


# ---- (e) async equals sync --------------------------------------------------------------------------------


async def test_async_client_matches_sync_client(vecdb_server: ServerProcess, transport: str) -> None:
    sync_name, async_name = f"sync-{transport}-{id(vecdb_server)}", f"async-{transport}-{id(vecdb_server)}"
    with client_for(transport, vecdb_server.rest_url, vecdb_server.grpc_target) as c:
        # The sync client blocks; run it in a thread so that the loop stays free (nothing else runs).
        sync = await asyncio.to_thread(run_script, c, sync_name, script_steps(sync_name))
    async with async_client_for(transport, vecdb_server.rest_url, vecdb_server.grpc_target) as ac:
        async_ = await run_script_async(ac, async_name, script_steps(async_name))
    assert [e[1] for e in sync].count("error") == 4, sync
    assert_congruent(sync, async_, tol=1e-6, what=f"sync and async transcripts over {transport}")


# ---- (f) constructor arguments ----------------------------------------------------------------------------

BAD_ARGS: list[Any] = [
    pytest.param({"url": "not a url"}, id="not-a-url"),
    pytest.param({"url": "ftp://127.0.0.1:8080"}, id="ftp-url"),
    pytest.param({"url": "http://"}, id="no-host"),
    pytest.param({"url": "127.0.0.1:8080"}, id="no-scheme"),
    pytest.param({"grpc_url": "ftp://127.0.0.1:1", "prefer_grpc": True}, id="ftp-grpc-url"),
    pytest.param({"grpc_url": "", "prefer_grpc": True}, id="empty-grpc-url"),
    pytest.param({"grpc_url": "grpc://", "prefer_grpc": True}, id="grpc-url-no-host"),
    pytest.param({"timeout": 0}, id="zero-timeout"),
    pytest.param({"timeout": -1.0}, id="negative-timeout"),
    pytest.param({"retries": -1}, id="negative-retries"),
]


@pytest.mark.parametrize("kwargs", BAD_ARGS)
@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_bad_constructor_arguments_raise_value_error(cls: type[Any], kwargs: dict[str, Any]) -> None:
    args = {"url": "http://127.0.0.1:8080", **kwargs}
    with pytest.raises(ValueError):
        cls(**args)


def test_endpoint_resolution() -> None:
    with Client("http://127.0.0.1:8080", prefer_grpc=True) as c:
        assert (c.transport_name, c.endpoint.grpc_target) == ("grpc", "127.0.0.1:50051")
    with Client("http://127.0.0.1:8080", grpc_url="127.0.0.1:9000") as c:
        assert c.transport_name == "grpc"  # grpc_url alone means gRPC (issue 24)
        assert c.endpoint.grpc_target == "127.0.0.1:9000"
    with Client("http://localhost:8080/", grpc_url="grpcs://db.example:443", prefer_grpc=True) as c:
        assert (c.endpoint.grpc_target, c.endpoint.grpc_tls) == ("db.example:443", True)
        assert c.endpoint.rest_url == "http://localhost:8080"
    for transport in TRANSPORTS:
        with client_for(transport, "http://127.0.0.1:1", "127.0.0.1:2") as c:
            assert c.transport_name == transport
