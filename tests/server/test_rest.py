"""Every REST route: request and response shapes, status codes, ops endpoints and the OpenAPI schema."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from vecdb.engine import Database

DIM = 4
RECORDS: dict[str, Any] = {
    "ids": ["a", "b", "c", "d"],
    "vectors": [[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    "texts": ["alpha", "beta", None, None],
    "metadatas": [{"lang": "en", "n": 1}, {"lang": "fr", "n": 2}, {"lang": "en", "n": 3}, None],
    "sources": ["docs/a.md", "docs/a.md", "docs/b.md", None],
}


async def create(client: httpx.AsyncClient, name: str = "docs", **extra: Any) -> dict[str, Any]:
    r = await client.post("/v1/collections", json={"name": name, "dim": DIM, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
async def docs(rest: httpx.AsyncClient) -> httpx.AsyncClient:
    """The open client with collection "docs" holding RECORDS."""
    await create(rest)
    r = await rest.post("/v1/collections/docs/upsert", json=RECORDS)
    assert r.status_code == 200, r.text
    assert r.json() == {"count": 4}
    return rest


# ---- collections --------------------------------------------------------------------------------------


async def test_create_collection_is_201_with_its_info(rest: httpx.AsyncClient) -> None:
    r = await rest.post("/v1/collections", json={"name": "docs", "dim": DIM})
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/json"
    info = r.json()
    assert set(info) == {
        "name",
        "dim",
        "metric",
        "index",
        "count",
        "sources",
        "index_state",
        "seq",
        "checkpoint_seq",
        "embedding",
        "capacity",
        "text_index",
    }
    assert info["text_index"] is None
    assert (info["name"], info["dim"], info["metric"], info["count"], info["sources"]) == (
        "docs",
        DIM,
        "cosine",
        0,
        0,
    )
    assert info["index"]["type"] == "auto"
    assert isinstance(info["index_state"], dict)


async def test_create_collection_with_metric_and_index(rest: httpx.AsyncClient) -> None:
    info = await create(rest, "l2", metric="l2", index={"type": "hnsw", "m": 8})
    assert info["metric"] == "l2"
    assert info["index"]["type"] == "hnsw"
    assert info["index"]["m"] == 8
    got = (await rest.get("/v1/collections/l2")).json()
    assert got["index"] == info["index"]


async def test_list_get_and_drop_collections(rest: httpx.AsyncClient) -> None:
    assert (await rest.get("/v1/collections")).json() == {"collections": []}
    for name in ("zeta", "alpha", "mid-1"):
        await create(rest, name)
    r = await rest.get("/v1/collections")
    assert r.status_code == 200
    assert r.json() == {"collections": ["alpha", "mid-1", "zeta"]}

    r = await rest.get("/v1/collections/alpha")
    assert r.status_code == 200
    assert r.json()["name"] == "alpha"

    r = await rest.delete("/v1/collections/alpha")
    assert r.status_code == 200
    assert r.json() == {"dropped": "alpha"}
    assert (await rest.get("/v1/collections/alpha")).status_code == 404
    assert (await rest.get("/v1/collections")).json() == {"collections": ["mid-1", "zeta"]}


async def test_collection_info_counts_records_and_sources(docs: httpx.AsyncClient) -> None:
    info = (await docs.get("/v1/collections/docs")).json()
    assert info["count"] == 4
    assert info["sources"] == 2
    assert info["seq"] >= 1


# ---- records ------------------------------------------------------------------------------------------


async def test_upsert_replaces_by_id(docs: httpx.AsyncClient) -> None:
    body = {"ids": ["a"], "vectors": [[0, 1, 0, 0]], "texts": ["new"], "metadatas": [{"v": 2}]}
    r = await docs.post("/v1/collections/docs/upsert", json=body)
    assert r.json() == {"count": 1}
    assert (await docs.get("/v1/collections/docs/count")).json() == {"count": 4}
    rec = (await docs.post("/v1/collections/docs/get", json={"ids": ["a"]})).json()["records"][0]
    # Replaced entirely: the old source is gone too.
    assert rec == {"id": "a", "text": "new", "metadata": {"v": 2}, "source": None, "vector": None}


async def test_upsert_with_only_ids_and_vectors(rest: httpx.AsyncClient) -> None:
    await create(rest)
    r = await rest.post("/v1/collections/docs/upsert", json={"ids": ["x"], "vectors": [[1, 2, 3, 4]]})
    assert r.status_code == 200
    assert r.json() == {"count": 1}


async def test_get_default_include(docs: httpx.AsyncClient) -> None:
    r = await docs.post("/v1/collections/docs/get", json={"ids": ["c", "missing", "a", "d"]})
    assert r.status_code == 200
    # Request order, missing ids skipped; default include is text, metadata and source.
    assert r.json() == {
        "records": [
            {
                "id": "c",
                "text": None,
                "metadata": {"lang": "en", "n": 3},
                "source": "docs/b.md",
                "vector": None,
            },
            {
                "id": "a",
                "text": "alpha",
                "metadata": {"lang": "en", "n": 1},
                "source": "docs/a.md",
                "vector": None,
            },
            {"id": "d", "text": None, "metadata": {}, "source": None, "vector": None},
        ]
    }


async def test_get_include_ids_only_and_vector(docs: httpx.AsyncClient) -> None:
    r = await docs.post("/v1/collections/docs/get", json={"ids": ["a"], "include": []})
    assert r.json()["records"] == [{"id": "a", "text": None, "metadata": {}, "source": None, "vector": None}]
    r = await docs.post("/v1/collections/docs/get", json={"ids": ["b"], "include": ["vector", "source"]})
    (rec,) = r.json()["records"]
    assert rec["source"] == "docs/a.md"
    assert rec["text"] is None
    assert rec["vector"] == pytest.approx([0.9, 0.1, 0, 0])


async def test_delete_by_ids(docs: httpx.AsyncClient) -> None:
    r = await docs.post("/v1/collections/docs/delete", json={"ids": ["a", "missing", "a"]})
    assert r.status_code == 200
    assert r.json() == {"count": 1}
    assert (await docs.get("/v1/collections/docs/count")).json() == {"count": 3}


async def test_delete_by_filter(docs: httpx.AsyncClient) -> None:
    r = await docs.post("/v1/collections/docs/delete", json={"filter": {"lang": "en"}})
    assert r.json() == {"count": 2}
    ids = [
        r["id"]
        for r in (await docs.post("/v1/collections/docs/get", json={"ids": RECORDS["ids"]})).json()["records"]
    ]
    assert ids == ["b", "d"]


async def test_delete_by_source(docs: httpx.AsyncClient) -> None:
    r = await docs.post("/v1/collections/docs/delete", json={"source": "docs/a.md"})
    assert r.json() == {"count": 2}
    assert (await docs.get("/v1/collections/docs/count")).json() == {"count": 2}


async def test_search(docs: httpx.AsyncClient) -> None:
    r = await docs.post("/v1/collections/docs/search", json={"vectors": [[1, 0, 0, 0]], "k": 2})
    assert r.status_code == 200
    (hits,) = r.json()["results"]
    assert [h["id"] for h in hits] == ["a", "b"]
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert hits[0]["score"] > hits[1]["score"]
    assert hits[0] == {
        "id": "a",
        "score": hits[0]["score"],
        "text": "alpha",
        "metadata": {"lang": "en", "n": 1},
        "source": "docs/a.md",
        "vector": None,
    }


async def test_search_batch_filter_include_params(docs: httpx.AsyncClient) -> None:
    body = {
        "vectors": [[1, 0, 0, 0], [0, 0, 1, 0]],
        "k": 10,
        "filter": {"lang": "en"},
        "include": ["vector"],
        "params": {"ef_search": 32, "nprobe": 4},
    }
    r = await docs.post("/v1/collections/docs/search", json=body)
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert [h["id"] for h in first] == ["a", "c"]
    assert [h["id"] for h in second] == ["c", "a"]
    for hit in first + second:
        assert hit["text"] is None
        assert hit["metadata"] == {}
        assert hit["source"] is None
        assert len(hit["vector"]) == DIM
    assert first[0]["vector"] == pytest.approx([1, 0, 0, 0])


async def test_search_k_default_and_fewer_matches(docs: httpx.AsyncClient) -> None:
    r = await docs.post("/v1/collections/docs/search", json={"vectors": [[0, 0, 0, 1]]})
    assert len(r.json()["results"][0]) == 4  # k defaults to 10, there are 4 records
    r = await docs.post(
        "/v1/collections/docs/search", json={"vectors": [[0, 0, 0, 1]], "filter": {"lang": "de"}}
    )
    assert r.json() == {"results": [[]]}


async def test_count(docs: httpx.AsyncClient) -> None:
    assert (await docs.get("/v1/collections/docs/count")).json() == {"count": 4}
    for flt, expected in [
        ({"lang": "en"}, 2),
        ({"n": {"$gte": 2}}, 2),
        ({"$or": [{"lang": "fr"}, {"n": 3}]}, 2),
        ({"lang": {"$exists": False}}, 1),
    ]:
        r = await docs.get("/v1/collections/docs/count", params={"filter": json.dumps(flt)})
        assert r.status_code == 200
        assert r.json() == {"count": expected}, flt


async def test_list_sources(docs: httpx.AsyncClient) -> None:
    r = await docs.get("/v1/collections/docs/sources")
    assert r.status_code == 200
    assert r.json() == {"sources": [{"source": "docs/a.md", "count": 2}, {"source": "docs/b.md", "count": 1}]}


@pytest.mark.parametrize("path", ["docs/a.md", quote("docs/a.md", safe="")])
async def test_delete_source_with_a_slash(docs: httpx.AsyncClient, path: str) -> None:
    r = await docs.delete(f"/v1/collections/docs/sources/{path}")
    assert r.status_code == 200, r.text
    assert r.json() == {"count": 2}
    assert (await docs.get("/v1/collections/docs/sources")).json() == {
        "sources": [{"source": "docs/b.md", "count": 1}]
    }
    assert (await docs.delete(f"/v1/collections/docs/sources/{path}")).json() == {"count": 0}


async def test_delete_source_with_spaces_and_unicode(rest: httpx.AsyncClient) -> None:
    await create(rest)
    source = "dir one/été ü.txt"
    body = {"ids": ["x"], "vectors": [[1, 0, 0, 0]], "sources": [source]}
    assert (await rest.post("/v1/collections/docs/upsert", json=body)).status_code == 200
    r = await rest.delete(f"/v1/collections/docs/sources/{quote(source)}")
    assert r.json() == {"count": 1}


# ---- ops: health, readiness, metrics, docs ----------------------------------------------------------


async def test_healthz(rest: httpx.AsyncClient) -> None:
    r = await rest.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_healthz_answers_while_every_worker_thread_is_busy(rest: httpx.AsyncClient) -> None:
    """A burst of (sync) requests holds every token of the thread pool: /healthz still answers."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    holders = [object() for _ in range(int(limiter.total_tokens))]
    for h in holders:
        await limiter.acquire_on_behalf_of(h)
    try:
        with anyio.fail_after(5):
            assert (await rest.get("/healthz")).json() == {"status": "ok"}
    finally:
        for h in holders:
            limiter.release_on_behalf_of(h)


async def test_readyz_is_503_until_ready(app: FastAPI, rest: httpx.AsyncClient) -> None:
    app.state.ready = False  # the `rest` fixture marked it ready
    r = await rest.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "loading"}
    assert (await rest.get("/healthz")).status_code == 200  # alive while loading
    app.state.ready = True
    r = await rest.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics(docs: httpx.AsyncClient) -> None:
    await docs.get("/v1/collections/nope")
    r = await docs.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = _samples(r.text)

    def requests(op: str, code: str) -> float:
        labels = frozenset({("transport", "rest"), ("operation", op), ("code", code)})
        return samples[("vecdb_requests_total", labels)]

    assert requests("create_collection", "ok") == 1
    assert requests("upsert", "ok") == 1
    assert requests("get_collection", "collection_not_found") == 1
    assert samples[("vecdb_records", frozenset({("collection", "docs")}))] == 4
    latency = frozenset({("transport", "rest"), ("operation", "upsert")})
    assert samples[("vecdb_request_seconds_count", latency)] == 1
    assert ("vecdb_index_vectors", frozenset({("collection", "docs"), ("part", "tombstones")})) in samples
    memtables = frozenset({("collection", "docs"), ("component", "store"), ("part", "memtables")})
    assert samples[("vecdb_memory_bytes", memtables)] > 0  # 4 records written, not flushed yet
    delta = frozenset({("collection", "docs"), ("component", "index"), ("part", "delta_vectors")})
    assert samples[("vecdb_memory_bytes", delta)] > 0
    assert samples[("vecdb_index_building", frozenset({("collection", "docs")}))] in (0, 1)


async def test_validation_400s_are_counted(docs: httpx.AsyncClient) -> None:
    """A body FastAPI refuses (a wrong type; not JSON) counts like the engine's own 400s."""
    assert (await docs.post("/v1/collections/docs/search", json={"k": "many"})).status_code == 400
    bad_json = await docs.post(
        "/v1/collections/docs/update", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    samples = _samples((await docs.get("/metrics")).text)
    for op in ("search", "update"):
        labels = frozenset({("transport", "rest"), ("operation", op), ("code", "invalid_argument")})
        assert samples[("vecdb_requests_total", labels)] == 1, op
    assert (
        "vecdb_request_seconds_count",
        frozenset({("transport", "rest"), ("operation", "update")}),
    ) not in samples


async def test_metrics_records_follow_writes(docs: httpx.AsyncClient) -> None:
    await docs.post("/v1/collections/docs/delete", json={"ids": ["a"]})
    samples = _samples((await docs.get("/metrics")).text)
    assert samples[("vecdb_records", frozenset({("collection", "docs")}))] == 3
    await docs.delete("/v1/collections/docs")
    samples = _samples((await docs.get("/metrics")).text)
    assert ("vecdb_records", frozenset({("collection", "docs")})) not in samples


#: Every route of the API, as the OpenAPI schema names it.
ROUTES = {
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/metrics", "get"),
    ("/whoami", "get"),
    ("/v1/collections", "get"),
    ("/v1/collections", "post"),
    ("/v1/collections/{name}", "get"),
    ("/v1/collections/{name}", "delete"),
    ("/v1/collections/{name}/text_index", "put"),
    ("/v1/collections/{name}/upsert", "post"),
    ("/v1/collections/{name}/get", "post"),
    ("/v1/collections/{name}/delete", "post"),
    ("/v1/collections/{name}/search", "post"),
    ("/v1/collections/{name}/update", "post"),
    ("/v1/collections/{name}/count", "get"),
    ("/v1/collections/{name}/sources", "get"),
    ("/v1/collections/{name}/sources/{source}", "delete"),
    ("/v1/collections/{name}/sources/{source}", "put"),
    ("/v1/collections/{name}/scroll", "post"),
    ("/v1/collections/{name}/snapshots", "post"),
    ("/v1/collections/{name}/snapshots", "get"),
    ("/v1/collections/{name}/snapshots/{snapshot}", "delete"),
    ("/v1/collections/{name}/snapshots/{snapshot}/restore", "post"),
    ("/v1/embed", "post"),
}


async def test_openapi_lists_every_route(rest: httpx.AsyncClient) -> None:
    r = await rest.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["info"]["title"] == "vecdb"
    listed = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert listed == ROUTES
    # Request bodies and error responses are documented.
    upsert = schema["paths"]["/v1/collections/{name}/upsert"]["post"]
    assert upsert["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/UpsertBody")
    assert "ErrorResponse" in json.dumps(upsert["responses"]["404"])
    assert "201" in schema["paths"]["/v1/collections"]["post"]["responses"]


async def test_docs_serve_html(rest: httpx.AsyncClient) -> None:
    r = await rest.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in r.text


async def test_metrics_report_the_recall_target_and_calibrated_knobs(
    db: Database, rest: httpx.AsyncClient
) -> None:
    col = db.create_collection("ann", dim=8, index={"type": "hnsw", "target_recall": 0.9})
    x = np.random.default_rng(0).normal(size=(2_500, 8)).astype(np.float32)
    col.upsert([str(i) for i in range(len(x))], x)
    assert col.wait_for_index(timeout=60)
    samples = _samples((await rest.get("/metrics")).text)
    assert samples[("vecdb_recall_target", frozenset({("collection", "ann")}))] == 0.9
    band = frozenset({("collection", "ann"), ("param", "ef_search"), ("k_band", "10")})
    assert samples[("vecdb_recall_knob", band)] >= 10
    assert samples[("vecdb_recall_calibrated", frozenset({("collection", "ann"), ("k_band", "10")}))] >= 0.9
    assert samples[("vecdb_recall_audit_samples", frozenset({("collection", "ann")}))] >= 0
    body = {"vectors": x[:2].tolist(), "k": 5, "params": {"target_recall": 0.99}}
    r = await rest.post("/v1/collections/ann/search", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["results"][0][0]["id"] == "0"
    bad = await rest.post("/v1/collections/ann/search", json={**body, "params": {"target_recall": 2}})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_argument"
