"""A collection spread over N shards, each held by a group of R replicas (``vecdb.cluster.replicas``:
Ray actors, each an embedded engine collection, ``vecdb.cluster.shard``).

``ShardedCollection`` implements ``CollectionAPI`` by composition: it validates every request with the
engine's own checks (``vecdb.engine.validate``) before any shard sees it, routes records by id
(``vecdb.cluster.routing``), calls the shards' engine methods by keyword, and merges their answers with
pure functions (``vecdb.cluster.merge``). It never subclasses the engine's ``Collection``.

Routing: a record lives on shard ``blake2b(id) mod N``. Writes by id go to their shard; deletes by
source or filter fan out. Search fans out to every shard in parallel and merges the per-shard top-k.

Replicas: a write is acknowledged only once every replica of each shard it touches has applied it. A
replica that is down (Ray is restarting it) is waited for up to ``WRITE_WAIT_SECONDS``; then the write
fails with ``UnavailableError`` (it may have reached some replicas: writes are idempotent, retry it).
Reads go to one replica per shard (round robin) and fall back to the others; when no replica of a shard
answers, the read raises ``UnavailableError`` naming the missing shards, never a partial result.

This module does not import Ray: tests drive it with in-process replica groups.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vecdb.cluster.merge import (
    fuse_hits,
    merge_get,
    merge_hits,
    merge_index_state,
    merge_scroll,
    merge_sources,
    sum_counts,
)
from vecdb.cluster.routing import route
from vecdb.cluster.shard import ShardFailure
from vecdb.config import Settings
from vecdb.embed import EmbedderRegistry
from vecdb.engine.api import scroll_all
from vecdb.engine.validate import (
    check_embedded_dim,
    decode_cursor,
    expiry_times,
    split_missing_vectors,
    validate_fusion,
    validate_id_list,
    validate_include,
    validate_k,
    validate_limit,
    validate_mode,
    validate_records,
    validate_source,
    validate_text_filter,
    validate_text_index,
    validate_texts,
    validate_update,
)
from vecdb.errors import (
    ClosedError,
    InvalidArgumentError,
    InvalidConfigError,
    NotFoundError,
    UnavailableError,
)
from vecdb.index import parse_index_spec
from vecdb.types import DEFAULT_INCLUDE, Hit, Metric, Record, SourceInfo

__all__ = ["WRITE_WAIT_SECONDS", "NoReplicaError", "ReplicaGroup", "ShardedCollection"]

#: How long a write waits for a restarting replica before it fails with UnavailableError.
WRITE_WAIT_SECONDS = 30.0


class NoReplicaError(Exception):
    """No replica of a shard answered a read (raised by a ``ReplicaGroup``'s wait function)."""


class ReplicaGroup(Protocol):
    """The replicas of one shard. ``read`` and ``write`` start a call of the shard's engine collection
    method ``method(**kwargs)`` and return a function that waits for it, so that every shard works in
    parallel. A result may be a ``ShardFailure`` (the engine's error, carried back whole)."""

    #: The replicas (Ray actor handles), in replica order.
    actors: list[Any]

    def read(self, method: str, kwargs: dict[str, Any], turn: int) -> Callable[[], Any]:
        """Start on replica ``turn mod R``; the wait function falls back on the others in turn and
        raises NoReplicaError when none answered."""
        ...

    def write(
        self, method: str, kwargs: dict[str, Any], deadline: float
    ) -> Callable[[], tuple[list[Any], list[int]]]:
        """Start on every replica; the wait function retries a restarting replica until ``deadline``
        (``time.monotonic``) and returns each replica's result and the replicas that stayed down."""
        ...

    def close(self) -> None:
        """Close every replica's store and end the replicas."""
        ...

    def destroy(self) -> None:
        """Delete every replica's data and end the replicas."""
        ...


def _unwrap(value: Any) -> Any:
    if isinstance(value, ShardFailure):
        raise value.error()
    return value


class ShardedCollection:
    """``CollectionAPI`` over shard replica groups. Holds no records itself; snapshots are not
    supported yet (``snapshot_into`` raises InvalidConfigError)."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        groups: Sequence[ReplicaGroup],
        *,
        path: Path,
        settings: Settings,
        embedders: EmbedderRegistry,
    ) -> None:
        self.name = name
        self.path = path
        self.dim = int(config["dim"])
        self.metric: Metric = config["metric"]
        self.spec = parse_index_spec(config["index"])
        embedding = config.get("embedding")
        self.embedding_model: str | None = embedding["model"] if isinstance(embedding, dict) else None
        self.capacity = None
        self.text_index = validate_text_index(config.get("text_index"))
        #: Called with the new text index config after set_text_index (the database persists it).
        self.on_config: Callable[[dict[str, Any]], None] | None = None
        self._config = dict(config)
        self.shards = int(config["shards"])
        self.replicas = int(config["replicas"])
        if len(groups) != self.shards:
            raise ValueError(f"{len(groups)} replica groups for {self.shards} shards")
        self.groups = list(groups)
        self._limits = settings.limits
        self._embedders = embedders
        self._closed = False
        self._turn = itertools.count()

    @property
    def actors(self) -> list[list[Any]]:
        """actors[shard][replica]."""
        return [g.actors for g in self.groups]

    # ---- plumbing ----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"collection {self.name!r} is closed")

    def _read(self, method: str, calls: dict[int, dict[str, Any]]) -> dict[int, Any]:
        """``method(**calls[s])`` on one replica of each shard ``s``, in parallel. Raises
        UnavailableError naming every shard with no replica left (never a partial result)."""
        turn = next(self._turn)
        waits = {s: self.groups[s].read(method, kwargs, turn) for s, kwargs in calls.items()}
        results: dict[int, Any] = {}
        missing: list[int] = []
        for s, wait in waits.items():
            try:
                results[s] = wait()
            except NoReplicaError:
                missing.append(s)
        if missing:
            raise UnavailableError(
                f"collection {self.name!r}: no replica of shard(s) {missing} answered "
                f"({self.replicas} replica(s) each); retry once Ray has restarted them",
                shards=missing,
            )
        return {s: _unwrap(v) for s, v in results.items()}

    def _fan_read(self, method: str, **kwargs: Any) -> list[Any]:
        """``method(**kwargs)`` on every shard; the results in shard order."""
        out = self._read(method, {s: kwargs for s in range(self.shards)})
        return [out[s] for s in range(self.shards)]

    def _write(self, method: str, calls: dict[int, dict[str, Any]]) -> list[Any]:
        """``method(**calls[s])`` on every replica of each shard ``s``; replica 0's results. Acknowledged
        only when every replica applied it; a replica being restarted is waited for."""
        deadline = time.monotonic() + WRITE_WAIT_SECONDS
        waits = {s: self.groups[s].write(method, kwargs, deadline) for s, kwargs in calls.items()}
        results: dict[int, list[Any]] = {}
        down: list[tuple[int, int]] = []
        for s, wait in waits.items():
            results[s], replicas_down = wait()
            down += [(s, r) for r in replicas_down]
        if down:
            raise UnavailableError(
                f"collection {self.name!r}: replica(s) {down} (shard, replica) did not come back within "
                f"{WRITE_WAIT_SECONDS:.0f} s; the write may have reached other replicas: retry it",
                replicas=[list(x) for x in down],
            )
        for values in results.values():
            for value in values:
                _unwrap(value)
        return [results[s][0] for s in calls]

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self.embedding_model is None:
            raise InvalidArgumentError(
                f"collection {self.name!r} has no embedding model: send vectors (create it with "
                'embedding={"model": ...} to send texts alone)'
            )
        vectors = self._embedders.get(self.embedding_model).encode(texts)
        return check_embedded_dim(vectors, self.embedding_model, self.dim)

    # ---- writes ------------------------------------------------------------------------------------

    def _prepare(
        self, ids: Any, vectors: Any, texts: Any, metadatas: Any, sources: Any, *, allow_empty: bool = False
    ) -> tuple[list[str], np.ndarray, list[Any], list[Any], list[Any]]:
        """Validate the whole batch here (a bad item rejects it before any shard writes) and embed the
        records without vectors once, in the front end; shards get vectors only."""
        missing: list[int] = []
        if self.embedding_model is not None:
            vectors, missing = split_missing_vectors(ids, vectors, texts, self.dim)
        elif isinstance(vectors, list | tuple) and any(v is None for v in vectors):
            raise InvalidArgumentError(
                f"collection {self.name!r} has no embedding model: every record needs a vector"
            )
        new, vecs = validate_records(
            ids, vectors, texts, metadatas, sources, dim=self.dim, metric=self.metric,
            limits=self._limits, allow_empty=allow_empty,
        )  # fmt: skip
        if missing:
            vecs[missing] = self._embed([new[i].text or "" for i in missing])
        return (
            [r.id for r in new],
            vecs,
            [r.text for r in new],
            [r.metadata for r in new],
            [r.source for r in new],
        )

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
        """As ``Collection.upsert``; each record is written on its shard (all replicas)."""
        self._check_open()
        id_list, vecs, text_col, meta_col, src_col = self._prepare(ids, vectors, texts, metadatas, sources)
        expiry_times(ttl, expires_at, len(id_list))  # refused here, before any shard writes
        per_record = isinstance(expires_at, list | tuple | np.ndarray)
        calls: dict[int, dict[str, Any]] = {}
        for s, pos in route(id_list, self.shards).items():
            calls[s] = {
                "ids": [id_list[i] for i in pos],
                "vectors": vecs[pos],
                "texts": [text_col[i] for i in pos],
                "metadatas": [meta_col[i] for i in pos],
                "sources": [src_col[i] for i in pos],
                "ttl": ttl,
                "expires_at": [expires_at[i] for i in pos] if per_record else expires_at,  # type: ignore[index]
            }
        return sum(self._write("upsert", calls))

    def update(
        self,
        ids: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        texts: Sequence[str | None] | None = None,
        sources: Sequence[str | None] | None = None,
    ) -> int:
        """As ``Collection.update``; each shard updates its records (all replicas) atomically, but NOT
        atomically across shards. Missing ids are refused before any shard writes (NotFoundError)."""
        self._check_open()
        id_list, meta_col, text_col, src_col = validate_update(ids, metadatas, texts, sources, self._limits)
        found = {r.id for r in self.get(id_list, include=[])}
        missing = [rid for rid in id_list if rid not in found]
        if missing:
            raise NotFoundError(
                f"update: {len(missing)} of {len(id_list)} ids are not in collection {self.name!r}, "
                f"e.g. {missing[:5]}; nothing was written",
                missing=missing[:100],
            )
        calls = {
            s: {
                "ids": [id_list[i] for i in pos],
                "metadatas": [meta_col[i] for i in pos],
                "texts": [text_col[i] for i in pos],
                "sources": [src_col[i] for i in pos],
            }
            for s, pos in route(id_list, self.shards).items()
        }
        return sum(self._write("update", calls))

    def replace_source(
        self,
        source: str,
        ids: Sequence[str],
        vectors: Any = None,
        texts: Sequence[str | None] | None = None,
        metadatas: Sequence[dict[str, Any] | None] | None = None,
    ) -> int:
        """Replace every record of ``source``: every shard replaces its part (its own records of the
        source by the new records routed to it). NOT atomic across shards (a reader may see the source
        partly replaced meanwhile), unlike ``Collection.replace_source``; each shard's part is atomic."""
        self._check_open()
        source = validate_source(source, self._limits)
        n = len(ids) if ids is not None and not isinstance(ids, str) else -1
        id_list, vecs, text_col, meta_col, _ = self._prepare(
            ids, vectors, texts, metadatas, [source] * max(n, 0), allow_empty=True
        )
        routed = route(id_list, self.shards)
        calls: dict[int, dict[str, Any]] = {}
        for s in range(self.shards):
            pos = routed.get(s, [])
            calls[s] = {
                "source": source,
                "ids": [id_list[i] for i in pos],
                "vectors": vecs[pos],
                "texts": [text_col[i] for i in pos],
                "metadatas": [meta_col[i] for i in pos],
            }
        removed = sum(self._write("replace_source", calls))
        return len(id_list) if id_list else removed  # as Collection: written, or deleted when none

    def delete(
        self,
        ids: Sequence[str] | None = None,
        *,
        filter: Any = None,
        source: str | None = None,
        text_filter: Any = None,
    ) -> int:
        """As ``Collection.delete``: ids go to their shards, a filter or source to every shard."""
        self._check_open()
        filters = filter is not None or text_filter is not None
        present = (("ids", ids is not None), ("filter", filters), ("source", source is not None))
        given = [name for name, yes in present if yes]
        if len(given) != 1:
            raise InvalidArgumentError(
                f"delete takes exactly one of ids, filter (and/or text_filter), source; got {given or 'none'}"
            )
        validate_text_filter(text_filter)
        if ids is not None:
            id_list = validate_id_list(ids, self._limits, allow_duplicates=True)
            routed = route(id_list, self.shards)
            calls: dict[int, dict[str, Any]] = {
                s: {"ids": [id_list[i] for i in pos]} for s, pos in routed.items()
            }
        else:
            calls = {
                s: {"filter": filter, "source": source, "text_filter": text_filter}
                for s in range(self.shards)
            }
        return sum(self._write("delete", calls))

    def set_text_index(self, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        """As ``Collection.set_text_index``, on every shard; the cluster's registry keeps the spec."""
        self._check_open()
        parsed = validate_text_index(spec)
        dumped = None if parsed is None else parsed.model_dump()
        self._write("set_text_index", {s: {"spec": dumped} for s in range(self.shards)})
        self.text_index = parsed
        self._config["text_index"] = dumped
        if self.on_config is not None:
            self.on_config(self._config)
        text_index: dict[str, Any] | None = self.info()["text_index"]
        return text_index

    def purge_expired(self) -> int:
        """Each shard's own database purges its expired records; nothing to do here."""
        return 0

    # ---- reads -------------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], include: Sequence[str] = DEFAULT_INCLUDE) -> list[Record]:
        """The records that exist among ``ids``, in request order (each once)."""
        self._check_open()
        id_list = list(dict.fromkeys(validate_id_list(ids, self._limits, allow_duplicates=True)))
        validate_include(include)
        routed = route(id_list, self.shards)
        calls = {s: {"ids": [id_list[i] for i in pos], "include": include} for s, pos in routed.items()}
        return merge_get(list(self._read("get", calls).values()), id_list)

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
        """As ``Collection.search``: every shard's top-k (per branch), merged into the exact top-k.

        Hybrid: the vector and text branches each fan out for ``candidates`` hits, are merged across
        shards, then fused here exactly as the engine fuses. BM25 is scored per shard (each shard's own
        document frequencies and lengths), so text scores, and the text branch's order, can differ
        from an unsharded collection's (docs/search.md)."""
        self._check_open()
        mode = validate_mode(mode)
        k = validate_k(k, self._limits)
        fields = validate_include(include, search=True)
        fus = validate_fusion(fusion, mode, k, self._limits)
        validate_text_filter(text_filter)
        common = {"filter": filter, "params": params, "text_filter": text_filter}
        if mode == "vector":
            if (vectors is None) == (texts is None):
                raise InvalidArgumentError("search takes exactly one of vectors and texts")
            if texts is not None:
                vectors = self._embed(validate_texts(texts, self._limits))
            rows = self._fan_read(
                "search", vectors=vectors, k=k, include=include, score_threshold=score_threshold, **common
            )
            return _reranked(merge_hits(rows, k, self.metric), "vector", "explain" in fields)
        if texts is None:
            raise InvalidArgumentError(f"search mode {mode!r} needs texts", field="texts")
        if mode == "text" and vectors is not None:
            raise InvalidArgumentError("search mode 'text' takes texts, not vectors", field="vectors")
        if mode == "text" and params is not None:
            raise InvalidArgumentError(
                "params (ef_search, nprobe, target_recall) tune the vector index: not for mode 'text'",
                field="params",
            )
        if self.text_index is None:
            raise InvalidArgumentError(
                f"collection {self.name!r} has no text index, needed for search mode {mode!r}: add one "
                "with set_text_index (or create the collection with text_index={...})",
                field="text_index",
            )
        query_texts = validate_texts(texts, self._limits)
        if mode == "text":
            rows = self._fan_read(
                "search",
                texts=query_texts,
                k=k,
                include=include,
                score_threshold=score_threshold,
                mode="text",
                **common,
            )
            return _reranked(merge_hits(rows, k, "ip"), "text", "explain" in fields)
        if vectors is None:
            vectors = self._embed(query_texts)
        depth = fus.depth(k)
        branch_include = [f for f in include if f != "explain"]
        vec = merge_hits(
            self._fan_read("search", vectors=vectors, k=depth, include=branch_include, **common),
            depth,
            self.metric,
        )
        if len(vec) != len(query_texts):
            raise InvalidArgumentError(
                f"a hybrid search needs one vector per text: got {len(vec)} vectors for "
                f"{len(query_texts)} texts",
                field="vectors",
            )
        txt = merge_hits(
            self._fan_read(
                "search", texts=query_texts, k=depth, include=branch_include, mode="text", **common
            ),
            depth,
            "ip",
        )
        return fuse_hits(vec, txt, fus, k, self.metric, score_threshold, "explain" in fields)

    def scroll(
        self,
        cursor: str | None = None,
        limit: int = 1000,
        filter: Any = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
        *,
        text_filter: Any = None,
    ) -> tuple[list[Record], str | None]:
        """One page in id order (UTF-8 byte order), merged from every shard's page after ``cursor``.

        A shard whose page stopped early (a filtered scan budget) bounds the merged page: records past
        its position wait for the next page, so none is skipped. Same guarantees as ``Collection.scroll``.
        """
        self._check_open()
        decode_cursor(cursor)
        limit = validate_limit(limit, self._limits)
        validate_text_filter(text_filter)
        pages = self._fan_read(
            "scroll", cursor=cursor, limit=limit, filter=filter, include=include, text_filter=text_filter
        )
        return merge_scroll(pages, limit)

    def iter_records(
        self,
        limit: int = 1000,
        filter: Any = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
        *,
        text_filter: Any = None,
    ) -> Iterator[Record]:
        """Every record (matching ``filter`` and ``text_filter``), ``limit`` a page, as ``scroll`` reads
        them."""
        return scroll_all(self, limit, filter, include, text_filter=text_filter)

    def count(self, filter: Any = None, *, text_filter: Any = None) -> int:
        """How many records exist (that match ``filter`` and ``text_filter``): the shards' counts summed."""
        self._check_open()
        validate_text_filter(text_filter)
        return sum_counts(self._fan_read("count", filter=filter, text_filter=text_filter))

    def list_sources(self) -> list[SourceInfo]:
        """Every source with its number of records (summed over shards), sorted by source."""
        self._check_open()
        return merge_sources(self._fan_read("list_sources"))

    def info(self) -> dict[str, Any]:
        """As ``Collection.info``, summed over shards; ``index_state`` sums the shards' vector counts
        and holds each shard's own state in ``shards``."""
        self._check_open()
        infos = self._fan_read("info")
        return {
            "name": self.name,
            "dim": self.dim,
            "metric": self.metric,
            "index": self.spec.model_dump(),
            "embedding": None if self.embedding_model is None else {"model": self.embedding_model},
            "text_index": None
            if self.text_index is None
            else {
                **self.text_index.model_dump(),
                "documents": sum((i.get("text_index") or {}).get("documents", 0) for i in infos),
            },
            "count": sum(i["count"] for i in infos),
            "sources": len(self.list_sources()),
            "capacity": None,
            "index_state": merge_index_state([i["index_state"] for i in infos]),
            "seq": sum(i["seq"] for i in infos),
            "checkpoint_seq": sum(i["checkpoint_seq"] for i in infos),
            "cluster": {"shards": self.shards, "replicas": self.replicas},
        }

    # ---- lifecycle: what does not cross shards -----------------------------------------------------

    @property
    def seq(self) -> int:
        """The shards' sequence numbers summed (grows with every write)."""
        return int(self.info()["seq"])

    def snapshot_into(self, dest: Path) -> tuple[int, int]:
        raise InvalidConfigError(f"collection {self.name!r} is sharded: snapshots are not supported yet")

    def checkpoint(self) -> None:
        """Shards checkpoint on their own schedule and when closed."""
        self._check_open()

    def wait_for_index(self, timeout: float | None = None) -> bool:
        """Shards build their indexes on their own."""
        self._check_open()
        return True

    def close(self) -> None:
        """Close every replica's store (checkpointing its index), then end the replicas. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for group in self.groups:
            group.close()

    def destroy(self) -> None:
        """Delete every replica's data and end the replicas (drop_collection)."""
        self._closed = True
        for group in self.groups:
            group.destroy()


def _reranked(rows: list[list[Hit]], branch: str, explain: bool) -> list[list[Hit]]:
    """Merged hits with their explanation's rank over the merged list (a shard ranked within itself)."""
    if not explain:
        return rows
    return [
        [replace(h, explain={branch: {"rank": r, "score": h.score}}) for r, h in enumerate(row, 1)]
        for row in rows
    ]
