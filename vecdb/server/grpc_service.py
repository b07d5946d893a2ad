"""gRPC service vecdb.v1.VecDB: thin adapters, decode -> engine -> encode, on a thread pool.

Every method goes through ``_call``: authentication, metrics, and the one mapping from ``VecDBError`` to
a status code (the class's ``grpc_code``), with ``vecdb-error-code`` / ``vecdb-error-details`` trailing
metadata so clients rebuild the same exception class. Anything else is INTERNAL (and logged).
Requests reach the servicer as bytes and are decoded here (``_handlers``), so that bytes that are not a
request message are vecdb's INVALID_ARGUMENT like any other bad input (grpcio would answer INTERNAL, and
a client stream that failed to decode in grpcio kept the server from ever finishing ``stop``).
The standard health service and server reflection are registered next to it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc._cython import cygrpc  # type: ignore[attr-defined]
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vecdb.engine import DatabaseAPI
from vecdb.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidFilterError,
    LimitExceededError,
    VecDBError,
)
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc
from vecdb.server.auth import Authenticator
from vecdb.server.metrics import Metrics

__all__ = ["SERVICE_NAME", "VecDBServicer", "create_grpc_server"]

log = logging.getLogger("vecdb.server.grpc")
T = TypeVar("T")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["VecDB"].full_name


# gRPC metadata (trailers, status message) must stay well under the 8 KiB header limit, and trailer
# values must be ASCII.
MAX_MESSAGE_CHARS = 1000
MAX_DETAILS_CHARS = 2000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + "... (truncated)"


def _status_message(message: str) -> str:
    """The message clipped and UTF-8-encodable: errors may quote a lone surrogate from the request (JSON
    escapes allow them), and grpcio would replace a message it cannot encode with its own."""
    return _clip(message, MAX_MESSAGE_CHARS).encode("utf-8", "backslashreplace").decode("utf-8")


def _details_text(details: dict[str, Any]) -> str:
    text = json.dumps(details, ensure_ascii=True, default=str)
    if len(text) > MAX_DETAILS_CHARS:
        clipped = {k: _clip(str(v), 200) if isinstance(v, str) else v for k, v in details.items()}
        text = json.dumps(clipped, ensure_ascii=True, default=str)
    return text if len(text) <= MAX_DETAILS_CHARS else '{"truncated": true}'


class VecDBServicer(pb_grpc.VecDBServicer):
    def __init__(self, db: DatabaseAPI, authenticator: Authenticator, metrics: Metrics) -> None:
        self._db = db
        self._auth = authenticator
        self._metrics = metrics

    def _call(self, context: grpc.ServicerContext, op: str, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        code = "ok"
        try:
            if self._auth.enabled:
                auth = dict(context.invocation_metadata()).get("authorization")
                self._auth.check(auth if isinstance(auth, str) else None, op)
            return fn()
        except VecDBError as exc:
            code = exc.code
            if exc.http_status >= 500:
                log.error("grpc %s: %s", op, exc.message)
            context.set_trailing_metadata(
                (("vecdb-error-code", exc.code), ("vecdb-error-details", _details_text(exc.details)))
            )
            context.abort(grpc.StatusCode[exc.grpc_code], _status_message(exc.message))
        except Exception as exc:
            code = "internal"
            log.exception("grpc %s failed", op)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
        finally:
            elapsed = time.perf_counter() - start
            self._metrics.observe("grpc", op, code, elapsed)
            log.debug("grpc %s %s %.2f ms", op, code, elapsed * 1000)
        raise AssertionError("unreachable: context.abort raises")

    # ---- collections ----

    def CreateCollection(self, request: pb.CreateCollectionRequest, context: Any) -> pb.CollectionInfo:
        def run() -> pb.CollectionInfo:
            index = convert.json_or_none(request.index_json, "index_json", InvalidConfigError)
            embedding = convert.json_or_none(request.embedding_json, "embedding_json", InvalidConfigError)
            if isinstance(embedding, dict):  # over the wire, only the models the server offers
                self._db.check_model_allowed(embedding.get("model"))
            db = self._db
            create = db.get_or_create_collection if request.get_or_create else db.create_collection
            col = create(
                request.name,
                request.dim or None,
                request.metric or (None if request.get_or_create else "cosine"),  # type: ignore[arg-type]
                index,
                embedding,
                request.max_records if request.HasField("max_records") else None,
                request.eviction or None,  # type: ignore[arg-type]
                shards=request.shards if request.HasField("shards") else None,
                replicas=request.replicas if request.HasField("replicas") else None,
                text_index=convert.json_or_none(
                    request.text_index_json, "text_index_json", InvalidConfigError
                ),
            )
            return convert.to_proto_collection_info(col.info())

        return self._call(context, "create_collection", run)

    def ListCollections(self, request: pb.ListCollectionsRequest, context: Any) -> pb.ListCollectionsResponse:
        return self._call(
            context, "list_collections", lambda: pb.ListCollectionsResponse(names=self._db.list_collections())
        )

    def GetCollection(self, request: pb.CollectionRequest, context: Any) -> pb.CollectionInfo:
        return self._call(
            context,
            "get_collection",
            lambda: convert.to_proto_collection_info(self._db.get_collection(request.name).info()),
        )

    def DropCollection(self, request: pb.CollectionRequest, context: Any) -> pb.DropCollectionResponse:
        def run() -> pb.DropCollectionResponse:
            self._db.drop_collection(request.name)
            return pb.DropCollectionResponse()

        return self._call(context, "drop_collection", run)

    # ---- records ----

    def _upsert(self, request: pb.UpsertRequest, collection: str) -> int:
        ids, texts, metas, sources = convert.from_proto_records(request.records)
        vectors = convert.from_proto_upsert_vectors(request)
        ttl = request.ttl if request.HasField("ttl") else None
        expires = convert.from_proto_expiry(request.records)
        col = self._db.get_collection(collection)
        return col.upsert(ids, vectors, texts, metas, sources, ttl=ttl, expires_at=expires)

    def Upsert(self, request: pb.UpsertRequest, context: Any) -> pb.WriteResponse:
        return self._call(
            context, "upsert", lambda: pb.WriteResponse(count=self._upsert(request, request.collection))
        )

    def UpsertStream(self, request_iterator: Iterator[pb.UpsertRequest], context: Any) -> pb.WriteResponse:
        def run() -> pb.WriteResponse:
            total = 0
            collection = ""
            for i, request in enumerate(request_iterator):
                if request.collection and collection and request.collection != collection:
                    raise InvalidArgumentError(
                        f"stream message {i} names collection {request.collection!r}, the stream is for "
                        f"{collection!r}"
                    )
                collection = request.collection or collection
                if not collection:
                    raise InvalidArgumentError("the first stream message must name the collection")
                total += self._upsert(request, collection)
            return pb.WriteResponse(count=total)

        return self._call(context, "upsert", run)

    def Get(self, request: pb.GetRequest, context: Any) -> pb.GetResponse:
        def run() -> pb.GetResponse:
            include = convert.from_proto_include(request.include, request.HasField("include"))
            records = self._db.get_collection(request.collection).get(list(request.ids), include=include)
            return pb.GetResponse(records=[convert.to_proto_record(r) for r in records])

        return self._call(context, "get", run)

    def Delete(self, request: pb.DeleteRequest, context: Any) -> pb.WriteResponse:
        def run() -> pb.WriteResponse:
            col = self._db.get_collection(request.collection)
            which = request.WhichOneof("selector")
            text_filter = _text_filter(request)
            if which == "ids":
                n = col.delete(list(request.ids.ids), text_filter=text_filter)
            elif which == "filter_json":
                n = col.delete(
                    filter=convert.json_or_none(request.filter_json, "filter_json", InvalidFilterError) or {},
                    text_filter=text_filter,
                )
            elif which == "source":
                n = col.delete(source=request.source, text_filter=text_filter)
            elif text_filter is not None:
                n = col.delete(text_filter=text_filter)
            else:
                raise InvalidArgumentError(
                    "delete takes exactly one of ids, filter_json, source (or text_filter_json)"
                )
            return pb.WriteResponse(count=n)

        return self._call(context, "delete", run)

    def ReplaceSource(self, request: pb.ReplaceSourceRequest, context: Any) -> pb.WriteResponse:
        def run() -> pb.WriteResponse:
            ids, texts, metas, _ = convert.from_proto_records(request.records)
            vectors = convert.from_proto_upsert_vectors(request)  # type: ignore[arg-type]
            col = self._db.get_collection(request.collection)
            return pb.WriteResponse(count=col.replace_source(request.source, ids, vectors, texts, metas))

        return self._call(context, "replace_source", run)

    def Update(self, request: pb.UpdateRequest, context: Any) -> pb.WriteResponse:
        def run() -> pb.WriteResponse:
            ids, metas, texts, sources = convert.from_proto_patches(request.records)
            col = self._db.get_collection(request.collection)
            return pb.WriteResponse(count=col.update(ids, metas, texts, sources))

        return self._call(context, "update", run)

    def Search(self, request: pb.SearchRequest, context: Any) -> pb.SearchResponse:
        def run() -> pb.SearchResponse:
            texts = list(request.texts) or None
            # Both given: the engine rejects it (exactly one of vectors and texts), as over REST.
            queries = None
            if request.HasField("queries") or texts is None:
                queries = convert.from_proto_vectors(request.queries, "queries")
            results = self._db.get_collection(request.collection).search(
                queries,
                texts=texts,
                k=request.k if request.HasField("k") else 10,
                filter=convert.json_or_none(request.filter_json, "filter_json", InvalidFilterError),
                include=convert.from_proto_include(request.include, request.HasField("include")),
                params=convert.from_proto_params(request.params),
                score_threshold=request.score_threshold if request.HasField("score_threshold") else None,
                mode=request.mode or "vector",
                text_filter=_text_filter(request),
                fusion=convert.json_or_none(request.fusion_json, "fusion_json"),
            )
            response = pb.SearchResponse()
            for hits in results:
                out = response.results.add().hits
                for h in hits:
                    convert.to_proto_hit(h, out.add())
            return response

        return self._call(context, "search", run)

    def Count(self, request: pb.CountRequest, context: Any) -> pb.CountResponse:
        def run() -> pb.CountResponse:
            flt = convert.json_or_none(request.filter_json, "filter_json", InvalidFilterError)
            col = self._db.get_collection(request.collection)
            return pb.CountResponse(count=col.count(filter=flt, text_filter=_text_filter(request)))

        return self._call(context, "count", run)

    def ListSources(self, request: pb.CollectionRequest, context: Any) -> pb.ListSourcesResponse:
        def run() -> pb.ListSourcesResponse:
            infos = self._db.get_collection(request.name).list_sources()
            return pb.ListSourcesResponse(sources=[convert.to_proto_source(s) for s in infos])

        return self._call(context, "list_sources", run)

    def Embed(self, request: pb.EmbedRequest, context: Any) -> pb.EmbedResponse:
        def run() -> pb.EmbedResponse:
            vectors, name = self._db.embed(list(request.texts), request.model, request.collection)
            return pb.EmbedResponse(vectors=convert.to_proto_vectors(vectors), model=name)

        return self._call(context, "embed", run)

    # ---- scroll and snapshots ----

    def Scroll(self, request: pb.ScrollRequest, context: Any) -> Iterator[pb.ScrollPage]:
        """Pages from the engine's scroll, one message each; each page is read (and authorized) in
        ``_call``, nothing is held between pages, and a cancelled call stops the loop."""
        include = convert.from_proto_include(request.include, request.HasField("include"))
        cursor = request.cursor if request.HasField("cursor") else None
        limit = request.limit if request.HasField("limit") else 1000
        pages = 0
        while True:

            def page(cursor: str | None = cursor) -> pb.ScrollPage:
                flt = convert.json_or_none(request.filter_json, "filter_json", InvalidFilterError)
                col = self._db.get_collection(request.collection)
                records, nxt = col.scroll(cursor, limit, flt, include, text_filter=_text_filter(request))
                msg = pb.ScrollPage(records=[convert.to_proto_record(r) for r in records])
                if nxt is not None:
                    msg.next_cursor = nxt
                return msg

            msg = self._call(context, "scroll", page)
            yield msg
            pages += 1
            if not msg.HasField("next_cursor") or (request.max_pages and pages >= request.max_pages):
                return
            if not context.is_active():
                return
            cursor = msg.next_cursor

    def CreateSnapshot(self, request: pb.SnapshotRequest, context: Any) -> pb.SnapshotInfo:
        return self._call(
            context,
            "create_snapshot",
            lambda: convert.to_proto_snapshot(
                self._db.create_snapshot(request.collection, request.name or None)
            ),
        )

    def ListSnapshots(self, request: pb.CollectionRequest, context: Any) -> pb.ListSnapshotsResponse:
        return self._call(
            context,
            "list_snapshots",
            lambda: pb.ListSnapshotsResponse(
                snapshots=[convert.to_proto_snapshot(s) for s in self._db.list_snapshots(request.name)]
            ),
        )

    def DeleteSnapshot(self, request: pb.SnapshotRequest, context: Any) -> pb.DeleteSnapshotResponse:
        def run() -> pb.DeleteSnapshotResponse:
            self._db.delete_snapshot(request.collection, request.name)
            return pb.DeleteSnapshotResponse()

        return self._call(context, "delete_snapshot", run)

    def SetTextIndex(self, request: pb.SetTextIndexRequest, context: Any) -> pb.SetTextIndexResponse:
        def run() -> pb.SetTextIndexResponse:
            spec = convert.json_or_none(request.text_index_json, "text_index_json", InvalidConfigError)
            col = self._db.get_collection(request.collection)
            return convert.to_proto_text_index(col.set_text_index(spec))

        return self._call(context, "set_text_index", run)

    def RestoreSnapshot(self, request: pb.RestoreSnapshotRequest, context: Any) -> pb.CollectionInfo:
        return self._call(
            context,
            "restore_snapshot",
            lambda: convert.to_proto_collection_info(
                self._db.restore_snapshot(request.collection, request.name, request.target or None).info()
            ),
        )


def _text_filter(request: Any) -> Any:
    """A request's ``text_filter_json`` (None when empty)."""
    return convert.json_or_none(request.text_filter_json, "text_filter_json", InvalidFilterError)


def _op(method: str) -> str:
    """The operation (auth, metrics) of an RPC: CreateCollection -> create_collection."""
    return "upsert" if method == "UpsertStream" else re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower()


def _decode(cls: type[Message], raw: bytes, what: str) -> Any:
    try:
        return cls.FromString(raw)
    except DecodeError as exc:
        raise InvalidArgumentError(
            f"{what} is not a valid {cls.DESCRIPTOR.full_name} message: {exc}", message_type=cls.__name__
        ) from exc


def _enter(guard: StreamGuard, servicer: VecDBServicer, context: Any, op: str) -> int:
    token = guard.enter(context)
    if token is None:
        servicer._call(
            context,
            op,
            partial(
                _raise,
                LimitExceededError(
                    f"{guard.max_streams} streaming calls are open already (grpc_max_streams): retry later",
                    limit=guard.max_streams,
                ),
            ),
        )
        raise AssertionError("unreachable: _call aborts")
    return token


def _handlers(servicer: VecDBServicer, guard: StreamGuard) -> grpc.GenericRpcHandler[Any, Any]:
    """Handlers for every method of vecdb.v1.VecDB that take the request as bytes and decode it under
    ``servicer._call`` (auth first, then INVALID_ARGUMENT for bytes that do not decode); streaming ones
    under ``guard``."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in pb.DESCRIPTOR.services_by_name["VecDB"].methods:
        request_cls: type[Message] = getattr(pb, method.input_type.name)
        serialize = getattr(pb, method.output_type.name).SerializeToString
        impl = getattr(servicer, method.name)
        op = _op(method.name)
        if method.server_streaming:

            def streaming(
                raw: bytes, context: Any, impl: Any = impl, cls: Any = request_cls, op: str = op
            ) -> Any:
                try:
                    request = _decode(cls, raw, "the request")
                except InvalidArgumentError as exc:
                    servicer._call(context, op, partial(_raise, exc))
                token = _enter(guard, servicer, context, op)
                try:
                    for message in impl(request, context):
                        yield message
                        guard.touch(token)  # the client read the last one (flow control)
                finally:
                    guard.leave(token)

            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                streaming, response_serializer=serialize
            )
        elif method.client_streaming:

            def stream(
                raws: Iterator[bytes], context: Any, impl: Any = impl, cls: Any = request_cls, op: str = op
            ) -> Any:
                token = _enter(guard, servicer, context, op)

                def decoded() -> Iterator[Message]:
                    try:
                        for i, raw in enumerate(raws):
                            guard.touch(token)
                            yield _decode(cls, raw, f"stream message {i}")
                    except grpc.RpcError:  # the call was cancelled: by the watchdog, or the client
                        if guard.expired(token):
                            raise DeadlineExceededError(guard.idle_message) from None
                        raise

                try:
                    return impl(decoded(), context)
                finally:
                    guard.leave(token)

            handlers[method.name] = grpc.stream_unary_rpc_method_handler(
                stream, response_serializer=serialize
            )
        else:

            def unary(
                raw: bytes, context: Any, impl: Any = impl, cls: Any = request_cls, op: str = op
            ) -> Any:
                try:
                    request = _decode(cls, raw, "the request")
                except InvalidArgumentError as exc:
                    return servicer._call(context, op, partial(_raise, exc))
                return impl(request, context)

            handlers[method.name] = grpc.unary_unary_rpc_method_handler(unary, response_serializer=serialize)
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _raise(exc: Exception) -> Any:
    raise exc


class StreamGuard:
    """Bounds on streaming calls, which hold a pool thread for as long as the client keeps them open.

    At most ``max_streams`` run at once (fewer than the pool's threads, so unary calls and the health
    check always find one): one more is RESOURCE_EXHAUSTED at once. A stream with no message for
    ``idle_seconds`` (a client that stops sending, or stops reading a Scroll) is cancelled with
    DEADLINE_EXCEEDED by a watchdog thread, which frees its thread.
    """

    def __init__(self, max_streams: int, idle_seconds: float) -> None:
        self.max_streams = max_streams
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._active: dict[int, tuple[float, Any]] = {}  # id -> (deadline, context)
        self._next_id = 0
        self._watchdog: threading.Thread | None = None
        self._stopped = threading.Event()

    def enter(self, context: Any) -> int | None:
        """A token for a new stream, or None when ``max_streams`` are open already."""
        with self._lock:
            if len(self._active) >= self.max_streams:
                return None
            self._next_id += 1
            self._active[self._next_id] = (time.monotonic() + self.idle_seconds, context)
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, daemon=True, name="vecdb-grpc-idle")
                self._watchdog.start()
            return self._next_id

    @property
    def idle_message(self) -> str:
        return f"stream idle for more than {self.idle_seconds:g} s (grpc_stream_idle_seconds)"

    def expired(self, token: int) -> bool:
        """Whether the watchdog cancelled this stream (before ``leave``)."""
        with self._lock:
            return token not in self._active

    def touch(self, token: int) -> None:
        with self._lock:
            entry = self._active.get(token)
            if entry is not None:
                self._active[token] = (time.monotonic() + self.idle_seconds, entry[1])

    def leave(self, token: int) -> None:
        with self._lock:
            self._active.pop(token, None)

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        period = min(1.0, max(0.05, self.idle_seconds / 4))
        while not self._stopped.wait(period):
            now = time.monotonic()
            with self._lock:
                idle = [(t, ctx) for t, (deadline, ctx) in self._active.items() if deadline <= now]
                for token, _ in idle:
                    del self._active[token]
            for _, context in idle:
                log.warning("gRPC stream idle for %.1f s: cancelled", self.idle_seconds)
                _cancel(
                    context, f"stream idle for more than {self.idle_seconds:g} s (grpc_stream_idle_seconds)"
                )


def _cancel(context: Any, details: str) -> None:
    """End a call from another thread with DEADLINE_EXCEEDED: grpcio's public ``cancel`` can only say
    CANCELLED, its core call takes a status (a blocked read in the handler then raises and returns)."""
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    try:
        call.cancel(cygrpc.StatusCode.deadline_exceeded, details)  # type: ignore[union-attr]
    except Exception:  # grpcio internals moved: the public way (status CANCELLED)
        context.cancel()


def create_grpc_server(
    db: DatabaseAPI,
    *,
    authenticator: Authenticator,
    metrics: Metrics,
    address: str,
    workers: int,
    max_message_bytes: int,
    credentials: grpc.ServerCredentials | None = None,
    max_concurrent_rpcs: int | None = None,
    max_streams: int | None = None,
    stream_idle_seconds: float = 30.0,
    connection_idle_seconds: float = 300.0,
    keepalive_seconds: float = 60.0,
    handshake_seconds: float = 10.0,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """A started-ready (not yet started) gRPC server bound to ``address`` (over TLS with ``credentials``);
    returns it, its port, and the health servicer (NOT_SERVING until the caller marks it SERVING).

    ``max_concurrent_rpcs`` (default 4 x workers): calls running or queued for a thread; one more is
    RESOURCE_EXHAUSTED at once. ``max_streams`` (default half the workers, always fewer than them):
    streaming calls at once. See ``StreamGuard`` and docs/server.md."""
    if max_streams is None:
        max_streams = workers // 2
    if max_streams >= workers:
        raise InvalidConfigError(
            f"grpc_max_streams ({max_streams}) must be below grpc_workers ({workers}): streams hold their "
            "thread, and unary calls and the health check need one",
            field="grpc_max_streams",
        )
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecdb-grpc"),
        maximum_concurrent_rpcs=max_concurrent_rpcs if max_concurrent_rpcs is not None else 4 * workers,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # grpcio binds with SO_REUSEPORT by default: a second server on the same port would silently
            # share connections with this one (and serve another data directory).
            ("grpc.so_reuseport", 0),
            # A connection without calls is closed after this long; dead peers are found by pings; a
            # connection that never completes its (TLS and HTTP/2) handshake is dropped.
            ("grpc.max_connection_idle_ms", int(connection_idle_seconds * 1000)),
            ("grpc.keepalive_time_ms", int(keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.server_handshake_timeout_ms", int(handshake_seconds * 1000)),
        ],
    )
    guard = StreamGuard(max_streams, stream_idle_seconds)
    server.add_generic_rpc_handlers((_handlers(VecDBServicer(db, authenticator, metrics), guard),))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen for gRPC on {address}: {exc}") from exc
    return server, port, health_servicer
