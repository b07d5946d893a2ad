"""Server benchmark: a real ``vecdb serve`` process, measured from one client over gRPC and REST.

Run from the repository root::

    .venv/bin/python benchmarks/server.py             # full run: 100k x 384 (several minutes)
    .venv/bin/python benchmarks/server.py --quick     # smoke run: 10k records, 300 queries
    .venv/bin/python benchmarks/server.py --n 50000   # another size

The server runs as ``python -m vecdb serve`` (default settings: sync writes on) on free ports over a
temporary data directory, removed at the end. Full results go to ``benchmarks/results/server.{json,md}``;
a ``--quick`` run writes ``server-quick.*`` to a temporary directory unless ``--out`` is given.

Phases, in order:

1. Bulk ingest over gRPC ``UpsertStream`` into a flat collection (``{"type": "flat"}``), batches of 1,000
   full records (id, vector, ~200-char text, 4-key metadata, source). Request messages are built before
   the clock starts, so this measures the server (plus protobuf serialization in the client).
2. The same load into an HNSW collection (``{"type": "hnsw"}``), then wait until the background index
   is idle: ``building`` null and ``delta_vectors`` below the engine's merge threshold
   (``max(merge_min_records, merge_ratio * ann_vectors)``).
3. ``ef_search`` sweep with batched gRPC searches (1,000 queries per call, ids only): recall@10 against
   exact numpy search and batch QPS. The smallest ``ef_search`` with recall >= 0.98 is used below.
4. Sequential single-query latency from one client (k=10, include empty), after warm-up: gRPC (the
   generated stub), REST (stdlib ``http.client`` keep-alive; httpx too, for comparison), with transport
   floors (gRPC ``Count``, REST ``/healthz``) and the server's own handler time (its Prometheus
   ``vecdb_request_seconds`` sum/count over the phase).
5. SIGTERM (timed), then the same data directory opened in this process (reopen timed) for in-process
   reference latency and batch QPS, and an index-only timing (``TieredIndex.search``) for the breakdown.

Data: clustered random float32 vectors (256 centers ~ N(0,1), per-dimension noise 0.6), queries drawn
from the same clusters. The machine may be shared: load averages are recorded at start and end, and
server CPU time (``/proc/PID/stat``) is reported next to wall time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's vecdb
    sys.path.insert(0, str(REPO))

from _common import cpu_seconds, free_port, pct  # noqa: E402

from vecdb.engine.database import Database  # noqa: E402
from vecdb.index.spec import SearchParams  # noqa: E402
from vecdb.server._generated import vecdb_pb2 as pb  # noqa: E402
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc  # noqa: E402
from vecdb.server.auth import Authenticator  # noqa: E402
from vecdb.server.grpc_service import VecDBServicer  # noqa: E402
from vecdb.server.metrics import Metrics  # noqa: E402

K = 10
BATCH = 1000
CLUSTERS = 256
NOISE = 0.6
PER_SOURCE = 100
RECALL_TARGET = 0.98
EF_SWEEP = (16, 24, 32, 40, 48, 64, 96, 128, 192, 256, 384, 512)
GRPC_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]

TARGETS: dict[str, tuple[str, float, str]] = {
    "grpc_single_p50_ms": ("<=", 1.0, "gRPC single query p50 (ms)"),
    "grpc_single_qps": (">=", 1000.0, "gRPC single query QPS, one client"),
    "recall_at_10": (">=", RECALL_TARGET, "recall@10 at the ef_search used"),
    "rest_single_p50_ms": ("<=", 2.0, "REST single query p50 (ms)"),
    "ingest_flat_grpc_records_per_s": (">=", 10_000.0, "bulk ingest, gRPC stream into flat (rec/s)"),
}


# ---- data --------------------------------------------------------------------------------------------


class Data:
    def __init__(self, n: int, dim: int, n_queries: int, seed: int = 4321) -> None:
        rng = np.random.default_rng(seed)
        self.n, self.dim = n, dim
        centers = rng.standard_normal((CLUSTERS, dim), dtype=np.float32)

        def clustered(m: int) -> np.ndarray:
            out = rng.standard_normal((m, dim), dtype=np.float32)
            out *= NOISE
            out += centers[rng.integers(0, CLUSTERS, m)]
            return out

        self.vectors = clustered(n)
        self.queries = clustered(n_queries)
        letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", dtype=np.uint8)
        self._corpus = letters[rng.integers(0, len(letters), 300_000)].tobytes().decode()
        self._offsets = rng.integers(0, len(self._corpus) - 200, n)

    def text(self, i: int) -> str:
        off = int(self._offsets[i])
        return f"record {i}: {self._corpus[off : off + 185]}"

    @staticmethod
    def metadata(i: int) -> dict[str, Any]:
        return {"lang": "en" if i % 2 == 0 else "de", "n": i, "tag": f"t{i % 10}", "grp": i % 100}

    def requests(self, collection: str) -> list[pb.UpsertRequest]:
        """UpsertStream messages, BATCH records each; only the first names the collection."""
        out = []
        for start in range(0, self.n, BATCH):
            end = min(start + BATCH, self.n)
            records = [
                pb.RecordData(
                    id=f"r{i}",
                    text=self.text(i),
                    metadata_json=orjson.dumps(self.metadata(i)).decode(),
                    source=f"src-{i // PER_SOURCE:06d}",
                )
                for i in range(start, end)
            ]
            vecs = pb.Vectors(
                dim=self.dim, data=np.ascontiguousarray(self.vectors[start:end], "<f4").tobytes()
            )
            out.append(
                pb.UpsertRequest(collection=collection if start == 0 else "", records=records, vectors=vecs)
            )
        return out


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine top-k row numbers: float32 GEMM for k + 32 candidates, float64 rescoring to order them."""
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    cand = min(k + 32, len(b))
    out = np.empty((len(q), k), dtype=np.int64)
    for s in range(0, len(q), 250):
        qc = q[s : s + 250]
        top = np.argpartition(-(qc @ b.T), cand - 1, axis=1)[:, :cand]
        exact = np.einsum("qcd,qd->qc", b[top].astype(np.float64), qc.astype(np.float64))
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        out[s : s + 250] = np.take_along_axis(top, order, axis=1)
    return out


def recall_at_k(ids: list[list[str]], truth: np.ndarray) -> float:
    hit = 0
    for row, exact in zip(ids, truth, strict=True):
        hit += len({f"r{i}" for i in exact.tolist()}.intersection(row))
    return hit / truth.size


# ---- the server process ----------------------------------------------------------------------------------


class Server:
    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("VECDB_")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        cmd = [sys.executable, "-m", "vecdb", "serve", "--data-dir", str(data_dir)]
        cmd += ["--rest-port", str(self.rest_port), "--grpc-port", str(self.grpc_port)]
        started = time.perf_counter()
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{log_path.read_text()}")
            try:
                with httpx.Client(timeout=1) as c:
                    if c.get(f"http://127.0.0.1:{self.rest_port}/readyz").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in 60 s:\n{log_path.read_text()}")
            time.sleep(0.05)
        self.ready_s = time.perf_counter() - started
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}", options=GRPC_OPTIONS)
        self.stub = pb_grpc.VecDBStub(self.channel)  # type: ignore[no-untyped-call]

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def handler_stats(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(transport, operation) -> (sum seconds, count) from the server's own latency histogram."""
        text = httpx.get(f"http://127.0.0.1:{self.rest_port}/metrics", timeout=10).text
        out: dict[tuple[str, str], list[float]] = {}
        for line in text.splitlines():
            for suffix, idx in (("_sum", 0), ("_count", 1)):
                head = f"vecdb_request_seconds{suffix}{{"
                if line.startswith(head):
                    labels = dict(
                        p.split("=", 1) for p in line[len(head) : line.index("}")].replace('"', "").split(",")
                    )
                    key = (labels["transport"], labels["operation"])
                    out.setdefault(key, [0.0, 0.0])[idx] = float(line.rsplit(" ", 1)[1])
        return {k: (v[0], v[1]) for k, v in out.items()}

    def stop(self) -> tuple[int, float]:
        self.channel.close()
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        return rc, time.perf_counter() - started


# ---- measurement helpers -----------------------------------------------------------------------------


def timed_loop(fn: Callable[[int], Any], n: int, warmup: int) -> dict[str, float]:
    """Call fn(i) sequentially; latency percentiles (ms), QPS and this process's CPU per call."""
    for i in range(warmup):
        fn(i % n)
    lat = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(n):
        s = time.perf_counter()
        fn(i)
        lat.append((time.perf_counter() - s) * 1000)
    total = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {
        "client_cpu_ms": cpu / n * 1000,
        "p50_ms": pct(lat, 50),
        "p90_ms": pct(lat, 90),
        "p99_ms": pct(lat, 99),
        "max_ms": max(lat),
        "mean_ms": statistics.fmean(lat),
        "qps": n / total,
        "n": n,
    }


def handler_delta(
    before: dict[tuple[str, str], tuple[float, float]],
    after: dict[tuple[str, str], tuple[float, float]],
    key: tuple[str, str],
) -> float:
    """Mean server-side handler time (ms) for calls between two scrapes."""
    s0, c0 = before.get(key, (0.0, 0.0))
    s1, c1 = after.get(key, (0.0, 0.0))
    return (s1 - s0) / (c1 - c0) * 1000 if c1 > c0 else float("nan")


def wait_indexed(stub: Any, name: str, timeout: float) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    while True:
        info = stub.GetCollection(pb.CollectionRequest(name=name))
        state = orjson.loads(info.index_state_json)
        threshold = max(2000, 0.05 * state["ann_vectors"])  # IndexSettings defaults: merge_min, merge_ratio
        if state["building"] is None and state["ann_vectors"] > 0 and state["delta_vectors"] < threshold:
            return state, time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"index of {name} not settled after {timeout} s: {state}")
        time.sleep(0.5)


def ingest(stub: Any, requests: list[pb.UpsertRequest], server: Server) -> dict[str, float]:
    n = sum(len(r.records) for r in requests)
    cpu0 = server.cpu()
    started = time.perf_counter()
    count = stub.UpsertStream(iter(requests), timeout=3600).count
    elapsed = time.perf_counter() - started
    assert count == n, (count, n)
    return {
        "records": n,
        "seconds": elapsed,
        "records_per_s": n / elapsed,
        "server_cpu_s": server.cpu() - cpu0,
    }


class _NoContext:
    """Enough of grpc.ServicerContext to call a servicer method directly (no transport)."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def abort(self, code: Any, details: str) -> None:
        raise RuntimeError(f"{code}: {details}")


def search_request(name: str, q: np.ndarray, ef: int | None) -> pb.SearchRequest:
    params = pb.SearchParams(ef_search=ef) if ef is not None else None
    return pb.SearchRequest(
        collection=name,
        queries=pb.Vectors(dim=q.shape[-1], data=np.ascontiguousarray(q, "<f4").tobytes()),
        k=K,
        include=pb.Include(),
        params=params,
    )


# ---- the run ---------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {}
    for dist in (
        "vecdb",
        "faiss-cpu",
        "numpy",
        "grpcio",
        "protobuf",
        "fastapi",
        "uvicorn",
        "httpx",
        "rocksdict",
    ):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {
        "config": {"n": args.n, "dim": args.dim, "queries": args.queries, "k": K, "batch": BATCH},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": os.getloadavg(),
        },
        "versions": versions(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"generating {args.n:,} x {args.dim} + {args.queries:,} queries ...", flush=True)
    data = Data(args.n, args.dim, args.queries)
    flat_reqs = data.requests("flat")
    hnsw_reqs = data.requests("hnsw")
    truth = exact_top_k(data.vectors, data.queries, K)
    tmp = Path(tempfile.mkdtemp(prefix="vecdb-bench-server-"))
    data_dir = tmp / "data"
    try:
        server = Server(data_dir, tmp / "server.log")
        res["server_ready_s"] = server.ready_s
        stub = server.stub

        # 1. bulk ingest into flat
        stub.CreateCollection(
            pb.CreateCollectionRequest(name="flat", dim=args.dim, index_json='{"type":"flat"}')
        )
        print("ingest into flat over gRPC UpsertStream ...", flush=True)
        res["ingest_flat"] = ingest(stub, flat_reqs, server)
        print(f"  {res['ingest_flat']['records_per_s']:,.0f} rec/s", flush=True)
        del flat_reqs
        stub.DropCollection(pb.CollectionRequest(name="flat"))

        # 2. load hnsw, wait for the index
        stub.CreateCollection(
            pb.CreateCollectionRequest(name="hnsw", dim=args.dim, index_json='{"type":"hnsw"}')
        )
        print("ingest into hnsw ...", flush=True)
        res["ingest_hnsw"] = ingest(stub, hnsw_reqs, server)
        del hnsw_reqs
        cpu0 = server.cpu()
        state, waited = wait_indexed(stub, "hnsw", timeout=3600)
        res["index_settle"] = {
            "seconds_after_ingest": waited,
            "server_cpu_s": server.cpu() - cpu0,
            "state": state,
        }
        info = stub.GetCollection(pb.CollectionRequest(name="hnsw"))
        res["hnsw_index"] = orjson.loads(info.index_json)
        print(
            f"  {res['ingest_hnsw']['records_per_s']:,.0f} rec/s; index settled {waited:.1f} s later: {state}"
        )

        # 3. ef sweep, batched
        print("ef_search sweep (batched gRPC) ...", flush=True)
        sweep = []
        chosen = None
        for ef in EF_SWEEP:
            reqs = [
                search_request("hnsw", data.queries[s : s + BATCH], ef) for s in range(0, args.queries, BATCH)
            ]
            stub.Search(reqs[0])  # warm-up
            ids: list[list[str]] = []
            started = time.perf_counter()
            for r in reqs:
                ids += [[h.id for h in qr.hits] for qr in stub.Search(r, timeout=600).results]
            elapsed = time.perf_counter() - started
            rec = recall_at_k(ids, truth)
            sweep.append({"ef_search": ef, "recall_at_10": rec, "batch_qps": args.queries / elapsed})
            print(f"  ef_search={ef}: recall@10 {rec:.4f}, {args.queries / elapsed:,.0f} QPS", flush=True)
            if rec >= RECALL_TARGET and chosen is None:
                chosen = ef
            if chosen is not None and ef >= 2 * chosen:
                break
        res["ef_sweep"] = sweep
        res["ef_search"] = chosen = chosen or EF_SWEEP[-1]
        res["recall_at_10"] = next(s["recall_at_10"] for s in sweep if s["ef_search"] == chosen)
        res["grpc_batch_qps"] = next(s["batch_qps"] for s in sweep if s["ef_search"] == chosen)

        # 4. sequential single queries
        nq = args.queries
        warm = min(200, nq)
        singles = [search_request("hnsw", data.queries[i : i + 1], chosen) for i in range(nq)]
        single_ids: list[list[str]] = [[] for _ in range(nq)]

        def grpc_one(i: int) -> None:
            single_ids[i] = [h.id for h in stub.Search(singles[i]).results[0].hits]

        print(f"single queries, ef_search={chosen} ...", flush=True)
        m0, c0 = server.handler_stats(), server.cpu()
        res["grpc_single"] = timed_loop(grpc_one, nq, warm)
        m1, c1 = server.handler_stats(), server.cpu()
        res["grpc_single"]["server_handler_ms"] = handler_delta(m0, m1, ("grpc", "search"))
        res["grpc_single"]["server_cpu_ms_per_query"] = (c1 - c0) / (nq + warm) * 1000
        res["grpc_single"]["recall_at_10"] = recall_at_k(single_ids, truth)
        count_req = pb.CountRequest(collection="hnsw")
        c0 = server.cpu()
        res["grpc_floor_count"] = timed_loop(lambda i: stub.Count(count_req), min(nq, 1000), 100)
        res["grpc_floor_count"]["server_cpu_ms_per_query"] = (
            (server.cpu() - c0) / (min(nq, 1000) + 100) * 1000
        )
        health = health_pb2_grpc.HealthStub(server.channel)  # type: ignore[no-untyped-call]
        check = health_pb2.HealthCheckRequest()
        c0 = server.cpu()
        res["grpc_floor_health"] = timed_loop(lambda i: health.Check(check), min(nq, 1000), 100)
        res["grpc_floor_health"]["server_cpu_ms_per_query"] = (
            (server.cpu() - c0) / (min(nq, 1000) + 100) * 1000
        )

        rest_bodies = [
            orjson.dumps(
                {
                    "vectors": data.queries[i : i + 1].tolist(),
                    "k": K,
                    "include": [],
                    "params": {"ef_search": chosen},
                }
            )
            for i in range(nq)
        ]
        conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        headers = {"content-type": "application/json"}
        rest_ids: list[list[str]] = [[] for _ in range(nq)]

        def rest_one(i: int) -> None:
            conn.request("POST", "/v1/collections/hnsw/search", rest_bodies[i], headers)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, body
            rest_ids[i] = [h["id"] for h in orjson.loads(body)["results"][0]]

        def rest_floor(i: int) -> None:
            conn.request("GET", "/healthz")
            conn.getresponse().read()

        m0, c0 = server.handler_stats(), server.cpu()
        res["rest_single"] = timed_loop(rest_one, nq, warm)
        m1, c1 = server.handler_stats(), server.cpu()
        res["rest_single"]["server_handler_ms"] = handler_delta(m0, m1, ("rest", "search"))
        res["rest_single"]["server_cpu_ms_per_query"] = (c1 - c0) / (nq + warm) * 1000
        res["rest_single"]["recall_at_10"] = recall_at_k(rest_ids, truth)
        res["rest_floor_healthz"] = timed_loop(rest_floor, min(nq, 1000), 100)
        conn.close()
        with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}") as hx:
            res["rest_single_httpx"] = timed_loop(
                lambda i: hx.post(
                    "/v1/collections/hnsw/search", content=rest_bodies[i], headers=headers
                ).json(),
                min(nq, 1000),
                100,
            )
        # REST batch: JSON bodies of BATCH queries
        batch_bodies = [
            orjson.dumps(
                {
                    "vectors": data.queries[s : s + BATCH].tolist(),
                    "k": K,
                    "include": [],
                    "params": {"ef_search": chosen},
                }
            )
            for s in range(0, nq, BATCH)
        ]
        with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=600) as hx:
            hx.post(
                "/v1/collections/hnsw/search", content=batch_bodies[0], headers=headers
            ).raise_for_status()
            started = time.perf_counter()
            for body in batch_bodies:
                hx.post("/v1/collections/hnsw/search", content=body, headers=headers).raise_for_status()
            res["rest_batch_qps"] = nq / (time.perf_counter() - started)

        # 5. stop, reopen in-process
        rc, stop_s = server.stop()
        res["shutdown"] = {"exit_code": rc, "seconds": stop_s}
        print(f"SIGTERM: exit {rc} in {stop_s:.2f} s; reopening in-process ...", flush=True)
        started = time.perf_counter()
        with Database(data_dir) as db:
            col = db.get_collection("hnsw")
            res["inprocess_reopen_s"] = time.perf_counter() - started
            col.wait_for_index()
            params = {"ef_search": chosen}
            q1 = [data.queries[i : i + 1] for i in range(nq)]
            res["inprocess_single"] = timed_loop(
                lambda i: col.search(q1[i], k=K, include=[], params=params), nq, warm
            )
            sp = SearchParams(ef_search=chosen)
            index = col._index  # the index alone: what FAISS + the tiered merge cost, without the engine
            res["inprocess_index_only"] = timed_loop(lambda i: index.search(q1[i], K, None, sp), nq, warm)
            servicer = VecDBServicer(db, Authenticator([]), Metrics(db))
            ctx = _NoContext()
            res["inprocess_grpc_handler"] = timed_loop(
                lambda i: servicer.Search(
                    pb.SearchRequest.FromString(singles[i].SerializeToString()), ctx
                ).SerializeToString(),
                nq,
                warm,
            )
            started = time.perf_counter()
            for s in range(0, nq, BATCH):
                col.search(data.queries[s : s + BATCH], k=K, include=[], params=params)
            res["inprocess_batch_qps"] = nq / (time.perf_counter() - started)
        with open(tmp / "server.log") as f:
            res["server_log_tail"] = f.read()[-2000:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["machine"]["loadavg_end"] = os.getloadavg()
    res["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    res["metrics"] = {
        "grpc_single_p50_ms": res["grpc_single"]["p50_ms"],
        "grpc_single_qps": res["grpc_single"]["qps"],
        "recall_at_10": res["recall_at_10"],
        "rest_single_p50_ms": res["rest_single"]["p50_ms"],
        "ingest_flat_grpc_records_per_s": res["ingest_flat"]["records_per_s"],
    }
    res["targets"] = {}
    for key, (op, target, _) in TARGETS.items():
        value = res["metrics"][key]
        ok = value <= target if op == "<=" else value >= target
        res["targets"][key] = {"value": value, "op": op, "target": target, "pass": ok}
    return res


def markdown(res: dict[str, Any]) -> str:
    c, m, v = res["config"], res["machine"], res["versions"]
    g, r, ip = res["grpc_single"], res["rest_single"], res["inprocess_single"]
    ix = res["inprocess_index_only"]
    la0 = ", ".join(f"{x:.2f}" for x in m["loadavg_start"])
    la1 = ", ".join(f"{x:.2f}" for x in m["loadavg_end"])
    lines = [
        "## vecdb server benchmark",
        "",
        f"{c['n']:,} x {c['dim']} float32, cosine; one client, server `python -m vecdb serve` "
        f"(default settings) on the same machine. {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + f". {res['started']}. Load average (1, 5, 15 min) at start: {la0}; at end: {la1} "
        "(shared machine: wall times are noisy).",
        "",
        "### Targets",
        "",
        "| Metric | Value | Target | Result |",
        "|---|---|---|---|",
    ]
    for key, t in res["targets"].items():
        val = t["value"]
        shown = f"{val:.4f}" if key == "recall_at_10" else f"{val:,.2f}" if val < 100 else f"{val:,.0f}"
        lines.append(
            f"| {TARGETS[key][2]} | {shown} | {t['op']} {t['target']:g} | {'PASS' if t['pass'] else 'FAIL'} |"
        )
    passed = sum(t["pass"] for t in res["targets"].values())
    lines += ["", f"Targets met: {passed}/{len(res['targets'])}.", "", "### Detail", ""]
    lines += ["| Measurement | Value |", "|---|---|"]

    def lat(d: dict[str, float]) -> str:
        return (
            f"p50 {d['p50_ms']:.3f} / p90 {d['p90_ms']:.3f} / p99 {d['p99_ms']:.3f} ms, {d['qps']:,.0f} QPS"
        )

    fi, hi, st = res["ingest_flat"], res["ingest_hnsw"], res["index_settle"]
    rows = [
        ("server ready after spawn (empty data dir)", f"{res['server_ready_s']:.2f} s"),
        (
            "ingest flat, gRPC UpsertStream, batches of 1,000",
            f"{fi['records_per_s']:,.0f} rec/s ({fi['seconds']:.1f} s; "
            f"server CPU {fi['server_cpu_s']:.1f} s)",
        ),
        (
            "ingest hnsw (background index builds running)",
            f"{hi['records_per_s']:,.0f} rec/s ({hi['seconds']:.1f} s; "
            f"server CPU {hi['server_cpu_s']:.1f} s)",
        ),
        (
            "hnsw index settled after ingest",
            f"{st['seconds_after_ingest']:.1f} s (server CPU {st['server_cpu_s']:.1f} s); state "
            f"ann {st['state']['ann_vectors']:,}, delta {st['state']['delta_vectors']:,}",
        ),
        ("HNSW spec", json.dumps(res["hnsw_index"])),
        (
            "ef_search sweep (batched gRPC, 1,000 queries/call)",
            "; ".join(
                f"{s['ef_search']}: {s['recall_at_10']:.4f} @ {s['batch_qps']:,.0f} QPS"
                for s in res["ef_sweep"]
            ),
        ),
        ("ef_search used below (smallest with recall >= 0.98)", str(res["ef_search"])),
        ("gRPC single query, k=10, ids only", lat(g)),
        ("  recall@10 of those single queries", f"{g['recall_at_10']:.4f}"),
        ("  server handler time (mean, from its histogram)", f"{g['server_handler_ms']:.3f} ms"),
        ("  server CPU per query (all threads)", f"{g['server_cpu_ms_per_query']:.3f} ms"),
        ("  client CPU per query (this process)", f"{g['client_cpu_ms']:.3f} ms"),
        (
            "gRPC empty RPC (health Check: no vecdb code)",
            lat(res["grpc_floor_health"])
            + f"; CPU/call client {res['grpc_floor_health']['client_cpu_ms']:.3f}, "
            f"server {res['grpc_floor_health']['server_cpu_ms_per_query']:.3f} ms",
        ),
        (
            "gRPC Count RPC (vecdb handler, ~no work)",
            lat(res["grpc_floor_count"])
            + f"; CPU/call client {res['grpc_floor_count']['client_cpu_ms']:.3f}, "
            f"server {res['grpc_floor_count']['server_cpu_ms_per_query']:.3f} ms",
        ),
        ("REST single query (http.client keep-alive)", lat(r)),
        ("  recall@10 of those single queries", f"{r['recall_at_10']:.4f}"),
        ("  server handler time (mean)", f"{r['server_handler_ms']:.3f} ms"),
        ("  server CPU per query (all threads)", f"{r['server_cpu_ms_per_query']:.3f} ms"),
        ("REST transport floor (GET /healthz)", lat(res["rest_floor_healthz"])),
        ("REST single query (httpx client)", lat(res["rest_single_httpx"])),
        ("gRPC batch search, 1,000 queries/call", f"{res['grpc_batch_qps']:,.0f} QPS"),
        ("REST batch search, 1,000 queries/call (JSON)", f"{res['rest_batch_qps']:,.0f} QPS"),
        (
            "SIGTERM to exit (drain + checkpoint)",
            f"{res['shutdown']['seconds']:.2f} s, exit code {res['shutdown']['exit_code']}",
        ),
        ("in-process reopen of the data dir (checkpoint load)", f"{res['inprocess_reopen_s']:.2f} s"),
        ("in-process single query (Collection.search)", lat(ip)),
        ("in-process, index only (TieredIndex.search)", lat(ix)),
        (
            "in-process gRPC handler, no transport (VecDBServicer.Search + protobuf parse/serialize)",
            lat(res["inprocess_grpc_handler"]),
        ),
        ("in-process batch search, 1,000 queries/call", f"{res['inprocess_batch_qps']:,.0f} QPS"),
    ]
    lines += [f"| {a} | {b} |" for a, b in rows]
    if res.get("analysis"):
        lines += ["", "### Where the time goes", "", *res["analysis"]]
    return "\n".join(lines) + "\n"


def analysis(res: dict[str, Any]) -> list[str]:
    """Where a single query's time goes, from the measured pieces (p50s unless said), and what to change."""
    g, r, m = res["grpc_single"], res["rest_single"], res["machine"]
    ix = res["inprocess_index_only"]["p50_ms"]
    ip = res["inprocess_single"]["p50_ms"]
    hd = res["inprocess_grpc_handler"]["p50_ms"]
    em = res["grpc_floor_health"]
    rf = res["rest_floor_healthz"]["p50_ms"]
    rest_of = g["p50_ms"] - hd - em["p50_ms"]
    lines = [
        f"gRPC single query, p50 {g['p50_ms']:.3f} ms (mean {g['mean_ms']:.3f} ms, so "
        f"{g['qps']:,.0f} QPS from one sequential client):",
        "",
        "| Piece | ms (p50) | How it was measured |",
        "|---|---|---|",
        f"| FAISS HNSW search + tiered merge (ef_search={res['ef_search']}) | {ix:.3f} | "
        "`TieredIndex.search`, in-process |",
        f"| engine: validation, read lock, filter/include, hits | {ip - ix:.3f} | "
        "`Collection.search` minus the above |",
        f"| gRPC handler: protobuf in/out, auth, metrics | {hd - ip:.3f} | "
        "`VecDBServicer.Search` with parse/serialize, minus the above |",
        f"| gRPC round trip of an empty RPC (Python client + Python server) | {em['p50_ms']:.3f} | "
        f"health `Check`: CPU/call client {em['client_cpu_ms']:.3f} ms + server "
        f"{em['server_cpu_ms_per_query']:.3f} ms |",
        f"| the rest: larger messages, thread hand-offs, cache misses under contention | {rest_of:.3f} | "
        "difference |",
        "",
        f"The mean ({g['mean_ms']:.3f} ms) sits above the p50 because of the tail (p90 {g['p90_ms']:.3f}, "
        f"p99 {g['p99_ms']:.3f}, max {g['max_ms']:.1f} ms): {m['cpus']} CPUs shared by the client, the "
        f"server and other work (load average {m['loadavg_start'][0]:.1f} at start, "
        f"{m['loadavg_end'][0]:.1f} at end). Server CPU per query is "
        f"{g['server_cpu_ms_per_query']:.3f} ms and client CPU {g['client_cpu_ms']:.3f} ms; "
        "in a sequential loop they add up.",
    ]
    t = res["targets"]
    if not (t["grpc_single_qps"]["pass"] and t["grpc_single_p50_ms"]["pass"]):
        engine = ip - ix + hd - ip
        lines += [
            "",
            f"**gRPC single-query target missed.** ~{em['p50_ms']:.2f} ms of every call is grpcio's "
            "Python layer on both ends (an RPC that runs no vecdb code costs that much), FAISS takes "
            f"{ix:.2f} ms, and vecdb's own Python around the search ~{engine:.2f} ms. Suggested, in order "
            "of payoff:",
            "",
            f"1. Engine fast path for small float32 batches (~{ip - ix:.2f} ms now): check finiteness on the "
            "float32 array instead of copying to float64 (`_as_matrix`), normalize once (validation and "
            "`TieredIndex.prepare` both compute norms), and with `include` empty skip `_materialize` and "
            "the Record -> Hit copies (ids come straight from `RecordIndex.ids`).",
            f"2. Handler (~{hd - ip:.2f} ms): bind the Prometheus label children once per operation instead "
            "of `labels()` on every call, skip `invocation_metadata()` when no key is configured, and build "
            "hits with `pb.Hit(id=..., score=...)` only when no other field was asked for.",
            "3. Transport: a Python gRPC round trip is the floor; clients that need more than ~1,000 QPS "
            f"should batch (this run: {res['grpc_batch_qps']:,.0f} QPS at 1,000 queries/call) or run "
            "requests concurrently. Tried separately, none of these lowered the floor: a grpc.aio server "
            "(empty-RPC and search p50 0.05-0.09 ms slower than the sync server's), 1 vs 16 server "
            "workers, `grpc.optimization_target` latency/throughput (a bare grpcio health server, no "
            "vecdb code: 0.46-0.49 ms p50 in every combination).",
            "4. Measure on an otherwise idle machine: the target is close to the p50, and the tail from CPU "
            "contention decides the mean.",
        ]
    lines += [
        "",
        f"REST single query, p50 {r['p50_ms']:.3f} ms: the server's handler time averages "
        f"{r['server_handler_ms']:.3f} ms (auth + the engine call); GET /healthz alone costs {rf:.3f} ms "
        "(uvicorn with its pure-Python h11 parser, as httptools/uvloop are not installed; Starlette "
        "middleware; a thread-pool hop for the sync route); the rest, "
        f"~{r['p50_ms'] - r['server_handler_ms'] - rf:.3f} ms, is reading and decoding the JSON body "
        "(`json.loads` + pydantic validation of `list[list[float]]`: ~0.13 ms for 384 floats), "
        "FastAPI's second thread-pool hop to validate the response model, and encoding.",
    ]
    if not t["rest_single_p50_ms"]["pass"]:
        lines += [
            "",
            "**REST target missed.** Suggested: install `uvicorn[standard]` (httptools, uvloop) instead of "
            "h11 and asyncio's default loop; make the search route `async` and run the engine call "
            "with `anyio.to_thread.run_sync` once (FastAPI now hops to the thread pool for the endpoint and "
            "again for response validation), return an `ORJSONResponse` directly instead of a "
            "`response_model`, and parse the body with `SearchBody.model_validate_json` (~0.02 ms instead "
            "of ~0.13 ms).",
        ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 10k records, 300 queries")
    parser.add_argument("--n", type=int, default=None, help="records (default 100,000; 10,000 with --quick)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=None, help="queries (default 2,000; 300 with --quick)")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args()
    args.n = args.n or (10_000 if args.quick else 100_000)
    args.queries = args.queries or (300 if args.quick else 2_000)
    out = args.out or (Path(tempfile.gettempdir()) if args.quick else REPO / "benchmarks" / "results")
    stem = "server-quick" if args.quick else "server"
    res = run(args)
    res["analysis"] = analysis(res)
    out.mkdir(parents=True, exist_ok=True)
    log_tail = res.pop("server_log_tail", "")
    (out / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    (out / f"{stem}.md").write_text(md)
    print(md)
    print(f"results: {out / stem}.json, {out / stem}.md")
    if res["shutdown"]["exit_code"] != 0:
        print(f"server exited {res['shutdown']['exit_code']}; log tail:\n{log_tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
