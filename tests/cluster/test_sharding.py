"""Sharded collections on a local Ray cluster started inside the test (bounded: 2 logical CPUs).

Checked against an unsharded flat collection holding the same data: same ids and scores for search
(with filters, k beyond a shard's size), get, count, list_sources, deletes and scroll; a killed shard
actor recovers from its own store with every acknowledged write; with two replicas a killed one does not
interrupt reads; with none left a read fails naming the shard.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Not importorskip: Ray is in the dev extra, and these tests must run wherever the others do.
import ray

from vecdb import Database
from vecdb.cluster import ClusterDatabase, ShardedCollection, shard_of
from vecdb.engine.collection import Collection
from vecdb.errors import InvalidConfigError, UnavailableError

DIM = 16
N = 600
ACTOR = {"num_cpus": 0.25}


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="vecdb-test")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def dbs(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, Database]]:
    root = tmp_path_factory.mktemp("cluster")
    with Database(root / "plain") as plain, ClusterDatabase(root / "sharded", actor_options=ACTOR) as sharded:
        yield plain, sharded


@pytest.fixture(autouse=True)
def _drop_sharded(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test's actors end with it: the cluster has room for a few collections at a time."""
    yield
    if "dbs" in request.fixturenames:
        sharded = request.getfixturevalue("dbs")[1]
        plain = request.getfixturevalue("dbs")[0]
        for name in sharded.list_collections():
            sharded.drop_collection(name)
        for name in plain.list_collections():
            plain.drop_collection(name)


def _data(metric: str, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((N, DIM)).astype(np.float32)
    ids = [f"doc-{i}" for i in range(N)]
    return {
        "ids": ids,
        "vectors": vecs,
        "texts": [f"text {i}" for i in range(N)],
        "metadatas": [{"group": i % 5, "even": i % 2 == 0} for i in range(N)],
        "sources": [f"src-{i % 7}" for i in range(N)],
    }


def _pair(dbs: tuple[Database, Database], name: str, metric: str) -> tuple[Collection, Collection]:
    plain, sharded = dbs
    a = plain.create_collection(name, dim=DIM, metric=metric, index={"type": "flat"})  # type: ignore[arg-type]
    b = sharded.create_collection(name, dim=DIM, metric=metric, index={"type": "flat"}, shards=2)  # type: ignore[arg-type]
    assert isinstance(b, ShardedCollection)
    data = _data(metric)
    assert a.upsert(**data) == b.upsert(**data) == N
    return a, b


def _hits(rows: list[list[Any]]) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in row] for row in rows]


def _assert_same(expected: list[list[Any]], got: list[list[Any]]) -> None:
    e, g = _hits(expected), _hits(got)
    assert [[i for i, _ in row] for row in g] == [[i for i, _ in row] for row in e]
    for erow, grow in zip(e, g, strict=True):
        np.testing.assert_allclose([s for _, s in grow], [s for _, s in erow], rtol=1e-5, atol=1e-6)


def test_routing_is_stable_and_spreads() -> None:
    assert shard_of("doc-1", 4) == shard_of("doc-1", 4)
    counts = np.bincount([shard_of(f"doc-{i}", 4) for i in range(1000)], minlength=4)
    assert counts.min() > 200


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_search_equals_unsharded(dbs: tuple[Database, Database], metric: str) -> None:
    a, b = _pair(dbs, f"search-{metric}", metric)
    queries = np.random.default_rng(1).standard_normal((5, DIM)).astype(np.float32)
    for kwargs in (
        {"k": 10},
        {"k": 400},  # larger than either shard's share
        {"k": 20, "filter": {"group": 3}},
        {"k": 50, "filter": {"even": True}, "include": ["metadata", "vector"]},
    ):
        expected, got = a.search(queries, **kwargs), b.search(queries, **kwargs)
        _assert_same(expected, got)
        assert [h.metadata for h in got[0]] == [h.metadata for h in expected[0]]
    assert b.info()["count"] == N
    assert b.info()["cluster"] == {"shards": 2, "replicas": 1}


def test_reads_and_deletes_merge(dbs: tuple[Database, Database]) -> None:
    a, b = _pair(dbs, "merge", "cosine")
    ids = ["doc-5", "missing", "doc-1", "doc-5", "doc-300"]
    assert [r.to_dict() for r in b.get(ids)] == [r.to_dict() for r in a.get(ids)]
    assert b.count() == a.count() == N
    assert b.count({"group": 2}) == a.count({"group": 2})
    assert b.list_sources() == a.list_sources()
    assert b.delete(source="src-3") == a.delete(source="src-3")
    assert b.delete(filter={"group": 1}) == a.delete(filter={"group": 1})
    assert b.delete(["doc-0", "doc-2", "nope"]) == a.delete(["doc-0", "doc-2", "nope"])
    assert b.list_sources() == a.list_sources()
    assert b.count() == a.count()
    vecs = np.ones((2, DIM), dtype=np.float32)
    assert b.replace_source("src-4", ["doc-0", "new-1"], vecs) == a.replace_source(
        "src-4", ["doc-0", "new-1"], vecs
    )
    assert b.list_sources() == a.list_sources()
    q = np.random.default_rng(2).standard_normal((3, DIM)).astype(np.float32)
    _assert_same(a.search(q, k=30), b.search(q, k=30))
    # Scroll merges per-shard pages in id order, with and without a filter.
    assert [r.id for r in b.iter_records(limit=37)] == [r.id for r in a.iter_records(limit=37)]
    flt = {"group": 4}
    assert [r.id for r in b.iter_records(limit=10, filter=flt)] == [
        r.id for r in a.iter_records(limit=10, filter=flt)
    ]


def test_registry_survives_reopen_and_drop(cluster: None, tmp_path: Path) -> None:
    with ClusterDatabase(tmp_path / "d", actor_options=ACTOR) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", shards=2)
        col.upsert(["a", "b", "c"], np.eye(3, DIM, dtype=np.float32))
        assert db.list_collections() == ["c"]
        with pytest.raises(InvalidConfigError):
            db.create_collection("capped", dim=DIM, shards=2, max_records=10)
    with ClusterDatabase(tmp_path / "d", actor_options=ACTOR) as db:
        col = db.get_collection("c")
        assert isinstance(col, ShardedCollection)
        assert [r.id for r in col.get(["c", "a"])] == ["c", "a"]
        db.drop_collection("c")
        assert db.list_collections() == []
    with Database(tmp_path / "plain") as plain, pytest.raises(InvalidConfigError, match="ray-address"):
        plain.create_collection("x", dim=4, shards=2)


def _wait_back(actor: Any, old_pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ray.get(actor.ping.remote(), timeout=5) != old_pid:
                return
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError("the shard actor did not come back")


def _wait_dead(actor: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get(actor.ping.remote(), timeout=5)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.1)
    raise AssertionError("the actor is still alive")


def test_killed_shard_recovers_every_acknowledged_write(dbs: tuple[Database, Database]) -> None:
    _, sharded = dbs
    col = sharded.create_collection("crash", dim=DIM, metric="cosine", index={"type": "flat"}, shards=2)
    assert isinstance(col, ShardedCollection)
    data = _data("cosine", seed=3)
    acked = col.upsert(**data)
    col.delete(["doc-7", "doc-8"])
    actor = col.actors[0][0]
    pid = ray.get(actor.ping.remote())
    ray.kill(actor, no_restart=False)
    _wait_back(actor, pid)
    assert col.count() == acked - 2
    got = col.get(data["ids"], include=["vector"])
    assert {r.id for r in got} == set(data["ids"]) - {"doc-7", "doc-8"}
    # Writes go on after the restart, on both shards.
    col.upsert(["after-1", "after-2"], np.ones((2, DIM), dtype=np.float32))
    assert col.count() == acked
    # A write sent while the actor is being killed and restarted is acknowledged only once a live
    # actor has it (ray.kill is asynchronous: the old process may still take it, durably, or the
    # write waits for the new one); either way it is there after the restart.
    pid = ray.get(actor.ping.remote())
    ray.kill(actor, no_restart=False)
    late = [i for i in (f"late-{n}" for n in range(20)) if shard_of(i, 2) == 0]
    col.upsert(late, np.ones((len(late), DIM), dtype=np.float32))
    _wait_back(actor, pid)
    assert [r.id for r in col.get(late)] == late
    assert col.count() == acked + len(late)


def test_replicas_keep_reads_going_and_fail_clearly_when_none_is_left(dbs: tuple[Database, Database]) -> None:
    _, sharded = dbs
    col = sharded.create_collection("rep", dim=DIM, metric="l2", index={"type": "flat"}, shards=2, replicas=2)
    assert isinstance(col, ShardedCollection)
    data = _data("l2", seed=4)
    col.upsert(**data)
    q = data["vectors"][:3]
    before = col.search(q, k=5)
    # One replica of shard 1 gone for good: every read still answers, whichever replica it starts on.
    ray.kill(col.actors[1][0], no_restart=True)
    for _ in range(4):
        _assert_same(before, col.search(q, k=5))
        assert col.count() == N
    # Its last replica gone too: reads say which shard is missing instead of answering partly.
    ray.kill(col.actors[1][1], no_restart=True)
    _wait_dead(col.actors[1][1])  # ray.kill is asynchronous
    with pytest.raises(UnavailableError) as err:
        col.search(q, k=5)
    assert err.value.details["shards"] == [1]
    assert "shard(s) [1]" in err.value.message
    with pytest.raises(UnavailableError):
        col.count()


def test_server_and_client_on_a_sharded_collection(dbs: tuple[Database, Database], tmp_path: Path) -> None:
    """``vecdb serve --ray-address`` joins the test's Ray cluster; the unchanged client, over REST and
    gRPC, sees a sharded collection answer as the unsharded one does."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
    from clientkit import client_for, start_server, stop_checked

    plain = dbs[0].create_collection("served", dim=DIM, metric="cosine", index={"type": "flat"})
    data = _data("cosine", seed=5)
    plain.upsert(**data)
    address = ray.get_runtime_context().gcs_address
    sp = start_server(tmp_path, "--ray-address", address, "--ray-actor-cpus", "0.25")
    try:
        for transport in ("rest", "grpc"):
            with client_for(transport, sp.rest_url, sp.grpc_target) as client:
                name = f"served-{transport}"
                col = client.create_collection(
                    name, dim=DIM, metric="cosine", index={"type": "flat"}, shards=2
                )
                col.upsert(
                    data["ids"],
                    data["vectors"].tolist(),
                    texts=data["texts"],
                    metadatas=data["metadatas"],
                    sources=data["sources"],
                )
                q = np.random.default_rng(6).standard_normal((2, DIM)).astype(np.float32)
                expected = plain.search(q, k=25, filter={"group": 2})
                got = col.search(q.tolist(), k=25, filter={"group": 2})
                _assert_same(expected, got)
                assert col.count() == N
                assert [(s.source, s.count) for s in col.list_sources()] == [
                    (s.source, s.count) for s in plain.list_sources()
                ]
                assert client.get_collection(name).info().count == N
                # the full-text wire on a sharded collection: set_text_index, text_filter, text search
                spec = col.set_text_index({})
                assert spec is not None and spec["documents"] == N
                tf = {"$or": [{"$contains": "7"}, {"$contains": "12"}]}
                assert col.count(text_filter=tf) == 2
                assert col.count({"even": True}, text_filter=tf) == 1  # "text 12"
                (hits,) = col.search(texts="text 12", mode="text", k=3, include=["text", "explain"])
                assert hits[0].id == "doc-12" and hits[0].explain is not None
                (fused,) = col.search(q[:1].tolist(), texts=["text 12"], mode="hybrid", k=5, text_filter=tf)
                assert {h.id for h in fused} == {"doc-7", "doc-12"}
                assert col.delete(text_filter={"$contains": "7"}) == 1
                assert col.set_text_index(None) is None
                client.drop_collection(name)
        with client_for("rest", sp.rest_url, sp.grpc_target) as client:
            _langchain_and_cache(client)
    finally:
        stop_checked([sp])


def _langchain_and_cache(client: Any) -> None:
    """The LangChain VectorStore and the semantic cache, unchanged, on sharded collections (texts are
    embedded once, by the front end's model)."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from vecdb_client.cache import SemanticCache
    from vecdb_client.langchain import VecDBVectorStore

    client.create_collection("lc", dim=DIM, shards=2)
    store = VecDBVectorStore("lc", DeterministicFakeEmbedding(size=DIM), client=client)
    texts = [f"note number {i}" for i in range(30)]
    ids = store.add_texts(texts, metadatas=[{"source": f"s{i % 3}", "i": i} for i in range(30)])
    assert len(ids) == 30
    found = store.similarity_search("note number 7", k=3)
    assert found[0].page_content == "note number 7"
    assert {d.page_content for d in store.get_by_ids(ids[:5])} == set(texts[:5])
    client.drop_collection("lc")
    client.create_collection("cache", embedding={}, shards=2, replicas=2)
    cache = SemanticCache(client, collection="cache", threshold=0.8)
    cache.put("What is the capital of France?", "Paris")
    cache.put("How tall is Mount Everest?", "8,849 m")
    hit = cache.lookup("What is the capital city of France?")
    assert hit is not None and hit.response == "Paris" and not hit.exact
    assert cache.get("How tall is Mount Everest?") == "8,849 m"


def test_one_contract_over_real_actors(cluster: None, tmp_path: Path) -> None:
    """The divergences the unit tests pin without Ray (tests/unit/test_cluster_contract.py), once over
    real shard actors: a name held by a sharded collection, closed collections, expiry errors' details,
    sharded collections in open_collections (and so in /metrics)."""
    from vecdb.engine import CollectionAPI, DatabaseAPI
    from vecdb.errors import ClosedError, CollectionExistsError, InvalidArgumentError

    with ClusterDatabase(tmp_path / "d", actor_options=ACTOR) as db:
        assert isinstance(db, DatabaseAPI) and not isinstance(db, Database)
        col = db.create_collection("sh", dim=DIM, metric="l2", index={"type": "flat"}, shards=2)
        assert isinstance(col, CollectionAPI) and not isinstance(col, Collection)
        with pytest.raises(CollectionExistsError):
            db.create_collection("sh", dim=DIM)
        with pytest.raises(InvalidArgumentError) as err:
            col.upsert(["a", "b"], np.ones((2, DIM), dtype=np.float32), expires_at=[4e9])
        assert err.value.details == {"field": "expires_at", "expected": 2, "got": 1}
        col.upsert(["a", "b", "c"], np.eye(3, DIM, dtype=np.float32))
        assert [c.name for c in db.open_collections()] == ["sh"]
        assert col.info()["index_state"]["vectors"] == 3
        db.drop_collection("sh")
        with pytest.raises(ClosedError):
            col.count()
