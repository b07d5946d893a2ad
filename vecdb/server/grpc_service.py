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
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vecdb.engine import DatabaseAPI
from vecdb.errors import InvalidArgumentError, InvalidConfigError, InvalidFilterError, VecDBError
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
            col = self._db.create_collection(
                request.name,
                request.dim or None,
                request.metric or "cosine",  # type: ignore[arg-type]
                index,
                embedding,
                request.max_records if request.HasField("max_records") else None,
                request.eviction or None,  # type: ignore[arg-type]
                shards=request.shards if request.HasField("shards") else None,
                replicas=request.replicas if request.HasField("replicas") else None,
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
            if which == "ids":
                n = col.delete(list(request.ids.ids))
            elif which == "filter_json":
                n = col.delete(
                    filter=convert.json_or_none(request.filter_json, "filter_json", InvalidFilterError) or {}
                )
            elif which == "source":
                n = col.delete(source=request.source)
            else:
                raise InvalidArgumentError("delete takes exactly one of ids, filter_json, source")
            return pb.WriteResponse(count=n)

        return self._call(context, "delete", run)

    def ReplaceSource(self, request: pb.ReplaceSourceRequest, context: Any) -> pb.WriteResponse:
        def run() -> pb.WriteResponse:
            ids, texts, metas, _ = convert.from_proto_records(request.records)
            vectors = convert.from_proto_upsert_vectors(request)  # type: ignore[arg-type]
            col = self._db.get_collection(request.collection)
            return pb.WriteResponse(count=col.replace_source(request.source, ids, vectors, texts, metas))

        return self._call(context, "replace_source", run)

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
            )
            return pb.SearchResponse(
                results=[pb.QueryResult(hits=[convert.to_proto_hit(h) for h in hits]) for hits in results]
            )

        return self._call(context, "search", run)

    def Count(self, request: pb.CountRequest, context: Any) -> pb.CountResponse:
        def run() -> pb.CountResponse:
            flt = convert.json_or_none(request.filter_json, "filter_json", InvalidFilterError)
            return pb.CountResponse(count=self._db.get_collection(request.collection).count(filter=flt))

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
                records, nxt = col.scroll(cursor, limit, flt, include)
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

    def RestoreSnapshot(self, request: pb.RestoreSnapshotRequest, context: Any) -> pb.CollectionInfo:
        return self._call(
            context,
            "restore_snapshot",
            lambda: convert.to_proto_collection_info(
                self._db.restore_snapshot(request.collection, request.name, request.target or None).info()
            ),
        )


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


def _handlers(servicer: VecDBServicer) -> grpc.GenericRpcHandler[Any, Any]:
    """Handlers for every method of vecdb.v1.VecDB that take the request as bytes and decode it under
    ``servicer._call`` (auth first, then INVALID_ARGUMENT for bytes that do not decode)."""
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
                return impl(request, context)

            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                streaming, response_serializer=serialize
            )
        elif method.client_streaming:

            def stream(raws: Iterator[bytes], context: Any, impl: Any = impl, cls: Any = request_cls) -> Any:
                decoded = (_decode(cls, raw, f"stream message {i}") for i, raw in enumerate(raws))
                return impl(decoded, context)

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


def create_grpc_server(
    db: DatabaseAPI,
    *,
    authenticator: Authenticator,
    metrics: Metrics,
    address: str,
    workers: int,
    max_message_bytes: int,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """A started-ready (not yet started) gRPC server bound to ``address`` (over TLS with ``credentials``);
    returns it, its port, and the health servicer (NOT_SERVING until the caller marks it SERVING)."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vecdb-grpc"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # grpcio binds with SO_REUSEPORT by default: a second server on the same port would silently
            # share connections with this one (and serve another data directory).
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers((_handlers(VecDBServicer(db, authenticator, metrics)),))
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
