"""The cluster composes the engine's contract, checked without Ray.

``ShardedCollection`` runs over in-process replica groups (``LocalReplicas``: ``ShardActor`` objects,
each an engine collection in its own data directory), and ``ClusterDatabase`` with Ray's start-up
replaced by them, so every divergence between a sharded and an embedded collection is pinned here in
milliseconds. The merge functions are tested on their own. tests/cluster runs the same over real actors.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecdb.cluster.collection import ShardedCollection
from vecdb.cluster.merge import merge_get, merge_hits, merge_index_state, merge_scroll, merge_sources
from vecdb.cluster.routing import route, shard_of
from vecdb.cluster.shard import ShardActor
from vecdb.config import Settings, StorageSettings
from vecdb.engine import Collection, CollectionAPI, Database, DatabaseAPI
from vecdb.engine.validate import encode_cursor
from vecdb.errors import (
    ClosedError,
    CollectionExistsError,
    InvalidArgumentError,
    InvalidConfigError,
    NotFoundError,
)
from vecdb.types import DEFAULT_INCLUDE, Hit, Record, SourceInfo

DIM = 8
SETTINGS = Settings(storage=StorageSettings(sync_writes=False))


class LocalReplicas:
    """A ReplicaGroup of in-process ShardActors (what Ray runs, minus Ray)."""

    def __init__(self, actors: list[Any]) -> None:
        self.actors = actors
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def read(self, method: str, kwargs: dict[str, Any], turn: int) -> Callable[[], Any]:
        self.calls.append((method, kwargs))
        return lambda: self.actors[turn % len(self.actors)].call(method, kwargs)

    def write(
        self, method: str, kwargs: dict[str, Any], deadline: float
    ) -> Callable[[], tuple[list[Any], list[int]]]:
        self.calls.append((method, kwargs))
        return lambda: ([a.call(method, kwargs) for a in self.actors], [])

    def close(self) -> None:
        for a in self.actors:
            a.close()

    def destroy(self) -> None:
        for a in self.actors:
            a.destroy()


def _groups(path: Path, name: str, config: dict[str, Any]) -> list[LocalReplicas]:
    shard_config = {k: config.get(k) for k in ("dim", "metric", "index", "text_index")}
    return [
        LocalReplicas(
            [
                ShardActor(str(path / f"s{s}-r{r}"), name, shard_config, SETTINGS)
                for r in range(config["replicas"])
            ]
        )
        for s in range(config["shards"])
    ]


class FakeEmbedders:
    """An embedding model whose vectors have ``dim`` components."""

    enabled = True

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def get(self, name: str) -> Any:
        return self

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), self.dim), dtype=np.float32)


def _sharded(
    tmp_path: Path, *, shards: int = 2, replicas: int = 1, metric: str = "cosine", **config: Any
) -> ShardedCollection:
    cfg = {"dim": DIM, "metric": metric, "index": {"type": "flat"}, "shards": shards, "replicas": replicas}
    cfg.update(config)
    return ShardedCollection(
        "c",
        cfg,
        _groups(tmp_path / "shards", "c", cfg),
        path=tmp_path / "shards",
        settings=SETTINGS,
        embedders=config.get("embedders") or FakeEmbedders(DIM),  # type: ignore[arg-type]
    )


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Collection, ShardedCollection]]:
    with Database(tmp_path / "plain", settings=SETTINGS) as db:
        plain = db.create_collection("c", dim=DIM, metric="cosine", index={"type": "flat"})
        sharded = _sharded(tmp_path, shards=3, replicas=2)
        rng = np.random.default_rng(0)
        n = 90
        data = {
            "ids": [f"id-{i}" for i in range(n)],
            "vectors": rng.standard_normal((n, DIM)).astype(np.float32),
            "texts": [f"t{i}" for i in range(n)],
            "metadatas": [{"g": i % 4} for i in range(n)],
            "sources": [f"s{i % 5}" for i in range(n)],
        }
        assert plain.upsert(**data) == sharded.upsert(**data) == n
        try:
            yield plain, sharded
        finally:
            sharded.close()


# ---- the contract ------------------------------------------------------------------------------------


def test_sharded_collection_composes_the_contract() -> None:
    assert Collection not in ShardedCollection.__mro__
    from vecdb.cluster.database import ClusterDatabase

    assert Database not in ClusterDatabase.__mro__
    for proto, impls in (
        (CollectionAPI, (Collection, ShardedCollection)),
        (DatabaseAPI, (Database, ClusterDatabase)),
    ):
        members = [m for m in dir(proto) if not m.startswith("_") or m in ("__enter__", "__exit__")]
        for impl in impls:
            for member in members:
                want = getattr(proto, member)
                if not callable(want) or isinstance(inspect.getattr_static(proto, member), property):
                    continue
                got = getattr(impl, member, None)
                assert got is not None, f"{impl.__name__} lacks {member}"
                assert _params(got) == _params(want), f"{impl.__name__}.{member} differs from the contract"


def _params(fn: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_sharded_answers_as_the_engine(pair: tuple[Collection, ShardedCollection]) -> None:
    plain, sharded = pair
    q = np.random.default_rng(1).standard_normal((3, DIM)).astype(np.float32)
    for kwargs in ({"k": 5}, {"k": 40, "filter": {"g": 1}}, {"k": 7, "score_threshold": 0.2}):
        want, got = plain.search(q, **kwargs), sharded.search(q, **kwargs)
        assert [[h.id for h in row] for row in got] == [[h.id for h in row] for row in want]
    ids = ["id-3", "nope", "id-1", "id-3"]
    assert [r.id for r in sharded.get(ids)] == [r.id for r in plain.get(ids)]
    assert sharded.count({"g": 2}) == plain.count({"g": 2})
    assert sharded.list_sources() == plain.list_sources()
    assert [r.id for r in sharded.iter_records(limit=7)] == [r.id for r in plain.iter_records(limit=7)]
    assert sharded.delete(source="s1") == plain.delete(source="s1")
    assert sharded.delete(filter={"g": 3}) == plain.delete(filter={"g": 3})
    assert sharded.count() == plain.count()
    state = sharded.info()["index_state"]
    assert state["vectors"] == plain.info()["index_state"]["vectors"] and len(state["shards"]) == 3


WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


@pytest.mark.parametrize("shards", [1, 3])
def test_sharded_text_and_hybrid_search_as_the_engine(tmp_path: Path, shards: int) -> None:
    """Filters, text filters, counts, deletes: equal. Search: equal on one shard; over several, BM25 is
    scored per shard (each shard's own statistics), so only what matches is compared."""
    with Database(tmp_path / "plain", settings=SETTINGS) as db:
        plain = db.create_collection("c", dim=DIM, index={"type": "flat"}, text_index={})
        sharded = _sharded(tmp_path, shards=shards, replicas=2, text_index={"tokenizer": "standard"})
        try:
            rng = np.random.default_rng(3)
            n = 60
            data = {
                "ids": [f"id-{i}" for i in range(n)],
                "vectors": rng.standard_normal((n, DIM)).astype(np.float32),
                "texts": [" ".join(rng.choice(WORDS, size=4)) for _ in range(n)],
                "metadatas": [{"g": i % 4} for i in range(n)],
            }
            plain.upsert(**data)
            sharded.upsert(**data)
            assert sharded.info()["text_index"]["documents"] == n
            q = rng.standard_normal((2, DIM)).astype(np.float32)
            tf = {"$contains": "beta"}
            kw: dict[str, Any] = {"filter": {"g": 1}, "text_filter": tf, "include": ["explain"]}
            for args in (
                {"texts": ["gamma delta", "zeta"], "mode": "text", "k": 5, **kw},
                {"vectors": q, "texts": ["gamma delta", "zeta"], "mode": "hybrid", "k": 5, **kw},
                {
                    "vectors": q,
                    "texts": ["gamma", "eta"],
                    "mode": "hybrid",
                    "k": 4,
                    "fusion": {"method": "weighted"},
                },
                {"vectors": q, "k": 5, **kw},
                {"texts": ["theta"], "mode": "text", "k": 60},
            ):
                want, got = plain.search(**args), sharded.search(**args)
                if shards == 1 or args.get("mode") in (None, "vector"):
                    assert got == want
                elif args["k"] >= n:
                    assert [{h.id for h in row} for row in got] == [{h.id for h in row} for row in want]
                else:
                    assert [len(row) for row in got] == [len(row) for row in want]
                for row in got:
                    for rank, h in enumerate(row, 1):
                        assert (
                            h.explain is None
                            or args.get("mode") == "hybrid"
                            or rank in (e["rank"] for e in h.explain.values())
                        )
            for t in (tf, {"$not_contains": "alpha"}, {"$or": [tf, {"$contains": "eta theta"}]}):
                assert sharded.count(text_filter=t) == plain.count(text_filter=t)
                assert sharded.count({"g": 2}, text_filter=t) == plain.count({"g": 2}, text_filter=t)
                assert [r.id for r in sharded.iter_records(limit=7, text_filter=t)] == [
                    r.id for r in plain.iter_records(limit=7, text_filter=t)
                ]
            assert sharded.delete(filter={"g": 0}, text_filter=tf) == plain.delete(
                filter={"g": 0}, text_filter=tf
            )
            assert sharded.count() == plain.count()
            assert sharded.set_text_index(None) is None
            with pytest.raises(InvalidArgumentError, match="set_text_index"):
                sharded.search(texts="beta", mode="text")
            info = sharded.set_text_index({"stemming": True})
            assert info is not None and info["stemming"] and info["documents"] == plain.count()
        finally:
            sharded.close()


# ---- divergences fixed (each failed before the cluster composed the engine) ----------------------------


def test_embedding_model_dimension_is_checked(tmp_path: Path) -> None:
    """A model whose vectors do not have the collection's dim: InvalidConfigError, as in the engine."""
    col = _sharded(tmp_path, embedding={"model": "m"}, embedders=FakeEmbedders(DIM + 1))
    with pytest.raises(InvalidConfigError, match=rf"gives {DIM + 1}-d vectors, the collection has {DIM}"):
        col.upsert(["a"], texts=["some text"])
    with pytest.raises(InvalidConfigError, match="gives"):
        col.search(texts=["a query"])
    col.close()


@pytest.mark.parametrize("kind", ["engine", "sharded"])
def test_a_closed_collection_raises_closed_error(tmp_path: Path, kind: str) -> None:
    db = Database(tmp_path / "db", settings=SETTINGS)
    col: CollectionAPI = (
        db.create_collection("c", dim=DIM, index={"type": "flat"}) if kind == "engine" else _sharded(tmp_path)
    )
    col.close()
    col.close()  # idempotent
    for call in (
        col.count,
        lambda: col.search(np.ones(DIM), k=1),
        lambda: col.upsert(["a"], np.ones((1, DIM))),
        lambda: col.get(["a"]),
        col.info,
    ):
        with pytest.raises(ClosedError):
            call()
    db.close()


def test_expires_at_length_error_keeps_its_details(pair: tuple[Collection, ShardedCollection]) -> None:
    plain, sharded = pair
    vecs = np.ones((3, DIM), dtype=np.float32)
    errors = []
    for col in (plain, sharded):
        with pytest.raises(InvalidArgumentError) as err:
            col.upsert(["x", "y", "z"], vecs, expires_at=[4e9, 4e9])
        errors.append((err.value.message, err.value.details))
    assert errors[0] == errors[1]
    assert errors[1][1] == {"field": "expires_at", "expected": 3, "got": 2}
    # A bad time is refused before any shard writes (the engine refuses the whole batch too).
    with pytest.raises(InvalidArgumentError, match=r"expires_at\[1\]"):
        sharded.upsert(["x", "y", "z"], vecs, expires_at=[4e9, -1, None])
    assert sharded.get(["x", "y", "z"]) == []


class KeywordOnlyShard:
    """An engine collection whose methods take keywords only, in another order: a fan-out that
    passes arguments by position breaks here instead of silently filling the wrong parameter."""

    def __init__(self, actor: ShardActor) -> None:
        self.actor = actor
        self.col = actor.col

    def call(self, method: str, kwargs: dict[str, Any]) -> Any:
        params = inspect.signature(getattr(Collection, method)).parameters
        unknown = set(kwargs) - set(params)
        assert not unknown, f"{method} got parameters the engine does not have: {unknown}"
        return (
            getattr(self, method)(**kwargs) if hasattr(self, method) else getattr(self.col, method)(**kwargs)
        )

    def search(
        self,
        *,
        score_threshold: float | None = None,
        params: Any = None,
        texts: Any = None,
        include: Any = DEFAULT_INCLUDE,
        filter: Any = None,
        k: int = 10,
        vectors: Any = None,
        fusion: Any = None,
        text_filter: Any = None,
        mode: str = "vector",
    ) -> list[list[Hit]]:
        return self.col.search(
            vectors,
            k,
            filter,
            include,
            params,
            texts,
            score_threshold,
            mode=mode,
            text_filter=text_filter,
            fusion=fusion,
        )

    def scroll(
        self,
        *,
        text_filter: Any = None,
        include: Any = None,
        filter: Any = None,
        limit: int = 1000,
        cursor: Any = None,
    ) -> Any:
        return self.col.scroll(cursor, limit, filter, include or DEFAULT_INCLUDE, text_filter=text_filter)

    def close(self) -> None:
        self.actor.close()


def test_fan_out_passes_keywords(pair: tuple[Collection, ShardedCollection]) -> None:
    plain, sharded = pair
    for group in sharded.groups:
        group.actors[:] = [KeywordOnlyShard(a) for a in group.actors]  # type: ignore[attr-defined]
    q = np.random.default_rng(2).standard_normal((2, DIM)).astype(np.float32)
    want = plain.search(q, k=6, filter={"g": 0}, score_threshold=-0.5)
    got = sharded.search(q, k=6, filter={"g": 0}, score_threshold=-0.5)
    assert [[h.id for h in row] for row in got] == [[h.id for h in row] for row in want]
    assert [r.id for r in sharded.iter_records(limit=11)] == [r.id for r in plain.iter_records(limit=11)]
    for group in sharded.groups:
        for _, kwargs in group.calls:  # type: ignore[attr-defined]
            assert isinstance(kwargs, dict)


# ---- ClusterDatabase, with Ray's start-up replaced by in-process replicas -----------------------------


@pytest.fixture
def cluster_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import vecdb.cluster.database as cdb

    monkeypatch.setattr(cdb.ray, "is_initialized", lambda: True)
    monkeypatch.setattr(cdb, "place_replicas", lambda shards, replicas: [["node"] * replicas] * shards)
    monkeypatch.setattr(
        cdb, "start_replicas", lambda name, config, path, settings, options: _groups(path, name, config)
    )
    with cdb.ClusterDatabase(tmp_path / "data", settings=SETTINGS) as db:
        yield db


def test_a_name_is_held_by_one_kind_of_collection(cluster_db: Any, tmp_path: Path) -> None:
    cluster_db.create_collection("sh", dim=DIM, shards=2)
    with pytest.raises(CollectionExistsError):
        cluster_db.create_collection("sh", dim=DIM)  # unsharded, under a sharded collection's name
    local = cluster_db.create_collection("loc", dim=DIM)
    with pytest.raises(CollectionExistsError):
        cluster_db.create_collection("loc", dim=DIM, shards=2)
    local.upsert(["a"], np.ones((1, DIM)))
    cluster_db.create_snapshot("loc", "snap")
    with pytest.raises(CollectionExistsError):
        cluster_db.restore_snapshot("loc", "snap", target="sh")
    snap_dir = cluster_db.path / "snapshots" / "loc" / "snap"
    with pytest.raises(CollectionExistsError):
        cluster_db.restore_snapshot_dir(snap_dir, "sh")
    assert cluster_db.restore_snapshot_dir(snap_dir, "copy").count() == 1
    assert cluster_db.list_collections() == ["copy", "loc", "sh"]
    assert isinstance(cluster_db.get_collection("sh"), ShardedCollection)


@pytest.mark.parametrize(
    "embedding", [{"query_prompt": "query: "}, {"document_prompt": "passage: "}, {"max_seq_length": 128}]
)
def test_sharded_collections_refuse_prompts_and_windows(cluster_db: Any, embedding: dict[str, Any]) -> None:
    """Not supported on shards yet: refused, never silently dropped."""
    with pytest.raises(InvalidConfigError, match="sharded collection"):
        cluster_db.create_collection("sh", embedding=embedding, shards=2)
    assert cluster_db.list_collections() == []


def test_open_collections_and_metrics_see_sharded_collections(cluster_db: Any) -> None:
    from vecdb.server.metrics import Metrics

    sharded = cluster_db.create_collection("sh", dim=DIM, shards=2)
    sharded.upsert(["a", "b", "c"], np.ones((3, DIM)))
    cluster_db.create_collection("loc", dim=DIM).upsert(["a"], np.ones((1, DIM)))
    assert sorted(c.name for c in cluster_db.open_collections()) == ["loc", "sh"]
    metrics = Metrics(cluster_db)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
    }
    assert samples[("vecdb_records", (("collection", "sh"),))] == 3
    assert samples[("vecdb_records", (("collection", "loc"),))] == 1
    assert samples[("vecdb_index_vectors", (("collection", "sh"), ("part", "delta")))] == 3


def test_closed_cluster_database(cluster_db: Any) -> None:
    cluster_db.create_collection("sh", dim=DIM, shards=2)
    cluster_db.close()
    assert cluster_db.open_collections() == []
    with pytest.raises(ClosedError):
        cluster_db.get_collection("sh")
    with pytest.raises(ClosedError):
        cluster_db.list_collections()


# ---- pure functions ---------------------------------------------------------------------------------


def _hit(i: str, score: float) -> Hit:
    return Hit(id=i, score=score, text=None, metadata={}, source=None, vector=None)


def test_routing_is_stable() -> None:
    assert shard_of("doc-1", 4) == shard_of("doc-1", 4)
    routed = route(["a", "b", "c", "a"], 3)
    assert sorted(i for pos in routed.values() for i in pos) == [0, 1, 2, 3]
    assert all(shard_of(["a", "b", "c", "a"][i], 3) == s for s, pos in routed.items() for i in pos)


def test_merge_hits_orders_by_metric_then_id() -> None:
    shard0 = [[_hit("b", 0.9), _hit("d", 0.1)]]
    shard1 = [[_hit("a", 0.9), _hit("c", 0.5)]]
    assert [h.id for h in merge_hits([shard0, shard1], 3, "cosine")[0]] == ["a", "b", "c"]
    assert [h.id for h in merge_hits([shard0, shard1], 3, "l2")[0]] == ["d", "c", "a"]
    assert merge_hits([[[]], [[]]], 3, "ip") == [[]]


def test_merge_get_sources_and_state() -> None:
    rec = {i: Record(id=i, text=None, metadata={}, source=None, vector=None) for i in "abc"}
    assert [r.id for r in merge_get([[rec["c"]], [rec["a"]]], ["a", "x", "c", "a"])] == ["a", "c"]
    got = merge_sources([[SourceInfo("x", 1), SourceInfo("z", 2)], [SourceInfo("x", 3)]])
    assert got == [SourceInfo("x", 4), SourceInfo("z", 2)]
    state = merge_index_state(
        [{"vectors": 2, "ann_vectors": 0, "delta_vectors": 2, "tombstones": 1, "building": None}] * 2
    )
    assert (state["vectors"], state["tombstones"], state["building"], len(state["shards"])) == (4, 2, None, 2)


def test_merge_scroll_never_skips_past_a_short_shard() -> None:
    rec = {i: Record(id=i, text=None, metadata={}, source=None, vector=None) for i in "abcdef"}
    # Shard 0 stopped early at "b" (its filtered scan budget); shard 1 is exhausted.
    page, cursor = merge_scroll([([rec["a"]], encode_cursor(b"b")), ([rec["c"], rec["e"]], None)], limit=10)
    assert [r.id for r in page] == ["a"] and cursor == encode_cursor(b"b")
    page, cursor = merge_scroll([([rec["a"], rec["d"]], None), ([rec["b"], rec["f"]], None)], limit=3)
    assert [r.id for r in page] == ["a", "b", "d"] and cursor == encode_cursor(b"d")
    assert merge_scroll([([], None), ([], None)], limit=3) == ([], None)


def test_update_answers_as_the_engine(pair: tuple[Collection, ShardedCollection]) -> None:
    """update over shards (issue 24): the same merge, the same refusal of unknown ids, nothing written."""
    plain, sharded = pair
    ids = [f"id-{i}" for i in range(0, 90, 7)]
    patch = {
        "metadatas": [{"g": None, "h": i} for i in range(len(ids))],
        "sources": ["moved"] * len(ids),
    }
    assert sharded.update(ids, **patch) == plain.update(ids, **patch) == len(ids)
    assert [(r.id, r.metadata, r.source) for r in sharded.get(ids)] == [
        (r.id, r.metadata, r.source) for r in plain.get(ids)
    ]
    assert sharded.count({"h": {"$exists": True}}) == plain.count({"h": {"$exists": True}}) == len(ids)
    assert sharded.list_sources() == plain.list_sources()
    errors = []
    for col in (plain, sharded):
        with pytest.raises(NotFoundError) as err:
            col.update(["id-1", "nope"], metadatas=[{"x": 1}, {"x": 1}])
        errors.append(err.value.details)
    assert errors[0] == errors[1] == {"missing": ["nope"]}
    assert sharded.count({"x": 1}) == 0
