"""Time to live and capacity over the wire: REST and gRPC against one database.

Pinned here:

- Create with ``max_records`` / ``eviction`` on both transports (eviction defaults to fifo); info
  carries ``capacity`` (REST) / ``capacity_json`` (gRPC), null / empty without a capacity, whichever
  transport created the collection.
- Bad capacity: the same ``invalid_config`` error with the same details on both (REST 400, gRPC
  INVALID_ARGUMENT with the vecdb-error-code trailer); wrong JSON types over REST are 400 too. Nothing is
  created.
- Upsert with ``ttl`` and with per-record ``expires_at`` (list with nulls over REST, the optional
  RecordData.expires_at over gRPC): records in the past are invisible at once, the others until their
  time, then gone from get, search and count on both transports, and purged from the store.
- Eviction is visible on both (fifo and lru, where a REST get is a use seen by a gRPC write); a batch
  larger than max_records is 413 / RESOURCE_EXHAUSTED ``limit_exceeded`` with nothing written.
- Bad ttl / expires_at: the same ``invalid_argument`` error with the same details on both; nothing
  written.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import numpy as np
import pytest

from tests.server.conftest import make_app, make_client, run_grpc_server
from vecdb import Database
from vecdb.config import Settings, StorageSettings
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from tests.server.conftest import GrpcServer

DIM = 4
TTL = 1.0  # seconds: long enough for the checks before expiry on a slow machine
FAR = 3600.0
FUTURE = 4_000_000_000.0


@pytest.fixture
def fdb(tmp_path: Path) -> Iterator[Database]:
    """A database whose purger runs every 50 ms."""
    settings = Settings(storage=StorageSettings(sync_writes=False, expiry_purge_seconds=0.05))
    with Database(tmp_path / "data", settings=settings) as db:
        yield db


@pytest.fixture
async def api(fdb: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(make_app(fdb)) as client:
        yield client


@pytest.fixture
def server(fdb: Database) -> Iterator[GrpcServer]:
    yield from run_grpc_server(fdb)


@pytest.fixture
def stub(server: GrpcServer) -> pb_grpc.VecDBStub:
    return server.stub


# ---- helpers --------------------------------------------------------------------------------------------


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST ``body`` as JSON, NaN and Infinity included (httpx's own encoder refuses them)."""
    return await client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


async def rest_create(client: httpx.AsyncClient, name: str, **extra: Any) -> dict[str, Any]:
    r = await post(client, "/v1/collections", {"name": name, "dim": DIM, "index": {"type": "flat"}, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def rest_upsert(client: httpx.AsyncClient, name: str, ids: list[str], seed: int, **extra: Any) -> int:
    body = {"ids": ids, "vectors": vectors(len(ids), seed).tolist(), **extra}
    r = await post(client, f"/v1/collections/{name}/upsert", body)
    assert r.status_code == 200, r.text
    return r.json()["count"]  # type: ignore[no-any-return]


async def rest_ids(client: httpx.AsyncClient, name: str, ids: list[str]) -> list[str]:
    r = await post(client, f"/v1/collections/{name}/get", {"ids": ids, "include": []})
    assert r.status_code == 200, r.text
    return [rec["id"] for rec in r.json()["records"]]


async def rest_count(client: httpx.AsyncClient, name: str) -> int:
    r = await client.get(f"/v1/collections/{name}/count")
    assert r.status_code == 200, r.text
    return r.json()["count"]  # type: ignore[no-any-return]


async def rest_search_ids(client: httpx.AsyncClient, name: str, k: int) -> list[str]:
    body = {"vectors": vectors(1, 99).tolist(), "k": k, "include": []}
    r = await post(client, f"/v1/collections/{name}/search", body)
    assert r.status_code == 200, r.text
    return sorted(h["id"] for h in r.json()["results"][0])


def grpc_records(ids: list[str], expires_at: list[float | None] | None = None) -> list[pb.RecordData]:
    records = convert.to_proto_records(ids)
    for rec, when in zip(records, expires_at or [None] * len(ids), strict=True):
        if when is not None:
            rec.expires_at = when
    return records


def grpc_upsert_request(
    name: str, ids: list[str], seed: int, expires_at: list[float | None] | None = None, **extra: Any
) -> pb.UpsertRequest:
    return pb.UpsertRequest(
        collection=name,
        records=grpc_records(ids, expires_at),
        vectors=convert.to_proto_vectors(vectors(len(ids), seed)),
        **extra,
    )


def grpc_ids(stub: pb_grpc.VecDBStub, name: str, ids: list[str]) -> list[str]:
    reply = stub.Get(pb.GetRequest(collection=name, ids=ids, include=pb.Include(fields=[])))
    return [r.id for r in reply.records]


def grpc_count(stub: pb_grpc.VecDBStub, name: str) -> int:
    return int(stub.Count(pb.CountRequest(collection=name)).count)


def grpc_search_ids(stub: pb_grpc.VecDBStub, name: str, k: int) -> list[str]:
    request = pb.SearchRequest(
        collection=name, queries=convert.to_proto_vectors(vectors(1, 99)), k=k, include=pb.Include(fields=[])
    )
    return sorted(h.id for h in stub.Search(request).results[0].hits)


def grpc_capacity(stub: pb_grpc.VecDBStub, name: str) -> Any:
    text = stub.GetCollection(pb.CollectionRequest(name=name)).capacity_json
    return json.loads(text) if text else None


def grpc_error(call: Any) -> tuple[grpc.StatusCode, str, dict[str, Any]]:
    """(status, vecdb-error-code, details) of a call that must fail."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    md: dict[str, Any] = dict(err.trailing_metadata() or ())  # type: ignore[arg-type]
    assert "vecdb-error-code" in md, f"no vecdb error trailer: {err.code()} {err.details()}"
    return err.code(), md["vecdb-error-code"], json.loads(md["vecdb-error-details"])


def rest_error(r: httpx.Response) -> tuple[int, str, dict[str, Any]]:
    assert r.status_code < 500, r.text
    err = r.json()["error"]
    return r.status_code, err["code"], err["details"]


# ---- capacity: create and info --------------------------------------------------------------------------


async def test_capacity_created_over_rest_shows_on_both(
    api: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    info = await rest_create(api, "lru", max_records=3, eviction="lru")
    assert info["capacity"] == {"max_records": 3, "eviction": "lru"}
    assert (await rest_create(api, "fifo", max_records=7))["capacity"] == {
        "max_records": 7,
        "eviction": "fifo",
    }
    assert (await rest_create(api, "plain", max_records=None, eviction=None))["capacity"] is None
    for name, want in [
        ("lru", {"max_records": 3, "eviction": "lru"}),
        ("fifo", {"max_records": 7, "eviction": "fifo"}),
        ("plain", None),
    ]:
        r = await api.get(f"/v1/collections/{name}")
        assert r.status_code == 200 and r.json()["capacity"] == want
        assert grpc_capacity(stub, name) == want
    assert stub.GetCollection(pb.CollectionRequest(name="plain")).capacity_json == ""


async def test_capacity_created_over_grpc_shows_on_both(
    api: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    info = stub.CreateCollection(pb.CreateCollectionRequest(name="g1", dim=DIM, max_records=2))
    assert json.loads(info.capacity_json) == {"max_records": 2, "eviction": "fifo"}
    info = stub.CreateCollection(
        pb.CreateCollectionRequest(name="g2", dim=DIM, max_records=5, eviction="lru")
    )
    assert json.loads(info.capacity_json) == {"max_records": 5, "eviction": "lru"}
    assert stub.CreateCollection(pb.CreateCollectionRequest(name="g3", dim=DIM)).capacity_json == ""
    for name, want in [
        ("g1", {"max_records": 2, "eviction": "fifo"}),
        ("g2", {"max_records": 5, "eviction": "lru"}),
        ("g3", None),
    ]:
        assert (await api.get(f"/v1/collections/{name}")).json()["capacity"] == want
        assert (
            convert.from_proto_collection_info(stub.GetCollection(pb.CollectionRequest(name=name)))[
                "capacity"
            ]
            == want
        )


#: (case, max_records or None, eviction or None, the field the error names)
BAD_CAPACITY: list[tuple[str, int | None, str | None, str]] = [
    ("zero", 0, None, "max_records"),
    ("beyond limit", (1 << 40) + 1, "fifo", "max_records"),
    ("eviction without max_records", None, "lru", "eviction"),
    ("unknown eviction", 3, "bogus", "eviction"),
    ("eviction upper case", 3, "LRU", "eviction"),
]


@pytest.mark.parametrize(
    ("case", "max_records", "eviction", "field"), BAD_CAPACITY, ids=[c[0] for c in BAD_CAPACITY]
)
async def test_bad_capacity_is_invalid_config_on_both(
    api: httpx.AsyncClient,
    stub: pb_grpc.VecDBStub,
    case: str,
    max_records: int | None,
    eviction: str | None,
    field: str,
) -> None:
    body: dict[str, Any] = {"name": "c", "dim": DIM, "max_records": max_records, "eviction": eviction}
    status, code, details = rest_error(await post(api, "/v1/collections", body))
    assert (status, code, details) == (400, "invalid_config", {"field": field})
    request = pb.CreateCollectionRequest(name="c", dim=DIM, eviction=eviction or "")
    if max_records is not None:
        request.max_records = max_records
    assert grpc_error(lambda: stub.CreateCollection(request)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_config",
        {"field": field},
    )
    assert (await api.get("/v1/collections")).json()["collections"] == []


@pytest.mark.parametrize(
    "extra",
    [{"max_records": "3"}, {"max_records": 2.5}, {"max_records": True}, {"max_records": 3, "eviction": 1}],
    ids=["max_records str", "max_records float", "max_records bool", "eviction number"],
)
async def test_rest_capacity_of_the_wrong_json_type_is_400(
    api: httpx.AsyncClient, extra: dict[str, Any]
) -> None:
    status, code, _ = rest_error(await post(api, "/v1/collections", {"name": "c", "dim": DIM, **extra}))
    assert (status, code) == (400, "invalid_argument")
    assert (await api.get("/v1/collections")).json()["collections"] == []


def test_grpc_max_records_zero_is_not_unset(stub: pb_grpc.VecDBStub) -> None:
    """max_records is optional: an explicit 0 is a bad capacity, not "no capacity"."""
    code, vecdb_code, details = grpc_error(
        lambda: stub.CreateCollection(pb.CreateCollectionRequest(name="c", dim=DIM, max_records=0))
    )
    assert (code, vecdb_code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_config",
        {"field": "max_records"},
    )


# ---- TTL ------------------------------------------------------------------------------------------------


async def test_ttl_and_expires_at_expire_on_both(
    api: httpx.AsyncClient, stub: pb_grpc.VecDBStub, fdb: Database
) -> None:
    await rest_create(api, "c")
    start = time.time()
    assert await rest_upsert(api, "c", ["r1", "r2"], 1, ttl=TTL) == 2
    assert await rest_upsert(api, "c", ["r3", "r4", "r5"], 2, expires_at=[start + TTL, None, start - 5]) == 3
    assert stub.Upsert(grpc_upsert_request("c", ["g1", "g2"], 3, ttl=TTL)).count == 2
    assert (
        stub.Upsert(grpc_upsert_request("c", ["g3", "g4", "g5"], 4, [start + TTL, None, start - 5])).count
        == 3
    )
    done = time.time()
    everything = ["r1", "r2", "r3", "r4", "r5", "g1", "g2", "g3", "g4", "g5"]
    visible = ["r1", "r2", "r3", "r4", "g1", "g2", "g3", "g4"]  # r5, g5: expired on arrival
    assert await rest_ids(api, "c", everything) == visible
    assert grpc_ids(stub, "c", everything) == visible
    assert await rest_count(api, "c") == 8 == grpc_count(stub, "c")
    assert await rest_search_ids(api, "c", 10) == sorted(visible) == grpc_search_ids(stub, "c", 10)
    assert time.time() < start + TTL, "the checks before expiry ran past it: machine too slow"

    while time.time() <= done + TTL:
        time.sleep(0.05)
    assert await rest_ids(api, "c", everything) == ["r4", "g4"]
    assert grpc_ids(stub, "c", everything) == ["r4", "g4"]
    assert await rest_count(api, "c") == 2 == grpc_count(stub, "c")
    assert (await api.get("/v1/collections/c")).json()["count"] == 2
    assert stub.GetCollection(pb.CollectionRequest(name="c")).count == 2
    assert await rest_search_ids(api, "c", 10) == ["g4", "r4"] == grpc_search_ids(stub, "c", 10)
    col = fdb.get_collection("c")
    deadline = time.monotonic() + 10
    while len(col._records) != 2:  # the purger deletes them from the store
        assert time.monotonic() < deadline, "expired records were not purged"
        time.sleep(0.02)


async def test_rest_expires_at_one_number_for_all(api: httpx.AsyncClient, stub: pb_grpc.VecDBStub) -> None:
    await rest_create(api, "c")
    await rest_upsert(api, "c", ["a", "b"], 1, expires_at=1)
    await rest_upsert(api, "c", ["c", "d"], 2, expires_at=FUTURE)
    assert (
        await rest_ids(api, "c", ["a", "b", "c", "d"])
        == ["c", "d"]
        == grpc_ids(stub, "c", ["a", "b", "c", "d"])
    )


def test_grpc_upsert_stream_carries_ttl_per_message(stub: pb_grpc.VecDBStub) -> None:
    stub.CreateCollection(pb.CreateCollectionRequest(name="c", dim=DIM))
    messages = [
        grpc_upsert_request("c", ["a"], 1, ttl=FAR),
        pb.UpsertRequest(records=grpc_records(["b"], [1.0]), vectors=convert.to_proto_vectors(vectors(1, 2))),
        pb.UpsertRequest(records=grpc_records(["c"]), vectors=convert.to_proto_vectors(vectors(1, 3))),
    ]
    assert stub.UpsertStream(iter(messages)).count == 3
    assert grpc_ids(stub, "c", ["a", "b", "c"]) == ["a", "c"]


# ---- eviction -------------------------------------------------------------------------------------------


async def test_fifo_eviction_and_limit_on_both(api: httpx.AsyncClient, stub: pb_grpc.VecDBStub) -> None:
    await rest_create(api, "c", max_records=3)
    await rest_upsert(api, "c", ["a", "b"], 1)
    assert stub.Upsert(grpc_upsert_request("c", ["c", "d"], 2)).count == 2  # a, the oldest, goes
    ids = ["a", "b", "c", "d", "e", "f", "g", "h"]
    assert await rest_ids(api, "c", ids) == ["b", "c", "d"] == grpc_ids(stub, "c", ids)
    await rest_upsert(api, "c", ["e"], 3)
    assert grpc_ids(stub, "c", ids) == ["c", "d", "e"]
    assert await rest_count(api, "c") == 3 == grpc_count(stub, "c")

    seq = (await api.get("/v1/collections/c")).json()["seq"]
    body = {"ids": ["f", "g", "h", "c"], "vectors": vectors(4, 4).tolist()}
    r = await post(api, "/v1/collections/c/upsert", body)
    assert rest_error(r) == (413, "limit_exceeded", {"limit": 3})
    status, code, details = grpc_error(lambda: stub.Upsert(grpc_upsert_request("c", ["f", "g", "h", "c"], 5)))
    assert (status, code, details) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "limit_exceeded", {"limit": 3})
    assert (await api.get("/v1/collections/c")).json()["seq"] == seq
    assert await rest_ids(api, "c", ids) == ["c", "d", "e"]


async def test_lru_eviction_on_both(api: httpx.AsyncClient, stub: pb_grpc.VecDBStub) -> None:
    stub.CreateCollection(pb.CreateCollectionRequest(name="c", dim=DIM, max_records=2, eviction="lru"))
    stub.Upsert(grpc_upsert_request("c", ["x", "y"], 1))
    assert await rest_ids(api, "c", ["x"]) == ["x"]  # a REST get is a use
    await rest_upsert(api, "c", ["z"], 2)  # y, the least recently used, goes
    assert grpc_ids(stub, "c", ["x", "y", "z"]) == ["x", "z"]  # a gRPC get too: z is now the most recent
    stub.Upsert(grpc_upsert_request("c", ["w"], 3))
    assert await rest_ids(api, "c", ["w", "x", "y", "z"]) == ["w", "z"]


async def test_expired_records_are_evicted_first_over_rest(
    api: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    await rest_create(api, "c", max_records=3)
    await rest_upsert(api, "c", ["old", "mid"], 1)
    await rest_upsert(api, "c", ["gone"], 2, expires_at=[1.0])
    stub.Upsert(grpc_upsert_request("c", ["new"], 3))  # evicts the expired record, not "old"
    assert await rest_ids(api, "c", ["old", "mid", "gone", "new"]) == ["old", "mid", "new"]


# ---- bad ttl / expires_at: the same error on both -------------------------------------------------------

#: (case, REST body additions, gRPC (ttl or None, per-record expires_at or None), expected details)
BAD_EXPIRY: list[
    tuple[str, dict[str, Any], tuple[float | None, list[float | None] | None], dict[str, Any]]
] = [
    ("ttl zero", {"ttl": 0}, (0.0, None), {"field": "ttl"}),
    ("ttl negative", {"ttl": -1.5}, (-1.5, None), {"field": "ttl"}),
    ("ttl nan", {"ttl": math.nan}, (math.nan, None), {"field": "ttl"}),
    ("ttl inf", {"ttl": math.inf}, (math.inf, None), {"field": "ttl"}),
    ("expires_at zero", {"expires_at": [FUTURE, 0]}, (None, [FUTURE, 0.0]), {"field": "expires_at[1]"}),
    ("expires_at negative", {"expires_at": [-1, None]}, (None, [-1.0, None]), {"field": "expires_at[0]"}),
    (
        "expires_at nan",
        {"expires_at": [math.nan, None]},
        (None, [math.nan, None]),
        {"field": "expires_at[0]"},
    ),
    (
        "expires_at -inf",
        {"expires_at": [None, -math.inf]},
        (None, [None, -math.inf]),
        {"field": "expires_at[1]"},
    ),
    ("both", {"ttl": 5, "expires_at": [FUTURE, None]}, (5.0, [FUTURE, None]), {}),
]


@pytest.mark.parametrize(
    ("case", "rest_extra", "grpc_args", "details"), BAD_EXPIRY, ids=[c[0] for c in BAD_EXPIRY]
)
async def test_bad_expiry_is_the_same_error_on_both(
    api: httpx.AsyncClient,
    stub: pb_grpc.VecDBStub,
    case: str,
    rest_extra: dict[str, Any],
    grpc_args: tuple[float | None, list[float | None] | None],
    details: dict[str, Any],
) -> None:
    await rest_create(api, "c", max_records=2)
    await rest_upsert(api, "c", ["keep", "other"], 1)
    body = {"ids": ["x", "keep"], "vectors": vectors(2, 2).tolist(), **rest_extra}
    got_rest = rest_error(await post(api, "/v1/collections/c/upsert", body))
    ttl, expires_at = grpc_args
    extra = {} if ttl is None else {"ttl": ttl}
    got_grpc = grpc_error(
        lambda: stub.Upsert(grpc_upsert_request("c", ["x", "keep"], 2, expires_at, **extra))
    )
    assert got_rest == (400, "invalid_argument", details)
    assert got_grpc == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", details)
    assert await rest_ids(api, "c", ["keep", "other", "x"]) == ["keep", "other"]
    assert (await api.get("/v1/collections/c")).json()["seq"] == 1


@pytest.mark.parametrize(
    ("extra", "details"),
    [
        ({"expires_at": [FUTURE]}, {"field": "expires_at", "expected": 2, "got": 1}),
        ({"expires_at": [FUTURE, None, None]}, {"field": "expires_at", "expected": 2, "got": 3}),
        ({"expires_at": []}, {"field": "expires_at", "expected": 2, "got": 0}),
        ({"ttl": True}, None),
        ({"ttl": "5"}, None),
        ({"ttl": [5]}, None),
        ({"expires_at": "2030-01-01"}, None),
        ({"expires_at": [True, None]}, None),
    ],
    ids=[
        "short list",
        "long list",
        "empty list",
        "ttl bool",
        "ttl str",
        "ttl list",
        "expires_at str",
        "item bool",
    ],
)
async def test_rest_bad_expiry_shapes_are_400(
    api: httpx.AsyncClient, extra: dict[str, Any], details: dict[str, Any] | None
) -> None:
    await rest_create(api, "c")
    body = {"ids": ["x", "y"], "vectors": vectors(2).tolist(), **extra}
    status, code, got = rest_error(await post(api, "/v1/collections/c/upsert", body))
    assert (status, code) == (400, "invalid_argument")
    if details is not None:
        assert got == details
    assert await rest_count(api, "c") == 0
