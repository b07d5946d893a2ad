"""Bounded work per request (issue 18): limits that hold before the server does the work, on every
transport. A search's answer (queries x k hits, and their vectors) is refused before searching."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from tests.server.conftest import API_KEYS, make_app, make_client, run_grpc_server
from vecdb import Database
from vecdb.config import Limits, Settings, StorageSettings
from vecdb.errors import (
    InvalidConfigError,
    LimitExceededError,
    ModelUnavailableError,
    PermissionDeniedError,
)
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server.auth import Authenticator

if TYPE_CHECKING:
    from tests.server.conftest import GrpcServer

DIM = 16
#: Small limits, so that the refusals are cheap to provoke: 40 hits; 1024 bytes = 16 hits' vectors.
LIMITS = Limits(max_k=30, max_queries=20, max_hits=40, max_response_bytes=1024)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    settings = Settings(storage=StorageSettings(sync_writes=False), limits=LIMITS)
    with Database(tmp_path_factory.mktemp("limited") / "data", settings=settings) as database:
        database.create_collection("docs", DIM).upsert(
            [f"r{i}" for i in range(50)], np.random.default_rng(0).normal(size=(50, DIM)).tolist()
        )
        yield database


@pytest.fixture(scope="module")
def limited_grpc(limited: Database) -> Iterator[GrpcServer]:
    yield from run_grpc_server(limited)


def queries(n: int) -> list[list[float]]:
    return np.random.default_rng(n).normal(size=(n, DIM)).tolist()


# Each case: (queries, k, include, the details of the refusal). Every queries and k is within max_queries
# and max_k on its own: only their product (or the vectors' size) is over.
REFUSED = [
    (3, 14, None, {"queries": 3, "k": 14, "hits": 42, "limit": 40}),
    (20, 30, ["text"], {"queries": 20, "k": 30, "hits": 600, "limit": 40}),
    (4, 5, ["vector"], {"queries": 4, "k": 5, "dim": DIM, "bytes": 20 * DIM * 4, "limit": 1024}),
]
ALLOWED = [(4, 10, None), (1, 16, ["vector"]), (2, 8, ["vector", "text"])]


@pytest.mark.parametrize(("n", "k", "include", "details"), REFUSED)
def test_embedded_search_refuses_an_answer_over_the_limits(
    limited: Database, n: int, k: int, include: list[str] | None, details: dict[str, int]
) -> None:
    col = limited.get_collection("docs")
    with pytest.raises(LimitExceededError) as caught:
        col.search(queries(n), k=k, **({} if include is None else {"include": include}))
    assert caught.value.details == details


def test_get_and_scroll_refuse_pages_of_vectors_over_the_limit(limited: Database) -> None:
    """1024 bytes = 16 vectors of dim 16: a get or scroll page of 17 with vectors is refused unread."""
    col = limited.get_collection("docs")
    ids = [f"r{i}" for i in range(17)]
    with pytest.raises(LimitExceededError) as caught:
        col.get(ids, include=["vector"])
    assert caught.value.details == {"rows": 17, "dim": DIM, "bytes": 17 * DIM * 4, "limit": 1024}
    with pytest.raises(LimitExceededError):
        col.scroll(limit=17, include=["vector", "text"])
    assert len(col.get(ids[:16], include=["vector"])) == 16
    assert len(col.get(ids, include=["text"])) == 17  # without vectors: max_batch bounds it
    assert len(col.scroll(limit=16, include=["vector"])[0]) == 16


@pytest.mark.parametrize(("n", "k", "include", "details"), REFUSED)
async def test_rest_search_refuses_an_answer_over_the_limits(
    limited: Database, n: int, k: int, include: list[str] | None, details: dict[str, int]
) -> None:
    async with make_client(make_app(limited)) as client:
        r = await client.post(
            "/v1/collections/docs/search", json={"vectors": queries(n), "k": k, "include": include}
        )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "limit_exceeded"
    assert r.json()["error"]["details"] == details


@pytest.mark.parametrize(("n", "k", "include", "details"), REFUSED)
def test_grpc_search_refuses_an_answer_over_the_limits(
    limited_grpc: GrpcServer, n: int, k: int, include: list[str] | None, details: dict[str, int]
) -> None:
    request = pb.SearchRequest(
        collection="docs", queries=convert.to_proto_vectors(np.asarray(queries(n), np.float32)), k=k
    )
    if include is not None:
        request.include.CopyFrom(pb.Include(fields=include))
    with pytest.raises(grpc.RpcError) as caught:
        limited_grpc.stub.Search(request, timeout=10)
    err = caught.value
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    trailers = dict(err.trailing_metadata())  # type: ignore[attr-defined]
    assert trailers["vecdb-error-code"] == "limit_exceeded"
    assert json.loads(trailers["vecdb-error-details"]) == details


@pytest.mark.parametrize(("n", "k", "include"), ALLOWED)
async def test_searches_within_the_limits_answer(
    limited: Database, n: int, k: int, include: list[str] | None
) -> None:
    async with make_client(make_app(limited)) as client:
        r = await client.post(
            "/v1/collections/docs/search", json={"vectors": queries(n), "k": k, "include": include}
        )
    assert r.status_code == 200, r.text
    assert [len(hits) for hits in r.json()["results"]] == [k] * n


def test_query_texts_are_refused_before_they_are_embedded(tmp_path: Path) -> None:
    """Texts x k over max_hits: refused before they are embedded (this collection has no model, so
    reaching the embedding step would be a different error)."""
    settings = Settings(storage=StorageSettings(sync_writes=False), limits=LIMITS)
    with Database(tmp_path / "data", settings=settings) as db:
        col = db.create_collection("docs", DIM)
        with pytest.raises(LimitExceededError) as caught:
            col.search(texts=["a", "b", "c"], k=14)
        assert caught.value.details == {"queries": 3, "k": 14, "hits": 42, "limit": 40}


# ---- the API key is checked before the body is read (REST) ----------------------------------------------

BODY_ROUTES = [
    ("POST", "/v1/collections"),
    ("POST", "/v1/collections/docs/upsert"),
    ("POST", "/v1/collections/docs/search"),
    ("PUT", "/v1/collections/docs/sources/a/b"),
    ("POST", "/v1/embed"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("body", [b"{not json", b'{"k": "x"}', b"\xff\xfe", b"[" * 10_000])
async def test_a_malformed_body_without_a_key_is_401(
    limited: Database, method: str, path: str, body: bytes
) -> None:
    async with make_client(make_app(limited, API_KEYS)) as client:
        r = await client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_a_malformed_write_with_a_read_only_key_is_403(limited: Database) -> None:
    async with make_client(make_app(limited, API_KEYS)) as client:
        r = await client.post(
            "/v1/collections/docs/upsert", content=b"{not json", headers={"authorization": "Bearer ro"}
        )
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"


async def test_a_large_body_without_a_key_is_refused_unread(limited: Database) -> None:
    """A streamed (chunked) 63 MB body without a key: 401 before the server pulls a single chunk."""
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(63):
            pulled += 1
            yield b" " * (1 << 20)

    async with make_client(make_app(limited, API_KEYS)) as client:
        r = await client.post("/v1/collections/docs/search", content=body())
    assert r.status_code == 401, r.text
    assert pulled <= 1  # httpx may prime the stream; the server reads nothing


async def test_with_a_key_the_body_is_still_read_and_checked(limited: Database) -> None:
    async with make_client(make_app(limited, API_KEYS)) as client:
        r = await client.post(
            "/v1/collections/docs/search", content=b"{not json", headers={"authorization": "Bearer ro"}
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_argument"
        r = await client.post(
            "/v1/collections/docs/search",
            json={"vectors": queries(1), "k": 2},
            headers={"authorization": "Bearer ro"},
        )
        assert r.status_code == 200, r.text


# ---- models named in requests: an allow-list, no server path probed or echoed ----------------------------


@pytest.fixture
def not_a_model(tmp_path: Path) -> Path:
    folder = tmp_path / "secret-folder"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def rest_refused(r: httpx.Response, model: str) -> None:
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "model_unavailable"
    assert error["details"] == {"model": model}
    assert str(Path.home()) not in r.text or str(Path.home()) in model


@pytest.mark.parametrize("kind", ["home", "folder", "absolute-root", "hub-name"])
async def test_requests_cannot_name_arbitrary_models(
    limited: Database, limited_grpc: GrpcServer, not_a_model: Path, kind: str
) -> None:
    model = {"home": "~", "folder": str(not_a_model), "absolute-root": "/", "hub-name": "org/some-model"}[
        kind
    ]
    async with make_client(make_app(limited, API_KEYS)) as client:
        ro = {"authorization": "Bearer ro"}
        rest_refused(await client.post("/v1/embed", json={"texts": ["x"], "model": model}, headers=ro), model)
        adm = {"authorization": "Bearer adm"}
        body = {"name": f"m-{kind}", "embedding": {"model": model}}
        rest_refused(await client.post("/v1/collections", json=body, headers=adm), model)
    for call in (
        lambda: limited_grpc.stub.Embed(pb.EmbedRequest(texts=["x"], model=model), timeout=10),
        lambda: limited_grpc.stub.CreateCollection(
            pb.CreateCollectionRequest(name=f"g-{kind}", embedding_json=json.dumps({"model": model})),
            timeout=10,
        ),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
        assert dict(caught.value.trailing_metadata())["vecdb-error-code"] == "model_unavailable"  # type: ignore[attr-defined]
    assert limited.embedders._models == {}  # nothing probed into the cache
    assert f"m-{kind}" not in limited.list_collections() and f"g-{kind}" not in limited.list_collections()


def test_allowed_models_setting_lets_a_configured_folder_through(tmp_path: Path, not_a_model: Path) -> None:
    settings = Settings(
        storage=StorageSettings(sync_writes=False),
        embedding={"allowed_models": f"{not_a_model}, other-model"},  # type: ignore[arg-type]
    )
    assert settings.embedding.allowed_models == [str(not_a_model), "other-model"]
    with Database(tmp_path / "data", settings=settings) as db:
        for model in (str(not_a_model), "other-model", "all-MiniLM-L6-v2", settings.embedding.default_model):
            db.check_model_allowed(model)
        with pytest.raises(ModelUnavailableError):
            db.check_model_allowed(str(tmp_path))


def test_an_unavailable_model_is_not_echoed_as_a_server_path() -> None:
    """The error names the model as given, never the path it resolved to."""
    from vecdb.embed import resolve_model

    with pytest.raises(ModelUnavailableError) as caught:
        resolve_model("~/no-such-model-folder", allow_download=False)
    assert str(Path.home()) not in str(caught.value)


# ---- API key roles fail closed ---------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["KEY:reed", "KEY:READ", "KEY:", "KEY:read ", "a:b", ":read", ""])
def test_an_unknown_role_is_an_error_never_an_admin_key(entry: str) -> None:
    with pytest.raises(InvalidConfigError):
        Authenticator([entry])
    with pytest.raises(ValidationError):
        Settings(api_keys=[entry])


@pytest.mark.parametrize(
    ("entry", "role"), [("k", "admin"), ("k:admin", "admin"), ("k:read", "read"), ("a:b:read", "read")]
)
def test_known_roles_parse(entry: str, role: str) -> None:
    auth = Authenticator([entry])
    token = entry.rpartition(":")[0] if entry.endswith((":read", ":admin")) else entry
    auth.check(f"Bearer {token}", "search")
    if role == "read":
        with pytest.raises(PermissionDeniedError):
            auth.check(f"Bearer {token}", "upsert")
    else:
        auth.check(f"Bearer {token}", "upsert")


async def test_openapi_documents_the_engines_limits(limited: Database) -> None:
    async with make_client(make_app(limited)) as client:
        schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    k = schemas["SearchBody"]["properties"]["k"]
    assert (k["minimum"], k["maximum"]) == (1, LIMITS.max_k)
    assert str(LIMITS.max_hits) in k["description"]
    dim = next(
        a for a in schemas["CreateCollectionBody"]["properties"]["dim"]["anyOf"] if a["type"] != "null"
    )
    assert dim["maximum"] == LIMITS.max_dim
    assert schemas["UpsertBody"]["properties"]["ids"]["maxItems"] == LIMITS.max_batch
    assert schemas["CreateCollectionBody"]["properties"]["name"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"


def test_grpc_max_streams_must_leave_threads_for_unary_calls() -> None:
    assert Settings(grpc_workers=4).grpc_max_streams is None  # half of the workers
    assert Settings(grpc_workers=4, grpc_max_streams=3).grpc_max_streams == 3
    with pytest.raises(ValidationError, match="grpc_max_streams"):
        Settings(grpc_workers=4, grpc_max_streams=4)
