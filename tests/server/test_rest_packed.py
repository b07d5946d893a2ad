"""REST's binary vectors (``{"dim", "data"}``: base64 little-endian float32) and its JSON body parser.

Packed vectors must mean exactly what the same vectors as JSON numbers mean (same results, same stored
vectors, same error classes for bad values); the body parser must give the standard library's value or
error for every body.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import numpy as np
import pytest

from vecdb.errors import InvalidArgumentError
from vecdb.server import convert

DIM = 4
VECTORS = np.array([[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)


def packed(vectors: Any, dim: int | None = None) -> dict[str, Any]:
    arr = np.ascontiguousarray(vectors, dtype="<f4")
    return {
        "dim": dim if dim is not None else arr.shape[-1],
        "data": base64.b64encode(arr.tobytes()).decode(),
    }


@pytest.fixture
async def docs(rest: httpx.AsyncClient) -> httpx.AsyncClient:
    r = await rest.post("/v1/collections", json={"name": "docs", "dim": DIM, "index": {"type": "flat"}})
    assert r.status_code == 201, r.text
    body = {
        "ids": ["a", "b", "c", "d"],
        "vectors": packed(VECTORS),
        "metadatas": [{"n": i} for i in range(4)],
    }
    r = await rest.post("/v1/collections/docs/upsert", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"count": 4}
    return rest


# ---- convert: the pair and its errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    "vectors",
    [
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]],
        np.arange(12, dtype=np.float64).reshape(4, 3) / 7,
        np.arange(12, dtype=">f4").reshape(3, 4),  # big endian in, little endian on the wire
        [0.5, -0.25],  # one vector
    ],
)
def test_packed_vectors_round_trip(vectors: Any) -> None:
    msg = json.loads(json.dumps(convert.to_base64_vectors(vectors)))  # through JSON text
    out = convert.from_base64_vectors(msg["dim"], msg["data"])
    expected = np.asarray(vectors, dtype=np.float32).reshape(-1, np.shape(vectors)[-1])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_packed_vectors_empty() -> None:
    assert convert.from_base64_vectors(0, "").shape == (0, 0)
    assert convert.from_base64_vectors(3, "").shape == (0, 3)


@pytest.mark.parametrize(
    ("dim", "data", "match"),
    [
        (4, "not base64!", "not valid base64"),
        (4, "AAAA=AAA", "not valid base64"),
        (4, "é", "not valid base64"),
        (4, base64.b64encode(b"\0" * 12).decode(), "12 bytes is not a whole number of 4-d float32 vectors"),
        (4, base64.b64encode(b"\0" * 17).decode(), "not a whole number"),
        (0, base64.b64encode(b"\0" * 4).decode(), "dim is 0 but data is not empty"),
        (-1, "", "dim must not be negative"),
    ],
)
def test_malformed_packed_vectors_are_invalid_argument(dim: int, data: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        convert.from_base64_vectors(dim, data)


# ---- the routes ----------------------------------------------------------------------------------------


async def test_packed_search_equals_json_search(docs: httpx.AsyncClient) -> None:
    queries = np.array([[1, 0.05, 0, 0], [0, 0, 0.7, 0.3]], dtype=np.float32)
    for include in (None, [], ["metadata", "vector"]):
        common: dict[str, Any] = {"k": 3} if include is None else {"k": 3, "include": include}
        as_json = await docs.post("/v1/collections/docs/search", json={"vectors": queries.tolist(), **common})
        as_packed = await docs.post(
            "/v1/collections/docs/search", json={"vectors": packed(queries), **common}
        )
        assert as_json.status_code == as_packed.status_code == 200
        assert as_packed.json() == as_json.json()
        # every HitOut field, in the model's order, as before the route built its answer itself
        assert list(as_json.json()["results"][0][0]) == [
            "id",
            "text",
            "metadata",
            "source",
            "vector",
            "score",
        ]
    one = await docs.post("/v1/collections/docs/search", json={"vectors": packed(queries[0]), "k": 2})
    assert [h["id"] for h in one.json()["results"][0]] == ["a", "b"]


async def test_packed_upsert_stores_the_vectors(docs: httpx.AsyncClient) -> None:
    r = await docs.post("/v1/collections/docs/get", json={"ids": ["a", "b", "c", "d"], "include": ["vector"]})
    np.testing.assert_array_equal(
        np.array([rec["vector"] for rec in r.json()["records"]], np.float32), VECTORS
    )


@pytest.mark.parametrize(
    ("route", "body", "status", "code"),
    [
        # the same error classes as the same vectors sent as JSON numbers (or over gRPC)
        ("search", {"vectors": packed(np.ones((2, 3)))}, 400, "dimension_mismatch"),
        ("search", {"vectors": packed([[np.nan, 0, 0, 1]])}, 400, "invalid_vector"),
        ("search", {"vectors": packed(np.zeros((0, DIM)))}, 400, "invalid_argument"),
        ("search", {"vectors": {"dim": 4, "data": "%%%"}}, 400, "invalid_argument"),
        ("search", {"vectors": {"dim": 4, "data": "AAAA"}}, 400, "invalid_argument"),
        ("search", {"vectors": {"dim": 4}}, 400, "invalid_argument"),
        ("search", {"vectors": {"dim": "4", "data": ""}}, 400, "invalid_argument"),
        ("search", {"vectors": {"dim": 4, "data": "", "dtype": "f2"}}, 400, "invalid_argument"),
        ("upsert", {"ids": ["x"], "vectors": packed(np.ones((1, 3)))}, 400, "dimension_mismatch"),
        ("upsert", {"ids": ["x", "y"], "vectors": packed(np.ones((1, DIM)))}, 400, "invalid_argument"),
        ("upsert", {"ids": ["x"], "vectors": packed([[np.inf, 0, 0, 1]])}, 400, "invalid_vector"),
        ("upsert", {"ids": ["x"], "vectors": {"dim": 4, "data": "AAAA"}}, 400, "invalid_argument"),
    ],
)
async def test_bad_packed_vectors_get_the_usual_errors(
    docs: httpx.AsyncClient, route: str, body: dict[str, Any], status: int, code: str
) -> None:
    r = await docs.post(f"/v1/collections/docs/{route}", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    if route == "upsert":  # a rejected batch writes nothing
        assert (await docs.get("/v1/collections/docs/count")).json() == {"count": 4}


async def test_packed_on_a_missing_collection_is_not_found(rest: httpx.AsyncClient) -> None:
    r = await rest.post("/v1/collections/nope/search", json={"vectors": packed(VECTORS)})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "collection_not_found"


async def test_openapi_documents_packed_vectors(rest: httpx.AsyncClient) -> None:
    schemas = (await rest.get("/openapi.json")).json()["components"]["schemas"]
    packed_schema = schemas["PackedVectors"]
    assert packed_schema["properties"]["data"]["contentEncoding"] == "base64"
    assert "little-endian float32" in packed_schema["properties"]["data"]["description"]
    for model in ("SearchBody", "UpsertBody"):
        alternatives = schemas[model]["properties"]["vectors"]["anyOf"]
        assert {"$ref": "#/components/schemas/PackedVectors"} in alternatives
        assert "base64" in schemas[model]["properties"]["vectors"]["description"]


# ---- the JSON body parser -----------------------------------------------------------------------------

BODIES = [
    b'{"k": 3, "vectors": [[0.1, 0.2, 1e-7, -0.0, 3]]}',
    b'{"a": 1, "a": 2}',
    b"123456789012345678901234567890",  # beyond 64 bits: exact int, as the standard library gives
    b"-9223372036854775809",
    b"18446744073709551616",
    b"[1.0000000000000002, 1e308, 1E-400]",
    b"[0.0060577052645385265, 0.00012345678901234567, 1e19, -1e19]",  # long fractions, big floats
    b'{"m": {"n": [0.000000000000000000012, 12345678901234567890123]}}',  # a long fraction and a big int
    b"[9223372036854775807, -9223372036854775808, 18446744073709551615]",  # 64-bit: ints in both
    b"[12345678901234567890.5, 1234567890123456789012e-3]",
    b"[1e400]",  # inf in the standard library, refused by orjson
    b"[NaN, Infinity, -Infinity]",
    b'"\\ud800"',  # a lone surrogate
    '\ufeff{"a": 1}'.encode(),  # a byte-order mark
    '{"a": "\u00e9"}'.encode("utf-16"),
    b"[" * 2000 + b"]" * 2000,  # deeper than orjson goes
    b'{"a": 1',
    b"",
    b"\xff",
    b'{"a": 1} x',
]


@pytest.mark.parametrize("body", BODIES)
def test_body_parser_is_the_standard_library(body: bytes) -> None:
    def outcome(parse: Any) -> Any:
        try:
            value = parse(body)
        except json.JSONDecodeError as exc:
            return ("JSONDecodeError", exc.msg, exc.pos)
        except (ValueError, RecursionError) as exc:
            return (type(exc).__name__, str(exc))
        return ("value", json.dumps(value, allow_nan=True), repr(value)[:200])

    assert outcome(convert.parse_json_body) == outcome(json.loads)
