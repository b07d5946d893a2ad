"""get_or_create_collection in the engine: the existing collection when every given setting matches, a
new one otherwise, and CollectionExistsError naming each difference."""

from __future__ import annotations

from pathlib import Path

import pytest

from vecdb import Database
from vecdb.errors import CollectionExistsError, InvalidConfigError


def test_creates_then_returns_the_same_collection(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        first = db.get_or_create_collection("docs", dim=3, metric="l2", index={"type": "flat"})
        first.upsert(["a"], [[1.0, 2.0, 3.0]])
        again = db.get_or_create_collection("docs", dim=3, metric="l2", index={"type": "flat"})
        assert again.count() == 1
        assert again.info()["metric"] == "l2"
        # A setting left out matches whatever the collection has.
        assert db.get_or_create_collection("docs").count() == 1
        assert db.get_or_create_collection("docs", dim=3).info()["index"]["type"] == "flat"
        fresh = db.get_or_create_collection("other", dim=2)  # new: metric defaults to cosine
        assert fresh.info()["metric"] == "cosine"


def test_differences_are_named(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        db.create_collection("docs", dim=3, metric="l2", max_records=10)
        with pytest.raises(CollectionExistsError) as err:
            db.get_or_create_collection(
                "docs", dim=4, metric="cosine", index={"type": "hnsw"}, max_records=10
            )
        diff = err.value.details["differences"]
        assert set(diff) == {"dim", "metric", "index"}
        assert diff["dim"] == {"existing": 3, "requested": 4}
        assert diff["metric"] == {"existing": "l2", "requested": "cosine"}
        assert "dim 3 (requested 4)" in err.value.message
        with pytest.raises(CollectionExistsError) as err:
            db.get_or_create_collection("docs", max_records=10, eviction="lru")
        assert err.value.details["differences"]["capacity"]["existing"] == {
            "max_records": 10,
            "eviction": "fifo",
        }
        with pytest.raises(CollectionExistsError) as err:
            db.get_or_create_collection("docs", shards=2)
        assert err.value.details["differences"] == {"shards": {"existing": 1, "requested": 2}}
        with pytest.raises(InvalidConfigError):  # a bad setting is refused, not compared
            db.get_or_create_collection("docs", metric="manhattan")


def test_embedding_model_is_compared(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        db.create_collection("notes", embedding={})
        assert db.get_or_create_collection("notes", embedding={}).info()["dim"] == 384
        db.create_collection("plain", dim=384)
        with pytest.raises(CollectionExistsError) as err:
            db.get_or_create_collection("plain", embedding={})
        assert err.value.details["differences"]["embedding"]["existing"] is None


def test_embedding_declaration_and_text_index_are_compared(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        made = db.get_or_create_collection(
            "faq", embedding={"query_prompt": "query: "}, text_index={"tokenizer": "whitespace"}
        )
        made.upsert(["a"], texts=["hello world"])
        # The same request again (as a re-run script sends it): the same collection, not an error.
        again = db.get_or_create_collection(
            "faq", embedding={"query_prompt": "query: "}, text_index={"tokenizer": "whitespace"}
        )
        assert again.count() == 1
        assert db.get_or_create_collection("faq", embedding={"query_prompt": "query: "}).count() == 1
        with pytest.raises(CollectionExistsError) as err:
            db.get_or_create_collection("faq", embedding={}, text_index={})
        diff = err.value.details["differences"]
        assert set(diff) == {"embedding", "text_index"}
        assert diff["embedding"]["existing"]["query_prompt"] == "query: "
        assert diff["text_index"]["existing"]["tokenizer"] == "whitespace"
        assert diff["text_index"]["requested"]["tokenizer"] == "standard"
        db.create_collection("bare", dim=2)
        with pytest.raises(CollectionExistsError) as err:
            db.get_or_create_collection("bare", text_index={})
        assert err.value.details["differences"]["text_index"]["existing"] is None
