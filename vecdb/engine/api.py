"""The engine's contract: ``CollectionAPI`` and ``DatabaseAPI``.

The embedded engine (``Collection``, ``Database``) implements them, and so does every variant composed
from it (``vecdb.cluster``: ``ShardedCollection``, ``ClusterDatabase``). The REST and gRPC servers type
against these Protocols only, so whatever implements them can be served. A variant is built by
composing the engine, never by inheriting its private state.

Shared rules:

- Every argument is validated before anything is written: a bad item rejects the whole call, and the
  error is a ``VecDBError`` (``vecdb.errors``) whose ``details`` name the offending item.
- On a closed collection or database every method but ``close`` raises ``ClosedError``.
- Orders are part of the contract: ``get`` keeps request order, ``search`` best first (ties by id on
  an exact index), ``scroll`` UTF-8 byte order of ids, ``list_sources`` / ``list_collections`` sorted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from vecdb.config import Settings
from vecdb.engine.capacity import Eviction
from vecdb.engine.validate import check_same_config
from vecdb.errors import CollectionExistsError, CollectionNotFoundError
from vecdb.types import DEFAULT_INCLUDE, Hit, Metric, Record, SnapshotInfo, SourceInfo

__all__ = ["CollectionAPI", "DatabaseAPI", "get_or_create", "scroll_all"]


@runtime_checkable
class CollectionAPI(Protocol):
    """A named set of records with one dimension, metric and index. Thread-safe."""

    #: The collection's name (``NAME_RE``).
    name: str
    #: The vectors' dimension.
    dim: int
    #: ``cosine``, ``ip`` (scores: higher is better) or ``l2`` (squared distance: lower is better).
    metric: Metric
    #: The embedding model that turns texts into vectors, or None (vectors must be sent).
    embedding_model: str | None

    @property
    def seq(self) -> int:
        """The sequence number of the last write (0 for a collection never written)."""
        ...

    # ---- writes ------------------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any = None,
        texts: Sequence[str | None] | None = None,
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        sources: Sequence[str | None] | None = None,
        *,
        ttl: float | None = None,
        expires_at: float | Sequence[float | None] | None = None,
    ) -> int:
        """Insert or replace records by id; returns how many were written (``len(ids)``).

        ``vectors``: an (n, dim) array or list of rows; with an embedding model it may be omitted (or
        hold None) where a text is to be embedded. ``ttl`` (seconds from now) or ``expires_at`` (unix
        seconds, one or one per record) make records expire. Raises InvalidIdError, DuplicateIdError,
        DimensionMismatchError, InvalidVectorError, InvalidMetadataError, InvalidSourceError,
        InvalidArgumentError (``expires_at`` length: ``details`` field, expected, got), LimitExceededError,
        InvalidConfigError (a model whose vectors do not have ``dim``), ClosedError. Idempotent.
        """
        ...

    def update(
        self,
        ids: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        texts: Sequence[str | None] | None = None,
        sources: Sequence[str | None] | None = None,
    ) -> int:
        """Change existing records' metadata, text or source without re-sending vectors; returns how
        many were updated (``len(ids)``). Per record, None keeps a field. Metadata merges (given keys
        replace, a key given as None is removed, others stay). A new text is embedded again in a
        collection with an embedding model (its vector changes); otherwise vectors and expiry stay. One
        atomic write (the cluster: per shard). Raises NotFoundError (``details["missing"]``) when an id
        does not exist (nothing written), InvalidArgumentError (no column given), InvalidIdError,
        DuplicateIdError, InvalidMetadataError, InvalidSourceError, LimitExceededError, ClosedError.
        Idempotent."""
        ...

    def replace_source(
        self,
        source: str,
        ids: Sequence[str],
        vectors: Any = None,
        texts: Sequence[str | None] | None = None,
        metadatas: Sequence[dict[str, Any] | None] | None = None,
    ) -> int:
        """Replace every record of ``source`` with the given ones (which get that source); ``vectors`` may
        be omitted in a collection with an embedding model (as in ``upsert``, and the client). Returns how
        many were written; with no ids, how many were deleted. Raises as ``upsert`` and
        InvalidSourceError."""
        ...

    def delete(
        self,
        ids: Sequence[str] | None = None,
        *,
        filter: Any = None,
        source: str | None = None,
        text_filter: Any = None,
    ) -> int:
        """Delete by ids, by metadata filter and/or text filter (both given: records matching both), or
        by source (exactly one of ids, filters, source; InvalidArgumentError otherwise). Returns how many
        existed and were deleted. Raises InvalidFilterError for an empty filter, InvalidArgumentError for
        a text filter on a collection without a text index."""
        ...

    def set_text_index(self, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        """Add (built from the store), replace, or (``None``) drop the collection's full-text index;
        persisted with the collection. ``spec``: ``TextIndexSpec``'s fields (``{}``: defaults). Returns
        the new ``info()["text_index"]``. Raises InvalidConfigError. Idempotent."""
        ...

    def purge_expired(self) -> int:
        """Delete the records whose time has come; returns how many. Never raises ClosedError."""
        ...

    # ---- reads -------------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], include: Sequence[str] = DEFAULT_INCLUDE) -> list[Record]:
        """The records that exist among ``ids``, in request order, each once; missing ids are skipped.
        ``include`` picks the fields (``INCLUDE_FIELDS``; InvalidArgumentError otherwise)."""
        ...

    def search(
        self,
        vectors: Any = None,
        k: int = 10,
        filter: Any = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
        params: dict[str, Any] | None = None,
        texts: Sequence[str] | str | None = None,
        score_threshold: float | None = None,
        *,
        mode: str = "vector",
        text_filter: Any = None,
        fusion: dict[str, Any] | None = None,
    ) -> list[list[Hit]]:
        """One list of at most ``k`` hits per query, best first; only records matching ``filter`` and
        ``text_filter``; hits beyond ``score_threshold`` dropped.

        ``mode``: ``vector`` (exactly one of ``vectors`` and ``texts``; exact on a flat index), ``text``
        (``texts`` only; BM25 over the full-text index; no embedding model needed) or ``hybrid``
        (``texts``, plus ``vectors`` row for row or the collection's model to embed them; the two branches
        fused by ``fusion``: ``{"method": "rrf" | "weighted", "k", "alpha", "candidates"}``,
        docs/search.md). ``include`` may hold ``"explain"`` (``Hit.explain``). Raises
        InvalidArgumentError (mode, fusion, a text mode without a text index), DimensionMismatchError,
        InvalidFilterError, LimitExceededError (k, queries)."""
        ...

    def scroll(
        self,
        cursor: str | None = None,
        limit: int = 1000,
        filter: Any = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
        *,
        text_filter: Any = None,
    ) -> tuple[list[Record], str | None]:
        """One page of at most ``limit`` records in id order (UTF-8 bytes) after ``cursor``, and the next
        cursor (None once exhausted; a filtered page may be short while the cursor is not None). A
        record existing for the whole scroll appears exactly once. InvalidArgumentError for a cursor
        no page returned."""
        ...

    def iter_records(
        self,
        limit: int = 1000,
        filter: Any = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
        *,
        text_filter: Any = None,
    ) -> Iterator[Record]:
        """Every record (matching ``filter`` and ``text_filter``), in ``scroll`` order, ``limit`` a page."""
        ...

    def count(self, filter: Any = None, *, text_filter: Any = None) -> int:
        """How many live records exist (that match ``filter`` and ``text_filter``)."""
        ...

    def list_sources(self) -> list[SourceInfo]:
        """Every source with its number of live records, sorted by source."""
        ...

    def info(self) -> dict[str, Any]:
        """name, dim, metric, index, embedding, text_index (None, or its spec and ``documents``), count,
        sources, capacity, index_state, seq, checkpoint_seq (a sharded collection adds ``cluster``; an
        embedded one ``memory``: bytes per index part and store cache, docs/indexes.md#memory)."""
        ...

    # ---- lifecycle ---------------------------------------------------------------------------------

    def snapshot_into(self, dest: Path) -> tuple[int, int]:
        """Write a consistent copy into the empty directory ``dest``; returns (seq, visible records).
        A collection that cannot (sharded) raises InvalidConfigError."""
        ...

    def checkpoint(self) -> None:
        """Persist the derived state now (normally done in the background)."""
        ...

    def wait_for_index(self, timeout: float | None = None) -> bool:
        """Block until no index build is running or due; False on timeout."""
        ...

    def close(self) -> None:
        """Persist what is derived and release the resources. Idempotent; never raises ClosedError."""
        ...


@runtime_checkable
class DatabaseAPI(Protocol):
    """Named collections in one data directory. Use as a context manager or call ``close()``."""

    #: The settings it was opened with.
    settings: Settings
    #: The data directory.
    path: Path

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def close(self) -> None:
        """Close every collection and release the directory. Idempotent."""
        ...

    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: Metric = "cosine",
        index: dict[str, Any] | None = None,
        embedding: dict[str, Any] | None = None,
        max_records: int | None = None,
        eviction: Eviction | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        text_index: dict[str, Any] | None = None,
    ) -> CollectionAPI:
        """Create an empty collection (``text_index``: a full-text index, ``TextIndexSpec``'s fields;
        None: none). Raises CollectionExistsError (whatever kind of collection holds the name),
        InvalidNameError, InvalidConfigError (dim, metric, index, embedding, capacity, text_index;
        shards/replicas where there is no cluster), ModelUnavailableError."""
        ...

    def get_or_create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: Metric | None = None,
        index: dict[str, Any] | None = None,
        embedding: dict[str, Any] | None = None,
        max_records: int | None = None,
        eviction: Eviction | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        text_index: dict[str, Any] | None = None,
    ) -> CollectionAPI:
        """The existing collection ``name`` when it has every setting given (one left out, None, matches
        anything; ``embedding={}`` names the default model), else a new one as ``create_collection``
        makes it (``metric`` None: cosine). Raises CollectionExistsError with ``details["differences"]``
        (``{field: {"existing", "requested"}}``) when the existing one differs, and what
        ``create_collection`` raises."""
        ...

    def get_collection(self, name: str) -> CollectionAPI:
        """The collection (opened on first use). Raises CollectionNotFoundError, InvalidNameError."""
        ...

    def list_collections(self) -> list[str]:
        """The names of all collections, sorted."""
        ...

    def open_collections(self) -> Sequence[CollectionAPI]:
        """The collections opened so far, of every kind (metrics read them). Empty once closed. (A
        Sequence, not a list: a list is invariant, and implementations return lists of their own
        collection class.)"""
        ...

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all its data. Raises CollectionNotFoundError."""
        ...

    def embed(
        self, texts: Any, model: str | None = None, collection: str | None = None
    ) -> tuple[np.ndarray, str]:
        """Vectors for ``texts`` and the model used: ``collection``'s model, else ``model``, else the
        default. InvalidArgumentError for a collection without a model or with another one."""
        ...

    def create_snapshot(self, collection: str, name: str | None = None) -> SnapshotInfo:
        """A consistent copy of ``collection``. Raises CollectionNotFoundError, SnapshotExistsError,
        InvalidNameError, InvalidConfigError (sharded)."""
        ...

    def list_snapshots(self, collection: str) -> list[SnapshotInfo]:
        """``collection``'s snapshots, oldest first (also those of a dropped collection)."""
        ...

    def delete_snapshot(self, collection: str, name: str) -> None:
        """Raises SnapshotNotFoundError."""
        ...

    def restore_snapshot(self, collection: str, name: str, target: str | None = None) -> CollectionAPI:
        """A new collection ``target`` (default ``collection``) holding what the snapshot holds. Raises
        SnapshotNotFoundError, CollectionExistsError (whatever kind of collection holds ``target``)."""
        ...

    def restore_snapshot_dir(self, path: str | Path, target: str) -> CollectionAPI:
        """Restore the snapshot directory ``path`` as the new collection ``target``. Raises
        CorruptionError, CollectionExistsError (whatever kind of collection holds ``target``)."""
        ...

    def damaged(self) -> dict[str, str]:
        """Collections that failed an integrity check, with the reason (``code: message``): those that
        could not be opened and open ones whose store met damage while serving. Empty when healthy."""
        ...

    def check_model_allowed(self, model: Any) -> None:
        """Raise ``ModelUnavailableError`` (naming ``model`` only) unless a request may name it (the
        default or packaged model, a model of an open collection, ``embedding.allowed_models``)."""
        ...


def scroll_all(
    col: CollectionAPI,
    limit: int = 1000,
    filter: Any = None,
    include: Sequence[str] = DEFAULT_INCLUDE,
    *,
    text_filter: Any = None,
) -> Iterator[Record]:
    """Every record of ``col`` (matching ``filter`` and ``text_filter``), ``limit`` a page, as its
    ``scroll`` reads them: ``iter_records`` of every implementation."""
    cursor: str | None = None
    while True:
        records, cursor = col.scroll(cursor, limit, filter, include, text_filter=text_filter)
        yield from records
        if cursor is None:
            return


def get_or_create(db: DatabaseAPI, settings: Settings, name: str, **requested: Any) -> CollectionAPI:
    """``get_or_create_collection`` for any ``DatabaseAPI``: the existing collection when
    ``check_same_config`` finds every requested setting (None: any), else ``db.create_collection(name,
    **requested)`` (``metric`` None: cosine). A concurrent create or drop between the two steps is looked at
    once more."""
    for _ in range(2):
        try:
            col = db.get_collection(name)
        except CollectionNotFoundError:
            try:
                return db.create_collection(
                    name, **{**requested, "metric": requested.get("metric") or "cosine"}
                )
            except CollectionExistsError:
                continue
        check_same_config(col.info(), settings, **requested)
        return col
    raise CollectionExistsError(f"collection {name!r} is being created and dropped concurrently", name=name)
