"""REST under /v1 (FastAPI): thin adapters, decode -> engine -> encode.

Routes run as sync functions on Starlette's thread pool (the engine blocks; FAISS releases the GIL).
Errors: every ``VecDBError`` becomes ``{"error": {"code", "message", "details"}}`` with its class's HTTP
status; request validation errors are 400 ``invalid_argument``; unknown routes 404 ``not_found``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vecdb import __version__
from vecdb.config import Limits
from vecdb.engine import DatabaseAPI
from vecdb.errors import (
    AuthenticationError,
    InvalidFilterError,
    LimitExceededError,
    VecDBError,
)
from vecdb.operations import OPERATIONS
from vecdb.server import convert
from vecdb.server.auth import WRITE_OPERATIONS, Authenticator
from vecdb.server.console import add_console
from vecdb.server.docs_ui import install_docs
from vecdb.server.metrics import Metrics
from vecdb.types import DEFAULT_INCLUDE

__all__ = ["ORJSONResponse", "create_app"]

log = logging.getLogger("vecdb.server.rest")
T = TypeVar("T")


class ORJSONResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:
            # A lone surrogate (JSON allows "\ud800"; UTF-8 cannot carry it) echoed back in an error
            # message: the standard library writes it as an escape, which is still valid JSON.
            return json.dumps(content, ensure_ascii=True, default=_plain).encode()


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if tolist is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return tolist()


# ---- request and response models (they are the OpenAPI schema) -----------------------------------------

# Strict: JSON true is not 1 and "2" is not 2 (the engine rejects booleans as k or dim on purpose).
_STRICT = ConfigDict(extra="forbid", strict=True)


class CreateCollectionBody(BaseModel):
    model_config = _STRICT
    name: str = Field(description="1-64 letters, digits, '_' or '-'.")
    dim: int | None = Field(None, description="Vector dimension (omit it with an embedding model).")
    metric: str | None = Field(None, description="cosine (default), ip or l2.")
    index: dict[str, Any] | None = Field(None, description='Index spec, e.g. {"type": "hnsw"}; default auto.')
    embedding: dict[str, Any] | None = Field(
        None,
        description='{"model": NAME} ({} for the default model): records and queries may be texts alone.',
    )
    max_records: int | None = Field(None, description="Capacity: a write that overflows evicts old records.")
    eviction: str | None = Field(None, description="fifo (default with max_records) or lru.")
    shards: int | None = Field(
        None, description="Spread the collection over this many Ray actors (needs vecdb serve --ray-address)."
    )
    replicas: int | None = Field(None, description="Copies of each shard (needs vecdb serve --ray-address).")
    text_index: dict[str, Any] | None = Field(
        None,
        description='Full-text index spec, e.g. {"tokenizer": "jieba"} ({} for the defaults); default none.',
    )
    get_or_create: bool = Field(
        False,
        description="Answer with the existing collection when it has every setting given here (409 naming "
        "the differences otherwise) instead of 409 collection_exists.",
    )


class CollectionInfo(BaseModel):
    name: str
    dim: int
    metric: str
    index: dict[str, Any]
    count: int
    sources: int
    index_state: dict[str, Any]
    seq: int
    checkpoint_seq: int
    embedding: dict[str, Any] | None = None
    capacity: dict[str, Any] | None = None
    text_index: dict[str, Any] | None = None


class CollectionList(BaseModel):
    collections: list[str]


class PackedVectors(BaseModel):
    """Vectors in binary form, gRPC's ``Vectors`` as JSON: no float text to write or parse."""

    model_config = _STRICT
    dim: int = Field(description="Values per vector.")
    data: str = Field(
        description="base64 of the vectors' little-endian float32 values, row after row (n x dim x 4 bytes).",
        json_schema_extra={"contentEncoding": "base64"},
    )


class UpsertBody(BaseModel):
    model_config = _STRICT
    ids: list[str]
    vectors: list[list[float] | None] | PackedVectors | None = Field(
        None,
        description="One per record, null (or omitted) where the text is to be embedded; or every record's "
        "vector packed as base64 float32 (cheaper to send and to parse than JSON numbers; the Python "
        "client sends this form when every record has a vector).",
    )
    # Items are checked by the engine, so that a bad one gets the same error code on every transport.
    texts: list[Any] | None = Field(None, description="Strings or nulls, one per record.")
    metadatas: list[Any] | None = Field(None, description="JSON objects or nulls, one per record.")
    sources: list[Any] | None = Field(None, description="Strings or nulls, one per record.")
    ttl: float | None = Field(None, description="Seconds from now after which every record expires.")
    expires_at: float | list[float | None] | None = Field(
        None, description="Unix time of expiry: one for all records, or one (or null) per record."
    )


class CountResult(BaseModel):
    count: int


class GetBody(BaseModel):
    model_config = _STRICT
    ids: list[str]
    include: list[str] | None = Field(None, description="Of text, metadata, source, vector.")


class RecordOut(BaseModel):
    id: str
    text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None
    vector: list[float] | None = None


class GetResult(BaseModel):
    records: list[RecordOut]


class DeleteBody(BaseModel):
    model_config = _STRICT
    ids: list[str] | None = None
    filter: dict[str, Any] | None = None
    source: str | None = None
    text_filter: dict[str, Any] | None = Field(
        None, description='Full-text filter, e.g. {"$contains": "faiss"}; alone or with filter.'
    )


class SearchBody(BaseModel):
    model_config = _STRICT
    vectors: list[list[float]] | list[float] | PackedVectors | None = Field(
        None,
        description="A batch of query vectors, or one vector; or the queries packed as base64 float32 (the "
        "Python client sends this form).",
    )
    texts: list[str] | str | None = Field(None, description="Query texts instead of vectors (with a model).")
    k: int = 10
    filter: dict[str, Any] | None = None
    include: list[str] | None = None
    params: dict[str, int | float] | None = Field(None, description="ef_search, nprobe, target_recall.")
    score_threshold: float | None = Field(
        None, description="Only hits scoring at least this (cosine, ip), or at most this (l2 distance)."
    )
    mode: str = Field("vector", description="vector, text (BM25 over the full-text index) or hybrid.")
    text_filter: dict[str, Any] | None = Field(
        None, description='Full-text filter, e.g. {"$contains": "faiss"} or {"$not_contains": "draft"}.'
    )
    fusion: dict[str, Any] | None = Field(
        None, description='Hybrid only: {"method": "rrf" (default) | "weighted", "k", "alpha", "candidates"}.'
    )


class HitOut(RecordOut):
    score: float
    explain: dict[str, dict[str, int | float]] | None = Field(
        None,
        description='Only with "explain" in include: each branch\'s {"rank", "score"} behind the score '
        '({"vector": ..., "text": ...}; a branch is absent when the hit was not among its candidates).',
    )

    @model_serializer(mode="wrap")
    def _explain_only_when_asked(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # absent, not null, without "explain": a search's reply keeps the shape it had before explain
        out: dict[str, Any] = handler(self)
        if out.get("explain") is None:
            out.pop("explain", None)
        return out


class SearchResult(BaseModel):
    results: list[list[HitOut]]


class EmbedBody(BaseModel):
    model_config = _STRICT
    texts: list[str] | str
    model: str | None = Field(None, description="Default: the collection's model, else the server default.")
    collection: str | None = Field(None, description="Use this collection's model.")


class EmbedResult(BaseModel):
    model: str
    dim: int
    vectors: list[list[float]]


class ReplaceSourceBody(BaseModel):
    model_config = _STRICT
    ids: list[str]
    vectors: list[list[float] | None] | None = Field(
        None, description="One per record; null (or omitted) where the text is to be embedded."
    )
    texts: list[Any] | None = Field(None, description="Strings or nulls, one per record.")
    metadatas: list[Any] | None = Field(None, description="JSON objects or nulls, one per record.")


class UpdateBody(BaseModel):
    model_config = _STRICT
    ids: list[str]
    metadatas: list[Any] | None = Field(
        None,
        description="Per record, an object merged into the stored metadata (a key set to null is removed), "
        "or null to leave it.",
    )
    texts: list[Any] | None = Field(None, description="Per record, the new text, or null to leave it.")
    sources: list[Any] | None = Field(None, description="Per record, the new source, or null to leave it.")


class SourceOut(BaseModel):
    source: str
    count: int


class SourceList(BaseModel):
    sources: list[SourceOut]


class ScrollBody(BaseModel):
    model_config = _STRICT
    cursor: str | None = Field(None, description="The next_cursor of the previous page; null for the first.")
    limit: int = Field(1000, description="Records per page.")
    filter: dict[str, Any] | None = None
    include: list[str] | None = Field(None, description="Of text, metadata, source, vector.")
    text_filter: dict[str, Any] | None = Field(None, description='Full-text filter, e.g. {"$contains": "x"}.')


class ScrollResult(BaseModel):
    records: list[RecordOut]
    next_cursor: str | None = Field(description="null after the last page.")


class TextIndexOut(BaseModel):
    text_index: dict[str, Any] | None = Field(description="The spec and its documents count; null: none.")


class SnapshotBody(BaseModel):
    model_config = _STRICT
    name: str | None = Field(None, description="Default: the current UTC time.")


class SnapshotOut(BaseModel):
    collection: str
    name: str
    created_at: str
    seq: int
    records: int
    dim: int
    metric: str
    bytes: int


class SnapshotList(BaseModel):
    snapshots: list[SnapshotOut]


class RestoreBody(BaseModel):
    model_config = _STRICT
    target: str | None = Field(None, description="The new collection's name; default: the snapshot's.")


class WhoAmI(BaseModel):
    auth: bool = Field(description="Whether the server checks API keys (false: it is open).")
    role: str = Field(description="admin or read (admin on an open server).")
    writes: bool = Field(description="Whether this key may call the operations that write.")
    write_operations: list[str] = Field(description="The operations a read-only key may not call.")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorBody


class _Request(Request):
    """Request bodies parsed by ``convert.parse_json_body``: the standard library's values and errors,
    through orjson when that gives the same (profiled: ``json.loads`` was two thirds of a REST upsert)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = convert.parse_json_body(await self.body())
        return self._json


class _Route(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(_Request(request.scope, request.receive))

        return route_handler


def _vectors(value: Any, what: str) -> Any:
    """A body's ``vectors`` for the engine: packed ones as an (n, dim) array, JSON lists as they came."""
    return (
        convert.from_base64_vectors(value.dim, value.data, what)
        if isinstance(value, PackedVectors)
        else value
    )


def _hit_dict(hit: Any) -> dict[str, Any]:
    """A hit as FastAPI's ``response_model=SearchResult`` would write it (``HitOut``'s fields, in its order,
    unset ones null), built directly: the search route answers itself rather than have every hit
    validated against the model and serialized twice."""
    d = hit.to_dict()
    out = {name: d.get(name) for name in HitOut.model_fields}
    if out["explain"] is None:  # absent, not null, without "explain" (HitOut's serializer does the same)
        del out["explain"]
    return out


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return ORJSONResponse(body, status_code=status)


class BodyLimit:
    """Reject request bodies over ``max_bytes`` with 413.

    A declared Content-Length is checked at once; a chunked body is read up to the limit first (so the
    413 is ours, not a parse error of a cut body), then replayed to the application.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._reject(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            LimitExceededError.code,
            f"request body exceeds {self.max_bytes} bytes",
            {"limit": self.max_bytes},
        )
        await response(scope, receive, send)


@dataclasses.dataclass(frozen=True)
class RequiresKey:
    """A route's operation, for ``KeyCheck`` (a no-op as a dependency: the key was checked already).

    Async, so that FastAPI awaits it on the event loop: a sync dependency is run on the thread pool, one
    more thread handoff per request (profiled: as costly as the route's own).
    """

    operation: str

    async def __call__(self) -> None:
        return None


#: The operation of ``GET /metrics`` for the key check: any valid key (read-only included) may scrape.
METRICS_OPERATION = "metrics"
#: The operation of ``GET /whoami`` for the key check: any valid key may ask what it may do.
WHOAMI_OPERATION = "whoami"


class KeyCheck:
    """Check the API key from the request line and headers, before anything reads the body.

    FastAPI parses (and validates) a body before route dependencies run, so a key check there lets an
    anonymous client make the server read, buffer and parse up to ``max_request_bytes``, and answers a
    malformed body with 400 instead of 401. Here the route (hence the operation) is found from the
    method and path alone; a refused request's body is never read. Paths of no operation (``/healthz``,
    ``/readyz``, ``/docs``, ``/openapi.json``, the console's pages, unknown paths) pass; ``/metrics`` and
    ``/whoami`` need a key of any role.
    """

    def __init__(self, app: ASGIApp, authenticator: Authenticator, metrics: Metrics, routes: Any) -> None:
        self.app = app
        self.authenticator = authenticator
        self.metrics = metrics
        self._routes = routes  # the router's list: read at the first request, when every route exists
        self._table: list[tuple[APIRoute, str]] | None = None

    def _operation(self, scope: Scope) -> str | None:
        if self._table is None:
            self._table = [
                (route, dep.dependency.operation)
                for route in self._routes
                if isinstance(route, APIRoute)
                for dep in route.dependencies
                if isinstance(dep.dependency, RequiresKey)
            ]
        if scope.get("path") == "/metrics":
            return METRICS_OPERATION
        if scope.get("path") == "/whoami":
            return WHOAMI_OPERATION
        for route, operation in self._table:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return operation
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.authenticator.enabled:
            await self.app(scope, receive, send)
            return
        operation = self._operation(scope)
        if operation is not None:
            headers = dict(scope.get("headers") or [])
            authorization = headers.get(b"authorization")
            try:
                self.authenticator.check(
                    None if authorization is None else authorization.decode("latin-1"), operation
                )
            except VecDBError as exc:
                self.metrics.observe("rest", operation, exc.code, 0.0)
                response = error_response(exc.http_status, exc.code, exc.message, exc.details)
                if isinstance(exc, AuthenticationError):
                    response.headers["WWW-Authenticate"] = "Bearer"
                # Connection: close, since the body (if any) stays unread.
                response.headers["Connection"] = "close"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _json_query(text: str | None, what: str) -> Any:
    """A JSON filter sent as a query parameter (count is a GET); absent or empty means none."""
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidFilterError(f"{what} is not valid JSON: {exc}") from exc


def _allowed_methods(request: Request) -> list[str]:
    """The methods of every route whose path matches the request's."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def _document_limits(schemas: dict[str, Any], limits: Limits) -> None:
    """The engine's constraints in the schema (this server's limits). Only documented: the engine checks
    them, so that a violation has the same error code (413 ``limit_exceeded``, ``invalid_name``...) over
    REST and gRPC rather than pydantic's 400."""
    constraints: dict[tuple[str, str], dict[str, Any]] = {
        ("CreateCollectionBody", "name"): {"pattern": "^[A-Za-z0-9_-]{1,64}$"},
        ("CreateCollectionBody", "dim"): {"minimum": 1, "maximum": limits.max_dim},
        ("CreateCollectionBody", "max_records"): {"minimum": 1},
        ("UpsertBody", "ids"): {"minItems": 1, "maxItems": limits.max_batch},
        ("GetBody", "ids"): {"minItems": 1, "maxItems": limits.max_batch},
        ("ReplaceSourceBody", "ids"): {"maxItems": limits.max_batch},
        ("SearchBody", "k"): {"minimum": 1, "maximum": limits.max_k},
        ("ScrollBody", "limit"): {"minimum": 1, "maximum": limits.max_batch},
    }
    for (model, field), extra in constraints.items():
        prop = schemas.get(model, {}).get("properties", {}).get(field)
        if prop is None:
            continue
        target = next((alt for alt in prop.get("anyOf", ()) if alt.get("type") != "null"), prop)
        target.update(extra)
    search = schemas.get("SearchBody", {}).get("properties", {})
    if "k" in search:
        search["k"]["description"] = (
            f"Hits per query, 1 to {limits.max_k}; queries x k at most {limits.max_hits} (limits.max_hits)."
        )


def create_app(
    db: DatabaseAPI, *, authenticator: Authenticator, metrics: Metrics, max_request_bytes: int
) -> FastAPI:
    """The REST application over an open Database. ``app.state.ready`` drives /readyz."""
    app = FastAPI(
        title="vecdb",
        version=__version__,
        description="Vector database: collections of records (id, vector, text, metadata, source).",
        default_response_class=ORJSONResponse,
        docs_url=None,  # /docs and /redoc come from vecdb.server.docs_ui: local assets, no CDN
        redoc_url=None,
        responses={
            400: {"model": ErrorResponse},
            401: {"model": ErrorResponse},
            403: {"model": ErrorResponse},
            404: {"model": ErrorResponse},
            409: {"model": ErrorResponse},
            413: {"model": ErrorResponse},
        },
    )
    app.router.route_class = _Route
    app.state.ready = False
    install_docs(app)
    app.add_middleware(BodyLimit, max_bytes=max_request_bytes)
    # Added last, so it runs first: the key is checked before BodyLimit or FastAPI read the body.
    app.add_middleware(KeyCheck, authenticator=authenticator, metrics=metrics, routes=app.router.routes)

    @app.exception_handler(VecDBError)
    async def _vecdb_error(request: Request, exc: VecDBError) -> Response:
        if exc.http_status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
        response = error_response(exc.http_status, exc.code, exc.message, exc.details)
        if isinstance(exc, AuthenticationError):
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        message = f"{'.'.join(first['loc'])}: {first['msg']}" if first["loc"] else str(first["msg"])
        _count_rejected(request)
        return error_response(400, "invalid_argument", message, {"errors": errors})

    route_ops: dict[tuple[str, str], str] = {
        (r.method, r.path): op.name for op in OPERATIONS for r in op.routes
    }

    def _count_rejected(request: Request) -> None:
        """A 400 from request validation counts in vecdb_requests_total like the engine's own 400s."""
        route = request.scope.get("route")
        op = route_ops.get((request.method, getattr(route, "path", "")))
        if op is not None:
            metrics.reject("rest", op, "invalid_argument")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # 400 here is a body FastAPI could not parse (not JSON, not UTF-8, nested too deep)
        code = {400: "invalid_argument", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        if exc.status_code == 400:
            _count_rejected(request)
        response = error_response(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # Starlette's Allow names the methods of the first route matching the path only; a path
            # served by several routes (GET and DELETE /v1/collections/{name}) allows all of theirs.
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "internal", f"internal error: {type(exc).__name__}")

    def authorized(op: str) -> Any:
        """The route's operation: ``KeyCheck`` checks the key for it before the body is read."""
        return Depends(RequiresKey(op))

    def call(request: Request, op: str, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        code = "ok"
        try:
            return fn()
        except VecDBError as exc:
            code = exc.code
            raise
        except Exception:
            code = "internal"
            raise
        finally:
            elapsed = time.perf_counter() - start
            metrics.observe("rest", op, code, elapsed)
            log.debug("rest %s %s %.2f ms", op, code, elapsed * 1000)

    # ---- health (no key needed) and metrics (a key of any role, when keys are configured) ----

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        # On the event loop, not the thread pool: a write burst that fills the pool must not stall it.
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"model": dict[str, Any]}})
    def readyz() -> Response:
        if not app.state.ready:
            return ORJSONResponse({"status": "loading"}, status_code=503)
        damaged = db.damaged()
        if damaged:  # names stay out of this unauthenticated answer: /metrics and vecdb check name them
            return ORJSONResponse(
                {"status": "degraded", "damaged_collections": len(damaged)}, status_code=503
            )
        return ORJSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/whoami", tags=["ops"], response_model=WhoAmI)
    def whoami(request: Request) -> Any:
        """What the request's API key may do (the console hides the writes a read-only key cannot make)."""
        role = authenticator.role(request.headers.get("authorization"))
        return {
            "auth": authenticator.enabled,
            "role": role,
            "writes": role == "admin",
            "write_operations": sorted(WRITE_OPERATIONS),
        }

    add_console(app)

    # ---- collections ----

    @app.post(
        "/v1/collections",
        status_code=201,
        response_model=CollectionInfo,
        tags=["collections"],
        dependencies=[authorized("create_collection")],
    )
    def create_collection(body: CreateCollectionBody, request: Request) -> Any:
        def run() -> Any:
            if body.embedding is not None:  # over the wire, only the models the server offers
                db.check_model_allowed(body.embedding.get("model"))
            if body.get_or_create:
                return db.get_or_create_collection(
                    body.name,
                    body.dim,
                    body.metric,  # type: ignore[arg-type]
                    body.index,
                    body.embedding,
                    body.max_records,
                    body.eviction,  # type: ignore[arg-type]
                    shards=body.shards,
                    replicas=body.replicas,
                    text_index=body.text_index,
                ).info()
            return db.create_collection(
                body.name,
                body.dim,
                body.metric or "cosine",  # type: ignore[arg-type]
                body.index,
                body.embedding,
                body.max_records,
                body.eviction,  # type: ignore[arg-type]
                shards=body.shards,
                replicas=body.replicas,
                text_index=body.text_index,
            ).info()

        return call(request, "create_collection", run)

    @app.get(
        "/v1/collections",
        response_model=CollectionList,
        tags=["collections"],
        dependencies=[authorized("list_collections")],
    )
    def list_collections(request: Request) -> Any:
        return {"collections": call(request, "list_collections", db.list_collections)}

    @app.get(
        "/v1/collections/{name}",
        response_model=CollectionInfo,
        tags=["collections"],
        dependencies=[authorized("get_collection")],
    )
    def get_collection(name: str, request: Request) -> Any:
        return call(request, "get_collection", lambda: db.get_collection(name).info())

    @app.delete(
        "/v1/collections/{name}",
        response_model=dict[str, str],
        tags=["collections"],
        dependencies=[authorized("drop_collection")],
    )
    def drop_collection(name: str, request: Request) -> Any:
        call(request, "drop_collection", lambda: db.drop_collection(name))
        return {"dropped": name}

    # ---- records ----

    @app.post(
        "/v1/collections/{name}/upsert",
        response_model=CountResult,
        tags=["records"],
        dependencies=[authorized("upsert")],
    )
    def upsert(name: str, body: UpsertBody, request: Request) -> Any:
        def run() -> int:
            col = db.get_collection(name)
            return col.upsert(
                body.ids,
                _vectors(body.vectors, "vectors"),
                body.texts,
                body.metadatas,
                body.sources,
                ttl=body.ttl,
                expires_at=body.expires_at,
            )

        return ORJSONResponse({"count": call(request, "upsert", run)})

    @app.post(
        "/v1/collections/{name}/get",
        response_model=GetResult,
        tags=["records"],
        dependencies=[authorized("get")],
    )
    def get(name: str, body: GetBody, request: Request) -> Any:
        include = DEFAULT_INCLUDE if body.include is None else body.include
        records = call(request, "get", lambda: db.get_collection(name).get(body.ids, include=include))
        return {"records": [r.to_dict() for r in records]}

    @app.post(
        "/v1/collections/{name}/delete",
        response_model=CountResult,
        tags=["records"],
        dependencies=[authorized("delete")],
    )
    def delete(name: str, body: DeleteBody, request: Request) -> Any:
        n = call(
            request,
            "delete",
            lambda: db.get_collection(name).delete(
                body.ids, filter=body.filter, source=body.source, text_filter=body.text_filter
            ),
        )
        return {"count": n}

    @app.post(
        "/v1/collections/{name}/search",
        response_model=SearchResult,
        tags=["records"],
        dependencies=[authorized("search")],
    )
    def search(name: str, body: SearchBody, request: Request) -> Any:
        include = DEFAULT_INCLUDE if body.include is None else body.include

        def run() -> list[list[Any]]:
            col = db.get_collection(name)
            return col.search(
                _vectors(body.vectors, "vectors"),
                k=body.k,
                filter=body.filter,
                include=include,
                params=body.params,
                texts=body.texts,
                score_threshold=body.score_threshold,
                mode=body.mode,
                text_filter=body.text_filter,
                fusion=body.fusion,
            )

        results = call(request, "search", run)
        return ORJSONResponse({"results": [[_hit_dict(h) for h in hits] for hits in results]})

    @app.get(
        "/v1/collections/{name}/count",
        response_model=CountResult,
        tags=["records"],
        dependencies=[authorized("count")],
    )
    def count(name: str, request: Request, filter: str | None = None, text_filter: str | None = None) -> Any:
        def run() -> int:
            col = db.get_collection(name)
            return col.count(
                filter=_json_query(filter, "filter"), text_filter=_json_query(text_filter, "text_filter")
            )

        return {"count": call(request, "count", run)}

    @app.get(
        "/v1/collections/{name}/sources",
        response_model=SourceList,
        tags=["sources"],
        dependencies=[authorized("list_sources")],
    )
    def list_sources(name: str, request: Request) -> Any:
        infos = call(request, "list_sources", lambda: db.get_collection(name).list_sources())
        return {"sources": [{"source": s.source, "count": s.count} for s in infos]}

    @app.delete(
        "/v1/collections/{name}/sources/{source:path}",
        response_model=CountResult,
        tags=["sources"],
        dependencies=[authorized("delete")],
    )
    def delete_source(name: str, source: str, request: Request) -> Any:
        return {"count": call(request, "delete", lambda: db.get_collection(name).delete(source=source))}

    @app.put(
        "/v1/collections/{name}/sources/{source:path}",
        response_model=CountResult,
        tags=["sources"],
        dependencies=[authorized("replace_source")],
    )
    def replace_source(name: str, source: str, body: ReplaceSourceBody, request: Request) -> Any:
        n = call(
            request,
            "replace_source",
            lambda: db.get_collection(name).replace_source(
                source, body.ids, body.vectors, body.texts, body.metadatas
            ),
        )
        return {"count": n}

    @app.put(
        "/v1/collections/{name}/text_index",
        response_model=TextIndexOut,
        tags=["collections"],
        dependencies=[authorized("set_text_index")],
    )
    def set_text_index(
        name: str,
        request: Request,
        body: dict[str, Any] | None = Body(  # noqa: B008 (FastAPI's way to require a nullable body)
            ..., description="The spec ({} for the defaults), or null to drop the index."
        ),
    ) -> Any:
        """Add (built from the stored texts), replace, or (body ``null``) drop the full-text index."""
        spec = call(request, "set_text_index", lambda: db.get_collection(name).set_text_index(body))
        return {"text_index": spec}

    @app.post(
        "/v1/collections/{name}/update",
        response_model=CountResult,
        tags=["records"],
        dependencies=[authorized("update")],
    )
    def update(name: str, body: UpdateBody, request: Request) -> Any:
        """Existing records' metadata (merged), text or source, without their vectors; atomic."""
        n = call(
            request,
            "update",
            lambda: db.get_collection(name).update(body.ids, body.metadatas, body.texts, body.sources),
        )
        return {"count": n}

    # ---- scroll and snapshots ----

    @app.post(
        "/v1/collections/{name}/scroll",
        response_model=ScrollResult,
        tags=["records"],
        dependencies=[authorized("scroll")],
    )
    def scroll(name: str, body: ScrollBody, request: Request) -> Any:
        include = DEFAULT_INCLUDE if body.include is None else body.include
        records, cursor = call(
            request,
            "scroll",
            lambda: db.get_collection(name).scroll(
                body.cursor, body.limit, body.filter, include, text_filter=body.text_filter
            ),
        )
        return {"records": [r.to_dict() for r in records], "next_cursor": cursor}

    @app.post(
        "/v1/collections/{name}/snapshots",
        status_code=201,
        response_model=SnapshotOut,
        tags=["snapshots"],
        dependencies=[authorized("create_snapshot")],
    )
    def create_snapshot(name: str, request: Request, body: SnapshotBody | None = None) -> Any:
        snap = body.name if body is not None else None
        return dataclasses.asdict(call(request, "create_snapshot", lambda: db.create_snapshot(name, snap)))

    @app.get(
        "/v1/collections/{name}/snapshots",
        response_model=SnapshotList,
        tags=["snapshots"],
        dependencies=[authorized("list_snapshots")],
    )
    def list_snapshots(name: str, request: Request) -> Any:
        snaps = call(request, "list_snapshots", lambda: db.list_snapshots(name))
        return {"snapshots": [dataclasses.asdict(s) for s in snaps]}

    @app.delete(
        "/v1/collections/{name}/snapshots/{snapshot}",
        response_model=dict[str, str],
        tags=["snapshots"],
        dependencies=[authorized("delete_snapshot")],
    )
    def delete_snapshot(name: str, snapshot: str, request: Request) -> Any:
        call(request, "delete_snapshot", lambda: db.delete_snapshot(name, snapshot))
        return {"deleted": snapshot}

    @app.post(
        "/v1/collections/{name}/snapshots/{snapshot}/restore",
        status_code=201,
        response_model=CollectionInfo,
        tags=["snapshots"],
        dependencies=[authorized("restore_snapshot")],
    )
    def restore_snapshot(name: str, snapshot: str, request: Request, body: RestoreBody | None = None) -> Any:
        target = body.target if body is not None else None
        return call(request, "restore_snapshot", lambda: db.restore_snapshot(name, snapshot, target).info())

    @app.post("/v1/embed", response_model=EmbedResult, tags=["embedding"], dependencies=[authorized("embed")])
    def embed(body: EmbedBody, request: Request) -> Any:
        def run() -> dict[str, Any]:
            vectors, name = db.embed(body.texts, body.model, body.collection)
            return {"model": name, "dim": int(vectors.shape[1]), "vectors": vectors.tolist()}

        return call(request, "embed", run)

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's schema without the 422 it documents on every route: validation failures are 400
        ``invalid_argument`` here (the RequestValidationError handler), and that is documented already."""
        if app.openapi_schema is None:
            schema = default_openapi()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = schema.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            settings = getattr(db, "settings", None)  # the schema is also built without a database
            _document_limits(schemas, settings.limits if settings is not None else Limits())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
