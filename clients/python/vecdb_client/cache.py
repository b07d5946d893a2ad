"""Semantic cache for LLM responses: a prompt that means the same as a cached one gets its response.

``SemanticCache`` (sync) and ``AsyncSemanticCache`` keep entries in a vecdb collection whose model embeds
the prompts on the server. What forms the key (``vecdb_client.cache_key``): a pre-processor splits the
prompt (a string, or chat messages) into the *embedded text* (by default the last user message) and an
*exact context* (the system prompt, the earlier turns); the context and the call's ``params`` (model,
temperature, tools...) are hashed into the entry's ``ctx``. A lookup then tries:

1. the exact path: the entry id is a hash of the scope, the ctx and the normalized embedded text (one
   point read, no embedding);
2. the semantic path: the ``candidates`` nearest cached texts of the same scope *and ctx* at or above
   ``threshold`` (cosine), best first; the first one that ``verify(text, candidate_text)`` accepts is a
   hit (``vecdb_client.cache_verify.guard`` by default: numbers, negations, names, swapped roles).

- A text longer than the model reads (``max_tokens`` word pieces) would be embedded truncated: such
  prompts are cached for exact repeats only (``stats.exact_only``).
- ``scope`` isolates entries (per model, tenant, conversation): a lookup never crosses scopes.
- ``ttl`` (seconds) makes entries expire; ``max_entries`` caps the collection (LRU eviction; a hit counts
  as use, a miss touches nothing).
- The default threshold, 0.94 with the guard, was chosen on MRPC's training split for hit precision >=
  0.95 (``benchmarks/results/cache_threshold.md``).
- The response goes in the entry's metadata; one too large for it (the server's
  ``limits.max_metadata_bytes``, ``max_metadata_bytes`` here) goes in the record's text instead, the prompt
  then being embedded client-side through ``client.embed``.
- Fail-open (``fail_open=True``, the default): an error on lookup is a miss, on store the entry is skipped;
  both are logged and counted in ``stats``. ``wrap`` always returns the LLM's answer.

``vecdb_client.langchain_cache.VecDBSemanticCache`` is the LangChain ``BaseCache`` built on these.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import statistics
import threading
import time
import unicodedata
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from vecdb_client.aio import AsyncClient, AsyncCollection
from vecdb_client.cache_key import (
    MODEL_MAX_TOKENS,
    KeyParts,
    Preprocessor,
    Prompt,
    context_key,
    estimate_tokens,
    last_content,
    token_counter,
)
from vecdb_client.cache_verify import Verifier, guard
from vecdb_client.client import Client, Collection
from vecdb_client.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    InvalidMetadataError,
    LimitExceededError,
)
from vecdb_client.types import Hit, Record

__all__ = [
    "DEFAULT_CANDIDATES",
    "DEFAULT_THRESHOLD",
    "AsyncSemanticCache",
    "CacheHit",
    "CacheStats",
    "SemanticCache",
    "entry_id",
]

log = logging.getLogger("vecdb_client.cache")

LATENCY_WINDOW = 10_000

#: Chosen on MRPC's training split with the default ``guard`` (benchmarks/cache_threshold.py): the lowest
#: threshold from which hit precision stays >= 0.95 on the tuning part; checked on a held-out part.
DEFAULT_THRESHOLD = 0.94
#: How many candidates at or above the threshold the verifier may look at, best first.
DEFAULT_CANDIDATES = 3
#: The server's default ``limits.max_metadata_bytes``.
DEFAULT_MAX_METADATA_BYTES = 64 << 10
#: The ``ctx`` prefix of entries cached for exact repeats only (too long to embed): no search matches it.
EXACT_ONLY = "x:"


def normalize(prompt: str) -> str:
    """The prompt the exact path compares: Unicode NFKC, case folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


def entry_id(prompt: str, scope: str | None, ctx: str = "") -> str:
    """The id of a cache entry: a hash of the scope, the exact context key and the normalized text."""
    raw = (
        f"{scope or ''}\x00{normalize(prompt)}"
        if not ctx
        else f"{scope or ''}\x00{ctx}\x00{normalize(prompt)}"
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached response and how it was found (``exact``, or by ``similarity`` to ``prompt``, the cached
    entry's embedded text)."""

    response: str
    similarity: float
    exact: bool
    prompt: str | None


@dataclass
class CacheStats:
    """Counters since the cache object was made (or ``reset()``). Thread-safe to update.

    Besides hits and misses: ``exact_only`` lookups (text too long to embed: exact path only),
    ``rejected`` candidates (above the threshold, refused by the verifier), ``lookup_errors`` (fail-open
    misses), ``stored`` entries, ``store_errors`` and ``skipped`` puts by reason (``too_large``, ``error``,
    ``not_text``, ``empty``), ``response_in_text`` (responses too large for metadata) and ``bypassed``
    calls (``wrap(..., bypass_temperature=True)`` with temperature > 0).
    """

    hits: int = 0
    misses: int = 0
    exact_hits: int = 0
    similarity_sum: float = 0.0
    exact_only: int = 0
    rejected: int = 0
    lookup_errors: int = 0
    stored: int = 0
    store_errors: int = 0
    response_in_text: int = 0
    bypassed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    #: Latencies of the most recent lookups (the last ``LATENCY_WINDOW``), for the percentiles.
    lookup_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    lookup_ms_total: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    _COUNTERS = (
        "hits", "misses", "exact_hits", "exact_only", "rejected", "lookup_errors", "stored",
        "store_errors", "response_in_text", "bypassed",
    )  # fmt: skip

    def reset(self) -> None:
        with self._lock:
            for name in self._COUNTERS:
                setattr(self, name, 0)
            self.similarity_sum = 0.0
            self.skipped.clear()
            self.lookup_ms.clear()
            self.lookup_ms_total = 0.0

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def skip(self, reason: str) -> None:
        with self._lock:
            self.skipped[reason] += 1

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
            "exact_only": self.exact_only,
            "rejected": self.rejected,
            "lookup_errors": self.lookup_errors,
            "stored": self.stored,
            "store_errors": self.store_errors,
            "skipped": dict(self.skipped),
            "response_in_text": self.response_in_text,
            "bypassed": self.bypassed,
        }


Vector = Sequence[float] | np.ndarray
_INCLUDE_HIT = ("text", "metadata")


def _query(text: str, vector: Vector | None) -> dict[str, Any]:
    return {"texts": text} if vector is None else {"vectors": vector}


def _json_size(obj: Any) -> int:
    return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())


def _response(rec: Record | Hit) -> str:
    md = rec.metadata or {}
    return str(md["response"]) if "response" in md else (rec.text or "")


def _cached_text(rec: Record | Hit) -> str | None:
    md = rec.metadata or {}
    return str(md["prompt"]) if "prompt" in md else rec.text


def _sampling(kwargs: Mapping[str, Any]) -> bool:
    t = kwargs.get("temperature")
    return isinstance(t, int | float) and not isinstance(t, bool) and t > 0


@dataclass(frozen=True, slots=True)
class _Key:
    text: str  # the shaped text: the exact path compares it
    embed: str  # what is embedded (``text`` unless the caller gave ``text=``)
    scope: str
    ctx: str
    id: str
    exact_only: bool


@dataclass(slots=True)
class _Entry:
    upsert: dict[str, Any]
    needs_vector: bool  # the record's text is the response: the prompt must be embedded client-side


class _Base:
    def __init__(
        self,
        collection: str,
        threshold: float,
        ttl: float | None,
        max_entries: int | None,
        embedding_model: str | None,
        preprocess: Preprocessor,
        verify: Verifier | None,
        candidates: int,
        max_tokens: int,
        count_tokens: Callable[[str], int] | None,
        fail_open: bool,
        max_metadata_bytes: int,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if ttl is not None and not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl must be a positive, finite number of seconds, got {ttl!r}")
        for what, value in (
            ("max_entries", max_entries),
            ("candidates", candidates),
            ("max_tokens", max_tokens),
            ("max_metadata_bytes", max_metadata_bytes),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
        self.collection_name = collection
        self.threshold = threshold
        self.ttl = ttl
        self.max_entries = max_entries
        self.embedding_model = embedding_model
        self.preprocess = preprocess
        self.verify = verify
        self.candidates = candidates
        self.max_tokens = max_tokens
        if count_tokens is None:
            # The packaged tokenizer is all-MiniLM-L6-v2's: right for the server's default model only.
            count_tokens, self.token_counting = token_counter(model_tokenizer=embedding_model is None)
        else:
            self.token_counting = "custom"
        self.count_tokens = count_tokens
        self.fail_open = fail_open
        self.max_metadata_bytes = max_metadata_bytes
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

    def _key(
        self, prompt: Prompt | KeyParts, scope: str | None, params: Mapping[str, Any] | None, text: str | None
    ) -> _Key:
        if not isinstance(prompt, str | KeyParts | Sequence):
            raise TypeError(
                f"a prompt is a string or a sequence of chat messages, not {type(prompt).__name__}"
            )
        parts = prompt if isinstance(prompt, KeyParts) else self.preprocess(prompt)
        if not isinstance(parts.text, str) or not isinstance(parts.context, str):
            raise TypeError("the pre-processor must give string text and context")
        if text is not None and not isinstance(text, str):
            raise TypeError("text must be a string")
        ctx = context_key(parts.context, params)
        embed = parts.text if text is None else text
        # Every word piece covers at least one character: a text of at most max_tokens - 2 characters
        # ([CLS] and [SEP] aside) fits whatever the tokenizer, and needs no count (~50 us saved per lookup).
        # The estimate never counts fewer pieces than the tokenizer (on MRPC): when it fits, the text fits.
        long = (
            len(embed) > self.max_tokens - 2
            and estimate_tokens(embed) > self.max_tokens
            and self.count_tokens(embed) > self.max_tokens
        )
        return _Key(parts.text, embed, scope or "", ctx, entry_id(parts.text, scope, ctx), long)

    @staticmethod
    def _filter(key: _Key) -> dict[str, Any]:
        return {"scope": key.scope, "ctx": key.ctx}

    @staticmethod
    def _exact(records: list[Record], key: _Key) -> CacheHit | None:
        for rec in records:
            md = rec.metadata or {}
            if md.get("scope") == key.scope and md.get("ctx", "") in (key.ctx, EXACT_ONLY + key.ctx):
                return CacheHit(_response(rec), 1.0, True, _cached_text(rec))
        return None

    def _pick(self, hits: list[Hit], key: _Key) -> CacheHit | None:
        """The first candidate at or above the threshold that is the same entry or that the verifier
        accepts."""
        for h in hits:
            if h.score < self.threshold:
                break
            cached = _cached_text(h)
            if h.id == key.id:
                return CacheHit(_response(h), h.score, True, cached)
            if self.verify is None or self.verify(key.embed, cached or ""):
                return CacheHit(_response(h), h.score, False, cached)
            self.stats.count("rejected")
        return None

    def _entry(self, key: _Key, response: str, vector: Vector | None) -> _Entry | None:
        ctx = (EXACT_ONLY if key.exact_only else "") + key.ctx
        metadata: dict[str, Any] = {"scope": key.scope, "ctx": ctx, "response": response}
        text, needs_vector = key.embed, False
        if _json_size(metadata) > self.max_metadata_bytes:
            metadata = {"scope": key.scope, "ctx": ctx, "prompt": key.embed}
            if _json_size(metadata) > self.max_metadata_bytes:
                log.warning("semantic cache: prompt and response too large to cache; not stored")
                self.stats.skip("too_large")
                return None
            text, needs_vector = response, vector is None and not key.exact_only
            self.stats.count("response_in_text")
        upsert = {
            "ids": [key.id],
            "texts": [text],
            "metadatas": [metadata],
            "ttl": self.ttl,
            "vectors": None if vector is None or key.exact_only else [vector],
        }
        return _Entry(upsert, needs_vector)

    def _check_put(self, key: _Key, response: Any, text: str | None) -> None:
        if not isinstance(response, str):
            raise TypeError("the response must be a string")
        if not key.text.strip() or (text is not None and not text.strip()):
            raise ValueError("an empty prompt cannot be cached")

    def _lookup_failed(self, exc: Exception) -> None:
        if not self.fail_open:
            raise exc
        log.warning("semantic cache lookup failed (a miss): %s: %s", type(exc).__name__, exc)
        self.stats.count("lookup_errors")

    def _store_failed(self, exc: Exception) -> None:
        if not self.fail_open:
            raise exc
        if isinstance(exc, LimitExceededError | InvalidMetadataError):
            log.warning("semantic cache: entry refused by the server, not stored: %s", exc)
            self.stats.skip("too_large")
            return
        log.warning("semantic cache store failed (skipped): %s: %s", type(exc).__name__, exc)
        self.stats.count("store_errors")
        self.stats.skip("error")

    def _wrap_params(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], ignore: frozenset[str]
    ) -> dict[str, Any] | None:
        kept = {k: v for k, v in kwargs.items() if k not in ignore}
        if not args and not kept:
            return None
        return {"args": list(args), "kwargs": kept}

    def _answer_cacheable(self, prompt: Prompt, response: Any) -> bool:
        if not isinstance(response, str):
            self.stats.skip("not_text")
            return False
        try:
            empty = not self.preprocess(prompt).text.strip()
        except TypeError:
            empty = True
        if empty:
            self.stats.skip("empty")
        return not empty


#: What ``clear()`` deletes: every cache entry (they all have a scope), not the collection itself, so
#: other cache objects on it keep working and its configuration stays.
_ALL_ENTRIES = {"scope": {"$exists": True}}


def _clear_filter(scope: str | None) -> dict[str, Any]:
    return _ALL_ENTRIES if scope is None else {"scope": scope}


class SemanticCache(_Base):
    """A semantic cache over ``client`` (a ``vecdb_client.Client``), in collection ``collection``.

    The collection is made on first use (with the server's default model unless ``embedding_model``);
    an existing one is used as it is. ``get`` / ``lookup`` read, ``put`` writes, ``wrap`` makes any
    LLM callable cached (cache-aside), ``clear`` empties a scope or everything.

    ``preprocess`` shapes prompts into embedded text and exact context (``cache_key.last_content``,
    ``all_content``, or your own ``Callable[[prompt], KeyParts]``); ``verify`` checks candidates
    (``cache_verify.guard`` by default; None: none); ``candidates`` how many it may look at;
    ``max_tokens`` the model's window (texts longer are cached for exact repeats only) and
    ``count_tokens`` how to count it (default: the packaged tokenizer, else an estimate: see
    ``token_counting``); ``fail_open`` (default True) turns cache errors into misses and skipped stores;
    ``max_metadata_bytes`` the server's metadata limit.
    """

    def __init__(
        self,
        client: Client,
        collection: str = "llm_cache",
        threshold: float = DEFAULT_THRESHOLD,
        ttl: float | None = None,
        max_entries: int | None = None,
        embedding_model: str | None = None,
        *,
        preprocess: Preprocessor = last_content,
        verify: Verifier | None = guard,
        candidates: int = DEFAULT_CANDIDATES,
        max_tokens: int = MODEL_MAX_TOKENS,
        count_tokens: Callable[[str], int] | None = None,
        fail_open: bool = True,
        max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
    ) -> None:
        super().__init__(
            collection, threshold, ttl, max_entries, embedding_model, preprocess, verify, candidates,
            max_tokens, count_tokens, fail_open, max_metadata_bytes,
        )  # fmt: skip
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
        self,
        prompt: Prompt | KeyParts,
        scope: str | None = None,
        vector: Vector | None = None,
        text: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> CacheHit | None:
        """The cached entry for ``prompt`` (exact, else the best verified candidate at or above
        ``threshold``), or None.

        ``prompt``: a string, chat messages, or ``KeyParts``; ``params``: what else must be equal (model,
        temperature...); ``text``: embed this instead of the shaped text; ``vector``: its embedding, when
        the caller has it (then the lookup is one search, which finds an exact repeat too). An empty
        prompt is a miss; an error is a miss too (counted in ``stats.lookup_errors``) unless
        ``fail_open=False``.
        """
        started = time.perf_counter()
        key = self._key(prompt, scope, params, text)
        hit = None
        if key.text.strip():
            if key.exact_only:
                self.stats.count("exact_only")
            try:
                col = self.collection
                if vector is None or key.exact_only:  # an exact repeat: one point read, no embedding
                    hit = self._exact(col.get([key.id], include=_INCLUDE_HIT), key)
                if hit is None and not key.exact_only:
                    hits = col.search(
                        **_query(key.embed, vector),
                        k=self.candidates,
                        filter=self._filter(key),
                        include=_INCLUDE_HIT,
                        score_threshold=self.threshold,
                    )
                    hit = self._pick(hits[0], key)
            except CollectionNotFoundError:
                hit = None
            except Exception as exc:
                self._lookup_failed(exc)
                hit = None
        self.stats.record(hit, (time.perf_counter() - started) * 1000)
        return hit

    def get(
        self, prompt: Prompt | KeyParts, scope: str | None = None, params: Mapping[str, Any] | None = None
    ) -> str | None:
        """The cached response for ``prompt`` in ``scope``, or None (GPTCache's ``get``)."""
        hit = self.lookup(prompt, scope, params=params)
        return None if hit is None else hit.response

    def put(
        self,
        prompt: Prompt | KeyParts,
        response: str,
        scope: str | None = None,
        vector: Vector | None = None,
        text: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> bool:
        """Cache ``response`` for ``prompt`` in ``scope`` (replacing the same key's entry); ``vector``,
        ``text`` and ``params`` as in ``lookup``. Returns whether it was stored: an entry too large, or an
        error (fail-open), is skipped and counted in ``stats``. An empty prompt is a ValueError, a
        non-string response a TypeError."""
        key = self._key(prompt, scope, params, text)
        self._check_put(key, response, text)
        entry = self._entry(key, response, vector)
        if entry is None:
            return False
        try:
            self._ensure()
            if entry.needs_vector:
                vectors, _ = self.client.embed([key.embed], collection=self.collection_name)
                entry.upsert["vectors"] = [vectors[0]]
            try:
                self.collection.upsert(**entry.upsert)
            except CollectionNotFoundError:  # dropped since this object made it: make it again
                self._ready = False
                self._ensure()
                self.collection.upsert(**entry.upsert)
        except Exception as exc:
            self._store_failed(exc)
            return False
        self.stats.count("stored")
        return True

    def clear(self, scope: str | None = None) -> int:
        """Delete the entries of ``scope``, or every entry when None; returns how many."""
        try:
            return self.collection.delete(filter=_clear_filter(scope))
        except CollectionNotFoundError:
            return 0

    def wrap(
        self,
        llm: Callable[..., Any],
        scope: str | None = None,
        *,
        ignore_kwargs: Sequence[str] = (),
        bypass_temperature: bool = False,
    ) -> Callable[..., Any]:
        """``llm`` behind the cache: a hit returns the cached response, a miss calls ``llm`` and caches.

        The wrapped function is called as ``llm(prompt, *args, **kwargs)``; the extra arguments are part
        of the exact key (except the keywords named in ``ignore_kwargs``: timeouts, callbacks). With
        ``bypass_temperature``, a call with ``temperature > 0`` skips the cache. The LLM's answer is
        always returned; a non-string answer is returned but not cached.
        """
        ignore = frozenset(ignore_kwargs)

        def cached(prompt: Prompt, *args: Any, **kwargs: Any) -> Any:
            if bypass_temperature and _sampling(kwargs):
                self.stats.count("bypassed")
                return llm(prompt, *args, **kwargs)
            params = self._wrap_params(args, kwargs, ignore)
            found = self.get(prompt, scope, params=params)
            if found is not None:
                return found
            response = llm(prompt, *args, **kwargs)
            if self._answer_cacheable(prompt, response):
                self.put(prompt, response, scope, params=params)
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
        *,
        preprocess: Preprocessor = last_content,
        verify: Verifier | None = guard,
        candidates: int = DEFAULT_CANDIDATES,
        max_tokens: int = MODEL_MAX_TOKENS,
        count_tokens: Callable[[str], int] | None = None,
        fail_open: bool = True,
        max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
    ) -> None:
        super().__init__(
            collection, threshold, ttl, max_entries, embedding_model, preprocess, verify, candidates,
            max_tokens, count_tokens, fail_open, max_metadata_bytes,
        )  # fmt: skip
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
        self,
        prompt: Prompt | KeyParts,
        scope: str | None = None,
        vector: Vector | None = None,
        text: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> CacheHit | None:
        """See ``SemanticCache.lookup``."""
        started = time.perf_counter()
        key = self._key(prompt, scope, params, text)
        hit = None
        if key.text.strip():
            if key.exact_only:
                self.stats.count("exact_only")
            try:
                col = self.collection
                if vector is None or key.exact_only:
                    hit = self._exact(await col.get([key.id], include=_INCLUDE_HIT), key)
                if hit is None and not key.exact_only:
                    hits = await col.search(
                        **_query(key.embed, vector),
                        k=self.candidates,
                        filter=self._filter(key),
                        include=_INCLUDE_HIT,
                        score_threshold=self.threshold,
                    )
                    hit = self._pick(hits[0], key)
            except CollectionNotFoundError:
                hit = None
            except Exception as exc:
                self._lookup_failed(exc)
                hit = None
        self.stats.record(hit, (time.perf_counter() - started) * 1000)
        return hit

    async def get(
        self, prompt: Prompt | KeyParts, scope: str | None = None, params: Mapping[str, Any] | None = None
    ) -> str | None:
        """See ``SemanticCache.get``."""
        hit = await self.lookup(prompt, scope, params=params)
        return None if hit is None else hit.response

    async def put(
        self,
        prompt: Prompt | KeyParts,
        response: str,
        scope: str | None = None,
        vector: Vector | None = None,
        text: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> bool:
        """See ``SemanticCache.put``."""
        key = self._key(prompt, scope, params, text)
        self._check_put(key, response, text)
        entry = self._entry(key, response, vector)
        if entry is None:
            return False
        try:
            await self._ensure()
            if entry.needs_vector:
                vectors, _ = await self.client.embed([key.embed], collection=self.collection_name)
                entry.upsert["vectors"] = [vectors[0]]
            try:
                await self.collection.upsert(**entry.upsert)
            except CollectionNotFoundError:
                self._ready = False
                await self._ensure()
                await self.collection.upsert(**entry.upsert)
        except Exception as exc:
            self._store_failed(exc)
            return False
        self.stats.count("stored")
        return True

    async def clear(self, scope: str | None = None) -> int:
        """See ``SemanticCache.clear``."""
        try:
            return await self.collection.delete(filter=_clear_filter(scope))
        except CollectionNotFoundError:
            return 0

    def wrap(
        self,
        llm: Callable[..., Awaitable[Any]],
        scope: str | None = None,
        *,
        ignore_kwargs: Sequence[str] = (),
        bypass_temperature: bool = False,
    ) -> Callable[..., Awaitable[Any]]:
        """See ``SemanticCache.wrap``; ``llm`` is a coroutine function."""
        ignore = frozenset(ignore_kwargs)

        async def cached(prompt: Prompt, *args: Any, **kwargs: Any) -> Any:
            if bypass_temperature and _sampling(kwargs):
                self.stats.count("bypassed")
                return await llm(prompt, *args, **kwargs)
            params = self._wrap_params(args, kwargs, ignore)
            found = await self.get(prompt, scope, params=params)
            if found is not None:
                return found
            response = await llm(prompt, *args, **kwargs)
            if self._answer_cacheable(prompt, response):
                await self.put(prompt, response, scope, params=params)
            return response

        return cached
