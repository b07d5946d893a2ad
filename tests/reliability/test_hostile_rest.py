"""Hostile input over REST: nothing a client sends makes the server answer 5xx, breach its own OpenAPI
schema, or touch a file outside its data directory.

Pinned here:

- schemathesis against ``/openapi.json``, every operation, positive and negative generation
  (``scale(25, 300)`` examples per operation plus schemathesis' coverage cases): no 5xx, every status
  code documented, the documented content type, bodies that match the documented schema, invalid input
  rejected with a documented 4xx, 405s with ``Allow``; half the path names are the seeded collection
  "docs" (so that requests reach the engine), and names, k, dim, ttl sometimes hostile values;
- a body one byte over ``max_request_bytes`` is 413 ``limit_exceeded``, declared (Content-Length) or
  chunked;
- JSON nested 10,000 deep (metadata, filter) and other bodies the JSON parser refuses (invalid UTF-8, a
  5,000-digit integer) are 400 with the standard error shape, never a 500 or a RecursionError, and
  carry the ``invalid_argument`` code like any other malformed body;
- k = 10**18 and beyond is 413 ``limit_exceeded``; negative, zero, float or string k is 400;
- NaN, Infinity and float32-overflowing numbers in vectors, metadata, filters, ttl, expires_at and
  score_threshold are 400;
- unicode and path-like collection names ("../x", "a/b", "%2e%2e", "", " ", "docs%00"...) are 400
  ``invalid_name`` or a 404, with the standard error shape, on every route that takes a name, and no file
  appears outside the data directory;
- a lone surrogate (the JSON escape "\\ud800") that ends up quoted in an error is still a 4xx;
- valid unicode in ids, texts, metadata and sources (NUL, RTL marks, path-like strings) round-trips;
- a 405 names every method of the path (``Allow``), also where two routes serve one path;
- under ip and l2, vectors whose norm would overflow FAISS's float32 scores are ``invalid_vector``; those
  at the limit give numeric scores and every hit.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import quote

import fence
import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from report import record, scale

from tests.server.conftest import MAX_REQUEST_BYTES, make_app, make_client
from vecdb import Database
from vecdb.config import EmbeddingSettings, Limits, Settings, StorageSettings
from vecdb.engine.validate import MAX_VECTOR_NORM
from vecdb.server.auth import Authenticator
from vecdb.server.metrics import Metrics
from vecdb.server.rest import create_app

DIM = 4
MAX_K = Limits().max_k
JSON = {"content-type": "application/json"}
EXAMPLES = int(scale(25, 300))

# ---- the server under attack ----------------------------------------------------------------------------


@dataclass
class Served:
    root: Path  # holds nothing but FENCE/data: anything else there escaped the data directory
    data: Path
    db: Database
    app: FastAPI


#: Directories between the test's root and the data directory, so that a name that climbs out of
#: data/collections/<name> ("../../x", "../../../x") still lands where the test looks.
FENCE = fence.FENCE


def seed(db: Database) -> None:
    """The collection "docs" the attacks aim at: a few records with texts, metadata and sources."""
    if "docs" in db.list_collections():
        if "keep" not in [snap.name for snap in db.list_snapshots("docs")]:
            db.create_snapshot("docs", "keep")
        return
    db.create_collection("docs", DIM).upsert(
        ["a", "b", "c"],
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
        texts=["alpha", "beta", None],
        metadatas=[{"n": 1, "tag": "x"}, {"n": 2}, None],
        sources=["s", "s", "t"],
    )


def escaped_paths(served: Served) -> list[str]:
    return fence.escaped_paths(served.root, served.data)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The REST app over a fresh database with "docs". Embedding is off: no example loads a model (texts
    without vectors are a clean 409 ``embedding_disabled``)."""
    root = tmp_path_factory.mktemp("hostile-rest")
    data = root.joinpath(*FENCE, "data")
    config = Settings(storage=StorageSettings(sync_writes=False), embedding=EmbeddingSettings(enabled=False))
    with Database(data, settings=config) as db:
        seed(db)
        yield Served(root, data, db, make_app(db))


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    seed(served.db)
    async with make_client(served.app) as c:
        yield c


def assert_error_shape(r: httpx.Response, status: int | tuple[int, ...], code: str | None = None) -> None:
    """The standard error: ``{"error": {"code", "message", "details"}}`` as JSON, with the status."""
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code < 500, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:500]}"
    assert r.status_code in statuses, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:500]}"
    assert r.headers["content-type"] == "application/json", r.headers
    body = r.json()
    assert isinstance(body, dict), body
    assert list(body) == ["error"], body
    err = body["error"]
    assert list(err) == ["code", "message", "details"], err
    assert isinstance(err["code"], str), err
    assert isinstance(err["message"], str), err
    assert err["message"], err
    assert isinstance(err["details"], dict), err
    if code is not None:
        assert err["code"] == code, f"{r.request.method} {r.request.url}: expected code {code!r}, got {err}"


# ---- schemathesis over every operation ------------------------------------------------------------------

# The OpenAPI document depends only on the route declarations, never on the database, so it is built at
# import (collection) time from an app that has none: each operation becomes its own test. The requests
# go to the real app of the ``served`` fixture (``case.call_and_validate(app=...)``).
# (schemathesis.pytest.from_fixture, the lazy loader, fails under pytest 9: it sets Node._nodeid.)
_SPEC_APP = create_app(
    cast(Database, None),
    authenticator=Authenticator(()),
    metrics=Metrics(cast(Database, None)),
    max_request_bytes=MAX_REQUEST_BYTES,
)

CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # Off: it wants schema-valid input accepted (2xx), but the schema cannot say everything the
            # engine checks (a vector's length is the collection's dim, a name is [A-Za-z0-9_-]{1,64},
            # ids are non-empty...), so schema-valid input is often rightly a 400 or 413.
            "positive_data_acceptance": {"enabled": False},
            # Invalid input must be a documented 4xx. 413 is how limits (k, batch, body size) answer; 5xx
            # stays out (schemathesis' default lets it through here, not_a_server_error catches it).
            "negative_data_rejection": {"expected-statuses": ["400", "404", "405", "409", "413"]},
        },
        # Values schemathesis mixes into what it generates: the seeded collection and its sources half
        # of the time (so that requests reach the engine, not just a 404), and hostile values the schema
        # allows (a name is any string, k any integer).
        "dictionaries": {
            "collections": {"values": ["docs"]},
            "sources": {"values": ["s", "t"]},
            "snapshots": {"values": ["keep"]},
            "hostile_names": {"values": ["..", "../x", "a/b", "", " ", "docs\x00", "\u00e9", "x" * 65]},
            "huge_ints": {"values": [0, -1, MAX_K + 1, 10**18, 2**63, 2**64 + 1, 10**100]},
        },
        "parameters": {
            "path.name": {"dictionary": "collections", "probability": 0.5},
            "path.source": {"dictionary": "sources", "probability": 0.5},
            "path.snapshot": {"dictionary": "snapshots", "probability": 0.5},
            "body.name": {"dictionary": "hostile_names", "probability": 0.3},
            "body.collection": {"dictionary": "hostile_names", "probability": 0.3},
            "body.k": {"dictionary": "huge_ints", "probability": 0.3},
            "body.dim": {"dictionary": "huge_ints", "probability": 0.3},
            "body.max_records": {"dictionary": "huge_ints", "probability": 0.3},
            "body.ttl": {"dictionary": "huge_ints", "probability": 0.3},
        },
    }
)
SCHEMA = schemathesis.openapi.from_dict(_SPEC_APP.openapi(), config=CONFIG)

#: What the schemathesis run saw (recorded in the long run).
STATS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _record_stats() -> Iterator[None]:
    yield
    if STATS:
        record(
            "hostile_rest",
            {
                "examples_per_operation": EXAMPLES,
                "operations": sum(len(ops) for ops in _SPEC_APP.openapi()["paths"].values()),
                **dict(sorted(STATS.items())),
            },
        )


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # A request costs a thread hop and sometimes a RocksDB open; the inputs are large by design.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_schemathesis(case: schemathesis.Case, served: Served) -> None:
    """No 5xx; status, content type, headers and body as documented; invalid input rejected; 405s name
    the allowed methods (schemathesis' default checks but positive_data_acceptance)."""
    try:
        response = case.call_and_validate(app=served.app)
    except BaseException:
        STATS["failing_examples"] += 1
        raise
    finally:
        STATS["examples"] += 1
        escaped = escaped_paths(served)
        seed(served.db)  # a generated DELETE may have dropped it
    STATS[f"status_{response.status_code}"] += 1
    mode = case.meta.generation.mode.value if case.meta is not None else "explicit"
    STATS[f"mode_{mode}"] += 1
    assert not escaped, f"files outside the data directory: {escaped}"


# ---- body size ------------------------------------------------------------------------------------------


def _body_of_size(size: int) -> bytes:
    head, tail = b'{"ids": ["big"], "vectors": [[1, 0, 0, 0]], "texts": ["', b'"]}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_body_one_byte_over_the_limit_with_content_length(client: httpx.AsyncClient) -> None:
    body = _body_of_size(MAX_REQUEST_BYTES + 1)
    r = await client.post("/v1/collections/docs/upsert", content=body, headers=JSON)
    assert r.request.headers["content-length"] == str(MAX_REQUEST_BYTES + 1)
    assert_error_shape(r, 413, "limit_exceeded")
    assert r.json()["error"]["details"] == {"limit": MAX_REQUEST_BYTES}


async def test_body_one_byte_over_the_limit_chunked(client: httpx.AsyncClient) -> None:
    body = _body_of_size(MAX_REQUEST_BYTES + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    r = await client.post("/v1/collections/docs/upsert", content=chunks(), headers=JSON)
    assert "content-length" not in r.request.headers
    assert_error_shape(r, 413, "limit_exceeded")
    assert r.json()["error"]["details"] == {"limit": MAX_REQUEST_BYTES}


async def test_body_at_the_limit_is_not_413(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/collections/docs/upsert", content=_body_of_size(MAX_REQUEST_BYTES), headers=JSON
    )
    assert r.status_code == 200, r.text


# ---- bodies the JSON parser refuses ---------------------------------------------------------------------

UPSERT = "/v1/collections/docs/upsert"
SEARCH = "/v1/collections/docs/search"

#: (id, path, body): bodies json.loads cannot parse although they are (nearly) JSON.
UNPARSEABLE: list[tuple[str, str, bytes]] = [
    (
        "metadata-objects-10000-deep",
        UPSERT,
        b'{"ids": ["x"], "vectors": [[1, 0, 0, 0]], "metadatas": ['
        + b'{"a":' * 10_000
        + b"1"
        + b"}" * 10_000
        + b"]}",
    ),
    (
        "metadata-lists-10000-deep",
        UPSERT,
        b'{"ids": ["x"], "vectors": [[1, 0, 0, 0]], "metadatas": [{"a": '
        + b"[" * 10_000
        + b"]" * 10_000
        + b"}]}",
    ),
    (
        "filter-10000-deep",
        SEARCH,
        b'{"vectors": [[1, 0, 0, 0]], "filter": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    ),
    ("invalid-utf8", UPSERT, b'{"ids": ["\xff\xfe"], "vectors": [[1, 0, 0, 0]]}'),
    ("invalid-utf8-in-key", SEARCH, b'{"vectors": [[1, 0, 0, 0]], "\xc3": 1}'),
    ("integer-of-5000-digits", SEARCH, b'{"vectors": [[1, 0, 0, 0]], "k": ' + b"9" * 5000 + b"}"),
]


@pytest.mark.parametrize(("path", "body"), [c[1:] for c in UNPARSEABLE], ids=[c[0] for c in UNPARSEABLE])
async def test_unparseable_body_is_400(client: httpx.AsyncClient, path: str, body: bytes) -> None:
    """Deep JSON, invalid UTF-8, huge integers: a clean 400, not a 500 (RecursionError, ValueError)."""
    assert len(body) <= MAX_REQUEST_BYTES
    r = await client.post(path, content=body, headers=JSON)
    assert_error_shape(r, 400)
    assert "Recursion" not in r.text


@pytest.mark.parametrize(("path", "body"), [c[1:] for c in UNPARSEABLE], ids=[c[0] for c in UNPARSEABLE])
async def test_unparseable_body_is_invalid_argument(
    client: httpx.AsyncClient, path: str, body: bytes
) -> None:
    """The code of an unparseable body is ``invalid_argument``, as for malformed JSON
    (tests/server/test_error_shape.py "malformed-json").

    Regression (found here, fixed in 5cf8fb2): FastAPI turns any parse failure other than
    JSONDecodeError (RecursionError, UnicodeDecodeError, the int digit limit's ValueError) into
    HTTPException(400, "There was an error parsing the body"), which vecdb answered with code
    "http_error", outside the error tree: the Python client rebuilt it as the base VecDBError (code
    "internal") instead of InvalidArgumentError. Repro: POST /v1/collections/docs/get with the body
    b'{"ids": ["\\xff"]}'.
    """
    r = await client.post(path, content=body, headers=JSON)
    assert_error_shape(r, 400)
    assert r.json()["error"]["code"] == "invalid_argument", (
        f"an unparseable body answers code {r.json()['error']['code']!r} "
        f"({r.json()['error']['message']!r}), not 'invalid_argument': clients cannot map it to a class"
    )


async def test_deep_but_parseable_metadata_is_invalid_metadata(client: httpx.AsyncClient) -> None:
    depth = 200  # within the parser's reach, far beyond limits.max_metadata_depth
    body = (
        b'{"ids": ["x"], "vectors": [[1, 0, 0, 0]], "metadatas": ['
        + b'{"a": ' * depth
        + b"1"
        + b"}" * depth
        + b"]}"
    )
    r = await client.post(UPSERT, content=body, headers=JSON)
    assert_error_shape(r, 400, "invalid_metadata")


async def test_deep_filter_in_the_query_string_is_invalid_filter(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/collections/docs/count", params={"filter": "[" * 10_000 + "]" * 10_000})
    assert_error_shape(r, 400, "invalid_filter")


#: Bodies that are JSON but not an object of the route's model, or not JSON at all.
ODD_BODIES: list[tuple[str, bytes, dict[str, str]]] = [
    ("empty", b"", JSON),
    ("null", b"null", JSON),
    ("list", b"[]", JSON),
    ("number", b"1", JSON),
    ("string", b'"docs"', JSON),
    ("nul-bytes", b"\x00" * 64, JSON),
    ("bom", b'\xef\xbb\xbf{"ids": "x"}', JSON),
    ("text-plain", b'{"ids": ["a"]}', {"content-type": "text/plain"}),
    ("form", b"ids=a&ids=b", {"content-type": "application/x-www-form-urlencoded"}),
    ("no-content-type", b'{"ids": ["a"]}', {}),
    ("duplicate-keys", b'{"ids": ["a"], "ids": 5}', JSON),
    ("many-keys", b"{" + b",".join(b'"k%d": 1' % i for i in range(5000)) + b"}", JSON),
]


@pytest.mark.parametrize(("body", "headers"), [c[1:] for c in ODD_BODIES], ids=[c[0] for c in ODD_BODIES])
async def test_odd_body_is_400(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> None:
    r = await client.post("/v1/collections/docs/get", content=body, headers=headers)
    assert_error_shape(r, 400)


# ---- huge k ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [MAX_K + 1, 10**18, 2**63, 2**64 + 1, 10**100], ids=str)
async def test_huge_k_is_limit_exceeded(client: httpx.AsyncClient, k: int) -> None:
    r = await client.post(SEARCH, content=b'{"vectors": [[1, 0, 0, 0]], "k": %d}' % k, headers=JSON)
    assert_error_shape(r, 413, "limit_exceeded")
    assert r.json()["error"]["details"] == {"limit": MAX_K}


@pytest.mark.parametrize(
    "k", [b"0", b"-1", b"-1000000000000000000", b"1e18", b"1.5", b'"10"', b"true", b"null"]
)
async def test_bad_k_is_400(client: httpx.AsyncClient, k: bytes) -> None:
    r = await client.post(SEARCH, content=b'{"vectors": [[1, 0, 0, 0]], "k": ' + k + b"}", headers=JSON)
    assert_error_shape(r, 400)


# ---- NaN, Infinity, float32 overflow --------------------------------------------------------------------

NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e39", b"-3.5e38", b"1e400"]

#: (id, path, body template with {} for the number, expected code)
NON_FINITE_CASES: list[tuple[str, str, bytes, str]] = [
    ("upsert-vector", UPSERT, b'{"ids": ["x"], "vectors": [[1, %s, 0, 0]]}', "invalid_vector"),
    (
        "upsert-second-vector",
        UPSERT,
        b'{"ids": ["x", "y"], "vectors": [[1, 0, 0, 0], [%s, 0, 0, 0]]}',
        "invalid_vector",
    ),
    ("search-vector", SEARCH, b'{"vectors": [[%s, 0, 0, 0]]}', "invalid_vector"),
    ("search-flat-vector", SEARCH, b'{"vectors": [0, 0, 0, %s]}', "invalid_vector"),
    (
        "replace-source-vector",
        "/v1/collections/docs/sources/zz",
        b'{"ids": ["x"], "vectors": [[%s, 0, 0, 0]]}',
        "invalid_vector",
    ),
    (
        "metadata",
        UPSERT,
        b'{"ids": ["x"], "vectors": [[1, 0, 0, 0]], "metadatas": [{"v": %s}]}',
        "invalid_metadata",
    ),
    ("filter", SEARCH, b'{"vectors": [[1, 0, 0, 0]], "filter": {"n": {"$gt": %s}}}', "invalid_filter"),
    ("ttl", UPSERT, b'{"ids": ["x"], "vectors": [[1, 0, 0, 0]], "ttl": %s}', "invalid_argument"),
    (
        "expires-at",
        UPSERT,
        b'{"ids": ["x"], "vectors": [[1, 0, 0, 0]], "expires_at": [%s]}',
        "invalid_argument",
    ),
    ("score-threshold", SEARCH, b'{"vectors": [[1, 0, 0, 0]], "score_threshold": %s}', "invalid_argument"),
]

#: Finite in float64: only where float32 is the type (vectors) do they overflow; 1e39 is a fine number
#: of seconds, score or metadata value.
_F32_ONLY = {b"1e39", b"-3.5e38"}
_NON_FINITE_PARAMS = [
    pytest.param(path, template, code, number, id=f"{name}-{number.decode()}")
    for name, path, template, code in NON_FINITE_CASES
    for number in NON_FINITE
    if code == "invalid_vector" or number not in _F32_ONLY
]


@pytest.mark.parametrize(("path", "template", "code", "number"), _NON_FINITE_PARAMS)
async def test_non_finite_number_is_400(
    client: httpx.AsyncClient, path: str, template: bytes, code: str, number: bytes
) -> None:
    method = "PUT" if "/sources/" in path else "POST"
    r = await client.request(method, path, content=template % number, headers=JSON)
    assert_error_shape(r, 400, code)


# ---- collection names -----------------------------------------------------------------------------------

#: Names as they appear in the URL (percent-encoded where the raw character cannot be sent).
URL_NAMES = [
    "..",
    "../x",
    "a/b",
    "%2e%2e",
    "%2E%2E%2Fx",
    "..%2F..%2F..%2Fetc",
    "%2Fetc%2Fpasswd",
    "%20",
    "%09",
    "docs%00",
    "%00",
    "docs%0A",
    # ("docs%2F" is left out: ".../docs/" is Starlette's redirect_slashes 307 to ".../docs".)
    "docs%5C..%5Cx",
    "%C3%A9",
    "%F0%9F%98%80",
    "docs%ED%A0%80",  # the UTF-8 bytes of a lone surrogate
    "%FF",
    "%25",
    "~root",
    "x" * 65,
    "x" * 5000,
    "CON",
    "nope",
]

#: (method, path template, body) of every route that takes a collection name in its path.
NAMED_ROUTES: list[tuple[str, str, bytes | None]] = [
    ("GET", "/v1/collections/{}", None),
    ("DELETE", "/v1/collections/{}", None),
    ("POST", "/v1/collections/{}/upsert", b'{"ids": ["x"], "vectors": [[1, 0, 0, 0]]}'),
    ("POST", "/v1/collections/{}/get", b'{"ids": ["a"]}'),
    ("POST", "/v1/collections/{}/delete", b'{"ids": ["a"]}'),
    ("POST", "/v1/collections/{}/search", b'{"vectors": [[1, 0, 0, 0]]}'),
    ("GET", "/v1/collections/{}/count", None),
    ("GET", "/v1/collections/{}/sources", None),
    ("DELETE", "/v1/collections/{}/sources/s", None),
    ("PUT", "/v1/collections/{}/sources/s", b'{"ids": ["x"], "vectors": [[1, 0, 0, 0]]}'),
]

#: Names sent in a create body.
BODY_NAMES = fence.HOSTILE_NAMES


async def test_hostile_names_in_paths(client: httpx.AsyncClient, served: Served) -> None:
    before = sorted(served.db.list_collections())
    for name in URL_NAMES:
        for method, template, body in NAMED_ROUTES:
            r = await client.request(
                method, template.format(name), content=body, headers=JSON if body is not None else None
            )
            assert_error_shape(r, (400, 404))
            code = r.json()["error"]["code"]
            if r.status_code == 400:
                assert code == "invalid_name", (method, template, name, r.text)
            else:
                assert code in ("not_found", "collection_not_found"), (method, template, name, r.text)
    assert sorted(served.db.list_collections()) == before
    assert not escaped_paths(served)


async def test_empty_name_in_paths(client: httpx.AsyncClient) -> None:
    for method, template, body in NAMED_ROUTES[2:]:
        r = await client.request(method, template.format(""), content=body, headers=JSON if body else None)
        assert_error_shape(r, (400, 404))


async def test_hostile_names_in_create(client: httpx.AsyncClient, served: Served) -> None:
    before = sorted(served.db.list_collections())
    for name in BODY_NAMES:
        r = await client.post("/v1/collections", content=json.dumps({"name": name, "dim": DIM}), headers=JSON)
        assert_error_shape(r, 400, "invalid_name")
    assert sorted(served.db.list_collections()) == before
    assert not escaped_paths(served)


async def test_unicode_ids_sources_and_metadata_round_trip(client: httpx.AsyncClient) -> None:
    """Valid but unusual unicode is data, not an attack: stored and returned unchanged."""
    ids = ["é", "😀", "a\x00b", "\u202ertl", "../../etc/passwd", "\uff44\uff4f\uff43\uff53", "x" * 512]
    body = {
        "ids": ids,
        "vectors": [[1, 0, 0, 0]] * len(ids),
        "texts": ["\x00", "😀" * 10, "\u202e", "\u200b", "\\", "%00", "\r\n"],
        "metadatas": [{"😀": "é", "\x00": None, "../": [1, {"a": "\u2028"}]}] * len(ids),
        "sources": ["../../etc/passwd", "C:\\x", "/", "\x00", "é", "😀", "%2e%2e"],
    }
    r = await client.post(UPSERT, json=body)
    assert r.status_code == 200, r.text
    r = await client.post("/v1/collections/docs/get", json={"ids": ids})
    assert r.status_code == 200, r.text
    got = {rec["id"]: rec for rec in r.json()["records"]}
    for i, rid in enumerate(ids):
        assert got[rid]["text"] == body["texts"][i]
        assert got[rid]["source"] == body["sources"][i]
        assert got[rid]["metadata"] == body["metadatas"][i]
    r = await client.delete("/v1/collections/docs/sources/" + quote("../../etc/passwd", safe=""))
    assert r.status_code == 200, r.text
    r = await client.post("/v1/collections/docs/delete", json={"ids": ids})
    assert r.status_code == 200, r.text


# ---- lone surrogates quoted back in an error ------------------------------------------------------------

#: (id, method, path, raw JSON body, expected code) where the server quotes back a lone surrogate.
SURROGATE_CASES: list[tuple[str, str, str, bytes, str]] = [
    ("create-name", "POST", "/v1/collections", b'{"name": "\\ud800", "dim": 4}', "invalid_name"),
    (
        "create-embedding-model",
        "POST",
        "/v1/collections",
        b'{"name": "zz", "dim": 4, "embedding": {"model": "\\ud800"}}',
        "model_unavailable",
    ),
    (
        "search-filter-field",
        "POST",
        SEARCH,
        b'{"vectors": [[1, 0, 0, 0]], "filter": {"\\ud800": {"$bad": 1}}}',
        "invalid_filter",
    ),
    (
        "delete-filter-field",
        "POST",
        "/v1/collections/docs/delete",
        b'{"filter": {"\\ud800": {"$bad": 1}}}',
        "invalid_filter",
    ),
    # Embedding is off here: the model is not looked at.
    ("embed-model", "POST", "/v1/embed", b'{"texts": ["x"], "model": "\\ud800"}', "embedding_disabled"),
    ("embed-collection", "POST", "/v1/embed", b'{"texts": ["x"], "collection": "\\ud800"}', "invalid_name"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "code"), [c[1:] for c in SURROGATE_CASES], ids=[c[0] for c in SURROGATE_CASES]
)
async def test_lone_surrogate_in_error_details_is_not_500(
    client: httpx.AsyncClient, method: str, path: str, body: bytes, code: str
) -> None:
    """The error quotes the value (``details`` {"name": ...}, {"path": "filter..."}), escaped, still a 4xx.

    Regression (found here, fixed in 5cf8fb2): orjson cannot serialize a lone surrogate (JSON allows
    the escape "\\ud800" and json.loads accepts it), so rendering the 400 raised TypeError and the reply
    was a 500 ``internal``. Repro: POST /v1/collections with the body b'{"name": "\\\\ud800", "dim": 4}'.
    (gRPC cannot carry one in a string field, but can inside its JSON text fields: see
    test_hostile_grpc.py test_lone_surrogate_in_error_keeps_the_message.)"""
    r = await client.request(method, path, content=body, headers=JSON)
    assert_error_shape(r, (400, 404, 409), code)
    if code == "invalid_name":
        assert r.json()["error"]["details"] == {"name": "\ud800"}


# ---- 405 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/v1/collections/docs", {"GET", "DELETE"}),
        ("PUT", "/v1/collections", {"GET", "POST"}),
        ("GET", "/v1/collections/docs/sources/s", {"DELETE", "PUT"}),
        ("GET", "/v1/collections/docs/search", {"POST"}),
    ],
)
async def test_405_names_the_allowed_methods(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    """RFC 9110 15.5.6: a 405 MUST carry ``Allow``, listing the resource's methods (schemathesis'
    unsupported_method and allow_header_conformance checks).

    Regressions: the StarletteHTTPException handler dropped ``exc.headers`` (fixed in 5cf8fb2); where two
    routes serve one path, Starlette fills Allow from the first route matching the path only
    (PATCH /v1/collections/docs -> "Allow: GET", DELETE missing): the handler now gathers every route's."""
    r = await client.request(method, path)
    assert_error_shape(r, 405, "method_not_allowed")
    got = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
    assert got == allowed, f"{method} {path}: Allow: {r.headers.get('allow')!r}, expected {sorted(allowed)}"


# ---- finite inputs, overflowing scores ------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["ip", "l2"])
async def test_vectors_whose_scores_overflow_are_invalid(client: httpx.AsyncClient, metric: str) -> None:
    """Regression: vectors near the float32 limit were accepted under ip and l2, and FAISS's float32
    scores overflowed: "score": null in the reply (a schema breach) and l2 hits silently dropped. Norms
    above MAX_VECTOR_NORM are now ``invalid_vector`` (records and queries); at the limit, every hit has a
    numeric score. cosine normalizes in float64 and takes any finite vector."""
    name = f"huge_{metric}"
    r = await client.post("/v1/collections", json={"name": name, "dim": 2, "metric": metric})
    assert r.status_code in (201, 409), r.text
    huge = [[3e38, 3e38], [-3e38, -3e38]]
    r = await client.post(f"/v1/collections/{name}/upsert", json={"ids": ["a", "b"], "vectors": huge})
    assert_error_shape(r, 400, "invalid_vector")
    r = await client.post(f"/v1/collections/{name}/search", json={"vectors": [huge[0]], "k": 2})
    assert_error_shape(r, 400, "invalid_vector")
    edge = MAX_VECTOR_NORM / 2**0.5 * 0.999
    r = await client.post(
        f"/v1/collections/{name}/upsert", json={"ids": ["a", "b"], "vectors": [[edge, edge], [-edge, -edge]]}
    )
    assert r.status_code == 200, r.text
    for query in ([edge, edge], [1e-3, 1e-3]):
        r = await client.post(f"/v1/collections/{name}/search", json={"vectors": [query], "k": 2})
        assert r.status_code == 200, r.text
        hits = r.json()["results"][0]
        assert all(isinstance(h["score"], float) and abs(h["score"]) < 3e38 for h in hits), hits
        assert sorted(h["id"] for h in hits) == ["a", "b"], f"{metric} {query}: hits {hits}"


async def test_cosine_takes_any_finite_vector(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/collections", json={"name": "huge_cos", "dim": 2, "metric": "cosine"})
    assert r.status_code in (201, 409), r.text
    r = await client.post(
        "/v1/collections/huge_cos/upsert", json={"ids": ["a", "b"], "vectors": [[3e38, 3e38], [-3e38, 1e-30]]}
    )
    assert r.status_code == 200, r.text
    r = await client.post("/v1/collections/huge_cos/search", json={"vectors": [[1e-30, 1e-30]], "k": 2})
    assert r.status_code == 200, r.text
    assert [h["id"] for h in r.json()["results"][0]] == ["a", "b"]
    assert r.json()["results"][0][0]["score"] == pytest.approx(1.0, abs=1e-6)


def test_schema_documents_no_unsent_422() -> None:
    """FastAPI documents a 422 on every route; the server answers validation failures with 400
    ``invalid_argument``, so the schema must not promise a 422 (nor keep its unused models)."""
    schema = _SPEC_APP.openapi()
    documented = {
        (path, method, status)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        for status in operation["responses"]
    }
    assert not [d for d in documented if d[2] == "422"]
    assert all(("400" in op["responses"]) for item in schema["paths"].values() for op in item.values())
    assert "HTTPValidationError" not in schema["components"]["schemas"]
