"""A real ``vecdb serve`` over damaged storage (issue 18): never a partial answer, /readyz and /metrics
say which collection is damaged, ``vecdb export`` fails instead of writing a short file, and ``vecdb
check`` finds the damage beside the running server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from damage import flip, table_file_of
from serverproc import ServerProcess, StartServer, grpc_error_code
from test_ingest_cli import vecdb

from vecdb.server._generated import vecdb_pb2 as pb
from vecdb_client import Client

DIM = 8
N = 3000


def fill(server: ServerProcess, name: str, n: int = N) -> None:
    x = np.random.default_rng(1).standard_normal((n, DIM)).astype(np.float32)
    with Client(server.rest_url) as client:
        col = client.create_collection(name, dim=DIM, metric="cosine", index={"type": "flat"})
        for start in range(0, n, 1000):
            stop = min(n, start + 1000)
            col.upsert(
                [f"r{i:05d}" for i in range(start, stop)],
                x[start:stop],
                texts=[f"text {i} " * 8 for i in range(start, stop)],
                sources=[f"s{i % 5}" for i in range(start, stop)],
            )


def store(data: Path, name: str) -> Path:
    return data / "collections" / name / "store"


def test_damaged_store_is_reported_and_never_served_partially(
    server_factory: StartServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    server = server_factory(data)
    fill(server, "bad")
    fill(server, "good", n=100)
    assert server.stop() == 0
    flip(table_file_of(store(data, "bad"), "ids"), 0.4)  # scroll reads ids; open does not

    server = server_factory(data)
    http = server.http()
    request.addfinalizer(http.close)
    assert http.get("/readyz").json() == {"status": "ready"}  # nothing read the damage yet
    # Scroll: the whole collection or DATA_LOSS, never 796 of 3,000 records with a null cursor.
    seen, cursor, failed = 0, None, None
    while True:
        r = http.post("/v1/collections/bad/scroll", json={"limit": 500, "cursor": cursor})
        if r.status_code != 200:
            failed = r
            break
        seen += len(r.json()["records"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert failed is not None, f"scroll answered {seen} of {N} records as complete"
    assert failed.status_code == 500 and failed.json()["error"]["code"] == "corruption"
    # vecdb export: exit status 1, not 0 with a short file.
    res = vecdb("export", "--collection", "bad", "--url", server.rest_url, "-o", tmp_path / "out.jsonl")
    assert res.returncode == 1 and "damaged" in res.stderr, res.stderr
    # gRPC says DATA_LOSS with the same error code.
    with pytest.raises(grpc.RpcError) as info:
        list(server.stub().Scroll(pb.ScrollRequest(collection="bad", limit=N)))
    assert info.value.code() == grpc.StatusCode.DATA_LOSS and grpc_error_code(info.value) == "corruption"
    # Reported: /readyz 503 (a count only: it needs no key), /metrics names it.
    r = http.get("/readyz")
    assert (r.status_code, r.json()) == (503, {"status": "degraded", "damaged_collections": 1})
    assert 'vecdb_collection_damaged{collection="bad"} 1.0' in http.get("/metrics").text
    # The healthy collection is served as ever.
    r = http.post("/v1/collections/good/search", json={"vectors": [[0.1] * DIM], "k": 3})
    assert r.status_code == 200 and len(r.json()["results"][0]) == 3

    # vecdb check, online beside the running server: the damaged collection, exit status 1.
    res = vecdb("check", data, "--json")
    assert res.returncode == 1, res.stderr
    rows = {row["name"]: row for row in map(json.loads, res.stdout.splitlines())}
    assert rows["good"]["ok"] and rows["good"]["records"] == 100
    assert not rows["bad"]["ok"] and rows["bad"]["problems"]


def test_collection_that_fails_to_open_is_refused_and_reported(
    server_factory: StartServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    server = server_factory(data)
    fill(server, "bad", n=500)
    assert server.stop() == 0
    flip(table_file_of(store(data, "bad"), "records"), 0.4)  # read whole at open

    server = server_factory(data, wait=False)
    http = server.http()
    request.addfinalizer(http.close)
    deadline = time.monotonic() + 60
    while (r := _readyz(http)) is None or r.json()["status"] == "loading":
        assert time.monotonic() < deadline, "never left loading"
        time.sleep(0.1)
    assert (r.status_code, r.json()) == (503, {"status": "degraded", "damaged_collections": 1})
    for _ in range(2):  # refused every time, never opened short
        r = http.post("/v1/collections/bad/search", json={"vectors": [[0.1] * DIM], "k": 3})
        assert r.status_code == 500 and r.json()["error"]["code"] == "corruption"
        assert "/" not in r.json()["error"]["message"].split("(")[-1]  # no server path echoed
    res = vecdb("check", data)
    assert res.returncode == 1 and "DAMAGED  collection bad" in res.stdout, res.stdout + res.stderr


def _readyz(http: httpx.Client) -> httpx.Response | None:
    try:
        return http.get("/readyz")
    except httpx.TransportError:  # not listening yet
        return None
