"""Database and collection lifecycle, names, scores per metric, exact filtered search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vecdb import Database
from vecdb.errors import (
    ClosedError,
    CollectionExistsError,
    CollectionNotFoundError,
    InvalidConfigError,
    InvalidNameError,
)


def test_lifecycle(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        db.create_collection("docs", dim=3)
        db.create_collection("other-1_x", dim=2, metric="l2", index={"type": "flat"})
        assert db.list_collections() == ["docs", "other-1_x"]
        with pytest.raises(CollectionExistsError):
            db.create_collection("docs", dim=3)
        db.drop_collection("docs")
        assert db.list_collections() == ["other-1_x"]
        with pytest.raises(CollectionNotFoundError):
            db.get_collection("docs")
        with pytest.raises(CollectionNotFoundError):
            db.drop_collection("docs")
        col = db.create_collection("docs", dim=3)  # a dropped name can be reused, empty
        assert col.count() == 0
    db.close()  # idempotent
    with pytest.raises(ClosedError):
        db.list_collections()
    with pytest.raises(ClosedError):
        col.count()
    with Database(tmp_path) as db:
        assert db.list_collections() == ["docs", "other-1_x"]
        info = db.get_collection("other-1_x").info()
        assert (info["dim"], info["metric"], info["index"]) == (2, "l2", {"type": "flat"})


@pytest.mark.parametrize("name", ["", "a" * 65, "../x", "a/b", ".", "..", "a b", "é", None, 3, "x\x00"])
def test_collection_names_are_validated(db: Database, name: object) -> None:
    with pytest.raises(InvalidNameError):
        db.create_collection(name, dim=2)  # type: ignore[arg-type]
    with pytest.raises(InvalidNameError):
        db.get_collection(name)  # type: ignore[arg-type]
    assert db.list_collections() == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim": 0}, "dim"),
        ({"dim": True}, "dim"),
        ({"dim": 70_000}, "dim"),
        ({"dim": 2, "metric": "dot"}, "metric"),
        ({"dim": 2, "index": {"type": "nope"}}, "index type"),
        ({"dim": 2, "index": {"type": "flat", "m": 3}}, "index spec"),
        ({"dim": 2, "index": "flat"}, "index spec"),
    ],
)
def test_bad_collection_config(db: Database, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        db.create_collection("c", **kwargs)  # type: ignore[arg-type]
    assert db.list_collections() == []


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_scores_per_metric_best_first(db: Database, metric: str) -> None:
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(50, 8)).astype(np.float32)
    col = db.create_collection("c", dim=8, metric=metric)  # type: ignore[arg-type]
    col.upsert([str(i) for i in range(50)], vecs)
    queries = rng.normal(size=(3, 8)).astype(np.float32)
    results = col.search(queries, k=5)
    assert len(results) == 3
    for q, hits in zip(queries, results, strict=True):
        if metric == "l2":
            truth = ((vecs - q) ** 2).sum(axis=1)
            order = np.argsort(truth)
        elif metric == "ip":
            truth = vecs @ q
            order = np.argsort(-truth)
        else:
            truth = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
            order = np.argsort(-truth)
        assert [h.id for h in hits] == [str(i) for i in order[:5]]
        np.testing.assert_allclose([h.score for h in hits], truth[order[:5]], rtol=1e-4, atol=1e-5)


def test_single_vector_query_and_k_beyond_count(db: Database) -> None:
    col = db.create_collection("c", dim=2, metric="l2")
    col.upsert(["a", "b"], [[0, 0], [1, 1]])
    hits = col.search(np.array([0.1, 0.1]), k=10)
    assert [h.id for h in hits[0]] == ["a", "b"]
    assert hits[0][0].score == pytest.approx(0.02)


@pytest.mark.parametrize("selectivity", [0.001, 0.01, 0.1, 0.5, 0.9, 1.0])
def test_filtered_flat_search_is_exact_at_every_selectivity(db: Database, selectivity: float) -> None:
    rng = np.random.default_rng(7)
    n, dim = 5000, 16
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    bucket = rng.random(n)
    col = db.create_collection("c", dim=dim, metric="cosine")
    col.upsert(
        [f"r{i}" for i in range(n)],
        vecs,
        metadatas=[{"b": float(x), "even": i % 2 == 0} for i, x in enumerate(bucket)],
    )
    flt = {"b": {"$lt": selectivity}}
    allowed = np.flatnonzero(bucket < selectivity)
    queries = rng.normal(size=(20, dim)).astype(np.float32)
    normed = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    for q, hits in zip(queries, col.search(queries, k=10, filter=flt), strict=True):
        sims = normed[allowed] @ (q / np.linalg.norm(q))
        want = allowed[np.argsort(-sims)[:10]]
        assert [h.id for h in hits] == [f"r{i}" for i in want]
    assert col.count(filter=flt) == len(allowed)
    nothing = col.search(queries[:2], k=10, filter={"b": {"$gt": 2.0}})
    assert nothing == [[], []]


def test_sources_replace_and_delete(db: Database) -> None:
    col = db.create_collection("c", dim=2, metric="l2")
    col.upsert(
        ["a1", "a2", "b1", "n"], [[0, 1], [0, 2], [1, 0], [5, 5]], sources=["a.md", "a.md", "b.md", None]
    )
    assert [(s.source, s.count) for s in col.list_sources()] == [("a.md", 2), ("b.md", 1)]
    # Replace a.md: a1 and a2 vanish, a3 appears, b1 moves into a.md: one atomic write.
    seq = col.info()["seq"]
    assert col.replace_source("a.md", ["a3", "b1"], [[0, 3], [1, 1]], texts=["new", "moved"]) == 2
    assert col.info()["seq"] == seq + 1
    assert [(s.source, s.count) for s in col.list_sources()] == [("a.md", 2)]
    assert sorted(r.id for r in col.get(["a1", "a2", "a3", "b1", "n"])) == ["a3", "b1", "n"]
    assert col.delete(source="a.md") == 2
    assert col.delete(source="a.md") == 0
    assert col.list_sources() == []
    assert col.count() == 1
    assert col.replace_source("z.md", [], []) == 0


def test_get_returns_found_records_in_request_order(db: Database) -> None:
    col = db.create_collection("c", dim=2, metric="ip")
    col.upsert(
        ["a", "b", "c"],
        [[1, 0], [0, 1], [1, 1]],
        texts=["A", None, "C"],
        metadatas=[{"x": [1, {"y": None}]}, None, {}],
    )
    recs = col.get(["c", "zz", "a", "c"], include=["text", "metadata", "vector"])
    assert [r.id for r in recs] == ["c", "a"]
    assert recs[1].metadata == {"x": [1, {"y": None}]}
    assert recs[1].source is None  # not asked for
    assert recs[0].vector is not None and recs[0].vector.dtype == np.float32
    bare = col.get(["b"], include=[])
    assert bare[0].text is None and bare[0].metadata == {} and bare[0].vector is None


def test_delete_by_filter(db: Database) -> None:
    col = db.create_collection("c", dim=2, metric="l2")
    col.upsert(
        [str(i) for i in range(10)], [[i, 0] for i in range(10)], metadatas=[{"n": i} for i in range(10)]
    )
    assert col.delete(filter={"n": {"$gte": 7}}) == 3
    assert col.delete(filter={"$or": [{"n": 0}, {"n": 100}]}) == 1
    assert col.count() == 6
    assert [h.id for h in col.search([[9, 0]], k=2)[0]] == ["6", "5"]
