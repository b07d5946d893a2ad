"""update: metadata merged, text and source changed in place, vectors untouched (unless a text is
re-embedded), one atomic and durable write, filters and sources following it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from vecdb import Database
from vecdb.errors import InvalidArgumentError, InvalidMetadataError, InvalidSourceError, NotFoundError


def vectors(n: int, dim: int = 4) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, dim)).astype(np.float32)


def test_update_merges_metadata_and_keeps_vectors(tmp_path: Path) -> None:
    vecs = vectors(3)
    with Database(tmp_path) as db:
        col = db.create_collection("c", dim=4, metric="l2")
        col.upsert(
            ["a", "b", "c"],
            vecs,
            texts=["ta", "tb", "tc"],
            metadatas=[{"lang": "en", "n": 1}, {"lang": "fr"}, {}],
            sources=["s1", "s1", "s2"],
            expires_at=[time.time() + 3600, None, None],
        )
        before = col.get(["a"], include=["vector"])[0]
        n = col.update(
            ["a", "b"],
            metadatas=[{"lang": "de", "n": None, "new": True}, None],
            texts=[None, "tb2"],
            sources=[None, "s3"],
        )
        assert n == 2
        a, b, c = col.get(["a", "b", "c"], include=["text", "metadata", "source", "vector"])
        assert a.metadata == {"lang": "de", "new": True}  # merged; None removed a key
        assert a.text == "ta"
        assert a.source == "s1"
        assert b.metadata == {"lang": "fr"}
        assert b.text == "tb2"
        assert b.source == "s3"
        assert c.metadata == {}
        np.testing.assert_array_equal(a.vector, before.vector)
        np.testing.assert_array_equal(b.vector, vecs[1])
        # the filter bitmaps and the source index follow
        assert col.count(filter={"lang": "de"}) == 1
        assert col.count(filter={"lang": "en"}) == 0
        assert col.count(filter={"n": {"$exists": True}}) == 0
        assert {s.source: s.count for s in col.list_sources()} == {"s1": 1, "s2": 1, "s3": 1}
        (hit,) = col.search(vecs[:1], k=1, filter={"new": True})[0]
        assert hit.id == "a"
        assert hit.score == pytest.approx(0.0, abs=1e-5)
        # the expiry time stays (a's), and no expiry appears where none was
        assert col.count() == 3
    with Database(tmp_path) as db:  # durable
        col = db.get_collection("c")
        (a,) = col.get(["a"])
        assert a.metadata == {"lang": "de", "new": True}
        assert col.count(filter={"lang": "de"}) == 1
        assert {s.source for s in col.list_sources()} == {"s1", "s2", "s3"}


def test_a_rejected_update_writes_nothing(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        col = db.create_collection("c", dim=4)
        col.upsert(["a", "b"], vectors(2), metadatas=[{"x": 1}, {"x": 2}])
        seq = col.seq
        with pytest.raises(NotFoundError) as err:
            col.update(["a", "zz"], metadatas=[{"x": 9}, {"x": 9}])
        assert err.value.details["missing"] == ["zz"]
        with pytest.raises(InvalidMetadataError):
            col.update(["a", "b"], metadatas=[{"x": 9}, "not an object"])  # type: ignore[list-item]
        with pytest.raises(InvalidMetadataError):
            col.update(["a"], metadatas=[{"x": float("nan")}])
        with pytest.raises(InvalidSourceError):
            col.update(["a"], sources=[""])
        with pytest.raises(InvalidArgumentError, match="changes nothing"):
            col.update(["a"])
        with pytest.raises(InvalidArgumentError):
            col.update(["a", "a"], metadatas=[{}, {}])  # duplicate ids
        assert col.seq == seq
        assert [r.metadata for r in col.get(["a", "b"])] == [{"x": 1}, {"x": 2}]


def test_update_reembeds_a_new_text(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        col = db.create_collection("notes", embedding={})
        col.upsert(["n1", "n2"], texts=["The cat sat on the mat", "Stocks fell sharply"])
        old = col.get(["n1", "n2"], include=["vector"])
        col.update(["n1"], texts=["Interest rates rose again"])
        col.update(["n2"], metadatas=[{"topic": "markets"}])
        new = col.get(["n1", "n2"], include=["vector", "metadata"])
        assert not np.allclose(old[0].vector, new[0].vector)  # re-embedded
        np.testing.assert_array_equal(old[1].vector, new[1].vector)  # metadata only: untouched
        (hit,) = col.search(texts=["a feline on a rug"], k=1, filter={"topic": "markets"})[0]
        assert hit.id == "n2"
        top = col.search(texts=["central bank rates"], k=1)[0][0]
        assert top.id == "n1"


def test_replace_source_without_vectors_like_the_client(tmp_path: Path) -> None:
    """Embedded ``replace_source`` takes texts alone on a text collection, as the client's does."""
    with Database(tmp_path) as db:
        col = db.create_collection("notes", embedding={})
        col.upsert(["x"], texts=["old chunk"], sources=["f.md"])
        assert col.replace_source("f.md", ids=["y", "z"], texts=["new chunk", "another"]) == 2
        assert sorted(r.id for r in col.get(["x", "y", "z"])) == ["y", "z"]
        plain = db.create_collection("plain", dim=2)
        with pytest.raises(InvalidArgumentError, match="vectors"):
            plain.replace_source("f.md", ids=["a"], texts=["no vector"])
