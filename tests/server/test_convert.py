"""vecdb.server.convert: every to_proto_* / from_proto_* pair round-trips, and the JSON text helpers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vecdb import Database
from vecdb.errors import InvalidArgumentError
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.types import DEFAULT_INCLUDE, Hit, Record, SourceInfo


def wire(msg: Any) -> Any:
    """The message as the other side sees it: serialized and parsed again."""
    return type(msg).FromString(msg.SerializeToString())


# ---- vectors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vectors",
    [
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]],
        np.arange(12, dtype=np.float64).reshape(4, 3) / 7,
        np.arange(12, dtype=">f4").reshape(3, 4),  # big endian in, little endian on the wire
        np.arange(20, dtype=np.float32).reshape(4, 5)[:, ::2],  # not contiguous
        np.arange(6, dtype=np.int64).reshape(2, 3),
        [[np.float32(1e-38), -3.4e38]],
    ],
    ids=["lists", "float64", "big-endian", "strided", "ints", "extremes"],
)
def test_vectors_round_trip(vectors: Any) -> None:
    expected = np.asarray(vectors, dtype=np.float32)
    msg = wire(convert.to_proto_vectors(vectors))
    assert msg.dim == expected.shape[1]
    assert msg.data == expected.astype("<f4").tobytes()
    assert len(msg.data) == 4 * expected.size
    back = convert.from_proto_vectors(msg)
    assert back.dtype == np.float32
    assert back.shape == expected.shape
    np.testing.assert_array_equal(back, expected)


def test_one_d_vector_is_one_row() -> None:
    msg = convert.to_proto_vectors([1.0, 2.0, 3.0])
    assert msg.dim == 3
    back = convert.from_proto_vectors(wire(msg))
    np.testing.assert_array_equal(back, np.array([[1, 2, 3]], dtype=np.float32))


@pytest.mark.parametrize(
    "empty",
    [[], np.empty((0, 0)), np.empty((0, 4), dtype=np.float32), [[]]],
    ids=["list", "0x0", "0x4", "[[]]"],
)
def test_empty_vectors(empty: Any) -> None:
    msg = convert.to_proto_vectors(empty)
    assert (msg.dim, msg.data) == (0, b"")
    assert msg == pb.Vectors()  # all defaults: nothing on the wire
    back = convert.from_proto_vectors(wire(msg))
    assert back.shape == (0, 0)
    assert back.dtype == np.float32


def test_unset_vectors_are_empty() -> None:
    assert convert.from_proto_vectors(pb.UpsertRequest().vectors).shape == (0, 0)


@pytest.mark.parametrize(
    ("msg", "words"),
    [
        (pb.Vectors(dim=4, data=b"\0" * 15), "15 bytes"),
        (pb.Vectors(dim=3, data=b"\0" * 8), "8 bytes"),
        (pb.Vectors(dim=0, data=b"\0" * 4), "dim is 0"),
    ],
)
def test_malformed_vectors(msg: pb.Vectors, words: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        convert.from_proto_vectors(msg, "queries")
    assert info.value.message.startswith("queries: ")
    assert words in info.value.message
    assert type(info.value) is InvalidArgumentError


# ---- JSON text fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [None, {}, {"a": 1, "b": [1, 2.5, "x", None, True], "c": {"d": "é"}}, [1, 2], "s", 3]
)
def test_json_text_round_trip(value: Any) -> None:
    text = convert.to_json_text(value)
    assert isinstance(text, str)
    assert (text == "") == (value is None)
    assert convert.json_or_none(text, "field") == value


@pytest.mark.parametrize("text", ["{bad", "NaN", '{"a": NaN}', "{'a': 1}", "[1,", "1e400"])
def test_json_or_none_rejects_invalid_json(text: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        convert.json_or_none(text, "filter_json")
    assert info.value.message.startswith("filter_json is not valid JSON")


# ---- records --------------------------------------------------------------------------------------------


def test_records_round_trip() -> None:
    ids = ["a", "b", "c", "d"]
    texts = ["alpha", None, "", "δ"]
    metas = [{"k": 1, "nested": {"l": [1, "2"]}}, None, {}, {"x": None}]
    sources = [None, "docs/b.md", "", "s"]
    msgs = [wire(m) for m in convert.to_proto_records(ids, texts, metas, sources)]
    assert [m.HasField("text") for m in msgs] == [True, False, True, True]
    assert [m.HasField("source") for m in msgs] == [False, True, True, True]
    assert msgs[1].metadata_json == ""
    got_ids, got_texts, got_metas, got_sources = convert.from_proto_records(msgs)
    assert got_ids == ids
    assert got_texts == texts  # "" and None stay apart
    assert got_metas == metas
    assert got_sources == sources


def test_records_round_trip_ids_only() -> None:
    msgs = convert.to_proto_records(["a", "b"])
    assert all(m == pb.RecordData(id=m.id) for m in msgs)
    assert convert.from_proto_records(msgs) == (["a", "b"], [None, None], [None, None], [None, None])
    assert convert.from_proto_records([]) == ([], [], [], [])


def test_records_bad_metadata_names_the_record() -> None:
    msgs = [pb.RecordData(id="a"), pb.RecordData(id="b", metadata_json="{oops")]
    with pytest.raises(InvalidArgumentError) as info:
        convert.from_proto_records(msgs)
    assert "metadata of record 1" in info.value.message


# ---- include and params ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        (None, DEFAULT_INCLUDE),
        ([], ()),
        (["vector"], ("vector",)),
        (["text", "metadata", "source", "vector"], ("text", "metadata", "source", "vector")),
    ],
)
def test_include_round_trip(include: list[str] | None, expected: tuple[str, ...]) -> None:
    msg = convert.to_proto_include(include)
    assert (msg is None) == (include is None)
    for sent in (pb.GetRequest(include=msg), pb.SearchRequest(include=msg)):
        request = wire(sent)
        assert request.HasField("include") == (include is not None)
        assert convert.from_proto_include(request.include, request.HasField("include")) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, None),
        ({"ef_search": 64}, {"ef_search": 64}),
        ({"nprobe": 8}, {"nprobe": 8}),
        ({"ef_search": 0, "nprobe": 3}, {"ef_search": 0, "nprobe": 3}),  # 0 set explicitly is kept
    ],
)
def test_params(params: dict[str, int], expected: dict[str, int] | None) -> None:
    request = wire(pb.SearchRequest(params=pb.SearchParams(**params)))
    assert convert.from_proto_params(request.params) == expected
    assert convert.from_proto_params(pb.SearchRequest().params) is None


# ---- records and hits out -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        Record(id="a", text="t", metadata={"k": [1, {"x": "y"}]}, source="docs/a.md"),
        Record(id="b"),
        Record(id="c", text="", metadata={}, source=None),
        Record(id="d", text=None, metadata={"n": None}, source="s"),
    ],
    ids=["full", "bare", "empty-text", "no-text"],
)
def test_record_round_trip(record: Record) -> None:
    msg = wire(convert.to_proto_record(record))
    assert isinstance(msg, pb.Record)
    assert len(msg.vector) == 0
    # The same dict the REST API returns for it.
    assert convert.from_proto_record(msg) == record.to_dict()


def test_record_with_vector() -> None:
    vector = np.array([0.25, -1.5, 3.0], dtype=np.float32)
    record = Record(id="v", text="t", vector=vector)
    out = convert.from_proto_record(wire(convert.to_proto_record(record)))
    assert out == record.to_dict()
    assert out["vector"] == [0.25, -1.5, 3.0]
    assert all(isinstance(x, float) for x in out["vector"])


@pytest.mark.parametrize(
    "hit",
    [
        Hit(id="a", score=0.5, text="t", metadata={"k": 1}, source="s"),
        Hit(id="b", score=-2.0),
        Hit(id="c", score=1.0, vector=np.array([1.0, 0.0], dtype=np.float32)),
        Hit(
            id="d",
            score=0.03125,
            text="t",
            explain={"vector": {"rank": 3, "score": 0.8125}, "text": {"rank": 1, "score": 7.25}},
        ),
        Hit(id="e", score=2.5, explain={"text": {"rank": 2, "score": 2.5}}),
        Hit(id="f", score=0.5, explain={}),
    ],
    ids=["full", "bare", "vector", "explain", "explain-one-branch", "explain-none-matched"],
)
def test_hit_round_trip(hit: Hit) -> None:
    msg = wire(convert.to_proto_hit(hit))
    assert isinstance(msg, pb.Hit)
    assert convert.from_proto_record(msg) == hit.to_dict()


def test_hit_without_explain_sends_nothing() -> None:
    msg = convert.to_proto_hit(Hit(id="a", score=1.0))
    assert msg.explain_json == ""
    assert "explain" not in convert.from_proto_record(wire(msg))


def test_hit_explain_keeps_ranks_as_integers() -> None:
    hit = Hit(id="a", score=0.5, explain={"vector": {"rank": 1, "score": 0.5}})
    out = convert.from_proto_record(wire(convert.to_proto_hit(hit)))
    assert isinstance(out["explain"]["vector"]["rank"], int)


def test_hit_score_is_float32() -> None:
    out = convert.from_proto_record(wire(convert.to_proto_hit(Hit(id="a", score=0.1))))
    assert out["score"] == pytest.approx(0.1, rel=1e-7)


def test_source() -> None:
    msg = wire(convert.to_proto_source(SourceInfo("docs/a.md", 7)))
    assert (msg.source, msg.count) == ("docs/a.md", 7)


# ---- collection info ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "index"),
    [("cosine", None), ("l2", {"type": "hnsw", "m": 8}), ("ip", {"type": "flat"}), ("l2", {"type": "ivf"})],
)
def test_collection_info_round_trip(db: Database, metric: Any, index: dict[str, Any] | None) -> None:
    col = db.create_collection("c", 8, metric, index)
    col.upsert(["a", "b"], np.eye(2, 8), sources=["s", None])
    info = col.info()
    msg = wire(convert.to_proto_collection_info(info))
    assert msg.count == 2
    assert msg.sources == 1
    # memory (bytes held by the process) is embedded-only: served by /metrics, not by the info message
    assert convert.from_proto_collection_info(msg) == {k: v for k, v in info.items() if k != "memory"}


@pytest.mark.parametrize(
    "spec",
    [{}, {"tokenizer": "whitespace"}, {"tokenizer": "standard", "stemming": True, "stopwords": "english"}],
)
def test_collection_info_with_text_index_round_trip(db: Database, spec: dict[str, Any]) -> None:
    col = db.create_collection("t", 2, text_index=spec)
    col.upsert(["a", "b"], np.eye(2), texts=["one text", None])
    info = col.info()
    assert info["text_index"] is not None
    msg = wire(convert.to_proto_collection_info(info))
    assert msg.text_index_json
    # memory (bytes held by the process) is embedded-only: served by /metrics, not by the info message
    assert convert.from_proto_collection_info(msg) == {k: v for k, v in info.items() if k != "memory"}


def test_collection_info_without_text_index(db: Database) -> None:
    info = db.create_collection("n", 2).info()
    msg = wire(convert.to_proto_collection_info(info))
    assert msg.text_index_json == ""
    assert convert.from_proto_collection_info(msg)["text_index"] is None


@pytest.mark.parametrize("text_index", [None, {"tokenizer": "jieba", "documents": 3, "k1": 1.2}])
def test_text_index_reply_round_trip(text_index: dict[str, Any] | None) -> None:
    msg = wire(convert.to_proto_text_index(text_index))
    assert isinstance(msg, pb.SetTextIndexResponse)
    assert convert.from_proto_text_index(msg) == text_index
