"""Built-in embedding over the wire: REST (in-process ASGI) and gRPC (loopback, port 0).

Collections created with ``embedding`` (no dim), text-only and mixed upserts (REST null rows, gRPC
``missing_vectors``), search by texts, ``POST /v1/embed`` / ``Embed``, the same answers on both transports,
and the error codes (model_unavailable, invalid_argument, embedding_disabled).

Loading the model costs seconds, so every test here shares the module's database (``shared_db``: one
load for the whole module) and writes under collection names of its own; the embedding-off server is a
second module-scoped database that never loads a model.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import numpy as np
import pytest
from fastapi import FastAPI

# The helpers only (pytest registers this conftest's fixtures itself, under another module name).
from tests.server.conftest import make_app, make_client, run_grpc_server
from tests.server.corpus import DOCS, IDS, QUERIES, QUERY_TEXTS, TEXTS
from vecdb import Database
from vecdb.config import EmbeddingSettings, Settings, StorageSettings
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from tests.server.conftest import GrpcServer

MODEL = "all-MiniLM-L6-v2"
DIM = 384
TOL = 1e-5


def emb_info(model: str) -> dict[str, object]:
    """What info() reports for a collection declared with ``{"model": model}`` (the default backend)."""
    return {
        "model": model,
        "query_prompt": "",
        "document_prompt": "",
        "max_seq_length": 256,
        "dim": 384,
        "backend": "onnx",
    }


Hits = list[list[tuple[str, float]]]


# ---- helpers ----------------------------------------------------------------------------------------------


def rest_ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def rest_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return error


def grpc_error(call: Any, status: grpc.StatusCode, code: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    assert err.code() == status, err.details()
    assert dict(err.trailing_metadata())["vecdb-error-code"] == code, err.details()
    return err


def unit(v: Any) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float32)
    return arr / np.linalg.norm(arr, axis=-1, keepdims=True)


def one_hot(i: int) -> list[float]:
    v = [0.0] * DIM
    v[i] = 1.0
    return v


async def rest_create(rest: httpx.AsyncClient, name: str, **body: Any) -> dict[str, Any]:
    return rest_ok(await rest.post("/v1/collections", json={"name": name, **body}), 201)


def grpc_create(stub: pb_grpc.VecDBStub, name: str, dim: int = 0, embedding: Any = None) -> dict[str, Any]:
    request = pb.CreateCollectionRequest(name=name, dim=dim, embedding_json=convert.to_json_text(embedding))
    return convert.from_proto_collection_info(stub.CreateCollection(request))


async def rest_load(rest: httpx.AsyncClient, name: str) -> None:
    """DOCS as a text-only upsert."""
    reply = rest_ok(await rest.post(f"/v1/collections/{name}/upsert", json={"ids": IDS, "texts": TEXTS}))
    assert reply == {"count": len(IDS)}


def text_upsert(
    name: str,
    ids: Sequence[str],
    texts: Sequence[str | None],
    missing: Sequence[int] | None = None,
    vectors: Any = None,
) -> pb.UpsertRequest:
    """An upsert whose records at ``missing`` (default: all) have no vector; ``vectors`` are the others."""
    missing = range(len(ids)) if missing is None else missing
    request = pb.UpsertRequest(
        collection=name, records=convert.to_proto_records(ids, texts), missing_vectors=list(missing)
    )
    if vectors is not None:
        request.vectors.CopyFrom(convert.to_proto_vectors(np.asarray(vectors, dtype=np.float32)))
    return request


def grpc_load(stub: pb_grpc.VecDBStub, name: str) -> None:
    assert stub.Upsert(text_upsert(name, IDS, TEXTS)).count == len(IDS)


async def rest_text_search(rest: httpx.AsyncClient, name: str, texts: Any, k: int = 5) -> Hits:
    body = rest_ok(await rest.post(f"/v1/collections/{name}/search", json={"texts": texts, "k": k}))
    return [[(h["id"], h["score"]) for h in hits] for hits in body["results"]]


def grpc_text_search(stub: pb_grpc.VecDBStub, name: str, texts: Sequence[str], k: int = 5) -> Hits:
    reply = stub.Search(pb.SearchRequest(collection=name, texts=list(texts), k=k))
    return [[(h.id, h.score) for h in r.hits] for r in reply.results]


def assert_same_hits(a: Hits, b: Hits) -> None:
    assert [[i for i, _ in row] for row in a] == [[i for i, _ in row] for row in b]
    for row_a, row_b in zip(a, b, strict=True):
        np.testing.assert_allclose([s for _, s in row_a], [s for _, s in row_b], atol=TOL, rtol=0)


async def rest_embed(rest: httpx.AsyncClient, **body: Any) -> tuple[str, np.ndarray]:
    reply = rest_ok(await rest.post("/v1/embed", json=body))
    vectors = np.asarray(reply["vectors"], dtype=np.float32)
    assert reply["dim"] == vectors.shape[1]
    return reply["model"], vectors


def grpc_embed(stub: pb_grpc.VecDBStub, **fields: Any) -> tuple[str, np.ndarray]:
    reply = stub.Embed(pb.EmbedRequest(**fields))
    return reply.model, convert.from_proto_vectors(reply.vectors)


def grpc_vectors(stub: pb_grpc.VecDBStub, name: str, ids: Sequence[str]) -> np.ndarray:
    reply = stub.Get(pb.GetRequest(collection=name, ids=list(ids), include=pb.Include(fields=["vector"])))
    assert [r.id for r in reply.records] == list(ids)
    return np.asarray([list(r.vector) for r in reply.records], dtype=np.float32)


async def rest_vectors(rest: httpx.AsyncClient, name: str, ids: Sequence[str]) -> np.ndarray:
    body = rest_ok(
        await rest.post(f"/v1/collections/{name}/get", json={"ids": list(ids), "include": ["vector"]})
    )
    assert [r["id"] for r in body["records"]] == list(ids)
    return np.asarray([r["vector"] for r in body["records"]], dtype=np.float32)


def count(stub: pb_grpc.VecDBStub, name: str) -> int:
    return int(stub.Count(pb.CountRequest(collection=name)).count)


@pytest.fixture(scope="module")
def stub(shared_grpc: GrpcServer) -> pb_grpc.VecDBStub:  # overrides conftest's per-test stub
    """The gRPC stub of the module's (embedding-on) server."""
    return shared_grpc.stub


@pytest.fixture(scope="module")
def reference(shared_db: Database) -> np.ndarray:
    """DOCS embedded by the engine itself (this loads the model for the module)."""
    vectors, name = shared_db.embed(TEXTS)
    assert name == MODEL and vectors.shape == (len(TEXTS), DIM)
    return vectors


# ---- creating collections ---------------------------------------------------------------------------------


async def test_create_collection_with_embedding_over_rest(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    info = await rest_create(shared_rest, "create_rest", embedding={})
    assert (info["dim"], info["embedding"], info["count"]) == (DIM, emb_info(MODEL), 0)
    # The other transport, and the explicit form, agree.
    assert grpc_create(stub, "create_rest_explicit", DIM, {"model": MODEL})["embedding"] == emb_info(MODEL)
    again = convert.from_proto_collection_info(stub.GetCollection(pb.CollectionRequest(name="create_rest")))
    assert (again["dim"], again["embedding"]) == (DIM, emb_info(MODEL))
    plain = await rest_create(shared_rest, "create_rest_plain", dim=8)
    assert plain["embedding"] is None
    assert stub.GetCollection(pb.CollectionRequest(name="create_rest_plain")).embedding_json == ""


async def test_create_collection_with_embedding_over_grpc(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    info = stub.CreateCollection(pb.CreateCollectionRequest(name="create_grpc", embedding_json="{}"))
    assert (info.dim, json.loads(info.embedding_json), info.count) == (DIM, emb_info(MODEL), 0)
    got = rest_ok(await shared_rest.get("/v1/collections/create_grpc"))
    assert (got["dim"], got["embedding"]) == (DIM, emb_info(MODEL))
    explicit = await rest_create(shared_rest, "create_grpc_explicit", dim=DIM, embedding={"model": MODEL})
    assert explicit["embedding"] == emb_info(MODEL)


async def test_create_collection_embedding_errors(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    # dim that contradicts the model
    rest_error(
        await shared_rest.post("/v1/collections", json={"name": "bad_dim", "dim": 10, "embedding": {}}),
        400,
        "invalid_config",
    )
    grpc_error(
        lambda: grpc_create(stub, "bad_dim", 10, {}), grpc.StatusCode.INVALID_ARGUMENT, "invalid_config"
    )
    # a model that is not available locally: answered at once, nothing created
    started = time.perf_counter()
    body = {"name": "bad_model", "embedding": {"model": "no-such-model"}}
    error = rest_error(await shared_rest.post("/v1/collections", json=body), 400, "model_unavailable")
    assert error["details"]["model"] == "no-such-model"
    grpc_error(
        lambda: grpc_create(stub, "bad_model", 0, {"model": "no-such-model"}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "model_unavailable",
    )
    assert time.perf_counter() - started < 10  # never waits on the network
    # a malformed embedding spec
    body = {"name": "bad_spec", "embedding": {"model": MODEL, "size": 3}}
    rest_error(await shared_rest.post("/v1/collections", json=body), 400, "invalid_config")
    grpc_error(
        lambda: stub.CreateCollection(pb.CreateCollectionRequest(name="bad_spec", embedding_json="{nope")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_config",
    )
    # no dim and no model
    rest_error(await shared_rest.post("/v1/collections", json={"name": "no_dim"}), 400, "invalid_config")
    grpc_error(lambda: grpc_create(stub, "no_dim"), grpc.StatusCode.INVALID_ARGUMENT, "invalid_config")
    names = rest_ok(await shared_rest.get("/v1/collections"))["collections"]
    assert not {"bad_dim", "bad_model", "bad_spec", "no_dim"} & set(names)


# ---- upserts ----------------------------------------------------------------------------------------------


async def test_text_only_upsert_over_rest(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub, reference: np.ndarray
) -> None:
    await rest_create(shared_rest, "text_rest", embedding={})
    await rest_load(shared_rest, "text_rest")
    assert count(stub, "text_rest") == len(IDS)
    stored = await rest_vectors(shared_rest, "text_rest", IDS)
    np.testing.assert_allclose(stored, reference, atol=TOL, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-4)
    body = rest_ok(await shared_rest.post("/v1/collections/text_rest/get", json={"ids": ["mars"]}))
    assert body["records"][0]["text"] == DOCS["mars"]


async def test_text_only_upsert_over_grpc(stub: pb_grpc.VecDBStub, reference: np.ndarray) -> None:
    grpc_create(stub, "text_grpc", 0, {})
    grpc_load(stub, "text_grpc")
    assert count(stub, "text_grpc") == len(IDS)
    np.testing.assert_allclose(grpc_vectors(stub, "text_grpc", IDS), reference, atol=TOL, rtol=0)
    reply = stub.Get(pb.GetRequest(collection="text_grpc", ids=["moon"]))
    assert reply.records[0].text == DOCS["moon"]
    # UpsertStream takes the same messages.
    grpc_create(stub, "text_grpc_stream", 0, {})
    halves = [text_upsert("text_grpc_stream", IDS[:5], TEXTS[:5]), text_upsert("", IDS[5:], TEXTS[5:])]
    assert stub.UpsertStream(iter(halves)).count == len(IDS)
    np.testing.assert_allclose(grpc_vectors(stub, "text_grpc_stream", IDS), reference, atol=TOL, rtol=0)


#: Mixed batches: records 1 and 3 carry their own vector (one-hot, so they are easy to find again).
MIXED_IDS = ["m0", "m1", "m2", "m3"]
MIXED_TEXTS = [DOCS["cat"], "a record with a vector of its own", DOCS["rain"], None]
MIXED_VECTORS = {1: one_hot(0), 3: one_hot(1)}


def check_mixed(stored: np.ndarray, reference: np.ndarray) -> None:
    np.testing.assert_allclose(stored[1], one_hot(0), atol=0)  # sent vectors are kept as they are
    np.testing.assert_allclose(stored[3], one_hot(1), atol=0)
    np.testing.assert_allclose(stored[0], reference[IDS.index("cat")], atol=TOL, rtol=0)
    np.testing.assert_allclose(stored[2], reference[IDS.index("rain")], atol=TOL, rtol=0)


async def test_mixed_upsert_over_rest(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub, reference: np.ndarray
) -> None:
    await rest_create(shared_rest, "mixed_rest", embedding={})
    vectors = [MIXED_VECTORS.get(i) for i in range(len(MIXED_IDS))]
    body = {"ids": MIXED_IDS, "vectors": vectors, "texts": MIXED_TEXTS}
    assert rest_ok(await shared_rest.post("/v1/collections/mixed_rest/upsert", json=body)) == {"count": 4}
    check_mixed(await rest_vectors(shared_rest, "mixed_rest", MIXED_IDS), reference)
    # The record sent with a vector and no text is findable by that vector.
    found = stub.Search(
        pb.SearchRequest(
            collection="mixed_rest", queries=convert.to_proto_vectors(np.array([one_hot(1)])), k=1
        )
    )
    assert found.results[0].hits[0].id == "m3"
    assert found.results[0].hits[0].score == pytest.approx(1.0, abs=1e-6)


async def test_mixed_upsert_over_grpc(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub, reference: np.ndarray
) -> None:
    grpc_create(stub, "mixed_grpc", 0, {})
    request = text_upsert(
        "mixed_grpc", MIXED_IDS, MIXED_TEXTS, missing=[0, 2], vectors=[MIXED_VECTORS[1], MIXED_VECTORS[3]]
    )
    assert stub.Upsert(request).count == 4
    stored = grpc_vectors(stub, "mixed_grpc", MIXED_IDS)
    check_mixed(stored, reference)
    # The same batch over REST stores the same vectors.
    await rest_create(shared_rest, "mixed_grpc_twin", embedding={})
    vectors = [MIXED_VECTORS.get(i) for i in range(len(MIXED_IDS))]
    body = {"ids": MIXED_IDS, "vectors": vectors, "texts": MIXED_TEXTS}
    rest_ok(await shared_rest.post("/v1/collections/mixed_grpc_twin/upsert", json=body))
    np.testing.assert_allclose(
        await rest_vectors(shared_rest, "mixed_grpc_twin", MIXED_IDS), stored, atol=TOL, rtol=0
    )


async def test_text_upsert_replaces_the_vector(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    await rest_create(shared_rest, "replace", embedding={})
    await rest_load(shared_rest, "replace")
    body = {"ids": ["cat"], "texts": [DOCS["mars"]]}
    rest_ok(await shared_rest.post("/v1/collections/replace/upsert", json=body))
    cat, mars = grpc_vectors(stub, "replace", ["cat", "mars"])
    np.testing.assert_allclose(cat, mars, atol=TOL, rtol=0)
    assert count(stub, "replace") == len(IDS)


# ---- search by texts ---------------------------------------------------------------------------------------


async def test_search_by_texts_is_identical_over_rest_and_grpc(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    # One collection loaded over each transport; each searched over both.
    await rest_create(shared_rest, "search_rest", embedding={})
    await rest_load(shared_rest, "search_rest")
    grpc_create(stub, "search_grpc", 0, {})
    grpc_load(stub, "search_grpc")
    answers = []
    for name in ("search_rest", "search_grpc"):
        answers.append(await rest_text_search(shared_rest, name, QUERY_TEXTS))
        answers.append(grpc_text_search(stub, name, QUERY_TEXTS))
    first = answers[0]
    for other in answers[1:]:
        assert_same_hits(first, other)
    assert [row[0][0] for row in first] == [want for _, want in QUERIES]
    assert all(len(row) == 5 for row in first)
    for row in first:
        scores = [s for _, s in row]
        assert scores == sorted(scores, reverse=True)
        assert -1.0 - TOL <= scores[-1] <= scores[0] <= 1.0 + TOL


async def test_search_by_texts_equals_search_by_their_vectors(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    await rest_create(shared_rest, "search_same", embedding={})
    await rest_load(shared_rest, "search_same")
    by_text = await rest_text_search(shared_rest, "search_same", QUERY_TEXTS)
    _, vectors = await rest_embed(shared_rest, texts=QUERY_TEXTS, collection="search_same")
    body = rest_ok(
        await shared_rest.post(
            "/v1/collections/search_same/search", json={"vectors": vectors.tolist(), "k": 5}
        )
    )
    assert_same_hits(by_text, [[(h["id"], h["score"]) for h in hits] for hits in body["results"]])
    # One query text as a bare string; filters, include and k apply as with vectors.
    assert await rest_text_search(shared_rest, "search_same", QUERY_TEXTS[0], k=1) == [by_text[0][:1]]
    body = {"texts": [QUERY_TEXTS[0]], "k": 3, "include": ["text"]}
    hits = rest_ok(await shared_rest.post("/v1/collections/search_same/search", json=body))["results"][0]
    assert hits[0]["id"] == "mars" and hits[0]["text"] == DOCS["mars"]
    reply = stub.Search(
        pb.SearchRequest(
            collection="search_same", texts=[QUERY_TEXTS[0]], k=3, include=pb.Include(fields=["text"])
        )
    )
    assert [(h.id, h.text) for h in reply.results[0].hits] == [(h["id"], h["text"]) for h in hits]


async def test_search_texts_errors(shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub) -> None:
    await rest_create(shared_rest, "search_err", embedding={})
    await rest_create(shared_rest, "search_err_plain", dim=DIM)
    for body in ({"texts": []}, {"texts": [""]}, {"texts": ["x"], "vectors": [one_hot(0)]}):
        rest_error(
            await shared_rest.post("/v1/collections/search_err/search", json=body), 400, "invalid_argument"
        )
    # Texts need the collection's model.
    body = {"texts": ["hello"]}
    rest_error(
        await shared_rest.post("/v1/collections/search_err_plain/search", json=body), 400, "invalid_argument"
    )
    grpc_error(
        lambda: grpc_text_search(stub, "search_err_plain", ["hello"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )
    grpc_error(
        lambda: grpc_text_search(stub, "search_err", [""]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )


def test_grpc_search_with_texts_and_queries_is_rejected(stub: pb_grpc.VecDBStub) -> None:
    grpc_create(stub, "search_both", 0, {})
    request = pb.SearchRequest(
        collection="search_both", texts=["hello"], queries=convert.to_proto_vectors(np.array([one_hot(0)]))
    )
    grpc_error(lambda: stub.Search(request), grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")


# ---- /v1/embed and Embed ----------------------------------------------------------------------------------


async def test_embed_with_the_default_model(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub, reference: np.ndarray
) -> None:
    name, rest_vectors_ = await rest_embed(shared_rest, texts=TEXTS)
    assert name == MODEL and rest_vectors_.shape == (len(TEXTS), DIM)
    np.testing.assert_allclose(rest_vectors_, reference, atol=TOL, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(rest_vectors_, axis=1), 1.0, atol=1e-4)
    name, grpc_vectors_ = grpc_embed(stub, texts=TEXTS)
    assert name == MODEL
    np.testing.assert_allclose(grpc_vectors_, rest_vectors_, atol=TOL, rtol=0)
    # Named explicitly (and by its hub name), and one bare string over REST.
    name, explicit = await rest_embed(shared_rest, texts=TEXTS[:2], model=MODEL)
    assert name == MODEL
    np.testing.assert_allclose(explicit, reference[:2], atol=TOL, rtol=0)
    hub = f"sentence-transformers/{MODEL}"
    name, aliased = grpc_embed(stub, texts=TEXTS[:2], model=hub)
    assert name == hub
    np.testing.assert_allclose(aliased, reference[:2], atol=TOL, rtol=0)
    _, single = await rest_embed(shared_rest, texts=TEXTS[3])
    np.testing.assert_allclose(single, reference[3:4], atol=TOL, rtol=0)


async def test_embed_by_collection(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub, reference: np.ndarray
) -> None:
    await rest_create(shared_rest, "embed_col", embedding={"model": MODEL})
    for fields in ({"collection": "embed_col"}, {"collection": "embed_col", "model": MODEL}):
        name, vectors = await rest_embed(shared_rest, texts=TEXTS[:3], **fields)
        assert name == MODEL
        np.testing.assert_allclose(vectors, reference[:3], atol=TOL, rtol=0)
        name, vectors = grpc_embed(stub, texts=TEXTS[:3], **fields)
        assert name == MODEL
        np.testing.assert_allclose(vectors, reference[:3], atol=TOL, rtol=0)


async def test_embed_errors(shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub) -> None:
    await rest_create(shared_rest, "embed_err", embedding={})
    await rest_create(shared_rest, "embed_err_plain", dim=4)
    bad = 400, grpc.StatusCode.INVALID_ARGUMENT
    cases: list[tuple[dict[str, Any], tuple[int, grpc.StatusCode], str]] = [
        ({"collection": "embed_err_plain"}, bad, "invalid_argument"),  # a collection without a model
        ({"collection": "embed_err", "model": "other-model"}, bad, "invalid_argument"),  # not its model
        ({"model": "no-such-model"}, bad, "model_unavailable"),
        ({"collection": "nope"}, (404, grpc.StatusCode.NOT_FOUND), "collection_not_found"),
    ]
    for fields, (http, status), code in cases:
        rest_error(await shared_rest.post("/v1/embed", json={"texts": ["hi"], **fields}), http, code)
        grpc_error(lambda f=fields: grpc_embed(stub, texts=["hi"], **f), status, code)
    for body in ({"texts": []}, {"texts": [""]}, {"texts": ["ok", ""]}, {}):
        rest_error(await shared_rest.post("/v1/embed", json=body), 400, "invalid_argument")
    for texts in ([], [""]):
        grpc_error(
            lambda t=texts: grpc_embed(stub, texts=t), grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument"
        )


# ---- upsert errors ----------------------------------------------------------------------------------------


async def test_text_only_upsert_into_a_vector_only_collection(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    await rest_create(shared_rest, "plain", dim=DIM)
    url = "/v1/collections/plain/upsert"
    rest_error(await shared_rest.post(url, json={"ids": ["a"], "texts": ["hello"]}), 400, "invalid_argument")
    body = {"ids": ["a", "b"], "vectors": [one_hot(0), None], "texts": ["hello", "there"]}
    rest_error(await shared_rest.post(url, json=body), 400, "invalid_argument")
    grpc_error(
        lambda: stub.Upsert(text_upsert("plain", ["a"], ["hello"])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )
    grpc_error(
        lambda: stub.Upsert(
            text_upsert("plain", ["a", "b"], ["hello", "there"], missing=[1], vectors=[one_hot(0)])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )
    assert count(stub, "plain") == 0


#: Malformed gRPC upserts for 3 records; vectors are the rows sent (one-hot, DIM wide).
BAD_MISSING = {
    "out_of_range": ([0, 3], 1),
    "far_out_of_range": ([1 << 31], 2),
    "duplicated": ([0, 0], 2),
    "duplicated_covering_all": ([0, 1, 2, 2], 0),
    "too_many_rows": ([0], 3),
    "too_few_rows": ([0], 1),
    "rows_but_all_missing": ([0, 1, 2], 1),
    "no_text_to_embed": ([2], 2),  # record 2 has no text
}


@pytest.mark.parametrize("case", list(BAD_MISSING))
def test_bad_missing_vectors_are_invalid_argument(stub: pb_grpc.VecDBStub, case: str) -> None:
    name = f"bad_missing_{case}"
    grpc_create(stub, name, 0, {})
    missing, rows = BAD_MISSING[case]
    request = text_upsert(
        name,
        ["a", "b", "c"],
        ["one", "two", None if case == "no_text_to_embed" else "three"],
        missing=missing,
        vectors=[one_hot(i) for i in range(rows)] if rows else None,
    )
    grpc_error(lambda: stub.Upsert(request), grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument")
    assert count(stub, name) == 0


async def test_bad_rest_rows_are_invalid_argument(
    shared_rest: httpx.AsyncClient, stub: pb_grpc.VecDBStub
) -> None:
    await rest_create(shared_rest, "bad_rows", embedding={})
    url = "/v1/collections/bad_rows/upsert"
    bodies = [
        {"ids": ["a", "b"], "vectors": [None], "texts": ["one", "two"]},  # fewer rows than records
        {"ids": ["a"], "vectors": [None, one_hot(0)], "texts": ["one"]},  # more rows than records
        {"ids": ["a", "b"], "vectors": [None, one_hot(0)], "texts": [None, "two"]},  # null row, no text
        {"ids": ["a", "b"], "texts": ["one"]},  # texts shorter than ids
        {"ids": ["a"], "texts": [""]},  # empty text
        {"ids": ["a"]},  # nothing at all
    ]
    for body in bodies:
        resp = await shared_rest.post(url, json=body)
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error"]["code"] in {"invalid_argument", "dimension_mismatch", "invalid_vector"}, (
            body
        )
    assert count(stub, "bad_rows") == 0


async def test_more_null_rows_than_ids_is_invalid_argument(shared_rest: httpx.AsyncClient) -> None:
    await rest_create(shared_rest, "extra_null_row", embedding={})
    body = {"ids": ["a"], "vectors": [None, None], "texts": ["one"]}
    resp = await shared_rest.post("/v1/collections/extra_null_row/upsert", json=body)
    rest_error(resp, 400, "invalid_argument")


# ---- a server with embedding turned off -------------------------------------------------------------------


@pytest.fixture(scope="module")
def off_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    settings = Settings(
        storage=StorageSettings(sync_writes=False), embedding=EmbeddingSettings(enabled=False)
    )
    path: Path = tmp_path_factory.mktemp("embedding_off") / "data"
    with Database(path, settings=settings) as database:
        yield database


@pytest.fixture(scope="module")
def _off_app(off_db: Database) -> FastAPI:
    return make_app(off_db)


@pytest.fixture
async def off_rest(_off_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(_off_app) as client:
        yield client


@pytest.fixture(scope="module")
def off_stub(off_db: Database) -> Iterator[pb_grpc.VecDBStub]:
    for server in run_grpc_server(off_db):
        yield server.stub


OFF_HTTP, OFF_STATUS, OFF_CODE = 409, grpc.StatusCode.FAILED_PRECONDITION, "embedding_disabled"


async def test_embedding_disabled_refuses_texts_and_serves_vectors(
    off_rest: httpx.AsyncClient, off_stub: pb_grpc.VecDBStub, off_db: Database
) -> None:
    # A collection with a model needs its dim while the model cannot be loaded.
    rest_error(
        await off_rest.post("/v1/collections", json={"name": "off", "embedding": {}}), 400, "invalid_config"
    )
    info = await rest_create(off_rest, "off", dim=DIM, embedding={})
    assert info["embedding"] == emb_info(MODEL)
    assert grpc_create(off_stub, "off_grpc", DIM, {})["embedding"] == emb_info(MODEL)

    # Text-only and mixed upserts
    for body in (
        {"ids": ["a"], "texts": ["hello"]},
        {"ids": ["a", "b"], "vectors": [one_hot(0), None], "texts": ["hello", "there"]},
    ):
        rest_error(await off_rest.post("/v1/collections/off/upsert", json=body), OFF_HTTP, OFF_CODE)
    for request in (
        text_upsert("off_grpc", ["a"], ["hello"]),
        text_upsert("off_grpc", ["a", "b"], ["hello", "there"], missing=[1], vectors=[one_hot(0)]),
    ):
        grpc_error(lambda r=request: off_stub.Upsert(r), OFF_STATUS, OFF_CODE)
    # Search by texts
    resp = await off_rest.post("/v1/collections/off/search", json={"texts": ["hello"]})
    rest_error(resp, OFF_HTTP, OFF_CODE)
    grpc_error(lambda: grpc_text_search(off_stub, "off_grpc", ["hello"]), OFF_STATUS, OFF_CODE)
    # /v1/embed and Embed: default model, a collection's model, even a model that does not exist
    for fields in ({}, {"collection": "off"}, {"model": MODEL}, {"model": "no-such-model"}):
        resp = await off_rest.post("/v1/embed", json={"texts": ["hello"], **fields})
        rest_error(resp, OFF_HTTP, OFF_CODE)
        grpc_error(lambda f=fields: grpc_embed(off_stub, texts=["hello"], **f), OFF_STATUS, OFF_CODE)
    assert count(off_stub, "off") == count(off_stub, "off_grpc") == 0

    # Vectors work as ever, in the same collections.
    body = {"ids": ["a", "b"], "vectors": [one_hot(0), one_hot(1)], "texts": ["hello", "there"]}
    assert rest_ok(await off_rest.post("/v1/collections/off/upsert", json=body)) == {"count": 2}
    request = pb.UpsertRequest(
        collection="off_grpc",
        records=convert.to_proto_records(["a", "b"], ["hello", "there"]),
        vectors=convert.to_proto_vectors(np.array([one_hot(0), one_hot(1)])),
    )
    assert off_stub.Upsert(request).count == 2
    search = {"vectors": [one_hot(1)], "k": 1, "include": ["text"]}
    hits = rest_ok(await off_rest.post("/v1/collections/off/search", json=search))["results"][0]
    assert [(h["id"], h["text"]) for h in hits] == [("b", "there")]
    reply = off_stub.Search(
        pb.SearchRequest(collection="off_grpc", queries=convert.to_proto_vectors(np.array([one_hot(1)])), k=1)
    )
    assert [(h.id, h.text) for h in reply.results[0].hits] == [("b", "there")]
    # A collection without a model is still told so (not "embedding disabled").
    await rest_create(off_rest, "off_plain", dim=4)
    resp = await off_rest.post("/v1/embed", json={"texts": ["hello"], "collection": "off_plain"})
    rest_error(resp, 400, "invalid_argument")
    assert off_db.embedders.enabled is False
