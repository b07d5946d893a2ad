"""Built-in embedding end to end: a real ``vecdb serve`` process, texts over REST and gRPC, a restart, and
a server started with embedding turned off (which must never load torch).

Each enabled server loads the model once (seconds), so the enabled scenario is one test: load, search,
SIGTERM, restart, search again, then the same data directory under ``--no-embedding.enabled``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from serverproc import ServerProcess, StartServer, grpc_error_code, server_env, vecdb_command

from tests.server.corpus import DOCS as ALL_DOCS
from tests.server.corpus import QUERIES, QUERY_TEXTS
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc

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


OFF_FLAG = "--no-embedding.enabled"

DOCS = dict(list(ALL_DOCS.items())[:10])  # the scripts below split these ten records in fixed groups
IDS = list(DOCS)
TEXTS = list(DOCS.values())

Hits = list[list[tuple[str, float]]]


def torch_mapped(pid: int) -> bool:
    """Whether the process has torch's shared libraries mapped (what ``import torch`` does first)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtorch" in maps or "/torch/lib/" in maps


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def one_hot(i: int) -> list[float]:
    v = [0.0] * DIM
    v[i] = 1.0
    return v


def rest_ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def rest_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code, resp.text


def grpc_error(call: Any, status: grpc.StatusCode, code: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == status, info.value.details()
    assert grpc_error_code(info.value) == code, info.value.details()


def text_upsert(name: str, ids: list[str], texts: list[str], missing: list[int], vectors: Any = None) -> Any:
    request = pb.UpsertRequest(
        collection=name, records=convert.to_proto_records(ids, texts), missing_vectors=missing
    )
    if vectors is not None:
        request.vectors.CopyFrom(convert.to_proto_vectors(np.asarray(vectors, dtype=np.float32)))
    return request


def rest_search(http: httpx.Client, name: str, texts: list[str], k: int = 5) -> Hits:
    body = rest_ok(http.post(f"/v1/collections/{name}/search", json={"texts": texts, "k": k}))
    return [[(h["id"], h["score"]) for h in hits] for hits in body["results"]]


def grpc_search(stub: pb_grpc.VecDBStub, name: str, texts: list[str], k: int = 5) -> Hits:
    reply = stub.Search(pb.SearchRequest(collection=name, texts=texts, k=k), timeout=60)
    return [[(h.id, h.score) for h in r.hits] for r in reply.results]


def assert_same_hits(a: Hits, b: Hits) -> None:
    assert [[i for i, _ in row] for row in a] == [[i for i, _ in row] for row in b]
    for row_a, row_b in zip(a, b, strict=True):
        np.testing.assert_allclose([s for _, s in row_a], [s for _, s in row_b], atol=TOL, rtol=0)


def embed_both(http: httpx.Client, stub: pb_grpc.VecDBStub, **fields: Any) -> np.ndarray:
    """/v1/embed and Embed for the same request: both must agree; returns the vectors."""
    body = rest_ok(http.post("/v1/embed", json=fields))
    reply = stub.Embed(pb.EmbedRequest(**fields), timeout=60)
    assert body["model"] == reply.model == MODEL
    rest_vectors = np.asarray(body["vectors"], dtype=np.float32)
    grpc_vectors = convert.from_proto_vectors(reply.vectors)
    assert rest_vectors.shape == (len(fields["texts"]), DIM) == (len(fields["texts"]), body["dim"])
    np.testing.assert_allclose(grpc_vectors, rest_vectors, atol=TOL, rtol=0)
    return rest_vectors


def check_disabled(sp: ServerProcess, name: str) -> None:
    """Every text request to ``name`` (a collection with a model) is refused; vectors still work."""
    stub = sp.stub()
    with sp.http() as http:
        url = f"/v1/collections/{name}"
        rest_error(
            http.post(f"{url}/upsert", json={"ids": ["t"], "texts": ["hi"]}), 409, "embedding_disabled"
        )
        rest_error(http.post(f"{url}/search", json={"texts": ["hi"]}), 409, "embedding_disabled")
        rest_error(http.post("/v1/embed", json={"texts": ["hi"]}), 409, "embedding_disabled")
        rest_error(
            http.post("/v1/embed", json={"texts": ["hi"], "collection": name}), 409, "embedding_disabled"
        )
        off = grpc.StatusCode.FAILED_PRECONDITION
        grpc_error(lambda: stub.Upsert(text_upsert(name, ["t"], ["hi"], [0])), off, "embedding_disabled")
        grpc_error(lambda: grpc_search(stub, name, ["hi"]), off, "embedding_disabled")
        grpc_error(lambda: stub.Embed(pb.EmbedRequest(texts=["hi"])), off, "embedding_disabled")
        grpc_error(
            lambda: stub.Embed(pb.EmbedRequest(texts=["hi"], collection=name)), off, "embedding_disabled"
        )
        # Vectors: an upsert over each transport, found again over the other.
        body = {"ids": ["v0"], "vectors": [one_hot(2)], "texts": ["sent with a vector"]}
        assert rest_ok(http.post(f"{url}/upsert", json=body)) == {"count": 1}
        request = text_upsert(name, ["v1"], ["also with a vector"], [], vectors=[one_hot(3)])
        assert stub.Upsert(request).count == 1
        query = pb.SearchRequest(
            collection=name, queries=convert.to_proto_vectors(np.array([one_hot(2)], dtype=np.float32)), k=1
        )
        assert [h.id for h in stub.Search(query).results[0].hits] == ["v0"]
        hits = rest_ok(http.post(f"{url}/search", json={"vectors": [one_hot(3)], "k": 1}))["results"][0]
        assert [h["id"] for h in hits] == ["v1"]
    sp.close_channels()
    assert not torch_mapped(sp.proc.pid), "a server with embedding turned off loaded torch"


# ---- the tests ----------------------------------------------------------------------------------------


def test_texts_end_to_end_across_a_restart(server_factory: StartServer) -> None:
    sp = server_factory()
    stub = sp.stub()
    with sp.http() as http:
        info = rest_ok(http.post("/v1/collections", json={"name": "docs", "embedding": {}}), 201)
        assert (info["dim"], info["embedding"]) == (DIM, emb_info(MODEL))
        assert not torch_mapped(sp.proc.pid)  # the ONNX backend (the default) runs without torch
        # Text-only: half over REST, half over gRPC; then one mixed batch over each.
        body = {"ids": IDS[:5], "texts": TEXTS[:5]}
        assert rest_ok(http.post("/v1/collections/docs/upsert", json=body)) == {"count": 5}
        assert stub.Upsert(text_upsert("docs", IDS[5:], TEXTS[5:], list(range(5)))).count == 5
        body = {
            "ids": ["vec-a", "txt-a"],
            "vectors": [one_hot(0), None],
            "texts": [None, "Snow fell all night."],
        }
        assert rest_ok(http.post("/v1/collections/docs/upsert", json=body)) == {"count": 2}
        request = text_upsert("docs", ["vec-b", "txt-b"], ["own vector", "Rain tomorrow."], [1], [one_hot(1)])
        assert stub.Upsert(request).count == 2
        assert stub.Count(pb.CountRequest(collection="docs")).count == len(IDS) + 4

        before = rest_search(http, "docs", QUERY_TEXTS)
        assert_same_hits(before, grpc_search(stub, "docs", QUERY_TEXTS))
        assert [row[0][0] for row in before] == [want for _, want in QUERIES]
        hits = rest_search(http, "docs", ["a snowy night"], k=1)
        assert hits[0][0][0] == "txt-a"
        stored = rest_ok(
            http.post("/v1/collections/docs/get", json={"ids": ["vec-b"], "include": ["vector"]})
        )
        assert stored["records"][0]["vector"] == one_hot(1)
        vectors = embed_both(http, stub, texts=QUERY_TEXTS, collection="docs")
        np.testing.assert_allclose(embed_both(http, stub, texts=QUERY_TEXTS), vectors, atol=TOL, rtol=0)
    assert sp.stop() == 0

    # Restart on the same data directory: the collection still embeds, with the same results.
    sp2 = server_factory(sp.data_dir)
    stub = sp2.stub()
    with sp2.http() as http:
        info = rest_ok(http.get("/v1/collections/docs"))
        assert (info["dim"], info["embedding"], info["count"]) == (DIM, emb_info(MODEL), len(IDS) + 4)
        assert json.loads(stub.GetCollection(pb.CollectionRequest(name="docs")).embedding_json) == emb_info(
            MODEL
        )
        assert_same_hits(grpc_search(stub, "docs", QUERY_TEXTS), before)
        assert_same_hits(rest_search(http, "docs", QUERY_TEXTS), before)
        request = text_upsert("docs", ["violin"], ["The violinist rosined her bow."], [0])
        assert stub.Upsert(request).count == 1
        assert grpc_search(stub, "docs", ["a string instrument played with a bow"], k=1)[0][0][0] == "violin"
        np.testing.assert_allclose(
            embed_both(http, stub, texts=QUERY_TEXTS, collection="docs"), vectors, atol=TOL, rtol=0
        )
    assert sp2.stop() == 0

    # The same data directory with embedding turned off: texts refused, vectors served, no torch.
    sp3 = server_factory(sp.data_dir, OFF_FLAG)
    check_disabled(sp3, "docs")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_embedding_off_never_loads_torch(server_factory: StartServer, how: str) -> None:
    if how == "flag":
        sp = server_factory(None, OFF_FLAG)
    else:
        sp = server_factory(None, env={"VECDB_EMBEDDING__ENABLED": "false"})
    with sp.http() as http:
        # A collection with a model can be created (its dim given), just not fed texts.
        rest_error(
            http.post("/v1/collections", json={"name": "docs", "embedding": {}}), 400, "invalid_config"
        )
        info = rest_ok(http.post("/v1/collections", json={"name": "docs", "dim": DIM, "embedding": {}}), 201)
        assert info["embedding"] == emb_info(MODEL)
    check_disabled(sp, "docs")


def test_torch_backend_serves_the_same_vectors(server_factory: StartServer) -> None:
    """``--embedding.backend torch`` loads torch (the probe used above sees it) and embeds like ONNX."""
    onnx = server_factory()
    with onnx.http() as http:
        want = np.asarray(rest_ok(http.post("/v1/embed", json={"texts": QUERY_TEXTS}))["vectors"])
        onnx_rss = rss_mib(onnx.proc.pid)
    assert not torch_mapped(onnx.proc.pid)
    assert onnx.stop() == 0
    sp = server_factory(None, "--embedding.backend", "torch")
    # Importing torch in the server takes 30 s and more on a busy 2-core host: a patient client.
    with httpx.Client(base_url=sp.rest_url, timeout=180.0) as http:
        info = rest_ok(http.post("/v1/collections", json={"name": "docs", "embedding": {}}), 201)
        assert info["embedding"]["backend"] == "torch"
        got = np.asarray(rest_ok(http.post("/v1/embed", json={"texts": QUERY_TEXTS}))["vectors"])
        torch_rss = rss_mib(sp.proc.pid)
    assert torch_mapped(sp.proc.pid)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert torch_rss > onnx_rss + 100, (torch_rss, onnx_rss)  # torch's libraries alone are 100s of MiB
    assert sp.stop() == 0


def test_help_names_the_embedding_flags() -> None:
    out = subprocess.run(
        vecdb_command("serve", "--help"),
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert OFF_FLAG in out
    assert "--embedding.enabled" in out
