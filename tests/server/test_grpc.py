"""Every RPC of vecdb.v1.VecDB round trip, plus the health service and server reflection."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from vecdb import Database
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc
from vecdb.server.auth import Authenticator
from vecdb.server.grpc_service import SERVICE_NAME, create_grpc_server
from vecdb.server.metrics import Metrics

if TYPE_CHECKING:
    from tests.server.conftest import GrpcServer

DIM = 4
VECTORS = np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)


def vec(rows: Any) -> pb.Vectors:
    return convert.to_proto_vectors(np.asarray(rows, dtype=np.float32))


@pytest.fixture
def docs(stub: pb_grpc.VecDBStub) -> pb_grpc.VecDBStub:
    """The stub, with collection "docs" holding four records (as the REST tests' RECORDS)."""
    stub.CreateCollection(pb.CreateCollectionRequest(name="docs", dim=DIM))
    records = convert.to_proto_records(
        ["a", "b", "c", "d"],
        ["alpha", "beta", None, None],
        [{"lang": "en", "n": 1}, {"lang": "fr", "n": 2}, {"lang": "en", "n": 3}, None],
        ["docs/a.md", "docs/a.md", "docs/b.md", None],
    )
    reply = stub.Upsert(pb.UpsertRequest(collection="docs", records=records, vectors=vec(VECTORS)))
    assert reply.count == 4
    return stub


def records(reply: pb.GetResponse) -> list[dict[str, Any]]:
    return [convert.from_proto_record(r) for r in reply.records]


# ---- collections ----------------------------------------------------------------------------------------


def test_create_collection_defaults(stub: pb_grpc.VecDBStub) -> None:
    info = stub.CreateCollection(pb.CreateCollectionRequest(name="docs", dim=DIM))
    assert isinstance(info, pb.CollectionInfo)
    assert (info.name, info.dim, info.metric, info.count, info.sources) == ("docs", DIM, "cosine", 0, 0)
    assert json.loads(info.index_json)["type"] == "auto"
    assert isinstance(json.loads(info.index_state_json), dict)


def test_create_collection_with_metric_and_index(stub: pb_grpc.VecDBStub) -> None:
    request = pb.CreateCollectionRequest(name="h", dim=8, metric="l2", index_json='{"type": "hnsw", "m": 8}')
    info = stub.CreateCollection(request)
    assert info.metric == "l2"
    assert json.loads(info.index_json)["type"] == "hnsw"
    assert json.loads(info.index_json)["m"] == 8
    again = stub.GetCollection(pb.CollectionRequest(name="h"))
    assert convert.from_proto_collection_info(again) == convert.from_proto_collection_info(info)


def test_list_get_and_drop_collections(stub: pb_grpc.VecDBStub) -> None:
    assert list(stub.ListCollections(pb.ListCollectionsRequest()).names) == []
    for name in ("zeta", "alpha"):
        stub.CreateCollection(pb.CreateCollectionRequest(name=name, dim=2))
    assert list(stub.ListCollections(pb.ListCollectionsRequest()).names) == ["alpha", "zeta"]
    assert stub.GetCollection(pb.CollectionRequest(name="alpha")).dim == 2
    assert stub.DropCollection(pb.CollectionRequest(name="alpha")) == pb.DropCollectionResponse()
    assert list(stub.ListCollections(pb.ListCollectionsRequest()).names) == ["zeta"]
    with pytest.raises(grpc.RpcError) as info:
        stub.GetCollection(pb.CollectionRequest(name="alpha"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_collection_info_counts(docs: pb_grpc.VecDBStub) -> None:
    info = docs.GetCollection(pb.CollectionRequest(name="docs"))
    assert (info.count, info.sources) == (4, 2)
    assert info.seq >= 1


# ---- writes ---------------------------------------------------------------------------------------------


def test_upsert_replaces_by_id(docs: pb_grpc.VecDBStub) -> None:
    records_ = [pb.RecordData(id="a", text="new", metadata_json='{"v": 2}')]
    reply = docs.Upsert(pb.UpsertRequest(collection="docs", records=records_, vectors=vec([[0, 1, 0, 0]])))
    assert reply.count == 1
    assert docs.Count(pb.CountRequest(collection="docs")).count == 4
    got = records(docs.Get(pb.GetRequest(collection="docs", ids=["a"])))
    assert got == [{"id": "a", "text": "new", "metadata": {"v": 2}, "source": None}]


def test_upsert_stream_counts_every_message(docs: pb_grpc.VecDBStub) -> None:
    def batches() -> Any:
        for i in range(3):
            ids = [f"s{i}-{j}" for j in range(5)]
            yield pb.UpsertRequest(
                collection="docs" if i == 0 else "",
                records=convert.to_proto_records(ids, sources=[f"stream/{i}"] * 5),
                vectors=vec(np.random.default_rng(i).normal(size=(5, DIM))),
            )

    reply = docs.UpsertStream(batches())
    assert reply.count == 15
    assert docs.Count(pb.CountRequest(collection="docs")).count == 19
    sources = {s.source: s.count for s in docs.ListSources(pb.CollectionRequest(name="docs")).sources}
    assert sources["stream/0"] == sources["stream/1"] == sources["stream/2"] == 5


def test_upsert_stream_may_repeat_its_collection(docs: pb_grpc.VecDBStub) -> None:
    batches = [
        pb.UpsertRequest(collection="docs", records=[pb.RecordData(id=f"r{i}")], vectors=vec([[1, 1, i, 0]]))
        for i in range(3)
    ]
    assert docs.UpsertStream(iter(batches)).count == 3


def test_upsert_stream_naming_two_collections(docs: pb_grpc.VecDBStub) -> None:
    docs.CreateCollection(pb.CreateCollectionRequest(name="other", dim=DIM))
    batches = [
        pb.UpsertRequest(collection="docs", records=[pb.RecordData(id="x")], vectors=vec([[1, 0, 0, 0]])),
        pb.UpsertRequest(collection="other", records=[pb.RecordData(id="y")], vectors=vec([[1, 0, 0, 0]])),
    ]
    with pytest.raises(grpc.RpcError) as info:
        docs.UpsertStream(iter(batches))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert docs.Count(pb.CountRequest(collection="other")).count == 0


def test_upsert_stream_empty(docs: pb_grpc.VecDBStub) -> None:
    assert docs.UpsertStream(iter([])).count == 0


def test_delete_by_ids(docs: pb_grpc.VecDBStub) -> None:
    reply = docs.Delete(pb.DeleteRequest(collection="docs", ids=pb.IdList(ids=["a", "missing", "a"])))
    assert reply.count == 1
    assert docs.Count(pb.CountRequest(collection="docs")).count == 3


def test_delete_by_filter(docs: pb_grpc.VecDBStub) -> None:
    reply = docs.Delete(pb.DeleteRequest(collection="docs", filter_json='{"lang": "en"}'))
    assert reply.count == 2
    got = records(docs.Get(pb.GetRequest(collection="docs", ids=["a", "b", "c", "d"], include=pb.Include())))
    assert [r["id"] for r in got] == ["b", "d"]


def test_delete_by_source(docs: pb_grpc.VecDBStub) -> None:
    assert docs.Delete(pb.DeleteRequest(collection="docs", source="docs/a.md")).count == 2
    assert docs.Delete(pb.DeleteRequest(collection="docs", source="docs/a.md")).count == 0
    sources = docs.ListSources(pb.CollectionRequest(name="docs")).sources
    assert [(s.source, s.count) for s in sources] == [("docs/b.md", 1)]


# ---- reads ----------------------------------------------------------------------------------------------


def test_get_without_include_is_text_metadata_source(docs: pb_grpc.VecDBStub) -> None:
    reply = docs.Get(pb.GetRequest(collection="docs", ids=["c", "missing", "a", "d"]))
    assert records(reply) == [
        {"id": "c", "text": None, "metadata": {"lang": "en", "n": 3}, "source": "docs/b.md"},
        {"id": "a", "text": "alpha", "metadata": {"lang": "en", "n": 1}, "source": "docs/a.md"},
        {"id": "d", "text": None, "metadata": {}, "source": None},
    ]
    assert all(len(r.vector) == 0 for r in reply.records)


def test_get_with_empty_include_is_ids_only(docs: pb_grpc.VecDBStub) -> None:
    reply = docs.Get(pb.GetRequest(collection="docs", ids=["a", "b"], include=pb.Include()))
    for r in reply.records:
        assert not r.HasField("text")
        assert not r.HasField("source")
        assert r.metadata_json == ""
        assert len(r.vector) == 0
    assert [r.id for r in reply.records] == ["a", "b"]


def test_get_with_vector(docs: pb_grpc.VecDBStub) -> None:
    reply = docs.Get(pb.GetRequest(collection="docs", ids=["b", "a"], include=pb.Include(fields=["vector"])))
    (b, a) = reply.records
    assert list(b.vector) == pytest.approx(VECTORS[1].tolist())
    assert list(a.vector) == pytest.approx(VECTORS[0].tolist())
    assert all(isinstance(x, float) for x in a.vector)
    assert not a.HasField("text")
    both = docs.Get(
        pb.GetRequest(collection="docs", ids=["a"], include=pb.Include(fields=["vector", "text"]))
    )
    assert both.records[0].text == "alpha"
    assert len(both.records[0].vector) == DIM


def test_search(docs: pb_grpc.VecDBStub) -> None:
    reply = docs.Search(pb.SearchRequest(collection="docs", queries=vec([[1, 0, 0, 0]]), k=2))
    (result,) = reply.results
    assert [h.id for h in result.hits] == ["a", "b"]
    best = convert.from_proto_record(result.hits[0])
    assert best["score"] == pytest.approx(1.0, abs=1e-5)
    assert best == {
        "id": "a",
        "score": best["score"],
        "text": "alpha",
        "metadata": {"lang": "en", "n": 1},
        "source": "docs/a.md",
    }
    assert result.hits[0].score > result.hits[1].score


def test_search_k_zero_means_ten(docs: pb_grpc.VecDBStub) -> None:
    reply = docs.Search(pb.SearchRequest(collection="docs", queries=vec([[0, 0, 0, 1]])))
    assert len(reply.results[0].hits) == 4


def test_search_batch_filter_params_include(docs: pb_grpc.VecDBStub) -> None:
    request = pb.SearchRequest(
        collection="docs",
        queries=vec([[1, 0, 0, 0], [0, 0, 1, 0], [0.1, 0, 0, 1]]),
        k=10,
        filter_json='{"lang": "en"}',
        include=pb.Include(fields=["vector", "source"]),
        params=pb.SearchParams(ef_search=16, nprobe=2),
    )
    reply = docs.Search(request)
    assert [[h.id for h in r.hits] for r in reply.results] == [["a", "c"], ["c", "a"], ["a", "c"]]
    for result in reply.results:
        for hit in result.hits:
            assert not hit.HasField("text")
            assert hit.metadata_json == ""
            assert hit.source in ("docs/a.md", "docs/b.md")
            assert len(hit.vector) == DIM
    assert list(reply.results[1].hits[0].vector) == pytest.approx([0, 0, 1, 0])


def test_search_params_carry_a_target_recall(docs: pb_grpc.VecDBStub) -> None:
    """params.target_recall reaches the engine: a valid one answers, one outside (0, 1] is refused."""
    query = vec([[1, 0, 0, 0]])
    ok = docs.Search(
        pb.SearchRequest(collection="docs", queries=query, k=2, params=pb.SearchParams(target_recall=0.99))
    )
    assert [h.id for h in ok.results[0].hits][:1] == ["a"]
    with pytest.raises(grpc.RpcError) as info:
        docs.Search(
            pb.SearchRequest(collection="docs", queries=query, k=2, params=pb.SearchParams(target_recall=1.5))
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "target_recall" in str(
        info.value.details()
    )


def test_search_with_nothing_matching(docs: pb_grpc.VecDBStub) -> None:
    request = pb.SearchRequest(
        collection="docs", queries=vec([[1, 0, 0, 0]] * 2), filter_json='{"lang": "de"}'
    )
    reply = docs.Search(request)
    assert len(reply.results) == 2
    assert all(len(r.hits) == 0 for r in reply.results)


def test_count(docs: pb_grpc.VecDBStub) -> None:
    assert docs.Count(pb.CountRequest(collection="docs")).count == 4
    assert docs.Count(pb.CountRequest(collection="docs", filter_json='{"lang": "en"}')).count == 2
    assert docs.Count(pb.CountRequest(collection="docs", filter_json='{"n": {"$gt": 1}}')).count == 2
    assert docs.Count(pb.CountRequest(collection="docs", filter_json="{}")).count == 4


def test_list_sources(docs: pb_grpc.VecDBStub) -> None:
    reply = docs.ListSources(pb.CollectionRequest(name="docs"))
    assert [(s.source, s.count) for s in reply.sources] == [("docs/a.md", 2), ("docs/b.md", 1)]


# ---- health, reflection, metrics ------------------------------------------------------------------------


def test_health(grpc_server: GrpcServer) -> None:
    health_stub = health_pb2_grpc.HealthStub(grpc_server.channel)

    def status(service: str) -> int:
        return health_stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status  # type: ignore[no-any-return]

    for name in ("", SERVICE_NAME):
        assert status(name) == health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", SERVICE_NAME):
        grpc_server.health.set(name, health_pb2.HealthCheckResponse.SERVING)
    assert SERVICE_NAME == "vecdb.v1.VecDB"
    for name in ("", SERVICE_NAME):
        assert status(name) == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        status("no.such.Service")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection(grpc_server: GrpcServer) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(grpc_server.channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME),
    ]
    listing, file = reflection.ServerReflectionInfo(iter(requests), timeout=10)
    services = {s.name for s in listing.list_services_response.service}
    assert {"vecdb.v1.VecDB", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
    assert file.file_descriptor_response.file_descriptor_proto
    assert b"vecdb.v1" in file.file_descriptor_response.file_descriptor_proto[0]


def test_metrics_count_grpc_calls(db: Database) -> None:
    metrics = Metrics(db)
    server, port, _ = create_grpc_server(
        db,
        authenticator=Authenticator([]),
        metrics=metrics,
        address="127.0.0.1:0",
        workers=2,
        max_message_bytes=1 << 20,
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.VecDBStub(channel)
            stub.CreateCollection(pb.CreateCollectionRequest(name="m", dim=2))
            with pytest.raises(grpc.RpcError):
                stub.GetCollection(pb.CollectionRequest(name="nope"))
    finally:
        server.stop(None).wait()
    sample = metrics.registry.get_sample_value
    assert (
        sample("vecdb_requests_total", {"transport": "grpc", "operation": "create_collection", "code": "ok"})
        == 1
    )
    labels = {"transport": "grpc", "operation": "get_collection", "code": "collection_not_found"}
    assert sample("vecdb_requests_total", labels) == 1
    assert sample("vecdb_request_seconds_count", {"transport": "grpc", "operation": "create_collection"}) == 1
    assert sample("vecdb_records", {"collection": "m"}) == 0
