"""A rejected batch writes nothing; every bad input gets a typed error that names the offending item."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from vecdb import Database
from vecdb.config import Limits, Settings
from vecdb.engine import Collection
from vecdb.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidIdError,
    InvalidMetadataError,
    InvalidSourceError,
    InvalidVectorError,
    LimitExceededError,
    VecDBError,
)

DIM = 4


@pytest.fixture
def col(tmp_path: Any) -> Any:
    settings = Settings(limits=Limits(max_id_bytes=16, max_text_bytes=32, max_metadata_bytes=64, max_batch=8))
    with Database(tmp_path / "d", settings=settings) as db:
        c = db.create_collection("c", dim=DIM, metric="cosine")
        c.upsert(["keep"], [[1, 0, 0, 0]], texts=["kept"], metadatas=[{"a": 1}], sources=["s"])
        yield c


def _vecs(n: int) -> list[list[float]]:
    return [[1.0, float(i), 0.5, 0.25] for i in range(n)]


BAD_BATCHES: list[tuple[str, dict[str, Any], type[VecDBError], str]] = [
    ("wrong dim", {"vectors": [[1, 2, 3, 4], [1, 2, 3]]}, DimensionMismatchError, "vector 1"),
    ("wrong dim ndarray", {"vectors": np.ones((2, 5))}, DimensionMismatchError, "dimension 5"),
    ("nan", {"vectors": [[1, 2, 3, 4], [1, math.nan, 3, 4]]}, InvalidVectorError, "vector 1"),
    ("inf", {"vectors": [[math.inf, 2, 3, 4], [1, 2, 3, 4]]}, InvalidVectorError, "vector 0"),
    ("beyond float32", {"vectors": [[1e39, 2, 3, 4], [1, 2, 3, 4]]}, InvalidVectorError, "vector 0"),
    ("zero vector under cosine", {"vectors": [[1, 2, 3, 4], [0, 0, 0, 0]]}, InvalidVectorError, "'y'"),
    ("strings in vector", {"vectors": [["a", 2, 3, 4], [1, 2, 3, 4]]}, InvalidVectorError, "numbers"),
    ("too few vectors", {"vectors": _vecs(1)}, InvalidArgumentError, "1 vectors for 2 ids"),
    ("missing vectors", {"vectors": None}, InvalidArgumentError, "vectors are required"),
    ("empty batch", {"ids": [], "vectors": []}, InvalidArgumentError, "empty"),
    ("duplicate id", {"ids": ["x", "x"]}, DuplicateIdError, "'x'"),
    ("empty id", {"ids": ["x", ""]}, InvalidIdError, "id at 1 is empty"),
    ("non-string id", {"ids": ["x", 7]}, InvalidIdError, "id at 1"),
    ("oversized id", {"ids": ["x", "y" * 17]}, InvalidIdError, "17 bytes"),
    ("surrogate id", {"ids": ["x", "\ud800"]}, InvalidIdError, "Unicode"),
    ("metadata not object", {"metadatas": [{}, ["a"]]}, InvalidMetadataError, "record 1 (id 'y')"),
    ("metadata NaN", {"metadatas": [{}, {"a": math.nan}]}, InvalidMetadataError, "'y'"),
    ("metadata non-str key", {"metadatas": [{1: "a"}, {}]}, InvalidMetadataError, "'x'"),
    ("metadata not JSON", {"metadatas": [{"a": object()}, {}]}, InvalidMetadataError, "'x'"),
    ("metadata huge int", {"metadatas": [{"a": 2**80}, {}]}, InvalidMetadataError, "'x'"),
    ("oversized metadata", {"metadatas": [{"a": "b" * 80}, {}]}, LimitExceededError, "'x'"),
    ("oversized text", {"texts": ["ok", "t" * 33]}, LimitExceededError, "'y'"),
    ("text not str", {"texts": ["ok", 5]}, InvalidArgumentError, "'y'"),
    ("texts wrong length", {"texts": ["ok"]}, InvalidArgumentError, "texts has 1 entries"),
    ("empty source", {"sources": ["s", ""]}, InvalidSourceError, "'y'"),
    ("oversized batch", {"ids": [f"i{i}" for i in range(9)], "vectors": _vecs(9)}, LimitExceededError, "9"),
]


@pytest.mark.parametrize(("case", "kwargs", "error", "names"), BAD_BATCHES, ids=[b[0] for b in BAD_BATCHES])
def test_rejected_batch_writes_nothing(
    col: Collection, case: str, kwargs: dict[str, Any], error: type[VecDBError], names: str
) -> None:
    args: dict[str, Any] = {"ids": ["x", "y"], "vectors": _vecs(2), **kwargs}
    before = col.info()
    with pytest.raises(error) as info:
        col.upsert(**args)
    assert names in str(info.value)
    assert isinstance(info.value, VecDBError)
    after = col.info()
    assert after["seq"] == before["seq"]
    assert col.count() == 1
    assert [r.id for r in col.get(["keep", "x", "y"])] == ["keep"]


def test_error_details_name_the_item(col: Collection) -> None:
    with pytest.raises(InvalidVectorError) as info:
        col.upsert(["x", "y", "z"], [[1, 0, 0, 0], [1, 0, 0, 0], [math.nan, 0, 0, 0]])
    assert info.value.details["index"] == 2
    assert info.value.to_dict()["code"] == "invalid_vector"


def test_upsert_replaces(col: Collection) -> None:
    col.upsert(["a"], [[1, 0, 0, 0]], texts=["one"], metadatas=[{"v": 1}], sources=["s1"])
    col.upsert(["a"], [[0, 1, 0, 0]], texts=["two"], metadatas=[{"v": 2}], sources=["s2"])
    assert col.count() == 2
    assert col.info()["index_state"]["vectors"] == 2
    (rec,) = col.get(["a"], include=["text", "metadata", "source", "vector"])
    assert (rec.text, rec.metadata, rec.source) == ("two", {"v": 2}, "s2")
    assert rec.vector is not None and rec.vector.tolist() == [0, 1, 0, 0]
    hits = col.search([[0, 1, 0, 0]], k=10)[0]
    assert [h.id for h in hits].count("a") == 1
    assert hits[0].id == "a" and hits[0].score == pytest.approx(1.0)
    assert {s.source: s.count for s in col.list_sources()} == {"s": 1, "s2": 1}
    assert col.count(filter={"v": 1}) == 0


def test_bad_search_arguments(col: Collection) -> None:
    with pytest.raises(DimensionMismatchError):
        col.search([[1, 2, 3]], k=1)
    with pytest.raises(InvalidVectorError):
        col.search([[0, 0, 0, 0]], k=1)
    with pytest.raises(InvalidArgumentError):
        col.search([[1, 0, 0, 0]], k=0)
    with pytest.raises(InvalidArgumentError):
        col.search([[1, 0, 0, 0]], k=True)
    with pytest.raises(LimitExceededError):
        col.search([[1, 0, 0, 0]], k=10_001)
    with pytest.raises(InvalidArgumentError, match="unknown include"):
        col.search([[1, 0, 0, 0]], k=1, include=["txt"])
    with pytest.raises(InvalidArgumentError):
        col.search([], k=1)


def test_delete_takes_exactly_one_selector(col: Collection) -> None:
    with pytest.raises(InvalidArgumentError):
        col.delete()
    with pytest.raises(InvalidArgumentError):
        col.delete(["keep"], source="s")
    with pytest.raises(InvalidArgumentError, match="non-empty filter"):
        col.delete(filter={})
    assert col.count() == 1
    assert col.delete(["nope"]) == 0
    assert col.delete(["keep", "keep"]) == 1
    assert col.count() == 0


def test_tiny_cosine_vectors_keep_their_direction(tmp_path: Any) -> None:
    with Database(tmp_path / "tiny") as db:
        col = db.create_collection("c", dim=4, metric="cosine")
        col.upsert(["x", "y"], [[1e-30, 0, 0, 0], [0, 1e-20, 0, 0]])
        hits = col.search([[1e-20, 0, 0, 0]], k=2)[0]
        assert hits[0].id == "x"
        assert abs(hits[0].score - 1.0) < 1e-6
        assert abs(hits[1].score) < 1e-6
