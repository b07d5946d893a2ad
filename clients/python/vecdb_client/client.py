"""The synchronous client: ``Client`` (collections, embedding) and ``Collection`` (records).

The method names and arguments are the embedded engine's (``vecdb.Database`` / ``vecdb.Collection``),
so code moves between embedded and remote use unchanged. Every call has a timeout; idempotent calls
(reads, upserts) are retried with backoff when the server is unavailable (connection refused or reset,
HTTP 503, gRPC UNAVAILABLE). Errors are ``vecdb_client.errors`` classes, the same whichever transport.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Protocol

import grpc
import httpx
import numpy as np

from vecdb_client import _grpc, _rest
from vecdb_client._calls import Call
from vecdb_client._generated import vecdb_pb2_grpc as pb_grpc
from vecdb_client._transport import NO_DELAY, Endpoint, PemSource, TlsFiles, backoff_delay
from vecdb_client.errors import ClosedError, DeadlineExceededError, UnavailableError, VecDBError
from vecdb_client.types import CollectionInfo, Hit, Metric, Record, SearchMode, SnapshotInfo, SourceInfo

__all__ = ["Client", "Collection"]


class _Transport(Protocol):
    def send(self, call: Call) -> Any: ...
    def close(self) -> None: ...


class _Rest:
    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.http = httpx.Client(
            base_url=endpoint.rest_url,
            headers={**endpoint.headers, "content-type": "application/json"},
            timeout=timeout,
            # TCP_NODELAY: httpcore writes the headers and the body apart, and Nagle's algorithm held the
            # body back until the headers were acknowledged (measured: 2-8 ms a small call on loopback).
            transport=httpx.HTTPTransport(
                verify=True if endpoint.tls is None else endpoint.tls.ssl_context, socket_options=NO_DELAY
            ),
        )
        self.url = endpoint.rest_url  # named in connection errors

    def send(self, call: Call) -> Any:
        req = _rest.encode(call)
        try:
            resp = self.http.request(req.method, req.path, content=req.content, params=req.params)
        except httpx.ConnectTimeout as exc:
            raise UnavailableError(f"could not connect to {self.url}: {exc}", url=self.url) from exc
        except httpx.TimeoutException as exc:
            raise DeadlineExceededError(
                f"no reply from {self.url} within the timeout: {exc}", url=self.url
            ) from exc
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"cannot reach {self.url} ({type(exc).__name__}: {exc})", url=self.url
            ) from exc
        body = _json(resp)
        if resp.status_code >= 400:
            raise _rest.error_from_response(resp.status_code, body, resp.text)
        return _rest.decode(call, body)

    def close(self) -> None:
        self.http.close()


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        if resp.status_code < 400:
            raise VecDBError(f"the server sent a reply that is not JSON: {resp.text[:200]}") from None
        return None


class _Grpc:
    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        assert endpoint.grpc_target is not None
        options = _grpc.CHANNEL_OPTIONS
        if endpoint.grpc_tls:
            creds = (
                grpc.ssl_channel_credentials() if endpoint.tls is None else endpoint.tls.grpc_credentials()
            )
            self.channel = grpc.secure_channel(endpoint.grpc_target, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(endpoint.grpc_target, options=options)
        self.stub = pb_grpc.VecDBStub(self.channel)  # type: ignore[no-untyped-call]
        self.metadata = tuple(endpoint.headers.items())
        self.timeout = timeout

    def send(self, call: Call) -> Any:
        name, req = _grpc.encode(call)
        try:
            resp = getattr(self.stub, name)(req, timeout=self.timeout, metadata=self.metadata)
            if call.op in _grpc.STREAMING:
                resp = list(resp)
        except grpc.RpcError as exc:
            raise _grpc.error_from_rpc(exc.code(), exc.details(), exc.trailing_metadata()) from None
        return _grpc.decode(call, resp)

    def close(self) -> None:
        self.channel.close()


class Client:
    """A connection to a vecdb server, over REST (default) or gRPC (``prefer_grpc=True``, or a
    ``grpc_url``).

    ``url`` is the REST base URL; ``grpc_url`` the gRPC target (``host:port``, ``grpcs://host:port`` for
    TLS; giving it means gRPC unless ``prefer_grpc=False``, which is then an error), by default ``url``'s
    host on port 50051 (over TLS when ``url`` is ``https://``). ``api_key`` is
    sent as ``authorization: Bearer`` on every call. ``ca_cert`` is the CA (bundle) that signed the
    server's certificate, when it is not one the system trusts; ``client_cert`` and ``client_key`` are the
    client's certificate and key for a server that requires them (mutual TLS). Each is a PEM file's path or
    its contents as bytes; they need a TLS connection (``https://`` url, or ``grpcs://`` grpc_url), and a
    file that cannot be read is a ``ValueError`` here, not at the first call. ``timeout`` (seconds) bounds
    every call; ``retries`` is how many times an idempotent call is sent again after ``UnavailableError``,
    waiting ``backoff`` seconds, doubling, with jitter.
    Use it as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        grpc_url: str | None = None,
        prefer_grpc: bool | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.1,
        *,
        ca_cert: PemSource | None = None,
        client_cert: PemSource | None = None,
        client_key: PemSource | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        tls = TlsFiles.load(ca_cert, client_cert, client_key)
        self.endpoint = Endpoint.resolve(url, grpc_url, prefer_grpc, api_key, tls)
        self.transport_name = "grpc" if self.endpoint.grpc_target else "rest"
        self._transport: _Transport = (
            _Grpc(self.endpoint, timeout) if self.endpoint.grpc_target else _Rest(self.endpoint, timeout)
        )
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._closed = False

    def _send(self, call: Call) -> Any:
        if self._closed:
            raise ClosedError("the client is closed")
        attempt = 0
        while True:
            try:
                return self._transport.send(call)
            except UnavailableError:
                if not call.idempotent or attempt >= self.retries:
                    raise
            time.sleep(backoff_delay(attempt, self.backoff))
            attempt += 1

    # ---- lifecycle ----

    def close(self) -> None:
        """Close the connections. Idempotent."""
        if not self._closed:
            self._closed = True
            self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- collections ----

    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: Metric = "cosine",
        index: Mapping[str, Any] | None = None,
        embedding: Mapping[str, Any] | None = None,
        max_records: int | None = None,
        eviction: Literal["fifo", "lru"] | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        text_index: Mapping[str, Any] | None = None,
    ) -> Collection:
        """Create an empty collection and return its handle.

        ``index`` is an index spec (``{"type": "hnsw"}``...; default auto); ``embedding={"model": NAME}``
        (``{}``: the server's default model) lets records and queries be texts alone, and ``dim`` may then
        be omitted. ``max_records`` caps the live records: a write that overflows evicts the oldest
        (``eviction="fifo"``, the default) or least recently used (``"lru"``: searches count as use) in the
        same atomic batch. ``shards`` / ``replicas`` spread it over Ray actors (a server started with
        ``--ray-address``; others answer InvalidConfigError). ``text_index`` adds a full-text index (see
        ``Collection.set_text_index``) for ``search(mode="text" | "hybrid")`` and ``text_filter``.
        Raises CollectionExistsError, InvalidNameError, InvalidConfigError.
        """
        self._send(
            Call.create_collection(
                name,
                dim,
                metric,
                index,
                embedding,
                max_records,
                eviction,
                shards=shards,
                replicas=replicas,
                text_index=text_index,
            )
        )
        return Collection(self, name)

    def get_or_create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: Metric | None = None,
        index: Mapping[str, Any] | None = None,
        embedding: Mapping[str, Any] | None = None,
        max_records: int | None = None,
        eviction: Literal["fifo", "lru"] | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        text_index: Mapping[str, Any] | None = None,
    ) -> Collection:
        """The collection ``name`` when it exists and has every setting given here (one left out
        matches anything; ``embedding={}`` names the server's default model), else a new one as
        ``create_collection`` makes it (``metric`` None: cosine): safe to run again. Raises
        CollectionExistsError naming the differences (``details["differences"]``) when it exists with
        other settings, and what ``create_collection`` raises."""
        call = Call.create_collection(
            name,
            dim,
            metric,
            index,
            embedding,
            max_records,
            eviction,
            shards,
            replicas,
            text_index=text_index,
            get_or_create=True,
        )
        self._send(call)
        return Collection(self, name)

    def get_collection(self, name: str) -> Collection:
        """The handle of an existing collection. Raises CollectionNotFoundError."""
        self._send(Call.named("get_collection", name))
        return Collection(self, name)

    def collection(self, name: str) -> Collection:
        """A handle without a round trip: a missing collection shows at the first call."""
        return Collection(self, name)

    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""
        return self._send(Call("list_collections", {}))  # type: ignore[no-any-return]

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all its data. Raises CollectionNotFoundError."""
        self._send(Call.named("drop_collection", name))

    # ---- snapshots ----

    def create_snapshot(self, collection: str, name: str | None = None) -> SnapshotInfo:
        """An online, consistent copy of ``collection`` in the server's data directory (``name``: default
        the UTC time). Raises CollectionNotFoundError, SnapshotExistsError."""
        return self._send(Call.snapshot("create_snapshot", collection, name))  # type: ignore[no-any-return]

    def list_snapshots(self, collection: str) -> list[SnapshotInfo]:
        """``collection``'s snapshots, oldest first (also after the collection was dropped)."""
        return self._send(Call.snapshot("list_snapshots", collection, None))  # type: ignore[no-any-return]

    def delete_snapshot(self, collection: str, name: str) -> None:
        """Raises SnapshotNotFoundError."""
        self._send(Call.snapshot("delete_snapshot", collection, name))

    def restore_snapshot(self, collection: str, name: str, target: str | None = None) -> Collection:
        """A new collection ``target`` (default: ``collection``, which must not exist) holding what the
        snapshot holds. Raises SnapshotNotFoundError, CollectionExistsError."""
        info = self._send(Call.snapshot("restore_snapshot", collection, name, target or collection))
        return Collection(self, info.name)

    def embed(
        self, texts: Sequence[str] | str, model: str | None = None, collection: str | None = None
    ) -> tuple[np.ndarray, str]:
        """Vectors for ``texts`` ((n, dim) float32) and the model that made them: ``collection``'s model,
        else ``model``, else the server's default model."""
        return self._send(Call.embed(texts, model, collection))  # type: ignore[no-any-return]


class Collection:
    """A collection on the server. Cheap to make; holds no state but its name and client."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, {self.client.transport_name})"

    def info(self) -> CollectionInfo:
        """Configuration and state (dim, metric, index, count, sources, seq...)."""
        return self.client._send(Call.named("get_collection", self.name))  # type: ignore[no-any-return]

    def set_text_index(self, spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Add a full-text index (built from the stored texts), replace it, or (``None``) drop it; returns
        the new index's description (the spec and ``{"documents": n}``), None when dropped.

        ``spec``: ``{"tokenizer": "standard" | "jieba" | "whitespace", "stemming": bool, "stopwords":
        "english" | None, "k1": float, "b": float}`` (``{}``: the defaults). Raises InvalidConfigError.
        """
        return self.client._send(Call.set_text_index(self.name, spec))  # type: ignore[no-any-return]

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any = None,
        texts: Sequence[str | None] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        sources: Sequence[str | None] | None = None,
        *,
        ttl: float | None = None,
        expires_at: float | Sequence[float | None] | None = None,
    ) -> int:
        """Insert or replace records by id, atomically (all or nothing); returns how many.

        ``vectors``: an (n, dim) array or list of lists; None (or None rows) where the text is to be
        embedded by the collection's model. ``texts``, ``metadatas`` (JSON objects) and ``sources`` are
        columns, one item (or None) per id. ``ttl`` (seconds, every record) or ``expires_at`` (unix seconds,
        one or one per record) make records expire: never returned or counted from then on. Acknowledged
        means durable.
        """
        call = Call.upsert(self.name, ids, vectors, texts, metadatas, sources, ttl, expires_at)
        return self.client._send(call)  # type: ignore[no-any-return]

    def replace_source(
        self,
        source: str,
        ids: Sequence[str],
        vectors: Any = None,
        texts: Sequence[str | None] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> int:
        """Replace every record of ``source`` with the given ones, atomically: a reader sees all old or
        all new records. Ids that lived in another source move here; no ids deletes the source. Returns
        how many were written."""
        call = Call.replace_source(self.name, source, ids, vectors, texts, metadatas)
        return self.client._send(call)  # type: ignore[no-any-return]

    def update(
        self,
        ids: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        texts: Sequence[str | None] | None = None,
        sources: Sequence[str | None] | None = None,
    ) -> int:
        """Change existing records' metadata, text or source without sending vectors; returns how many
        were updated. Per record, None keeps a field. Metadata merges: the given keys replace the stored
        ones, a key given as None is removed, the others stay. A new text is embedded again in a
        collection with an embedding model (its vector changes); otherwise vectors stay as stored. One
        atomic write; NotFoundError (``details["missing"]``) when an id does not exist, nothing written."""
        call = Call.update(self.name, ids, metadatas, texts, sources)
        return self.client._send(call)  # type: ignore[no-any-return]

    def get(self, ids: Sequence[str], include: Sequence[str] | None = None) -> list[Record]:
        """The records that exist among ``ids``, in request order; missing ids are skipped.

        ``include``: any of text, metadata, source, vector (default: all but vector).
        """
        return self.client._send(Call.get(self.name, ids, include))  # type: ignore[no-any-return]

    def delete(
        self,
        ids: Sequence[str] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        source: str | None = None,
        text_filter: Mapping[str, Any] | None = None,
    ) -> int:
        """Delete by ids, by metadata filter, or every record of a source (exactly one); returns how many.

        ``text_filter`` (full-text filter, e.g. ``{"$contains": "draft"}``; needs a full-text index) selects
        records alone or together with ``filter`` (records matching both).
        """
        return self.client._send(Call.delete(self.name, ids, filter, source, text_filter))  # type: ignore[no-any-return]

    def search(
        self,
        vectors: Any = None,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        include: Sequence[str] | None = None,
        params: Mapping[str, float] | None = None,
        texts: Sequence[str] | str | None = None,
        score_threshold: float | None = None,
        *,
        mode: SearchMode = "vector",
        text_filter: Mapping[str, Any] | None = None,
        fusion: Mapping[str, Any] | None = None,
    ) -> list[list[Hit]]:
        """Top-k hits per query, best first; one list per query vector (a 1-d vector is one query).

        Give ``texts`` instead of ``vectors`` on a collection with an embedding model. ``filter`` is the
        server's filter language (``{"lang": "en", "year": {"$gte": 2020}}``); ``params`` overrides
        ``ef_search`` / ``nprobe`` for this call. ``score_threshold`` keeps hits scoring at least that
        (cosine, ip) or at most that (l2 distance). Fewer than k hits come back when fewer records match.

        ``mode``: ``"vector"`` (default), ``"text"`` (BM25 over the full-text index; ``texts`` only, no model
        needed) or ``"hybrid"`` (both branches fused; ``texts``, and ``vectors`` for the vector branch when
        the collection has no model). ``fusion`` (hybrid only): ``{"method": "rrf" | "weighted", "k": ...,
        "alpha": ..., "candidates": ...}``. ``text_filter``: ``{"$contains": "..."}``, ``{"$not_contains":
        "..."}``, ``$and`` / ``$or`` of them; applies to every branch, with ``filter``. ``include`` may add
        ``"explain"``: each hit's ``explain`` then holds each branch's rank and score.
        """
        call = Call.search(
            self.name,
            vectors,
            texts,
            k,
            filter,
            include,
            params,
            score_threshold,
            mode=mode,
            text_filter=text_filter,
            fusion=fusion,
        )
        return self.client._send(call)  # type: ignore[no-any-return]

    def count(
        self, filter: Mapping[str, Any] | None = None, *, text_filter: Mapping[str, Any] | None = None
    ) -> int:
        """How many records (matching ``filter`` and ``text_filter``, when given)."""
        return self.client._send(Call.count(self.name, filter, text_filter))  # type: ignore[no-any-return]

    def list_sources(self) -> list[SourceInfo]:
        """Every source with its live record count."""
        return self.client._send(Call.named("list_sources", self.name))  # type: ignore[no-any-return]

    def scroll(
        self,
        cursor: str | None = None,
        limit: int = 1000,
        filter: Mapping[str, Any] | None = None,
        include: Sequence[str] | None = None,
        *,
        text_filter: Mapping[str, Any] | None = None,
    ) -> tuple[list[Record], str | None]:
        """One page of records in id order after ``cursor`` (None: the first page), and the next page's
        cursor (None after the last). Records written or deleted meanwhile may or may not appear; none
        appears twice; every record that exists for the whole scroll appears. A filtered page may be short
        (even empty) with a cursor to go on from. ``text_filter``: a full-text filter, as in ``search``."""
        call = Call.scroll(self.name, cursor, limit, filter, include, text_filter)
        return self.client._send(call)  # type: ignore[no-any-return]

    def iter_records(
        self,
        limit: int = 1000,
        filter: Mapping[str, Any] | None = None,
        include: Sequence[str] | None = None,
        *,
        text_filter: Mapping[str, Any] | None = None,
    ) -> Iterator[Record]:
        """Every record (matching ``filter`` and ``text_filter``), page by page (``limit`` a page), as
        ``scroll`` reads them."""
        cursor: str | None = None
        while True:
            records, cursor = self.scroll(cursor, limit, filter, include, text_filter=text_filter)
            yield from records
            if cursor is None:
                return
