"""Congruence: the same script through the embedded engine, REST and gRPC gives the same results.

Three adapters expose one small API (create_collection, upsert, get, delete by ids/filter/source, search,
count, list_sources, info, list_collections, drop_collection) over

- ``embedded``: ``vecdb.Database`` in this process;
- ``rest``: the FastAPI app from ``create_app``, driven through httpx (Starlette's TestClient);
- ``grpc``: ``create_grpc_server`` on a free port, driven through the generated stub.

Every call's outcome is recorded as ``("ok", normalized result)`` or ``("error", code, details)``;
the transcripts must be identical (scores and vector components to 1e-6). Each adapter also checks
that an error arrives with the transport status its class maps to (HTTP status, gRPC status code).
Past divergences (bad metric, non-object metadata, empty query batch) are pinned by the tests at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import grpc
import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from vecdb.config import Limits, Settings, StorageSettings
from vecdb.engine import Database
from vecdb.errors import VecDBError, error_class_for_code
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc
from vecdb.server.auth import Authenticator
from vecdb.server.grpc_service import create_grpc_server
from vecdb.server.metrics import Metrics
from vecdb.server.rest import create_app

SETTINGS = Settings(
    limits=Limits(max_k=50, max_batch=200, max_queries=20),
    storage=StorageSettings(sync_writes=False),
)
TOL = 1e-6


class ApiError(Exception):
    """An error as every adapter reports it: the vecdb error code and its details."""

    def __init__(self, code: str, details: dict[str, Any]) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class Api(Protocol):
    name: str

    def create_collection(
        self, name: str, dim: int, metric: str = "cosine", index: dict[str, Any] | None = None
    ) -> dict[str, Any]: ...
    def list_collections(self) -> list[str]: ...
    def drop_collection(self, name: str) -> None: ...
    def info(self, name: str) -> dict[str, Any]: ...
    def upsert(
        self,
        name: str,
        ids: list[str],
        vectors: np.ndarray,
        texts: list[str | None] | None = None,
        metadatas: list[Any] | None = None,
        sources: list[str | None] | None = None,
    ) -> int: ...
    def get(self, name: str, ids: list[str], include: list[str] | None = None) -> list[dict[str, Any]]: ...
    def delete(
        self, name: str, ids: list[str] | None = None, filter: Any = None, source: str | None = None
    ) -> int: ...
    def search(
        self,
        name: str,
        vectors: np.ndarray,
        k: int = 10,
        filter: Any = None,
        include: list[str] | None = None,
        params: dict[str, int] | None = None,
    ) -> list[list[dict[str, Any]]]: ...
    def count(self, name: str, filter: Any = None) -> int: ...
    def list_sources(self, name: str) -> list[tuple[str, int]]: ...


def _record(d: dict[str, Any]) -> dict[str, Any]:
    """One record or hit, normalized: no ``vector`` key when absent, vectors as lists of floats."""
    out = {k: v for k, v in d.items() if k != "vector"}
    if d.get("vector") is not None:
        out["vector"] = [float(x) for x in d["vector"]]
    return out


def _info(info: dict[str, Any]) -> dict[str, Any]:
    # checkpoint_seq moves with background checkpoints, memory with the process (caches, flushes;
    # embedded only): not part of the contract being compared
    return {k: v for k, v in info.items() if k not in ("checkpoint_seq", "memory")}


# ---- embedded --------------------------------------------------------------------------------------------


class Embedded:
    name = "embedded"

    def __init__(self, db: Database) -> None:
        self.db = db

    def _run(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except VecDBError as exc:
            raise ApiError(exc.code, orjson.loads(orjson.dumps(exc.details))) from exc

    def create_collection(
        self, name: str, dim: int, metric: str = "cosine", index: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return _info(self._run(lambda: self.db.create_collection(name, dim, metric, index).info()))  # type: ignore[arg-type]

    def list_collections(self) -> list[str]:
        return self._run(self.db.list_collections)  # type: ignore[no-any-return]

    def drop_collection(self, name: str) -> None:
        self._run(lambda: self.db.drop_collection(name))

    def info(self, name: str) -> dict[str, Any]:
        return _info(self._run(lambda: self.db.get_collection(name).info()))

    def upsert(self, name, ids, vectors, texts=None, metadatas=None, sources=None):  # type: ignore[no-untyped-def]
        return self._run(lambda: self.db.get_collection(name).upsert(ids, vectors, texts, metadatas, sources))

    def get(self, name: str, ids: list[str], include: list[str] | None = None) -> list[dict[str, Any]]:
        kw = {} if include is None else {"include": include}
        recs = self._run(lambda: self.db.get_collection(name).get(ids, **kw))
        return [_record(r.to_dict()) for r in recs]

    def delete(self, name, ids=None, filter=None, source=None):  # type: ignore[no-untyped-def]
        return self._run(lambda: self.db.get_collection(name).delete(ids, filter=filter, source=source))

    def search(self, name, vectors, k=10, filter=None, include=None, params=None):  # type: ignore[no-untyped-def]
        kw = {} if include is None else {"include": include}
        res = self._run(
            lambda: self.db.get_collection(name).search(vectors, k=k, filter=filter, params=params, **kw)
        )
        return [[_record(h.to_dict()) for h in hits] for hits in res]

    def count(self, name: str, filter: Any = None) -> int:
        return self._run(lambda: self.db.get_collection(name).count(filter=filter))  # type: ignore[no-any-return]

    def list_sources(self, name: str) -> list[tuple[str, int]]:
        return [(s.source, s.count) for s in self._run(lambda: self.db.get_collection(name).list_sources())]


# ---- REST ------------------------------------------------------------------------------------------------


class Rest:
    name = "rest"

    def __init__(self, client: TestClient) -> None:
        self.http = client

    def _do(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.http.request(method, path, **kw)
        if resp.status_code >= 400:
            err = resp.json()["error"]
            cls = error_class_for_code(err["code"])
            if cls.code == err["code"]:  # a vecdb error: its class decides the status
                assert resp.status_code == cls.http_status, (err, resp.status_code)
            raise ApiError(err["code"], err["details"])
        return resp.json()

    def create_collection(
        self, name: str, dim: int, metric: str = "cosine", index: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "dim": dim, "metric": metric}
        if index is not None:
            body["index"] = index
        return _info(self._do("POST", "/v1/collections", json=body))

    def list_collections(self) -> list[str]:
        return self._do("GET", "/v1/collections")["collections"]  # type: ignore[no-any-return]

    def drop_collection(self, name: str) -> None:
        assert self._do("DELETE", f"/v1/collections/{name}") == {"dropped": name}

    def info(self, name: str) -> dict[str, Any]:
        return _info(self._do("GET", f"/v1/collections/{name}"))

    def upsert(self, name, ids, vectors, texts=None, metadatas=None, sources=None):  # type: ignore[no-untyped-def]
        body: dict[str, Any] = {"ids": ids, "vectors": np.asarray(vectors, dtype=np.float32).tolist()}
        for key, col in (("texts", texts), ("metadatas", metadatas), ("sources", sources)):
            if col is not None:
                body[key] = col
        return self._do("POST", f"/v1/collections/{name}/upsert", json=body)["count"]

    def get(self, name: str, ids: list[str], include: list[str] | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"ids": ids}
        if include is not None:
            body["include"] = include
        return [_record(r) for r in self._do("POST", f"/v1/collections/{name}/get", json=body)["records"]]

    def delete(self, name, ids=None, filter=None, source=None):  # type: ignore[no-untyped-def]
        if source is not None and ids is None and filter is None:  # the dedicated route
            return self._do("DELETE", f"/v1/collections/{name}/sources/{quote(source, safe='')}")["count"]
        body = {k: v for k, v in (("ids", ids), ("filter", filter), ("source", source)) if v is not None}
        return self._do("POST", f"/v1/collections/{name}/delete", json=body)["count"]

    def search(self, name, vectors, k=10, filter=None, include=None, params=None):  # type: ignore[no-untyped-def]
        body: dict[str, Any] = {"vectors": np.asarray(vectors, dtype=np.float32).tolist(), "k": k}
        for key, val in (("filter", filter), ("include", include), ("params", params)):
            if val is not None:
                body[key] = val
        res = self._do("POST", f"/v1/collections/{name}/search", json=body)["results"]
        return [[_record(h) for h in hits] for hits in res]

    def count(self, name: str, filter: Any = None) -> int:
        params = {} if filter is None else {"filter": orjson.dumps(filter).decode()}
        return self._do("GET", f"/v1/collections/{name}/count", params=params)["count"]  # type: ignore[no-any-return]

    def list_sources(self, name: str) -> list[tuple[str, int]]:
        return [
            (s["source"], s["count"]) for s in self._do("GET", f"/v1/collections/{name}/sources")["sources"]
        ]


# ---- gRPC ------------------------------------------------------------------------------------------------


class Grpc:
    name = "grpc"

    def __init__(self, stub: pb_grpc.VecDBStub) -> None:
        self.stub = stub

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except grpc.RpcError as exc:
            md = dict(exc.trailing_metadata() or ())  # type: ignore[attr-defined]
            code = md.get("vecdb-error-code")
            assert code is not None, exc
            assert exc.code().name == error_class_for_code(code).grpc_code, (code, exc.code())  # type: ignore[attr-defined]
            raise ApiError(code, orjson.loads(md.get("vecdb-error-details", "{}"))) from None

    def create_collection(
        self, name: str, dim: int, metric: str = "cosine", index: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        req = pb.CreateCollectionRequest(
            name=name, dim=dim, metric=metric, index_json=convert.to_json_text(index)
        )
        return _info(convert.from_proto_collection_info(self._call(lambda: self.stub.CreateCollection(req))))

    def list_collections(self) -> list[str]:
        return list(self._call(lambda: self.stub.ListCollections(pb.ListCollectionsRequest())).names)

    def drop_collection(self, name: str) -> None:
        self._call(lambda: self.stub.DropCollection(pb.CollectionRequest(name=name)))

    def info(self, name: str) -> dict[str, Any]:
        msg = self._call(lambda: self.stub.GetCollection(pb.CollectionRequest(name=name)))
        return _info(convert.from_proto_collection_info(msg))

    def upsert(self, name, ids, vectors, texts=None, metadatas=None, sources=None):  # type: ignore[no-untyped-def]
        req = pb.UpsertRequest(
            collection=name,
            records=convert.to_proto_records(ids, texts, metadatas, sources),
            vectors=convert.to_proto_vectors(vectors),
        )
        return self._call(lambda: self.stub.Upsert(req)).count

    def get(self, name: str, ids: list[str], include: list[str] | None = None) -> list[dict[str, Any]]:
        req = pb.GetRequest(collection=name, ids=ids, include=convert.to_proto_include(include))
        return [_record(convert.from_proto_record(r)) for r in self._call(lambda: self.stub.Get(req)).records]

    def delete(self, name, ids=None, filter=None, source=None):  # type: ignore[no-untyped-def]
        if ids is not None:
            req = pb.DeleteRequest(collection=name, ids=pb.IdList(ids=ids))
        elif filter is not None:
            req = pb.DeleteRequest(collection=name, filter_json=orjson.dumps(filter).decode())
        elif source is not None:
            req = pb.DeleteRequest(collection=name, source=source)
        else:
            req = pb.DeleteRequest(collection=name)
        return self._call(lambda: self.stub.Delete(req)).count

    def search(self, name, vectors, k=10, filter=None, include=None, params=None):  # type: ignore[no-untyped-def]
        req = pb.SearchRequest(
            collection=name,
            queries=convert.to_proto_vectors(vectors),
            k=k,
            filter_json=convert.to_json_text(filter),
            include=convert.to_proto_include(include),
            params=pb.SearchParams(**(params or {})),
        )
        res = self._call(lambda: self.stub.Search(req)).results
        return [[_record(convert.from_proto_record(h)) for h in r.hits] for r in res]

    def count(self, name: str, filter: Any = None) -> int:
        req = pb.CountRequest(collection=name, filter_json=convert.to_json_text(filter))
        return self._call(lambda: self.stub.Count(req)).count  # type: ignore[no-any-return]

    def list_sources(self, name: str) -> list[tuple[str, int]]:
        res = self._call(lambda: self.stub.ListSources(pb.CollectionRequest(name=name)))
        return [(s.source, s.count) for s in res.sources]


# ---- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    with Database(tmp_path / "embedded", settings=SETTINGS) as db:
        yield Embedded(db)


@pytest.fixture
def rest(tmp_path: Path) -> Iterator[Rest]:
    with Database(tmp_path / "rest", settings=SETTINGS) as db:
        app = create_app(db, authenticator=Authenticator([]), metrics=Metrics(db), max_request_bytes=1 << 24)
        app.state.ready = True
        with TestClient(app, raise_server_exceptions=True) as client:
            yield Rest(client)


@pytest.fixture
def grpc_api(tmp_path: Path) -> Iterator[Grpc]:
    with Database(tmp_path / "grpc", settings=SETTINGS) as db:
        server, port, _ = create_grpc_server(
            db,
            authenticator=Authenticator([]),
            metrics=Metrics(db),
            address="127.0.0.1:0",
            workers=4,
            max_message_bytes=1 << 24,
        )
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield Grpc(pb_grpc.VecDBStub(channel))  # type: ignore[no-untyped-call]
        finally:
            channel.close()
            server.stop(None).wait()


@pytest.fixture
def apis(embedded: Embedded, rest: Rest, grpc_api: Grpc) -> list[Api]:
    return [embedded, rest, grpc_api]


# ---- the script ----------------------------------------------------------------------------------------


DIM = 8
N = 60
SOURCES = [None, "a.md", "dir/b.md", "/abs/c.txt", "spaces and ünïcode.txt", "q?x#y%z&.md", "semi;colon"]


def dataset(seed: int = 7) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((N, DIM)).astype(np.float32)
    metas: list[Any] = []
    texts: list[str | None] = []
    for i in range(N):
        m: dict[str, Any] = {"i": i, "lang": ["en", "de", "fr"][i % 3], "score": i / 7, "even": i % 2 == 0}
        if i % 5 == 0:
            m["tags"] = ["x", f"t{i}"]
        if i % 7 == 0:
            m["nested"] = {"a": {"b": [1, 2.5, None]}}
        if i % 11 == 0:
            m["maybe"] = None
        if i % 13 == 0:
            m = {}
        metas.append(m if i % 17 else None)
        texts.append(None if i % 9 == 4 else f"text {i} — ünïcödé ✓ {'x' * (i % 4)}")
    return {
        "ids": [f"id-{i}" for i in range(N)],
        "vecs": vecs,
        "texts": texts,
        "metas": metas,
        "sources": [SOURCES[i % len(SOURCES)] for i in range(N)],
        "queries": rng.standard_normal((5, DIM)).astype(np.float32),
    }


FILTERS: list[Any] = [
    {"lang": "en"},
    {"i": {"$gte": 10, "$lt": 40}},
    {"$or": [{"lang": "de"}, {"even": True}]},
    {"$not": {"lang": "fr"}},
    {"lang": {"$in": ["de", "fr"]}, "score": {"$lte": 5.0}},
    {"tags": {"$exists": True}},
    {"maybe": None},
    {"lang": {"$ne": "en"}},
    {"i": {"$nin": [1, 2, 3]}},
    {"i": 1000},
]
INCLUDES: list[list[str] | None] = [
    None,
    [],
    ["vector"],
    ["text"],
    ["metadata", "source"],
    ["text", "metadata", "source", "vector"],
]


def script(api: Api) -> list[tuple[str, Any]]:
    """Run the scripted operations; return (label, outcome) for each."""
    d = dataset()
    out: list[tuple[str, Any]] = []

    def step(label: str, fn: Callable[[], Any]) -> None:
        try:
            out.append((label, ("ok", fn())))
        except ApiError as exc:
            out.append((label, ("error", exc.code, exc.details)))

    ids, vecs, texts, metas, sources = d["ids"], d["vecs"], d["texts"], d["metas"], d["sources"]
    q = d["queries"]
    step("list empty", api.list_collections)
    for name, metric, index in (
        ("cos", "cosine", None),
        ("l2", "l2", {"type": "flat"}),
        ("ip", "ip", {"type": "flat"}),
        ("hnsw", "cosine", {"type": "hnsw", "m": 16, "ef_search": 32}),
    ):
        step(f"create {name}", lambda n=name, m=metric, ix=index: api.create_collection(n, DIM, m, ix))
    step("create again", lambda: api.create_collection("cos", DIM))
    step("create bad name", lambda: api.create_collection("bad name!", DIM))
    step("create dim 0", lambda: api.create_collection("zero", 0))
    step("create bad index", lambda: api.create_collection("bad", DIM, "cosine", {"type": "nope"}))
    step(
        "create bad index param",
        lambda: api.create_collection("bad", DIM, "cosine", {"type": "hnsw", "m": 0}),
    )
    step("list", api.list_collections)

    for name in ("cos", "l2", "ip", "hnsw"):
        # in three batches with different column shapes: all columns, vectors only, some columns
        step(
            f"{name} upsert all",
            lambda n=name: api.upsert(n, ids[:30], vecs[:30], texts[:30], metas[:30], sources[:30]),
        )
        step(f"{name} upsert bare", lambda n=name: api.upsert(n, ids[30:45], vecs[30:45]))
        step(
            f"{name} upsert some",
            lambda n=name: api.upsert(n, ids[45:], vecs[45:], None, metas[45:], sources[45:]),
        )
        # replace: new vector, text, metadata and source for a few ids
        step(
            f"{name} replace",
            lambda n=name: api.upsert(
                n,
                ["id-1", "id-31"],
                vecs[[50, 51]] * 2,
                ["new text", None],
                [{"replaced": True}, None],
                ["moved.md", "a.md"],
            ),
        )
        step(f"{name} info", lambda n=name: api.info(n))
        step(f"{name} count", lambda n=name: api.count(n))
        step(f"{name} sources", lambda n=name: api.list_sources(n))
        for j, flt in enumerate(FILTERS):
            step(f"{name} count filter {j}", lambda n=name, f=flt: api.count(n, f))
        for j, inc in enumerate(INCLUDES):
            step(
                f"{name} get include {j}",
                lambda n=name, i=inc: api.get(n, ["id-5", "missing", "id-1", "id-5", "id-31"], i),
            )
            step(f"{name} search include {j}", lambda n=name, i=inc: api.search(n, q[:2], 4, None, i))
        step(f"{name} search batch k=7", lambda n=name: api.search(n, q, 7))
        step(f"{name} search single", lambda n=name: api.search(n, q[:1], 3))
        step(f"{name} search k > count", lambda n=name: api.search(n, q[:1], 50, {"lang": "en"}, []))
        for j, flt in enumerate(FILTERS):
            step(f"{name} search filter {j}", lambda n=name, f=flt: api.search(n, q, 5, f, ["metadata"]))
        step(f"{name} search ef_search", lambda n=name: api.search(n, q, 5, None, [], {"ef_search": 64}))
        step(f"{name} search nprobe", lambda n=name: api.search(n, q[:1], 5, None, [], {"nprobe": 3}))

    c = "cos"
    # errors
    step("upsert dim mismatch", lambda: api.upsert(c, ["x"], np.ones((1, DIM + 1), np.float32)))
    step("search dim mismatch", lambda: api.search(c, np.ones((2, DIM - 1), np.float32)))
    step(
        "upsert zero vector (cosine)",
        lambda: api.upsert(c, ["z1", "z2"], np.stack([vecs[0], np.zeros(DIM, np.float32)])),
    )
    step("search zero vector (cosine)", lambda: api.search(c, np.zeros((1, DIM), np.float32)))
    step("upsert l2 zero vector ok", lambda: api.upsert("l2", ["z"], np.zeros((1, DIM), np.float32)))
    step("upsert duplicate id", lambda: api.upsert(c, ["d", "e", "d"], vecs[:3]))
    step("upsert empty id", lambda: api.upsert(c, ["ok", ""], vecs[:2]))
    # (a texts/metadatas column shorter than ids cannot be expressed in gRPC's per-record messages)
    step("upsert empty batch", lambda: api.upsert(c, [], np.empty((0, DIM), np.float32)))
    step("upsert vectors count", lambda: api.upsert(c, ["t1", "t2", "t3"], vecs[:2]))
    step(
        "upsert too big batch",
        lambda: api.upsert(c, [f"b{i}" for i in range(201)], np.ones((201, DIM), np.float32)),
    )
    step(
        "upsert metadata nan-free deep",
        lambda: api.upsert(c, ["deep"], vecs[:1], None, [{"a": {"b": {"c": [1, {"d": "e"}]}}}]),
    )
    step("upsert empty source", lambda: api.upsert(c, ["es"], vecs[:1], None, None, [""]))
    step("upsert metadata bad key", lambda: api.upsert(c, ["bk"], vecs[:1], None, [{"": 1}]))
    step("search k too big", lambda: api.search(c, q[:1], 51))
    step("search too many queries", lambda: api.search(c, np.ones((21, DIM), np.float32)))
    step("search bad filter op", lambda: api.search(c, q[:1], 3, {"i": {"$regex": "x"}}))
    step("search bad filter and", lambda: api.search(c, q[:1], 3, {"$and": []}))
    step("search bad include", lambda: api.search(c, q[:1], 3, None, ["bogus"]))
    step("search ef_search 0", lambda: api.search("hnsw", q[:1], 3, None, None, {"ef_search": 0}))
    step("get bad include", lambda: api.get(c, ["id-1"], ["text", "nope"]))
    step("get no ids", lambda: api.get(c, []))
    step("count bad filter", lambda: api.count(c, {"$or": "x"}))
    step("delete no selector", lambda: api.delete(c))
    step("delete empty filter", lambda: api.delete(c, filter={}))
    step("delete bad filter", lambda: api.delete(c, filter={"$nope": 1}))
    step("delete no ids", lambda: api.delete(c, ids=[]))
    step("delete empty source", lambda: api.delete(c, source=""))
    for op, fn in (
        ("info", lambda: api.info("ghost")),
        ("upsert", lambda: api.upsert("ghost", ["a"], vecs[:1])),
        ("get", lambda: api.get("ghost", ["a"])),
        ("search", lambda: api.search("ghost", q[:1])),
        ("count", lambda: api.count("ghost")),
        ("sources", lambda: api.list_sources("ghost")),
        ("delete", lambda: api.delete("ghost", ids=["a"])),
        ("delete source", lambda: api.delete("ghost", source="a.md")),
        ("drop", lambda: api.drop_collection("ghost")),
    ):
        step(f"unknown collection {op}", fn)
    step("count after errors", lambda: api.count(c))

    # deletes by each selector, on every collection
    for name in ("cos", "l2", "ip", "hnsw"):
        step(f"{name} delete ids", lambda n=name: api.delete(n, ids=["id-0", "id-2", "missing", "id-2"]))
        step(f"{name} delete ids none left", lambda n=name: api.delete(n, ids=["id-0"]))
        step(f"{name} delete filter", lambda n=name: api.delete(n, filter={"lang": "fr", "i": {"$lt": 30}}))
        for src in SOURCES[1:]:
            step(f"{name} delete source {src}", lambda n=name, s=src: api.delete(n, source=s))
        step(f"{name} delete source again", lambda n=name: api.delete(n, source="a.md"))
        step(f"{name} delete source never", lambda n=name: api.delete(n, source="never.md"))
        step(f"{name} sources after", lambda n=name: api.list_sources(n))
        step(f"{name} count after", lambda n=name: api.count(n))
        step(f"{name} info after", lambda n=name: api.info(n))
        step(f"{name} search after", lambda n=name: api.search(n, q, 10))
        step(f"{name} get after", lambda n=name: api.get(n, ids, ["text", "metadata", "source", "vector"]))

    step("drop", lambda: api.drop_collection("ip"))
    step("list after drop", api.list_collections)
    step("search dropped", lambda: api.search("ip", q[:1]))
    step("recreate dropped", lambda: api.create_collection("ip", 4, "ip"))
    step("recreated is empty", lambda: api.count("ip"))
    return out


def assert_same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float), f"{where}: {a!r} != {b!r}"
        assert math.isclose(a, b, rel_tol=TOL, abs_tol=TOL), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: {a!r} != {b!r}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} != {b!r}"


def compare(transcripts: dict[str, list[tuple[str, Any]]]) -> None:
    (ref_name, ref), *others = transcripts.items()
    for name, other in others:
        assert [label for label, _ in other] == [label for label, _ in ref]
        for (label, x), (_, y) in zip(ref, other, strict=True):
            assert_same(x, y, f"{label!r} ({ref_name} vs {name})")


def test_same_script_same_results(apis: list[Api]) -> None:
    transcripts = {api.name: script(api) for api in apis}
    compare(transcripts)
    ref = transcripts["embedded"]
    outcomes = dict(ref)
    # the script exercises what it claims: errors where expected, hits and deletes elsewhere
    errors = {label: o[1] for label, o in ref if o[0] == "error"}
    assert errors["upsert dim mismatch"] == errors["search dim mismatch"] == "dimension_mismatch"
    assert errors["unknown collection search"] == errors["unknown collection drop"] == "collection_not_found"
    assert errors["create again"] == "collection_exists"
    assert errors["search k too big"] == "limit_exceeded"
    assert errors["search bad filter op"] == "invalid_filter"
    assert errors["upsert zero vector (cosine)"] == "invalid_vector"
    assert errors["upsert duplicate id"] == "duplicate_id"
    assert "cos search batch k=7" not in errors and len(outcomes["cos search batch k=7"][1]) == 5
    assert all(len(hits) == 7 for hits in outcomes["cos search batch k=7"][1])
    assert outcomes["cos delete source a.md"][1] > 0
    assert outcomes["cos delete source /abs/c.txt"][1] > 0
    assert outcomes["cos delete source q?x#y%z&.md"][1] > 0
    assert outcomes["cos count after"][1] > 0
    print(f"\ncongruence: {len(ref)} operations, {len(errors)} errors, identical on {', '.join(transcripts)}")


def test_rest_delete_source_route_and_body_agree(rest: Rest) -> None:
    d = dataset()
    for name in ("one", "two"):
        rest.create_collection(name, DIM)
        rest.upsert(name, d["ids"], d["vecs"], None, None, d["sources"])
    for src in SOURCES[1:]:
        via_route = rest.delete("one", source=src)
        via_body = rest._do("POST", "/v1/collections/two/delete", json={"source": src})["count"]
        assert via_route == via_body > 0, src
    assert rest.list_sources("one") == rest.list_sources("two") == []


# ---- errors that once differed between transports ------------------------------------------------------


def outcome(api: Api, fn: Callable[[Api], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", fn(api))
    except ApiError as exc:
        return ("error", exc.code)


def test_bad_metric_same_error_everywhere(apis: list[Api]) -> None:
    got = {api.name: outcome(api, lambda a: a.create_collection("m", DIM, "cosinus")) for api in apis}
    assert got["embedded"] == ("error", "invalid_config")
    assert got["rest"] == got["grpc"] == got["embedded"], got


def test_non_object_metadata_same_error_everywhere(apis: list[Api]) -> None:
    def run(a: Api) -> Any:
        a.create_collection("m", DIM)
        return a.upsert("m", ["x"], np.ones((1, DIM), np.float32), None, [[1, 2]])

    got = {api.name: outcome(api, run) for api in apis}
    assert got["embedded"] == ("error", "invalid_metadata")
    assert got["rest"] == got["grpc"] == got["embedded"], got


def test_empty_query_batch_same_error_everywhere(apis: list[Api]) -> None:
    def run(a: Api) -> Any:
        a.create_collection("m", DIM)
        a.upsert("m", ["x"], np.ones((1, DIM), np.float32))
        return a.search("m", np.empty((0, DIM), np.float32))

    got = {api.name: outcome(api, run) for api in apis}
    assert got["embedded"] == ("error", "invalid_argument")
    assert got["rest"] == got["grpc"] == got["embedded"], got


def test_recall_target_travels_in_the_index_spec(apis: list[Api]) -> None:
    """target_recall needs no protocol change: it is part of the index spec's JSON on every transport."""

    def run(a: Api) -> Any:
        created = a.create_collection("r", DIM, index={"type": "hnsw", "target_recall": 0.9})
        return created["index"], a.info("r")["index"], a.info("r")["index_state"]["recall"]["target"]

    got = {api.name: outcome(api, run) for api in apis}
    assert got["embedded"] == (
        "ok",
        (
            {
                "type": "hnsw",
                "m": 32,
                "ef_construction": 100,
                "ef_search": None,
                "target_recall": 0.9,
                "storage": "flat",
            },
        )
        * 2
        + (0.9,),
    )
    assert got["rest"] == got["grpc"] == got["embedded"], got
    bad = {
        api.name: outcome(
            api, lambda a: a.create_collection("b", DIM, index={"type": "ivf", "target_recall": 1.5})
        )
        for api in apis
    }
    assert bad["embedded"] == ("error", "invalid_config")
    assert bad["rest"] == bad["grpc"] == bad["embedded"], bad
