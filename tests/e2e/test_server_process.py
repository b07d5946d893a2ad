"""End to end against a real ``vecdb serve`` process: REST and gRPC, restart, locking, keys, settings."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serverproc import (
    ServerProcess,
    StartServer,
    free_port,
    grpc_error_code,
    metadata_for,
    server_env,
    vecdb_command,
)

from vecdb.config import Settings
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc

DIM = 16


def vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def rest_ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def rest_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def grpc_fails(call: Any, status: grpc.StatusCode, code: str | None = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    assert err.code() == status, err  # type: ignore[attr-defined]
    if code is not None:
        assert grpc_error_code(err) == code
    return err


def upsert_request(collection: str, ids: list[str], vecs: np.ndarray, **columns: Any) -> pb.UpsertRequest:
    return pb.UpsertRequest(
        collection=collection,
        records=convert.to_proto_records(
            ids, columns.get("texts"), columns.get("metas"), columns.get("sources")
        ),
        vectors=convert.to_proto_vectors(vecs),
    )


def health_status(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
    resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(resp.status)


# ---- CRUD over both transports -------------------------------------------------------------------------


def test_rest_crud_against_process(server: ServerProcess) -> None:
    vecs = vectors(6)
    with server.http() as http:
        assert rest_ok(http.get("/healthz")) == {"status": "ok"}
        assert rest_ok(http.get("/readyz")) == {"status": "ready"}
        info = rest_ok(http.post("/v1/collections", json={"name": "docs", "dim": DIM}), 201)
        assert (info["name"], info["dim"], info["metric"], info["count"]) == ("docs", DIM, "cosine", 0)
        rest_error(http.post("/v1/collections", json={"name": "docs", "dim": DIM}), 409, "collection_exists")
        body = {
            "ids": [f"d{i}" for i in range(6)],
            "vectors": vecs.tolist(),
            "texts": [f"text {i}" for i in range(6)],
            "metadatas": [{"n": i, "lang": "en" if i % 2 else "de"} for i in range(6)],
            "sources": ["a.md", "a.md", "dir/b.md", "dir/b.md", "dir/b.md", None],
        }
        assert rest_ok(http.post("/v1/collections/docs/upsert", json=body)) == {"count": 6}
        assert rest_ok(http.get("/v1/collections")) == {"collections": ["docs"]}

        got = rest_ok(http.post("/v1/collections/docs/get", json={"ids": ["d2", "nope", "d0"]}))["records"]
        assert [r["id"] for r in got] == ["d2", "d0"]
        assert got[0] == {
            "id": "d2",
            "text": "text 2",
            "metadata": {"n": 2, "lang": "de"},
            "source": "dir/b.md",
            "vector": None,
        }

        res = rest_ok(http.post("/v1/collections/docs/search", json={"vectors": vecs[:2].tolist(), "k": 3}))
        assert [hits[0]["id"] for hits in res["results"]] == ["d0", "d1"]
        assert res["results"][0][0]["score"] == pytest.approx(1.0, abs=1e-5)
        res = rest_ok(
            http.post(
                "/v1/collections/docs/search",
                json={"vectors": vecs[:1].tolist(), "k": 10, "filter": {"lang": "en"}, "include": []},
            )
        )
        assert sorted(h["id"] for h in res["results"][0]) == ["d1", "d3", "d5"]
        assert all(h["text"] is None and h["metadata"] == {} for h in res["results"][0])

        flt = orjson.dumps({"n": {"$gte": 4}}).decode()
        assert rest_ok(http.get("/v1/collections/docs/count", params={"filter": flt})) == {"count": 2}
        assert rest_ok(http.get("/v1/collections/docs/sources")) == {
            "sources": [{"source": "a.md", "count": 2}, {"source": "dir/b.md", "count": 3}]
        }
        assert rest_ok(http.delete("/v1/collections/docs/sources/dir/b.md")) == {"count": 3}
        assert rest_ok(http.post("/v1/collections/docs/delete", json={"ids": ["d0", "zz"]})) == {"count": 1}
        assert rest_ok(http.post("/v1/collections/docs/delete", json={"filter": {"n": 5}})) == {"count": 1}
        assert rest_ok(http.get("/v1/collections/docs/count")) == {"count": 1}
        rest_error(
            http.post("/v1/collections/docs/search", json={"vectors": [[1.0, 2.0]]}),
            400,
            "dimension_mismatch",
        )
        rest_error(http.get("/v1/collections/nope/count"), 404, "collection_not_found")
        rest_error(http.get("/v1/nothing-here"), 404, "not_found")
        metrics = http.get("/metrics").text
        assert 'vecdb_requests_total{code="ok",operation="upsert",transport="rest"} 1.0' in metrics
        assert rest_ok(http.delete("/v1/collections/docs")) == {"dropped": "docs"}
        assert rest_ok(http.get("/v1/collections")) == {"collections": []}


def test_grpc_crud_against_process(server: ServerProcess) -> None:
    stub = server.stub()
    assert health_status(server.channel()) == health_pb2.HealthCheckResponse.SERVING
    assert health_status(server.channel(), "vecdb.v1.VecDB") == health_pb2.HealthCheckResponse.SERVING

    info = stub.CreateCollection(
        pb.CreateCollectionRequest(name="g", dim=DIM, metric="l2", index_json='{"type": "flat"}')
    )
    assert (info.name, info.dim, info.metric, orjson.loads(info.index_json)["type"]) == (
        "g",
        DIM,
        "l2",
        "flat",
    )
    vecs = vectors(30, seed=1)
    ids = [f"g{i}" for i in range(30)]
    metas = [{"i": i, "odd": bool(i % 2)} for i in range(30)]
    sources = [f"s{i % 3}" for i in range(30)]
    # a stream of three batches, the collection named on the first message only
    batches = [upsert_request("g", ids[:10], vecs[:10], metas=metas[:10], sources=sources[:10])]
    for start in (10, 20):
        req = upsert_request(
            "", ids[start : start + 10], vecs[start : start + 10], metas=metas[start : start + 10]
        )
        for r, s in zip(req.records, sources[start : start + 10], strict=True):
            r.source = s
        batches.append(req)
    assert stub.UpsertStream(iter(batches)).count == 30
    assert stub.Count(pb.CountRequest(collection="g")).count == 30
    assert stub.Count(pb.CountRequest(collection="g", filter_json='{"odd": true}')).count == 15

    res = stub.Search(
        pb.SearchRequest(collection="g", queries=convert.to_proto_vectors(vecs[[3, 7]]), k=4)
    ).results
    assert [r.hits[0].id for r in res] == ["g3", "g7"]
    assert res[0].hits[0].score == pytest.approx(0.0, abs=1e-4)  # l2: squared distance to itself
    assert len(res[0].hits) == 4
    hit = convert.from_proto_record(res[0].hits[0])
    assert hit["metadata"] == {"i": 3, "odd": True} and hit["source"] == "s0"

    res = stub.Search(
        pb.SearchRequest(
            collection="g",
            queries=convert.to_proto_vectors(vecs[0]),
            k=2,
            include=pb.Include(fields=["vector"]),
        )
    ).results
    assert np.allclose(np.asarray(res[0].hits[0].vector, dtype=np.float32), vecs[0])
    assert not res[0].hits[0].HasField("source") and res[0].hits[0].metadata_json == ""

    got = stub.Get(pb.GetRequest(collection="g", ids=["g1", "missing"])).records
    assert [r.id for r in got] == ["g1"]
    srcs = stub.ListSources(pb.CollectionRequest(name="g")).sources
    assert [(s.source, s.count) for s in srcs] == [("s0", 10), ("s1", 10), ("s2", 10)]

    assert stub.Delete(pb.DeleteRequest(collection="g", source="s1")).count == 10
    assert stub.Delete(pb.DeleteRequest(collection="g", ids=pb.IdList(ids=["g0", "g3"]))).count == 2
    assert stub.Delete(pb.DeleteRequest(collection="g", filter_json='{"i": {"$gte": 27}}')).count == 2
    assert stub.Count(pb.CountRequest(collection="g")).count == 16

    grpc_fails(
        lambda: stub.Search(pb.SearchRequest(collection="g", queries=convert.to_proto_vectors(vecs[0, :5]))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "dimension_mismatch",
    )
    grpc_fails(
        lambda: stub.Count(pb.CountRequest(collection="nope")),
        grpc.StatusCode.NOT_FOUND,
        "collection_not_found",
    )
    # what gRPC wrote, REST reads
    with server.http() as http:
        assert rest_ok(http.get("/v1/collections/g/count")) == {"count": 16}
    assert list(stub.ListCollections(pb.ListCollectionsRequest()).names) == ["g"]
    stub.DropCollection(pb.CollectionRequest(name="g"))
    grpc_fails(
        lambda: stub.GetCollection(pb.CollectionRequest(name="g")),
        grpc.StatusCode.NOT_FOUND,
        "collection_not_found",
    )


# ---- restart, drain, locking ------------------------------------------------------------------------------


def _wait_indexed(stub: pb_grpc.VecDBStub, name: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = orjson.loads(stub.GetCollection(pb.CollectionRequest(name=name)).index_state_json)
        if state["building"] is None and state["ann_vectors"] > 0:
            return state  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"index of {name} still not built: {state}"
        time.sleep(0.1)


def _snapshot(server: ServerProcess, queries: np.ndarray) -> dict[str, Any]:
    """Everything the restart must preserve: counts, sources, records, search results."""
    stub = server.stub()
    out: dict[str, Any] = {"collections": list(stub.ListCollections(pb.ListCollectionsRequest()).names)}
    for name in out["collections"]:
        info = convert.from_proto_collection_info(stub.GetCollection(pb.CollectionRequest(name=name)))
        srcs = stub.ListSources(pb.CollectionRequest(name=name)).sources
        recs = stub.Get(
            pb.GetRequest(collection=name, ids=[f"{name}-{i}" for i in range(0, 3000, 97)])
        ).records
        res = stub.Search(
            pb.SearchRequest(
                collection=name, queries=convert.to_proto_vectors(queries[:, : info["dim"]]), k=5
            )
        ).results
        out[name] = {
            "count": info["count"],
            "seq": info["seq"],
            "checkpoint_seq": info["checkpoint_seq"],
            # the recall audit's live measurements start again at every start: not preserved
            "index_state": {
                **info["index_state"],
                "recall": {k: v for k, v in info["index_state"]["recall"].items() if k != "audit"},
            },
            "sources": [(s.source, s.count) for s in srcs],
            "records": [convert.from_proto_record(r) for r in recs],
            "hits": [[(h.id, round(h.score, 5)) for h in r.hits] for r in res],
        }
    return out


def test_sigterm_then_restart_keeps_everything(server_factory: StartServer, tmp_path: Path) -> None:
    data = tmp_path / "restart-data"
    first = server_factory(data)
    stub = first.stub()
    stub.CreateCollection(pb.CreateCollectionRequest(name="flat", dim=32, index_json='{"type": "flat"}'))
    stub.CreateCollection(pb.CreateCollectionRequest(name="hnsw", dim=DIM, index_json='{"type": "hnsw"}'))
    for name, dim in (("flat", 32), ("hnsw", DIM)):
        vecs = vectors(3000, dim, seed=dim)

        def stream(name: str = name, vecs: np.ndarray = vecs) -> Iterator[pb.UpsertRequest]:
            for start in range(0, 3000, 500):
                ids = [f"{name}-{i}" for i in range(start, start + 500)]
                metas = [{"i": i, "tag": f"t{i % 7}"} for i in range(start, start + 500)]
                srcs = [f"file-{i // 100}.txt" for i in range(start, start + 500)]
                texts = [f"record {i} of {name}" for i in range(start, start + 500)]
                yield upsert_request(
                    name, ids, vecs[start : start + 500], texts=texts, metas=metas, sources=srcs
                )

        assert stub.UpsertStream(stream()).count == 3000
    stub.Delete(pb.DeleteRequest(collection="flat", source="file-3.txt"))
    stub.Delete(pb.DeleteRequest(collection="hnsw", filter_json='{"tag": "t0"}'))
    _wait_indexed(stub, "hnsw")
    queries = vectors(4, 32, seed=99)
    before = _snapshot(first, queries)
    assert before["flat"]["count"] == 2900 and before["hnsw"]["count"] == 3000 - 429

    assert first.stop() == 0, first.log()
    assert "stopped; indexes checkpointed" in first.log()

    second = server_factory(data)
    after = _snapshot(second, queries)
    for name in ("flat", "hnsw"):
        # SIGTERM checkpointed every index: the restart replays nothing
        assert after[name]["checkpoint_seq"] == after[name]["seq"] == before[name]["seq"]
        before[name]["checkpoint_seq"] = after[name]["checkpoint_seq"]
    assert after == before
    loaded = re.search(r"loaded 2 collections in ([0-9.]+) s", second.log())
    assert loaded, second.log()
    print(
        f"\nrestart: ready {second.ready_seconds:.2f} s after spawn "
        f"(first start {first.ready_seconds:.2f} s; collections loaded in {loaded.group(1)} s)"
    )
    assert second.ready_seconds < 15.0
    assert float(loaded.group(1)) < 2.0


def test_sigterm_lets_an_inflight_stream_finish(server_factory: StartServer, tmp_path: Path) -> None:
    data = tmp_path / "drain-data"
    sp = server_factory(data)
    stub = sp.stub()
    stub.CreateCollection(pb.CreateCollectionRequest(name="d", dim=DIM))
    vecs = vectors(400, seed=5)
    go_on = threading.Event()

    def stream() -> Iterator[pb.UpsertRequest]:
        yield upsert_request("d", [f"x{i}" for i in range(100)], vecs[:100])
        assert go_on.wait(20)
        for start in range(100, 400, 100):
            yield upsert_request("", [f"x{i}" for i in range(start, start + 100)], vecs[start : start + 100])

    future = stub.UpsertStream.future(stream(), timeout=30)
    deadline = time.monotonic() + 10
    while stub.Count(pb.CountRequest(collection="d")).count < 100:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    sp.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while "draining" not in sp.log():  # REST has shut down; gRPC is draining now
        assert time.monotonic() < deadline, sp.log()
        time.sleep(0.02)
    time.sleep(0.2)
    go_on.set()
    assert future.result().count == 400
    assert sp.stop() == 0, sp.log()

    again = server_factory(data)
    assert again.stub().Count(pb.CountRequest(collection="d")).count == 400


def test_second_process_on_same_data_dir_is_refused(server_factory: StartServer, tmp_path: Path) -> None:
    data = tmp_path / "locked"
    first = server_factory(data)
    second = server_factory(data, wait=False)
    try:
        rc = second.proc.wait(15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"second server on a locked data dir is still running:\n{second.log()}")
    second.exit_checked = True
    assert rc != 0
    out = second.log()
    assert "in use by another process" in out and str(data) in out, out
    # the first one is unaffected
    with first.http() as http:
        assert http.get("/readyz").status_code == 200
        rest_ok(http.post("/v1/collections", json={"name": "still", "dim": 4}), 201)


def test_second_process_message_is_one_clean_line(server_factory: StartServer, tmp_path: Path) -> None:
    data = tmp_path / "locked"
    server_factory(data)
    second = server_factory(data, wait=False)
    second.proc.wait(15)
    second.exit_checked = True
    out = second.log()
    assert "Traceback" not in out, out


def _exits_or_ready(sp: ServerProcess, timeout: float = 20.0) -> int | None:
    """The exit code if the process exits, None if it becomes ready instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sp.proc.poll() is not None:
            sp.exit_checked = True
            return int(sp.proc.returncode)
        try:
            sp.wait_ready(0.2)
            return None
        except AssertionError:
            pass
    pytest.fail(f"neither ready nor exited after {timeout} s:\n{sp.log()}")


def test_rest_port_in_use_is_refused(server_factory: StartServer, tmp_path: Path) -> None:
    first = server_factory(tmp_path / "one")
    second = server_factory(tmp_path / "two", rest_port=first.rest_port, wait=False)
    try:  # (its /readyz would be the first server's: wait for the exit)
        rc = second.proc.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a second server on the same REST port is still running:\n{second.log()}")
    second.exit_checked = True
    assert rc != 0, second.log()
    assert "address already in use" in second.log()


def test_grpc_port_in_use_is_refused(server_factory: StartServer, tmp_path: Path) -> None:
    first = server_factory(tmp_path / "one")
    second = server_factory(tmp_path / "two", grpc_port=first.grpc_port, wait=False)
    rc = _exits_or_ready(second)
    assert rc is not None and rc != 0, "a second server shares the gRPC port"


# ---- API keys -------------------------------------------------------------------------------------------


def test_api_keys_enforced_end_to_end(server_factory: StartServer) -> None:
    sp = server_factory(None, "--api-key", "adm", "--api-key", "ro:read")
    body = {"ids": ["a"], "vectors": [[1.0, 0.0, 0.0, 0.0]]}
    search = {"vectors": [[1.0, 0.0, 0.0, 0.0]], "k": 1}
    with sp.http() as anon, sp.http("adm") as adm, sp.http("ro") as ro, sp.http("wrong") as wrong:
        for path in ("/healthz", "/readyz"):
            assert anon.get(path).status_code == 200  # health endpoints need no key
        rest_error(anon.get("/metrics"), 401, "unauthenticated")  # metrics name collections
        assert ro.get("/metrics").status_code == 200
        rest_error(anon.get("/v1/collections"), 401, "unauthenticated")
        rest_error(wrong.get("/v1/collections"), 401, "unauthenticated")
        rest_error(
            anon.get("/v1/collections", headers={"authorization": "Basic adm"}), 401, "unauthenticated"
        )
        rest_error(ro.post("/v1/collections", json={"name": "k", "dim": 4}), 403, "permission_denied")
        rest_ok(adm.post("/v1/collections", json={"name": "k", "dim": 4}), 201)
        rest_ok(adm.post("/v1/collections/k/upsert", json=body))
        rest_error(ro.post("/v1/collections/k/upsert", json=body), 403, "permission_denied")
        rest_error(anon.post("/v1/collections/k/search", json=search), 401, "unauthenticated")
        assert rest_ok(ro.post("/v1/collections/k/search", json=search))["results"][0][0]["id"] == "a"
        assert rest_ok(ro.get("/v1/collections/k/count")) == {"count": 1}
        assert rest_ok(ro.post("/v1/collections/k/get", json={"ids": ["a"]}))["records"][0]["id"] == "a"
        assert rest_ok(ro.get("/v1/collections/k/sources")) == {"sources": []}
        rest_error(ro.post("/v1/collections/k/delete", json={"ids": ["a"]}), 403, "permission_denied")
        rest_error(ro.delete("/v1/collections/k/sources/x"), 403, "permission_denied")
        rest_error(ro.delete("/v1/collections/k"), 403, "permission_denied")

    stub = sp.stub()
    count = pb.CountRequest(collection="k")
    assert health_status(sp.channel()) == health_pb2.HealthCheckResponse.SERVING  # health needs no key
    grpc_fails(lambda: stub.Count(count), grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")
    grpc_fails(
        lambda: stub.Count(count, metadata=metadata_for("wrong")),
        grpc.StatusCode.UNAUTHENTICATED,
        "unauthenticated",
    )
    assert stub.Count(count, metadata=metadata_for("ro")).count == 1
    write = upsert_request("k", ["b"], np.array([[0.0, 1.0, 0.0, 0.0]], dtype=np.float32))
    grpc_fails(
        lambda: stub.Upsert(write, metadata=metadata_for("ro")),
        grpc.StatusCode.PERMISSION_DENIED,
        "permission_denied",
    )
    grpc_fails(
        lambda: stub.UpsertStream(iter([write]), metadata=metadata_for("ro")),
        grpc.StatusCode.PERMISSION_DENIED,
        "permission_denied",
    )
    grpc_fails(
        lambda: stub.DropCollection(pb.CollectionRequest(name="k"), metadata=metadata_for("ro")),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert stub.Upsert(write, metadata=metadata_for("adm")).count == 1
    assert stub.Count(count, metadata=metadata_for("adm")).count == 2


# ---- CLI and settings -----------------------------------------------------------------------------------


def _expected_flags() -> list[str]:
    flags = []
    for name, fld in Settings.model_fields.items():
        flag = "--api-key" if name == "api_keys" else "--" + name.replace("_", "-")
        flags.append(flag)
        sub = fld.annotation
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            flags += [f"{flag}.{n.replace('_', '-')}" for n in sub.model_fields]
    return flags


def test_serve_help_lists_every_setting(tmp_path: Path) -> None:
    out = subprocess.run(
        vecdb_command("serve", "--help"),
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    flags = _expected_flags()
    assert {"--data-dir", "--host", "--rest-port", "--grpc-port", "--api-key", "--limits.max-k"} <= set(flags)
    missing = [f for f in flags if not re.search(re.escape(f) + r"\b", out.stdout)]
    assert not missing, f"not in `vecdb serve --help`: {missing}\n{out.stdout}"
    assert "--config" in out.stdout
    version = subprocess.run(
        vecdb_command("--version"), env=server_env(), capture_output=True, text=True, check=False
    )
    assert version.returncode == 0 and version.stdout.startswith("vecdb ")


def test_config_file_is_honoured_and_flags_override_it(server_factory: StartServer, tmp_path: Path) -> None:
    file_rest, flag_rest, file_grpc = free_port(), free_port(), free_port()
    config = tmp_path / "vecdb.toml"
    config.write_text(
        f'rest_port = {file_rest}\ngrpc_port = {file_grpc}\nlog_level = "warning"\n'
        "[limits]\nmax_k = 7\nmax_queries = 3\nmax_batch = 50\n"
    )
    sp = server_factory(
        None,
        "--config",
        str(config),
        "--rest-port",
        str(flag_rest),
        "--limits.max-k",
        "11",
        rest_port=flag_rest,
        grpc_port=file_grpc,
        port_flags=False,
        env={"VECDB_LIMITS__MAX_QUERIES": "4"},
    )
    with sp.http() as http:
        rest_ok(http.post("/v1/collections", json={"name": "c", "dim": 2}), 201)
        rest_ok(http.post("/v1/collections/c/upsert", json={"ids": ["a"], "vectors": [[1.0, 2.0]]}))
        # flag > file: max_k 11, not 7
        rest_ok(http.post("/v1/collections/c/search", json={"vectors": [[1.0, 0.0]], "k": 11}))
        err = rest_error(
            http.post("/v1/collections/c/search", json={"vectors": [[1.0, 0.0]], "k": 12}),
            413,
            "limit_exceeded",
        )
        assert err["details"]["limit"] == 11
        # environment > file, for one key of a section the file also sets
        err = rest_error(
            http.post("/v1/collections/c/search", json={"vectors": [[1.0, 0.0]] * 5}), 413, "limit_exceeded"
        )
        assert err["details"]["limit"] == 4
        # the file alone
        err = rest_error(
            http.post("/v1/collections/c/get", json={"ids": [f"i{i}" for i in range(51)]}),
            413,
            "limit_exceeded",
        )
        assert err["details"]["limit"] == 50
    # gRPC listens where the file says; the file's REST port was overridden
    assert sp.stub().Count(pb.CountRequest(collection="c")).count == 1
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", file_rest), timeout=1):
        pass
    # log_level = "warning" from the file: no info lines
    assert "vecdb serving REST" not in sp.log()


def test_bad_settings_exit_2_with_a_message(tmp_path: Path) -> None:
    for args, needle in (
        (["--config", str(tmp_path / "missing.toml")], "does not exist"),
        (["--rest-port", "70000"], "rest_port"),
        (["--api-key", "k:superuser"], "api_keys"),
    ):
        out = subprocess.run(
            vecdb_command("serve", "--data-dir", str(tmp_path / "d"), *args),
            env=server_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 2, (args, out.stderr)
        assert "invalid settings" in out.stderr and needle in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
