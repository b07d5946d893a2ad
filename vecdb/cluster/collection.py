"""A collection spread over N shards, each held by R replica actors (``vecdb.cluster.shard``).

Routing: a record lives on shard ``blake2b(id) mod N`` (stable across processes and restarts, unlike
Python's ``hash``). Writes by id go to their shard; deletes by source or filter fan out. Search fans out to
every shard in parallel and merges the per-shard top-k: each shard returns its own exact top-k, so the
merged top-k of a flat index equals the unsharded one (cosine/ip: higher first, l2: lower first, ties by
id). Get, count, list_sources and scroll merge too.

Replicas: a write is acknowledged only once every replica of each shard it touches has applied it. A
replica that is down (Ray is restarting it) is waited for up to ``WRITE_WAIT_SECONDS``; then the write
fails with ``UnavailableError`` (it may have reached some replicas: writes are idempotent, retry it).
Reads go to one replica per shard (round robin) and fall back to the others; when no replica of a shard
answers, the read raises ``UnavailableError`` naming the missing shards, never a partial result.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from vecdb.cluster.shard import ShardActor, ShardFailure
from vecdb.config import Settings
from vecdb.embed import EmbedderRegistry
from vecdb.engine.collection import Collection
from vecdb.engine.validate import (
    decode_cursor,
    encode_cursor,
    split_missing_vectors,
    validate_id_list,
    validate_include,
    validate_k,
    validate_limit,
    validate_records,
    validate_source,
    validate_texts,
)
from vecdb.errors import InvalidArgumentError, InvalidConfigError, UnavailableError
from vecdb.index import parse_index_spec
from vecdb.types import DEFAULT_INCLUDE, Hit, Metric, Record, SourceInfo

__all__ = ["START_TIMEOUT_SECONDS", "WRITE_WAIT_SECONDS", "ShardedCollection", "place_replicas", "shard_of"]

#: Per shard: the positional and keyword arguments of one collection method call.
Calls = dict[int, tuple[tuple[Any, ...], dict[str, Any]]]

#: How long a collection's actors may take to start (be placed, open their stores).
START_TIMEOUT_SECONDS = 120.0
#: How long a write waits for a restarting replica before it fails with UnavailableError.
WRITE_WAIT_SECONDS = 30.0


def shard_of(record_id: str, shards: int) -> int:
    """The shard of a record id: stable everywhere (blake2b, never Python's salted ``hash``)."""
    digest = hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def place_replicas(shards: int, replicas: int) -> list[list[str]]:
    """A node id for each replica of each shard: the alive nodes with CPUs, in turn, so a shard's
    replicas land on different nodes whenever there are at least ``replicas`` of them."""
    alive: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    nodes = sorted(n["NodeID"] for n in alive if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0)
    if not nodes:
        raise UnavailableError("the Ray cluster has no alive node with CPUs to hold shards")
    return [[nodes[(s * replicas + r) % len(nodes)] for r in range(replicas)] for s in range(shards)]


def _unwrap(value: Any) -> Any:
    if isinstance(value, ShardFailure):
        raise value.error()
    return value


class ShardedCollection(Collection):
    """The public methods of ``Collection`` over shard actors. Holds no records itself.

    It subclasses Collection so that the server and every caller take it where they take a collection;
    it never runs Collection's constructor, and each public method is overridden here (the ones that make
    no sense across shards, such as snapshots, raise InvalidArgumentError).
    """

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        *,
        data_dir: Path,
        settings: Settings,
        embedders: EmbedderRegistry,
        actor_options: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.path = data_dir / "shards" / name
        self.dim = int(config["dim"])
        self.metric: Metric = config["metric"]
        self.spec = parse_index_spec(config["index"])
        embedding = config.get("embedding")
        self.embedding_model = embedding["model"] if isinstance(embedding, dict) else None
        self.capacity = None
        self.shards = int(config["shards"])
        self.replicas = int(config["replicas"])
        self._settings = settings
        self._limits = settings.limits
        self._embedders = embedders
        self._closed = False
        actor_class = ray.remote(ShardActor)
        base = {"max_restarts": -1, "max_task_retries": 0, **(actor_options or {"num_cpus": 1})}
        # Each replica is pinned to the node its data lives on (chosen at create time, kept in the
        # registry): a restarted actor must find its own store, never start empty on another node.
        placement: list[list[str]] | None = config.get("placement")
        shard_config = {"dim": self.dim, "metric": self.metric, "index": config["index"]}

        def start(s: int, r: int) -> Any:
            opts = dict(base)
            if placement is not None:
                opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(placement[s][r], soft=False)
            return actor_class.options(**opts).remote(
                str(self.path / f"s{s}-r{r}"), name, shard_config, settings
            )

        #: actors[shard][replica]
        self.actors: list[list[Any]] = [
            [start(s, r) for r in range(self.replicas)] for s in range(self.shards)
        ]
        self._turn = itertools.count()
        # Surface a start-up failure (bad path, locked store, no room in the cluster) here rather than
        # on the first request.
        everyone = [a for row in self.actors for a in row]
        try:
            ray.get([a.ping.remote() for a in everyone], timeout=START_TIMEOUT_SECONDS)
        except (GetTimeoutError, RayActorError) as exc:
            for actor in everyone:
                ray.kill(actor, no_restart=True)
            raise UnavailableError(
                f"collection {name!r}: its {len(everyone)} shard actors did not all start within "
                f"{START_TIMEOUT_SECONDS:.0f} s (not enough resources in the Ray cluster for "
                f"{actor_options or {'num_cpus': 1}} each?): {exc}",
                shards=self.shards,
                replicas=self.replicas,
            ) from exc

    # ---- plumbing ----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError(f"collection {self.name!r} is closed")

    def _read_any(self, calls: Calls, method: str) -> dict[int, Any]:
        """``method`` on one replica of each shard in ``calls``, in parallel; falls back to the other
        replicas of a shard whose replica is down. Raises UnavailableError naming every shard with no
        replica left (never a partial result)."""
        start = next(self._turn)
        order = {s: [(start + i) % self.replicas for i in range(self.replicas)] for s in calls}
        refs = {s: self.actors[s][order[s][0]].call.remote(method, *calls[s]) for s in calls}
        results: dict[int, Any] = {}
        missing: list[int] = []
        for s, first in refs.items():
            ref, tried = first, 0
            while True:
                try:
                    results[s] = ray.get(ref)
                    break
                except RayActorError:
                    tried += 1
                    if tried == self.replicas:
                        missing.append(s)
                        break
                    ref = self.actors[s][order[s][tried]].call.remote(method, *calls[s])
        if missing:
            raise UnavailableError(
                f"collection {self.name!r}: no replica of shard(s) {missing} answered "
                f"({self.replicas} replica(s) each); retry once Ray has restarted them",
                shards=missing,
            )
        return {s: _unwrap(v) for s, v in results.items()}

    def _fan_read(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        out = self._read_any({s: (args, kwargs) for s in range(self.shards)}, method)
        return [out[s] for s in range(self.shards)]

    def _write_all(self, calls: Calls, method: str) -> dict[int, Any]:
        """``method`` on every replica of each shard in ``calls``; returns replica 0's result per shard.
        Acknowledged only when every replica applied it; a replica being restarted is waited for."""
        refs = {
            (s, r): self.actors[s][r].call.remote(method, *calls[s])
            for s in calls
            for r in range(self.replicas)
        }
        deadline = time.monotonic() + WRITE_WAIT_SECONDS
        results: dict[tuple[int, int], Any] = {}
        down: list[tuple[int, int]] = []
        for (s, r), first in refs.items():
            ref = first
            while True:
                try:
                    results[s, r] = ray.get(ref)
                    break
                except RayActorError:
                    if time.monotonic() > deadline:
                        down.append((s, r))
                        break
                    time.sleep(0.2)
                    ref = self.actors[s][r].call.remote(method, *calls[s])
        if down:
            raise UnavailableError(
                f"collection {self.name!r}: replica(s) {down} (shard, replica) did not come back within "
                f"{WRITE_WAIT_SECONDS:.0f} s; the write may have reached other replicas: retry it",
                replicas=[list(x) for x in down],
            )
        for value in results.values():
            _unwrap(value)
        return {s: results[s, 0] for s in calls}

    def _route(self, ids: Sequence[str]) -> dict[int, list[int]]:
        """Positions of ``ids`` per shard, in order."""
        out: dict[int, list[int]] = {}
        for i, rid in enumerate(ids):
            out.setdefault(shard_of(rid, self.shards), []).append(i)
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self.embedding_model is None:
            raise InvalidArgumentError(
                f"collection {self.name!r} has no embedding model: send vectors (create it with "
                'embedding={"model": ...} to send texts alone)'
            )
        return self._embedders.get(self.embedding_model).encode(texts)

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
        per_record = isinstance(expires_at, list | tuple | np.ndarray)
        if per_record and len(expires_at) != len(id_list):  # type: ignore[arg-type]
            raise InvalidArgumentError(f"expires_at has {len(expires_at)} entries for {len(id_list)} ids")  # type: ignore[arg-type]
        calls: Calls = {}
        for s, pos in self._route(id_list).items():
            exp = [expires_at[i] for i in pos] if per_record else expires_at  # type: ignore[index]
            calls[s] = (
                ([id_list[i] for i in pos], vecs[pos], [text_col[i] for i in pos],
                 [meta_col[i] for i in pos], [src_col[i] for i in pos]),
                {"ttl": ttl, "expires_at": exp},
            )  # fmt: skip
        return sum(self._write_all(calls, "upsert").values())

    def replace_source(
        self,
        source: str,
        ids: Sequence[str],
        vectors: Any,
        texts: Sequence[str | None] | None = None,
        metadatas: Sequence[dict[str, Any] | None] | None = None,
    ) -> int:
        """Replace every record of ``source``: delete it on every shard, then upsert the new records on
        theirs. NOT atomic across shards (a reader may see the source missing or partly written
        meanwhile), unlike ``Collection.replace_source``; each shard's part is atomic."""
        self._check_open()
        source = validate_source(source, self._limits)
        n = len(ids) if ids is not None and not isinstance(ids, str) else -1
        id_list, vecs, text_col, meta_col, _ = self._prepare(
            ids, vectors, texts, metadatas, [source] * max(n, 0), allow_empty=True
        )
        routed = self._route(id_list)
        calls: Calls = {}
        for s in range(self.shards):
            pos = routed.get(s, [])
            calls[s] = (
                (source, [id_list[i] for i in pos], vecs[pos], [text_col[i] for i in pos],
                 [meta_col[i] for i in pos]),
                {},
            )  # fmt: skip
        removed = sum(self._write_all(calls, "replace_source").values())
        return len(id_list) if id_list else removed  # as Collection: written, or deleted when none

    def delete(
        self, ids: Sequence[str] | None = None, *, filter: Any = None, source: str | None = None
    ) -> int:
        """As ``Collection.delete``: ids go to their shards, a filter or source to every shard."""
        self._check_open()
        given = [name for name, v in (("ids", ids), ("filter", filter), ("source", source)) if v is not None]
        if len(given) != 1:
            raise InvalidArgumentError(
                f"delete takes exactly one of ids, filter, source; got {given or 'none'}"
            )
        if ids is not None:
            id_list = validate_id_list(ids, self._limits, allow_duplicates=True)
            calls: Calls = {s: (([id_list[i] for i in pos],), {}) for s, pos in self._route(id_list).items()}
        else:
            calls = {s: ((), {"filter": filter, "source": source}) for s in range(self.shards)}
        return sum(self._write_all(calls, "delete").values())

    def purge_expired(self) -> int:
        """Each shard's own database purges its expired records; nothing to do here."""
        return 0

    # ---- reads -------------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], include: Sequence[str] = DEFAULT_INCLUDE) -> list[Record]:
        """The records that exist among ``ids``, in request order (each once)."""
        self._check_open()
        id_list = list(dict.fromkeys(validate_id_list(ids, self._limits, allow_duplicates=True)))
        validate_include(include)
        routed = self._route(id_list)
        found = self._read_any(
            {s: (([id_list[i] for i in pos], include), {}) for s, pos in routed.items()}, "get"
        )
        by_id = {rec.id: rec for recs in found.values() for rec in recs}
        return [by_id[i] for i in id_list if i in by_id]

    def search(
        self,
        vectors: Any = None,
        k: int = 10,
        filter: Any = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
        params: dict[str, Any] | None = None,
        texts: Sequence[str] | str | None = None,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """As ``Collection.search``: every shard's top-k, merged into the exact top-k."""
        self._check_open()
        if (vectors is None) == (texts is None):
            raise InvalidArgumentError("search takes exactly one of vectors and texts")
        if texts is not None:
            vectors = self._embed(validate_texts(texts, self._limits))
        k = validate_k(k, self._limits)
        rows = self._fan_read("search", vectors, k, filter, include, params, None, score_threshold)
        lower_is_better = self.metric == "l2"

        def key(hit: Hit) -> tuple[float, str]:
            return (hit.score if lower_is_better else -hit.score, hit.id)

        return [sorted(itertools.chain(*per_query), key=key)[:k] for per_query in zip(*rows, strict=True)]

    def scroll(
        self,
        cursor: str | None = None,
        limit: int = 1000,
        filter: Any = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
    ) -> tuple[list[Record], str | None]:
        """One page in id order (UTF-8 byte order), merged from every shard's page after ``cursor``.

        A shard whose page stopped early (a filtered scan budget) bounds the merged page: records past
        its position wait for the next page, so none is skipped. Same guarantees as ``Collection.scroll``.
        """
        self._check_open()
        decode_cursor(cursor)
        limit = validate_limit(limit, self._limits)
        pages = self._fan_read("scroll", cursor, limit, filter, include)
        bound: bytes | None = None  # the smallest position a shard with more to give has reached
        for _, nxt in pages:
            pos = decode_cursor(nxt)
            if pos is not None and (bound is None or pos < bound):
                bound = pos
        merged = sorted((rec for recs, _ in pages for rec in recs), key=lambda rec: rec.id.encode("utf-8"))
        if bound is not None:
            merged = [rec for rec in merged if rec.id.encode("utf-8") <= bound]
        page = merged[:limit]
        if len(merged) > limit:
            return page, encode_cursor(page[-1].id.encode("utf-8"))
        return page, None if bound is None else encode_cursor(bound)

    def count(self, filter: Any = None) -> int:
        """How many records exist (that match ``filter``): the shards' counts summed."""
        self._check_open()
        return sum(self._fan_read("count", filter))

    def list_sources(self) -> list[SourceInfo]:
        """Every source with its number of records (summed over shards), sorted by source."""
        self._check_open()
        counts: dict[str, int] = {}
        for infos in self._fan_read("list_sources"):
            for info in infos:
                counts[info.source] = counts.get(info.source, 0) + info.count
        return [SourceInfo(s, counts[s]) for s in sorted(counts)]

    def info(self) -> dict[str, Any]:
        """As ``Collection.info``, summed over shards; ``shards`` holds each shard's own info."""
        self._check_open()
        infos = self._fan_read("info")
        return {
            "name": self.name,
            "dim": self.dim,
            "metric": self.metric,
            "index": self.spec.model_dump(),
            "embedding": None if self.embedding_model is None else {"model": self.embedding_model},
            "count": sum(i["count"] for i in infos),
            "sources": len(self.list_sources()),
            "capacity": None,
            "index_state": {"shards": [i["index_state"] for i in infos]},
            "seq": sum(i["seq"] for i in infos),
            "checkpoint_seq": sum(i["checkpoint_seq"] for i in infos),
            "cluster": {"shards": self.shards, "replicas": self.replicas},
        }

    # ---- what does not cross shards ----------------------------------------------------------------

    @property
    def seq(self) -> int:
        return int(self.info()["seq"])

    def snapshot_into(self, dest: Path) -> tuple[int, int]:
        raise InvalidConfigError(f"collection {self.name!r} is sharded: snapshots are not supported yet")

    def checkpoint(self) -> None:
        """Shards checkpoint on their own schedule and when closed."""

    def wait_for_index(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        """Close every replica's store (checkpointing its index), then end the actors. Idempotent."""
        if self._closed:
            return
        self._closed = True
        refs = [a.close.remote() for row in self.actors for a in row]
        for ref in refs:
            with contextlib.suppress(RayActorError):  # a dead replica recovers from its store next time
                ray.get(ref)
        for row in self.actors:
            for actor in row:
                ray.kill(actor, no_restart=True)

    def destroy(self) -> None:
        """Delete every replica's data and end the actors (drop_collection)."""
        self._closed = True
        refs = [a.destroy.remote() for row in self.actors for a in row]
        for ref in refs:
            with contextlib.suppress(RayActorError):
                ray.get(ref)
        for row in self.actors:
            for actor in row:
                ray.kill(actor, no_restart=True)
