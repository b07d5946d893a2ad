"""Semantic cache for LLM responses: a prompt that means the same as a cached one gets its response.

``SemanticCache`` (sync) and ``AsyncSemanticCache`` keep entries in a vecdb collection whose model embeds
the prompts on the server. A lookup tries the exact prompt first (its id is a hash of the scope and the
normalized prompt: one point read, no embedding), then the nearest cached prompt of the same scope, which
is a hit when its cosine similarity is at least ``threshold``.

- ``scope`` isolates entries (per model, tenant, conversation): a lookup never crosses scopes.
- ``text=`` embeds another text than the key prompt (e.g. the readable part of a serialized chat prompt);
  ``vector=`` passes the embedding when the caller already has it (no embedding on the server).
- ``ttl`` (seconds) makes entries expire; ``max_entries`` caps the collection, evicting the least
  recently used entry; a hit counts as use (the search asks the server for hits at or above the
  threshold only, so a miss touches nothing).
- The default threshold, 0.92, is the lowest at which hits on MRPC were paraphrases at least 90% of the
  time (``benchmarks/results/cache_threshold.md``): a cached answer to another question is worse than a
  miss, so it errs toward missing.
- The response is stored in the entry's metadata (the server's ``limits.max_metadata_bytes``, 64 KiB by
  default, bounds its size).

``vecdb_client.langchain_cache.VecDBSemanticCache`` is the LangChain ``BaseCache`` built on these.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import statistics
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from vecdb_client.aio import AsyncClient, AsyncCollection
from vecdb_client.client import Client, Collection
from vecdb_client.errors import CollectionExistsError, CollectionNotFoundError
from vecdb_client.types import Hit, Record

__all__ = ["DEFAULT_THRESHOLD", "AsyncSemanticCache", "CacheHit", "CacheStats", "SemanticCache", "entry_id"]

LATENCY_WINDOW = 10_000

#: Chosen on MRPC (benchmarks/cache_threshold.py): hit precision 0.9 at the lowest such threshold.
DEFAULT_THRESHOLD = 0.92


def normalize(prompt: str) -> str:
    """The prompt the exact path compares: Unicode NFKC, case folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


def entry_id(prompt: str, scope: str | None) -> str:
    """The id of a cache entry: a hash of the scope and the normalized prompt."""
    raw = f"{scope or ''}\x00{normalize(prompt)}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached response and how it was found (``exact``, or by ``similarity`` to ``prompt``)."""

    response: str
    similarity: float
    exact: bool
    prompt: str | None


@dataclass
class CacheStats:
    """Counters since the cache object was made (or ``reset()``). Thread-safe to update."""

    hits: int = 0
    misses: int = 0
    exact_hits: int = 0
    similarity_sum: float = 0.0
    #: Latencies of the most recent lookups (the last ``LATENCY_WINDOW``), for the percentiles.
    lookup_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    lookup_ms_total: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self._lock:
            self.hits = self.misses = self.exact_hits = 0
            self.similarity_sum = 0.0
            self.lookup_ms.clear()
            self.lookup_ms_total = 0.0

    def record(self, hit: CacheHit | None, ms: float) -> None:
        with self._lock:
            self.lookup_ms.append(ms)
            self.lookup_ms_total += ms
            if hit is None:
                self.misses += 1
                return
            self.hits += 1
            self.exact_hits += hit.exact
            self.similarity_sum += hit.similarity

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def mean_similarity(self) -> float:
        """Mean similarity of hits (exact hits count as 1.0)."""
        return self.similarity_sum / self.hits if self.hits else 0.0

    @property
    def lookup_p50_ms(self) -> float:
        return statistics.median(self.lookup_ms) if self.lookup_ms else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "lookups": self.lookups,
            "hits": self.hits,
            "misses": self.misses,
            "exact_hits": self.exact_hits,
            "hit_rate": self.hit_rate,
            "mean_similarity": self.mean_similarity,
            "lookup_p50_ms": self.lookup_p50_ms,
            "lookup_mean_ms": self.lookup_ms_total / self.lookups if self.lookups else 0.0,
        }


Vector = Sequence[float] | np.ndarray
_INCLUDE_HIT = ("text", "metadata")


def _query(text: str, vector: Vector | None) -> dict[str, Any]:
    return {"texts": text} if vector is None else {"vectors": vector}


class _Base:
    def __init__(
        self,
        collection: str,
        threshold: float,
        ttl: float | None,
        max_entries: int | None,
        embedding_model: str | None,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if ttl is not None and not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl must be a positive, finite number of seconds, got {ttl!r}")
        if max_entries is not None and (
            isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1
        ):
            raise ValueError(f"max_entries must be an integer >= 1, got {max_entries!r}")
        self.collection_name = collection
        self.threshold = threshold
        self.ttl = ttl
        self.max_entries = max_entries
        self.embedding_model = embedding_model
        self.stats = CacheStats()
        self._ready = False

    def _create_args(self) -> dict[str, Any]:
        eviction: Literal["lru"] | None = None if self.max_entries is None else "lru"
        return {
            "embedding": {"model": self.embedding_model} if self.embedding_model else {},
            "metric": "cosine",
            "max_records": self.max_entries,
            "eviction": eviction,
        }

    def _entry(
        self, prompt: str, response: str, scope: str | None, vector: Vector | None, text: str | None
    ) -> dict[str, Any]:
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise TypeError("prompt and response must be strings")
        if not prompt.strip() or (text is not None and not text.strip()):
            raise ValueError("an empty prompt cannot be cached")
        return {
            "ids": [entry_id(prompt, scope)],
            "texts": [prompt if text is None else text],
            "metadatas": [{"scope": scope or "", "response": response}],
            "ttl": self.ttl,
            "vectors": None if vector is None else [vector],
        }

    @staticmethod
    def _exact(records: list[Record], scope: str | None) -> CacheHit | None:
        for rec in records:
            if rec.metadata.get("scope") == (scope or ""):
                return CacheHit(str(rec.metadata["response"]), 1.0, True, rec.text)
        return None

    def _semantic(self, hits: list[Hit], key: str) -> CacheHit | None:
        if hits and hits[0].score >= self.threshold:
            best = hits[0]
            return CacheHit(str(best.metadata["response"]), best.score, best.id == key, best.text)
        return None


#: What ``clear()`` deletes: every cache entry (they all have a scope), not the collection itself, so
#: other cache objects on it keep working and its configuration stays.
_ALL_ENTRIES = {"scope": {"$exists": True}}


def _clear_filter(scope: str | None) -> dict[str, Any]:
    return _ALL_ENTRIES if scope is None else {"scope": scope}


class SemanticCache(_Base):
    """A semantic cache over ``client`` (a ``vecdb_client.Client``), in collection ``collection``.

    The collection is made on first use (with the server's default model unless ``embedding_model``);
    an existing one is used as it is. ``get`` / ``lookup`` read, ``put`` writes, ``wrap`` makes any
    ``Callable[[str], str]`` cached (cache-aside), ``clear`` empties a scope or everything.
    """

    def __init__(
        self,
        client: Client,
        collection: str = "llm_cache",
        threshold: float = DEFAULT_THRESHOLD,
        ttl: float | None = None,
        max_entries: int | None = None,
        embedding_model: str | None = None,
    ) -> None:
        super().__init__(collection, threshold, ttl, max_entries, embedding_model)
        self.client = client

    @property
    def collection(self) -> Collection:
        return self.client.collection(self.collection_name)

    def _ensure(self) -> None:
        if not self._ready:
            with contextlib.suppress(CollectionExistsError):
                self.client.create_collection(self.collection_name, **self._create_args())
            self._ready = True

    def lookup(
        self, prompt: str, scope: str | None = None, vector: Vector | None = None, text: str | None = None
    ) -> CacheHit | None:
        """The cached entry for ``prompt`` (exact, else most similar at or above ``threshold``), or None.

        ``text``: embed this instead of the prompt; ``vector``: the embedding, when the caller has it (by
        the collection's model): then the lookup is one search, which finds an exact repeat too (its
        vector is the same). An empty prompt is a miss.
        """
        started = time.perf_counter()
        hit = None
        if prompt.strip():
            try:
                col, key = self.collection, entry_id(prompt, scope)
                if vector is None:  # an exact repeat costs one point read and no embedding
                    hit = self._exact(col.get([key], include=_INCLUDE_HIT), scope)
                if hit is None:
                    query = _query(prompt if text is None else text, vector)
                    hits = col.search(
                        **query,
                        k=1,
                        filter={"scope": scope or ""},
                        include=_INCLUDE_HIT,
                        score_threshold=self.threshold,
                    )
                    hit = self._semantic(hits[0], key)
            except CollectionNotFoundError:
                hit = None
        self.stats.record(hit, (time.perf_counter() - started) * 1000)
        return hit

    def get(self, prompt: str, scope: str | None = None) -> str | None:
        """The cached response for ``prompt`` in ``scope``, or None (GPTCache's ``get``)."""
        hit = self.lookup(prompt, scope)
        return None if hit is None else hit.response

    def put(
        self,
        prompt: str,
        response: str,
        scope: str | None = None,
        vector: Vector | None = None,
        text: str | None = None,
    ) -> None:
        """Cache ``response`` for ``prompt`` in ``scope`` (replacing the same prompt's entry); ``vector``
        and ``text`` as in ``lookup``. An empty prompt is a ValueError."""
        entry = self._entry(prompt, response, scope, vector, text)
        self._ensure()
        try:
            self.collection.upsert(**entry)
        except CollectionNotFoundError:  # dropped since this object made it: make it again
            self._ready = False
            self._ensure()
            self.collection.upsert(**entry)

    def clear(self, scope: str | None = None) -> int:
        """Delete the entries of ``scope``, or every entry when None; returns how many."""
        try:
            return self.collection.delete(filter=_clear_filter(scope))
        except CollectionNotFoundError:
            return 0

    def wrap(self, llm: Callable[[str], str], scope: str | None = None) -> Callable[[str], str]:
        """``llm`` behind the cache: a hit returns the cached response, a miss calls ``llm`` and caches."""

        def cached(prompt: str) -> str:
            found = self.get(prompt, scope)
            if found is not None:
                return found
            response = llm(prompt)
            if prompt.strip():
                self.put(prompt, response, scope)
            return response

        return cached


class AsyncSemanticCache(_Base):
    """``SemanticCache`` over an ``AsyncClient``: the same methods as coroutines."""

    def __init__(
        self,
        client: AsyncClient,
        collection: str = "llm_cache",
        threshold: float = DEFAULT_THRESHOLD,
        ttl: float | None = None,
        max_entries: int | None = None,
        embedding_model: str | None = None,
    ) -> None:
        super().__init__(collection, threshold, ttl, max_entries, embedding_model)
        self.client = client

    @property
    def collection(self) -> AsyncCollection:
        return self.client.collection(self.collection_name)

    async def _ensure(self) -> None:
        if not self._ready:
            with contextlib.suppress(CollectionExistsError):
                await self.client.create_collection(self.collection_name, **self._create_args())
            self._ready = True

    async def lookup(
        self, prompt: str, scope: str | None = None, vector: Vector | None = None, text: str | None = None
    ) -> CacheHit | None:
        """See ``SemanticCache.lookup``."""
        started = time.perf_counter()
        hit = None
        if prompt.strip():
            try:
                col, key = self.collection, entry_id(prompt, scope)
                if vector is None:
                    hit = self._exact(await col.get([key], include=_INCLUDE_HIT), scope)
                if hit is None:
                    query = _query(prompt if text is None else text, vector)
                    flt = {"scope": scope or ""}
                    hits = await col.search(
                        **query, k=1, filter=flt, include=_INCLUDE_HIT, score_threshold=self.threshold
                    )
                    hit = self._semantic(hits[0], key)
            except CollectionNotFoundError:
                hit = None
        self.stats.record(hit, (time.perf_counter() - started) * 1000)
        return hit

    async def get(self, prompt: str, scope: str | None = None) -> str | None:
        """See ``SemanticCache.get``."""
        hit = await self.lookup(prompt, scope)
        return None if hit is None else hit.response

    async def put(
        self,
        prompt: str,
        response: str,
        scope: str | None = None,
        vector: Vector | None = None,
        text: str | None = None,
    ) -> None:
        """See ``SemanticCache.put``."""
        entry = self._entry(prompt, response, scope, vector, text)
        await self._ensure()
        try:
            await self.collection.upsert(**entry)
        except CollectionNotFoundError:
            self._ready = False
            await self._ensure()
            await self.collection.upsert(**entry)

    async def clear(self, scope: str | None = None) -> int:
        """See ``SemanticCache.clear``."""
        try:
            return await self.collection.delete(filter=_clear_filter(scope))
        except CollectionNotFoundError:
            return 0

    def wrap(
        self, llm: Callable[[str], Awaitable[str]], scope: str | None = None
    ) -> Callable[[str], Awaitable[str]]:
        """See ``SemanticCache.wrap``; ``llm`` is a coroutine function."""

        async def cached(prompt: str) -> str:
            found = await self.get(prompt, scope)
            if found is not None:
                return found
            response = await llm(prompt)
            if prompt.strip():
                await self.put(prompt, response, scope)
            return response

        return cached
