"""No request, stream or socket can take a real ``vecdb serve`` down (issue 18): idle gRPC streams, idle and
slow sockets, a low open-files limit, a huge body without a key. Every loop is bounded in count and time;
everything is on loopback."""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serverproc import ServerProcess, StartServer, grpc_error_code

from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb

DIM = 4
ANSWER_WITHIN_S = 2.0


def seed(sp: ServerProcess) -> None:
    with sp.http() as http:
        assert http.post("/v1/collections", json={"name": "docs", "dim": DIM}).status_code == 201
        body = {"ids": ["a", "b"], "vectors": [[1, 0, 0, 0], [0, 1, 0, 0]]}
        assert http.post("/v1/collections/docs/upsert", json=body).status_code == 200


def search_request() -> pb.SearchRequest:
    return pb.SearchRequest(
        collection="docs", queries=convert.to_proto_vectors(np.eye(1, DIM, dtype=np.float32)), k=1
    )


def assert_serving(sp: ServerProcess) -> None:
    """gRPC health, a gRPC search and REST /healthz and a search each answer within ANSWER_WITHIN_S."""
    channel = sp.channel()
    started = time.monotonic()
    health = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[no-untyped-call]
        health_pb2.HealthCheckRequest(service=""), timeout=ANSWER_WITHIN_S
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert sp.stub().Search(search_request(), timeout=ANSWER_WITHIN_S).results[0].hits[0].id == "a"
    with sp.http() as http:
        http.timeout = ANSWER_WITHIN_S  # type: ignore[assignment]
        assert http.get("/healthz").status_code == 200
        body = {"vectors": [[1, 0, 0, 0]], "k": 1}
        assert http.post("/v1/collections/docs/search", json=body).json()["results"][0][0]["id"] == "a"
    assert time.monotonic() - started < 4 * ANSWER_WITHIN_S


# ---- gRPC streams (M1) ----------------------------------------------------------------------------------


def idle_stream(
    release: threading.Event, first: pb.UpsertRequest | None = None
) -> Iterator[pb.UpsertRequest]:
    """A client stream that sends ``first`` (if any), then nothing until released (bounded: 60 s)."""
    if first is not None:
        yield first
    release.wait(60)


def test_idle_upsert_streams_cannot_starve_grpc(server: ServerProcess) -> None:
    """20 idle UpsertStream calls against the default 16 threads: the first grpc_max_streams (8) hold a
    thread each, the rest are RESOURCE_EXHAUSTED at once, and health and a search still answer at once."""
    seed(server)
    release = threading.Event()
    stub = server.stub()
    futures = [stub.UpsertStream.future(idle_stream(release), timeout=60) for _ in range(20)]
    try:
        time.sleep(0.5)  # let every call reach the server
        assert_serving(server)
        refused = [f for f in futures if f.done()]
        assert len(refused) == 12, [f.done() for f in futures]
        for f in refused:
            err = f.exception()
            assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert grpc_error_code(err) == "limit_exceeded"
    finally:
        release.set()
    for f in futures:
        f.exception(timeout=10)  # every call ends once its stream does


def test_an_idle_stream_is_ended_with_deadline_exceeded(server_factory: StartServer) -> None:
    sp = server_factory(None, "--grpc-stream-idle-seconds", "1")
    seed(sp)
    release = threading.Event()
    first = pb.UpsertRequest(
        collection="docs",
        records=convert.to_proto_records(["c"], None),
        vectors=convert.to_proto_vectors(np.eye(1, DIM, dtype=np.float32)),
    )
    started = time.monotonic()
    future = sp.stub().UpsertStream.future(idle_stream(release, first), timeout=30)
    try:
        err = future.exception(timeout=10)
    finally:
        release.set()
    assert err is not None and err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err
    assert time.monotonic() - started < 5
    assert_serving(sp)


# ---- sockets (M2) ---------------------------------------------------------------------------------------


@contextmanager
def idle_sockets(port: int, count: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            socks.append(s)
        yield socks


@contextmanager
def soft_open_files_limit(limit: int) -> Iterator[None]:
    """Lower this process's soft limit while a server is spawned (it inherits it), then restore it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_idle_sockets_under_a_low_open_files_limit(server_factory: StartServer) -> None:
    """The server is started with a soft limit of 256 open files; 200 idle sockets to each port (400)
    would exhaust it, but vecdb serve raises its soft limit to the hard one (and logs it)."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 2048:
        pytest.skip("the hard open-files limit is too low to tell")
    with soft_open_files_limit(256):
        sp = server_factory(wait=False)
    sp.wait_ready()
    seed(sp)
    with idle_sockets(sp.rest_port, 200), idle_sockets(sp.grpc_port, 200):
        time.sleep(0.5)
        assert_serving(sp)
    assert "open files limit" in sp.log()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` (recv returns b"" or the connection resets) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /v1/collections/docs/search HTTP/1.1\r\nHost: x\r\n", b"GET /healthz HTTP/1.1\r\nHo"],
    ids=["nothing", "partial-headers", "slowloris"],
)
def test_rest_connections_that_send_no_whole_request_are_closed(
    server_factory: StartServer, sent: bytes
) -> None:
    sp = server_factory(None, "--read-timeout-seconds", "1")
    with socket.create_connection(("127.0.0.1", sp.rest_port), timeout=5) as sock:
        sock.sendall(sent)
        assert closed_within(sock, 5)


def test_rest_body_that_never_completes_is_closed(server_factory: StartServer) -> None:
    sp = server_factory(None, "--read-timeout-seconds", "1")
    seed(sp)
    with socket.create_connection(("127.0.0.1", sp.rest_port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/collections/docs/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"vectors": '
        )
        assert closed_within(sock, 5)
    assert_serving(sp)


# ---- the key before the body (M9) -----------------------------------------------------------------------


def test_a_huge_body_without_a_key_is_refused_before_it_is_sent(server_factory: StartServer) -> None:
    """Headers announcing 63 MB and no key: the 401 arrives while the body has not been sent at all."""
    sp = server_factory(None, "--api-key", "adm")
    with socket.create_connection(("127.0.0.1", sp.rest_port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/collections/docs/upsert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (63 << 20)
        )
        sock.settimeout(5)
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 401 "), head[:200]
    assert b"unauthenticated" in head or b"content-length" in head.lower()
