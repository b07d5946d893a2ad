"""The asynchronous client: ``AsyncClient`` and ``AsyncCollection``, the same methods as ``Client`` and
``Collection`` as coroutines, over ``httpx.AsyncClient`` or ``grpc.aio`` (no threads).

Connections are made on first use, inside the running event loop, and belong to that loop: use one
``AsyncClient`` per event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Protocol

import grpc
import grpc.aio
import httpx
import numpy as np

from vecdb_client import _grpc, _rest
from vecdb_client._calls import Call
from vecdb_client._generated import vecdb_pb2_grpc as pb_grpc
from vecdb_client._transport import NO_DELAY, Endpoint, PemSource, TlsFiles, backoff_delay
from vecdb_client.client import Client, _json
from vecdb_client.errors import (
    ClosedError,
    DeadlineExceededError,
    FailedPreconditionError,
    UnavailableError,
)
from vecdb_client.types import CollectionInfo, Hit, Metric, Record, SearchMode, SnapshotInfo, SourceInfo

__all__ = ["AsyncClient", "AsyncCollection"]


class _AsyncTransport(Protocol):
    async def send(self, call: Call) -> Any: ...
    async def close(self) -> None: ...


class _AsyncRest:
    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.http = httpx.AsyncClient(
            base_url=endpoint.rest_url,
            headers={**endpoint.headers, "content-type": "application/json"},
            timeout=timeout,
            # TCP_NODELAY: httpcore writes the headers and the body apart, and Nagle's algorithm held the
            # body back until the headers were acknowledged (measured: 2-8 ms a small call on loopback).
            transport=httpx.AsyncHTTPTransport(
                verify=True if endpoint.tls is None else endpoint.tls.ssl_context, socket_options=NO_DELAY
            ),
        )
        self.url = endpoint.rest_url  # named in connection errors

    async def send(self, call: Call) -> Any:
        req = _rest.encode(call)
        try:
            resp = await self.http.request(req.method, req.path, content=req.content, params=req.params)
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

    async def close(self) -> None:
        await self.http.aclose()


class _AsyncGrpc:
    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        assert endpoint.grpc_target is not None
        options = _grpc.CHANNEL_OPTIONS
        if endpoint.grpc_tls:
            creds = (
                grpc.ssl_channel_credentials() if endpoint.tls is None else endpoint.tls.grpc_credentials()
            )
            self.channel = grpc.aio.secure_channel(endpoint.grpc_target, creds, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(endpoint.grpc_target, options=options)
        self.stub = pb_grpc.VecDBStub(self.channel)  # type: ignore[no-untyped-call]
        self.metadata = tuple(endpoint.headers.items())
        self.timeout = timeout

    async def send(self, call: Call) -> Any:
        name, req = _grpc.encode(call)
        try:
            if call.op in _grpc.STREAMING:
                resp = [
                    m
                    async for m in getattr(self.stub, name)(req, timeout=self.timeout, metadata=self.metadata)
                ]
            else:
                resp = await getattr(self.stub, name)(req, timeout=self.timeout, metadata=self.metadata)
        except grpc.aio.AioRpcError as exc:
            raise _grpc.error_from_rpc(exc.code(), exc.details(), exc.trailing_metadata()) from None
        return _grpc.decode(call, resp)

    async def close(self) -> None:
        await self.channel.close(None)


class AsyncClient:
    """``Client`` with coroutines: the same arguments (TLS files included), timeouts, retries and errors.

    Use ``async with AsyncClient(...) as client`` or ``await client.close()``.
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
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._transport: _AsyncTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the connections belong to
        self._closed = False

    @classmethod
    def like(cls, client: Client) -> AsyncClient:
        """An AsyncClient with a sync ``Client``'s endpoint, key, TLS files, timeout and retries."""
        ep = client.endpoint
        tls = ep.tls
        grpc_url = (
            None if ep.grpc_target is None else f"{'grpcs' if ep.grpc_tls else 'grpc'}://{ep.grpc_target}"
        )
        return cls(
            ep.rest_url,
            grpc_url=grpc_url,
            prefer_grpc=grpc_url is not None,
            api_key=ep.api_key,
            timeout=client.timeout,
            retries=client.retries,
            backoff=client.backoff,
            ca_cert=None if tls is None else tls.ca_cert,
            client_cert=None if tls is None else tls.client_cert,
            client_key=None if tls is None else tls.client_key,
        )

    async def _send(self, call: Call) -> Any:
        if self._closed:
            raise ClosedError("the client is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise FailedPreconditionError(
                "this AsyncClient's connections belong to the event loop that first used it, and this call "
                "runs in another one (a second asyncio.run(), or another thread's loop): make one "
                "AsyncClient per event loop (AsyncClient.like(client) copies the settings)"
            )
        if self._transport is None:  # made here, so that it binds to the running loop
            self._loop = loop
            self._transport = (
                _AsyncGrpc(self.endpoint, self.timeout)
                if self.endpoint.grpc_target
                else _AsyncRest(self.endpoint, self.timeout)
            )
        attempt = 0
        while True:
            try:
                return await self._transport.send(call)
            except UnavailableError:
                if not call.idempotent or attempt >= self.retries:
                    raise
            await asyncio.sleep(backoff_delay(attempt, self.backoff))
            attempt += 1

    async def close(self) -> None:
        """Close the connections. Idempotent."""
        if not self._closed:
            self._closed = True
            if self._transport is not None:
                await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def create_collection(
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
    ) -> AsyncCollection:
        """See ``Client.create_collection``."""
        await self._send(
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
        return AsyncCollection(self, name)

    async def get_or_create_collection(
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
    ) -> AsyncCollection:
        """See ``Client.get_or_create_collection``."""
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
        await self._send(call)
        return AsyncCollection(self, name)

    async def get_collection(self, name: str) -> AsyncCollection:
        """See ``Client.get_collection``."""
        await self._send(Call.named("get_collection", name))
        return AsyncCollection(self, name)

    def collection(self, name: str) -> AsyncCollection:
        """A handle without a round trip: a missing collection shows at the first call."""
        return AsyncCollection(self, name)

    async def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""
        return await self._send(Call("list_collections", {}))  # type: ignore[no-any-return]

    async def drop_collection(self, name: str) -> None:
        """Delete a collection and all its data. Raises CollectionNotFoundError."""
        await self._send(Call.named("drop_collection", name))

    # ---- snapshots ----

    async def create_snapshot(self, collection: str, name: str | None = None) -> SnapshotInfo:
        """See ``Client.create_snapshot``."""
        return await self._send(Call.snapshot("create_snapshot", collection, name))  # type: ignore[no-any-return]

    async def list_snapshots(self, collection: str) -> list[SnapshotInfo]:
        """See ``Client.list_snapshots``."""
        return await self._send(Call.snapshot("list_snapshots", collection, None))  # type: ignore[no-any-return]

    async def delete_snapshot(self, collection: str, name: str) -> None:
        """See ``Client.delete_snapshot``."""
        await self._send(Call.snapshot("delete_snapshot", collection, name))

    async def restore_snapshot(
        self, collection: str, name: str, target: str | None = None
    ) -> AsyncCollection:
        """See ``Client.restore_snapshot``."""
        info = await self._send(Call.snapshot("restore_snapshot", collection, name, target or collection))
        return AsyncCollection(self, info.name)

    async def embed(
        self, texts: Sequence[str] | str, model: str | None = None, collection: str | None = None
    ) -> tuple[np.ndarray, str]:
        """See ``Client.embed``."""
        return await self._send(Call.embed(texts, model, collection))  # type: ignore[no-any-return]


class AsyncCollection:
    """``Collection`` with coroutines."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"AsyncCollection({self.name!r}, {self.client.transport_name})"

    async def info(self) -> CollectionInfo:
        """See ``Collection.info``."""
        return await self.client._send(Call.named("get_collection", self.name))  # type: ignore[no-any-return]

    async def set_text_index(self, spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """See ``Collection.set_text_index``."""
        return await self.client._send(Call.set_text_index(self.name, spec))  # type: ignore[no-any-return]

    async def upsert(
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
        """See ``Collection.upsert``."""
        call = Call.upsert(self.name, ids, vectors, texts, metadatas, sources, ttl, expires_at)
        return await self.client._send(call)  # type: ignore[no-any-return]

    async def replace_source(
        self,
        source: str,
        ids: Sequence[str],
        vectors: Any = None,
        texts: Sequence[str | None] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> int:
        """See ``Collection.replace_source``."""
        call = Call.replace_source(self.name, source, ids, vectors, texts, metadatas)
        return await self.client._send(call)  # type: ignore[no-any-return]

    async def update(
        self,
        ids: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        texts: Sequence[str | None] | None = None,
        sources: Sequence[str | None] | None = None,
    ) -> int:
        """See ``Collection.update``."""
        call = Call.update(self.name, ids, metadatas, texts, sources)
        return await self.client._send(call)  # type: ignore[no-any-return]

    async def get(self, ids: Sequence[str], include: Sequence[str] | None = None) -> list[Record]:
        """See ``Collection.get``."""
        return await self.client._send(Call.get(self.name, ids, include))  # type: ignore[no-any-return]

    async def delete(
        self,
        ids: Sequence[str] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        source: str | None = None,
        text_filter: Mapping[str, Any] | None = None,
    ) -> int:
        """See ``Collection.delete``."""
        return await self.client._send(Call.delete(self.name, ids, filter, source, text_filter))  # type: ignore[no-any-return]

    async def search(
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
        """See ``Collection.search``."""
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
        return await self.client._send(call)  # type: ignore[no-any-return]

    async def count(
        self, filter: Mapping[str, Any] | None = None, *, text_filter: Mapping[str, Any] | None = None
    ) -> int:
        """See ``Collection.count``."""
        return await self.client._send(Call.count(self.name, filter, text_filter))  # type: ignore[no-any-return]

    async def list_sources(self) -> list[SourceInfo]:
        """See ``Collection.list_sources``."""
        return await self.client._send(Call.named("list_sources", self.name))  # type: ignore[no-any-return]

    async def scroll(
        self,
        cursor: str | None = None,
        limit: int = 1000,
        filter: Mapping[str, Any] | None = None,
        include: Sequence[str] | None = None,
        *,
        text_filter: Mapping[str, Any] | None = None,
    ) -> tuple[list[Record], str | None]:
        """See ``Collection.scroll``."""
        call = Call.scroll(self.name, cursor, limit, filter, include, text_filter)
        return await self.client._send(call)  # type: ignore[no-any-return]

    async def iter_records(
        self,
        limit: int = 1000,
        filter: Mapping[str, Any] | None = None,
        include: Sequence[str] | None = None,
        *,
        text_filter: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Record]:
        """See ``Collection.iter_records``."""
        cursor: str | None = None
        while True:
            records, cursor = await self.scroll(cursor, limit, filter, include, text_filter=text_filter)
            for record in records:
                yield record
            if cursor is None:
                return
