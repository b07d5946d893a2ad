"""``SemanticCache`` / ``AsyncSemanticCache`` (``vecdb_client.cache``) against a real ``vecdb serve``
subprocess and its real embedding model (all-MiniLM-L6-v2), over REST and over gRPC. Pinned:

- Lookup: the exact path (same scope, prompt equal after NFKC, case folding and whitespace collapsing) is a
  hit with similarity 1.0; a paraphrase at or above the threshold (measured here with ``client.embed``
  first, so that the pairs are what the test says they are) is a semantic hit carrying the server's cosine
  similarity and the cached prompt; a related question below the default threshold and an unrelated one are
  misses; a lookup before the collection exists is a miss and creates nothing.
- Scopes: a lookup never crosses scopes (exact or semantic), ``None`` and ``""`` are the default scope;
  ``clear(scope)`` deletes that scope only and returns how many; ``clear()`` drops everything (0 when there
  is nothing) and the cache stays usable.
- ``ttl``: entries stop being returned after it, on both the exact and the semantic path.
- ``max_entries``: the collection is capped with LRU eviction; an exact hit and a semantic hit both count as
  use, so the least recently used entry is the one evicted and the count stays at ``max_entries``; a miss
  does not count as use (this one fails today: see ``test_lru_a_miss_is_not_use``).
- ``wrap``: the LLM is called once per distinct question (paraphrases and re-cased prompts included), per
  scope; the async ``wrap`` likewise.
- ``stats``: hits, misses, exact hits, lookups, hit rate, mean similarity (exact = 1.0), one latency per
  lookup and their median, ``to_dict``; zeros on a fresh cache; ``put`` counts nothing.
- ``vector=``: a lookup with a precomputed vector searches by it (the prompt still keys the exact path); a
  put with a vector stores that vector.
- Arguments: threshold outside (0, 1], ttl <= 0 (or NaN), max_entries < 1 are ``ValueError`` at
  construction, sync and async; a non-string prompt or response is ``TypeError`` before anything is sent.
- The async cache gives the same transcript (hits, similarities, clears, stats) as the sync one.
- Two cache objects on one collection: a ``clear()`` by one does not break the other's next ``put`` (fails
  today: see ``test_put_after_another_cache_cleared``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from clientkit import assert_congruent

from vecdb_client import AsyncClient, Client
from vecdb_client.cache import (
    DEFAULT_THRESHOLD,
    AsyncSemanticCache,
    CacheHit,
    SemanticCache,
    entry_id,
)
from vecdb_client.errors import CollectionNotFoundError

PROMPT = "How do I reset my password?"
ANSWER = "Settings > Security > Reset password."
PARAPHRASE = "What is the way to reset my password?"  # ~0.97 to PROMPT
RELATED = "How do I reset my email password?"  # ~0.87 to PROMPT: related, but another question
UNRELATED = "What is the capital of France?"  # ~0.07 to PROMPT
FRANCE_PARAPHRASE = "What's the capital city of France?"  # ~0.96 to UNRELATED
# Four questions on unrelated topics (pairwise similarity < 0.3).
TOPICS = [
    "How do I reset my password?",
    "What is the capital of France?",
    "Tell me a joke about cats.",
    "How many legs does a spider have?",
]
EXPIRY_DEADLINE_S = 10.0


def similarity(client: Client, a: str, b: str) -> float:
    """The cosine similarity of ``a`` and ``b`` by the server's default model."""
    vectors, _ = client.embed([a, b])
    return float(np.dot(vectors[0], vectors[1]) / (np.linalg.norm(vectors[0]) * np.linalg.norm(vectors[1])))


def vector_of(client: Client, text: str) -> np.ndarray:
    vectors, _ = client.embed([text])
    return vectors[0]


def drop(client: Client, name: str) -> None:
    with contextlib.suppress(CollectionNotFoundError):
        client.drop_collection(name)


@pytest.fixture
def name(client: Client, unique_name: str) -> Iterator[str]:
    """A fresh collection name for the test's cache, dropped at the end."""
    yield unique_name
    drop(client, unique_name)


@pytest.fixture
def sims(client: Client) -> dict[str, float]:
    """The real similarities of the pairs the tests use, checked against the threshold as they claim."""
    got = {
        "paraphrase": similarity(client, PROMPT, PARAPHRASE),
        "related": similarity(client, PROMPT, RELATED),
        "unrelated": similarity(client, PROMPT, UNRELATED),
        "france": similarity(client, UNRELATED, FRANCE_PARAPHRASE),
    }
    assert got["paraphrase"] >= DEFAULT_THRESHOLD, got
    assert got["france"] >= DEFAULT_THRESHOLD, got
    assert 0.8 <= got["related"] < DEFAULT_THRESHOLD, got
    assert got["unrelated"] < 0.5, got
    return got


def collections(client: Client) -> list[str]:
    return client.list_collections()


# ---- lookup: exact, semantic, miss ----------------------------------------------------------------------


def test_exact_semantic_and_miss(client: Client, name: str, sims: dict[str, float]) -> None:
    cache = SemanticCache(client, name)
    assert cache.threshold == DEFAULT_THRESHOLD == 0.94
    assert cache.lookup(PROMPT) is None, "a lookup before any put is a miss"
    assert name not in collections(client), "a lookup must not create the collection"

    cache.put(PROMPT, ANSWER)
    assert cache.lookup(PROMPT) == CacheHit(ANSWER, 1.0, True, PROMPT)
    assert cache.get(PROMPT) == ANSWER
    fullwidth = "\uff28\uff2f\uff37 do I reset my password?"  # fullwidth "HOW": equal after NFKC
    for variant in ("  how DO i\treset   my PASSWORD?\n", fullwidth):
        hit = cache.lookup(variant)
        assert hit is not None, variant
        assert hit.exact, f"{variant!r} normalizes to the cached prompt: exact path"
        assert (hit.response, hit.similarity, hit.prompt) == (ANSWER, 1.0, PROMPT)

    hit = cache.lookup(PARAPHRASE)
    assert hit is not None, f"paraphrase at similarity {sims['paraphrase']:.4f} must hit"
    assert not hit.exact
    assert hit.response == ANSWER
    assert hit.prompt == PROMPT, "a semantic hit names the cached prompt it matched"
    assert hit.similarity == pytest.approx(sims["paraphrase"], abs=1e-3)
    assert cache.get(PARAPHRASE) == ANSWER

    assert cache.lookup(UNRELATED) is None
    assert cache.lookup(RELATED) is None, f"related at {sims['related']:.4f} must miss"
    assert cache.get(RELATED) is None

    # A lower threshold on the same collection turns the related question into a hit.
    loose = SemanticCache(client, name, threshold=sims["related"] - 0.01)
    loose_hit = loose.lookup(RELATED)
    assert loose_hit is not None
    assert loose_hit.similarity == pytest.approx(sims["related"], abs=1e-3)

    # put of the same normalized prompt replaces the entry (one record, latest response and prompt).
    cache.put(PROMPT.upper(), "new answer")
    assert cache.collection.count() == 1
    assert cache.lookup(PROMPT) == CacheHit("new answer", 1.0, True, PROMPT.upper())


def test_collection_is_made_with_the_cache_settings(client: Client, name: str) -> None:
    cache = SemanticCache(client, name, max_entries=7)
    cache.put(PROMPT, ANSWER)
    info = client.collection(name).info()
    assert info.metric == "cosine"
    assert info.dim == 384
    assert info.embedding is not None
    assert info.capacity == {"max_records": 7, "eviction": "lru"}

    plain = f"{name}-p"
    try:
        SemanticCache(client, plain).put(PROMPT, ANSWER)
        assert client.collection(plain).info().capacity is None
    finally:
        drop(client, plain)


# ---- scopes ---------------------------------------------------------------------------------------------


def test_scope_isolation_and_clear(client: Client, name: str, sims: dict[str, float]) -> None:
    cache = SemanticCache(client, name)
    cache.put(PROMPT, "answer A", scope="A")
    assert cache.get(PROMPT, scope="A") == "answer A"
    assert cache.lookup(PROMPT, scope="B") is None, "exact path must not cross scopes"
    assert cache.lookup(PROMPT) is None, "the default scope is a scope of its own"
    assert cache.lookup(PARAPHRASE, scope="B") is None, "semantic path must not cross scopes"
    assert cache.get(PARAPHRASE, scope="A") == "answer A"

    cache.put(PROMPT, "answer B", scope="B")
    cache.put(PROMPT, "answer default")
    cache.put(UNRELATED, "Paris", scope="A")
    assert cache.collection.count() == 4
    assert cache.get(PROMPT, scope="A") == "answer A"
    assert cache.get(PROMPT, scope="B") == "answer B"
    assert cache.get(PROMPT) == "answer default"
    assert cache.get(PROMPT, scope="") == "answer default", "scope '' is the default scope"
    assert cache.get(PARAPHRASE) == "answer default"
    assert cache.get(FRANCE_PARAPHRASE, scope="A") == "Paris"
    assert cache.get(FRANCE_PARAPHRASE, scope="B") is None

    assert cache.clear("A") == 2
    assert cache.get(PROMPT, scope="A") is None
    assert cache.get(UNRELATED, scope="A") is None
    assert cache.get(PROMPT, scope="B") == "answer B"
    assert cache.get(PROMPT) == "answer default"
    assert cache.clear("A") == 0, "clearing an empty scope deletes nothing"

    assert cache.clear() == 2
    assert name in collections(client), "clear() deletes the entries, not the collection"
    assert cache.collection.count() == 0
    assert cache.get(PROMPT, scope="B") is None
    assert cache.get(PROMPT) is None
    assert cache.clear() == 0, "clear() of an empty cache is 0"
    assert cache.clear("B") == 0

    cache.put(PROMPT, "again", scope="B")
    assert cache.get(PARAPHRASE, scope="B") == "again", "the cache stays usable after clear()"
    assert cache.get(PROMPT) is None


# ---- ttl ------------------------------------------------------------------------------------------------


def test_ttl_expires_exact_and_semantic(client: Client, name: str, sims: dict[str, float]) -> None:
    cache = SemanticCache(client, name, ttl=0.5)
    cache.put(PROMPT, ANSWER)
    first = cache.lookup(PROMPT)
    assert first is not None and first.exact
    second = cache.lookup(PARAPHRASE)
    assert second is not None and not second.exact

    deadline = time.monotonic() + EXPIRY_DEADLINE_S
    while cache.lookup(PROMPT) is not None:
        assert time.monotonic() < deadline, f"entry with ttl=0.5 still returned after {EXPIRY_DEADLINE_S}s"
        time.sleep(0.05)
    assert cache.lookup(PARAPHRASE) is None, "an expired entry must not be a semantic hit either"
    assert cache.collection.count() == 0

    # A fresh put is live again, and expires again; the semantic path this time.
    cache.put(PROMPT, "fresh")
    assert cache.get(PARAPHRASE) == "fresh"
    deadline = time.monotonic() + EXPIRY_DEADLINE_S
    while cache.lookup(PARAPHRASE) is not None:
        assert time.monotonic() < deadline, f"entry with ttl=0.5 still returned after {EXPIRY_DEADLINE_S}s"
        time.sleep(0.05)
    assert cache.lookup(PROMPT) is None


# ---- max_entries (LRU) ----------------------------------------------------------------------------------


def present(client: Client, name: str, prompts: list[str]) -> list[str]:
    """Which of ``prompts`` (default scope) are cached (a get, which itself counts as use)."""
    records = client.collection(name).get([entry_id(p, None) for p in prompts], include=("text",))
    return [r.text or "" for r in records]


def test_lru_evicts_least_recently_used(client: Client, name: str, sims: dict[str, float]) -> None:
    cache = SemanticCache(client, name, max_entries=3)
    for q in TOPICS[:3]:
        cache.put(q, q.upper())
    first = cache.lookup(TOPICS[0])  # exact hit: use of TOPICS[0]
    assert first is not None and first.exact
    second = cache.lookup(FRANCE_PARAPHRASE)  # semantic hit: use of TOPICS[1]
    assert second is not None and not second.exact and second.prompt == TOPICS[1]
    cache.put(TOPICS[3], "eight")  # overflows: TOPICS[2] is the least recently used
    assert cache.collection.count() == 3
    assert present(client, name, TOPICS) == [TOPICS[0], TOPICS[1], TOPICS[3]]
    assert cache.lookup(TOPICS[2]) is None

    # Keep going: every put beyond capacity evicts exactly one, the count stays at max_entries.
    extra = ["What is the boiling point of water?", "Who wrote Hamlet?"]
    for q in extra:
        cache.put(q, "x")
        assert cache.collection.count() == 3
    assert cache.get("Who wrote Hamlet?") == "x", "the newest entry is never the one evicted"


def test_lru_a_miss_is_not_use(client: Client, name: str) -> None:
    """A hit counts as use, a miss does not: the lookup's search passes the threshold to the server, so the
    nearest entry below it is not returned and not touched."""
    near_miss = "How do I reset my router?"  # nearest cached prompt: TOPICS[0], similarity ~0.53 (a miss)
    assert similarity(client, near_miss, TOPICS[0]) < DEFAULT_THRESHOLD
    cache = SemanticCache(client, name, max_entries=3)
    for q in TOPICS[:3]:
        cache.put(q, q.upper())
    assert cache.lookup(near_miss) is None
    cache.put(TOPICS[3], "eight")  # TOPICS[0] was written first and never hit: it is the LRU entry
    kept = present(client, name, TOPICS)
    assert kept == [TOPICS[1], TOPICS[2], TOPICS[3]], (
        f"a semantic MISS refreshed the LRU clock of the nearest entry: kept {kept}"
    )


# ---- wrap -----------------------------------------------------------------------------------------------


def counting_llm() -> tuple[Callable[[str], str], list[str]]:
    calls: list[str] = []

    def llm(prompt: str) -> str:
        calls.append(prompt)
        return f"answer #{len(calls)} to {prompt}"

    return llm, calls


def test_wrap_calls_llm_once_per_question(client: Client, name: str, sims: dict[str, float]) -> None:
    cache = SemanticCache(client, name)
    llm, calls = counting_llm()
    cached = cache.wrap(llm)
    first = cached(PROMPT)
    assert calls == [PROMPT]
    assert cached(PROMPT) == first
    assert cached(PROMPT.lower() + "  ") == first
    assert cached(PARAPHRASE) == first
    assert calls == [PROMPT], "cached questions must not reach the LLM"
    france = cached(UNRELATED)
    assert calls == [PROMPT, UNRELATED]
    assert cached(FRANCE_PARAPHRASE) == france
    assert cached(RELATED) != first, "a different question gets its own answer"
    assert calls == [PROMPT, UNRELATED, RELATED]

    other = cache.wrap(llm, scope="other-model")
    assert other(PROMPT) != first, "another scope does not share entries"
    assert other(PARAPHRASE) == other(PROMPT)
    assert calls == [PROMPT, UNRELATED, RELATED, PROMPT]
    assert cache.stats.misses == 4
    assert cache.stats.hits == 6


async def test_async_wrap(aclient: AsyncClient, client: Client, name: str, sims: dict[str, float]) -> None:
    cache = AsyncSemanticCache(aclient, name)
    calls: list[str] = []

    async def llm(prompt: str) -> str:
        calls.append(prompt)
        await asyncio.sleep(0)
        return f"answer #{len(calls)}"

    cached = cache.wrap(llm)
    assert await cached(PROMPT) == "answer #1"
    assert await cached(PROMPT) == "answer #1"
    assert await cached(PARAPHRASE) == "answer #1"
    assert await cached(UNRELATED) == "answer #2"
    assert await cached(FRANCE_PARAPHRASE) == "answer #2"
    assert calls == [PROMPT, UNRELATED]
    other = cache.wrap(llm, scope="s2")
    assert await other(PROMPT) == "answer #3"
    assert await other(PARAPHRASE) == "answer #3"
    assert calls == [PROMPT, UNRELATED, PROMPT]
    assert (cache.stats.hits, cache.stats.misses, cache.stats.exact_hits) == (4, 3, 1)


# ---- stats ----------------------------------------------------------------------------------------------


def test_stats(client: Client, name: str, sims: dict[str, float]) -> None:
    cache = SemanticCache(client, name)
    fresh = cache.stats
    assert (fresh.hits, fresh.misses, fresh.exact_hits, fresh.lookups) == (0, 0, 0, 0)
    assert (fresh.hit_rate, fresh.mean_similarity, fresh.lookup_p50_ms) == (0.0, 0.0, 0.0)
    assert fresh.to_dict()["lookup_mean_ms"] == 0.0

    assert cache.get(PROMPT) is None  # miss: no collection yet
    cache.put(PROMPT, ANSWER)
    cache.put(UNRELATED, "Paris")
    assert cache.stats.lookups == 1, "put counts no lookup"
    assert cache.get(PROMPT) == ANSWER  # exact
    assert cache.get(PARAPHRASE) == ANSWER  # semantic
    assert cache.get(FRANCE_PARAPHRASE) == "Paris"  # semantic
    assert cache.get(RELATED) is None  # miss
    assert cache.get("Tell me a joke about cats.") is None  # miss

    s = cache.stats
    assert (s.hits, s.misses, s.exact_hits, s.lookups) == (3, 3, 1, 6)
    assert s.hit_rate == pytest.approx(0.5)
    expected_mean = (1.0 + sims["paraphrase"] + sims["france"]) / 3
    assert s.mean_similarity == pytest.approx(expected_mean, abs=1e-3)
    assert len(s.lookup_ms) == 6
    assert all(ms > 0 for ms in s.lookup_ms)
    assert s.lookup_p50_ms == pytest.approx(float(np.median(s.lookup_ms)))
    assert min(s.lookup_ms) <= s.lookup_p50_ms <= max(s.lookup_ms)
    d = s.to_dict()
    assert d == {
        "lookups": 6,
        "hits": 3,
        "misses": 3,
        "exact_hits": 1,
        "hit_rate": s.hit_rate,
        "mean_similarity": s.mean_similarity,
        "lookup_p50_ms": s.lookup_p50_ms,
        "lookup_mean_ms": pytest.approx(sum(s.lookup_ms) / 6),
        "exact_only": 0,
        "rejected": 0,
        "lookup_errors": 0,
        "stored": 2,
        "store_errors": 0,
        "skipped": {},
        "response_in_text": 0,
        "bypassed": 0,
    }
    # Each cache object counts its own lookups.
    assert SemanticCache(client, name).stats.lookups == 0


# ---- vector= --------------------------------------------------------------------------------------------


def test_lookup_and_put_with_vector(client: Client, name: str, sims: dict[str, float]) -> None:
    cache = SemanticCache(client, name)
    cache.put(PROMPT, ANSWER)
    paraphrase_vec = vector_of(client, PARAPHRASE)
    hit = cache.lookup(PARAPHRASE, vector=paraphrase_vec)
    assert hit is not None and not hit.exact
    assert hit.similarity == pytest.approx(sims["paraphrase"], abs=1e-3)
    hit_list = cache.lookup(PARAPHRASE, vector=paraphrase_vec.tolist())
    assert hit_list is not None and hit_list.similarity == pytest.approx(hit.similarity, abs=1e-6)

    # With a vector the lookup is one search: the vector, not the prompt text, decides; an exact repeat is
    # found by that search (same vector) and reported as exact by its id.
    by_vector = cache.lookup("Completely unrelated words about gardening.", vector=vector_of(client, PROMPT))
    assert by_vector is not None and not by_vector.exact
    assert by_vector.similarity == pytest.approx(1.0, abs=1e-4)
    assert cache.lookup(UNRELATED, vector=vector_of(client, UNRELATED)) is None
    exact = cache.lookup(PROMPT, vector=vector_of(client, PROMPT))
    assert exact is not None and exact.exact
    assert cache.lookup(PROMPT, vector=vector_of(client, UNRELATED)) is None, "the vector decides"

    # put with a vector stores that vector (and the prompt text), and text lookups find it.
    france_vec = vector_of(client, UNRELATED)
    cache.put(UNRELATED, "Paris", vector=france_vec)
    rec = client.collection(name).get([entry_id(UNRELATED, None)], include=("text", "vector"))[0]
    assert rec.text == UNRELATED
    assert rec.vector is not None
    np.testing.assert_allclose(np.asarray(rec.vector), france_vec, atol=1e-6)
    assert cache.get(FRANCE_PARAPHRASE) == "Paris"
    assert cache.get(UNRELATED) == "Paris"


# ---- bad arguments --------------------------------------------------------------------------------------

BAD_ARGS: list[dict[str, Any]] = [
    {"threshold": 0.0},
    {"threshold": -0.5},
    {"threshold": 1.0001},
    {"threshold": 2},
    {"threshold": math.nan},
    {"ttl": 0},
    {"ttl": -1.0},
    {"ttl": math.nan},
    {"max_entries": 0},
    {"max_entries": -3},
]


@pytest.mark.parametrize("kwargs", BAD_ARGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
async def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    # Nothing listens on port 9: any call that reached the network would fail differently.
    what = next(iter(kwargs))
    with Client("http://127.0.0.1:9") as client, pytest.raises(ValueError, match=what):
        SemanticCache(client, **kwargs)
    async with AsyncClient("http://127.0.0.1:9") as aclient:
        with pytest.raises(ValueError, match=what):
            AsyncSemanticCache(aclient, **kwargs)


async def test_good_edge_arguments_and_type_errors() -> None:
    with Client("http://127.0.0.1:9") as client:
        edge = SemanticCache(client, threshold=1.0, ttl=0.001, max_entries=1)
        assert (edge.threshold, edge.ttl, edge.max_entries) == (1.0, 0.001, 1)
        cache = SemanticCache(client)
        for prompt, response in [(PROMPT, 42), (PROMPT, None), (PROMPT, b"bytes"), (42, ANSWER)]:
            with pytest.raises(TypeError):
                cache.put(prompt, response)  # type: ignore[arg-type]
    async with AsyncClient("http://127.0.0.1:9") as aclient:
        acache = AsyncSemanticCache(aclient)
        for prompt, response in [(PROMPT, 42), (PROMPT, {"a": 1}), (None, ANSWER)]:
            with pytest.raises(TypeError):
                await acache.put(prompt, response)  # type: ignore[arg-type]


# ---- async equals sync ----------------------------------------------------------------------------------


def hit_view(hit: CacheHit | None) -> Any:
    return None if hit is None else [hit.response, hit.similarity, hit.exact, hit.prompt]


#: (operation, args): the script both caches run.
SCRIPT: list[tuple[str, tuple[Any, ...]]] = [
    ("lookup", (PROMPT,)),
    ("put", (PROMPT, ANSWER)),
    ("put", (UNRELATED, "Paris", "geo")),
    ("lookup", (PROMPT,)),
    ("lookup", ("  how do I RESET my password? ",)),
    ("lookup", (PARAPHRASE,)),
    ("lookup", (RELATED,)),
    ("lookup", (FRANCE_PARAPHRASE,)),
    ("lookup", (FRANCE_PARAPHRASE, "geo")),
    ("get", (UNRELATED, "geo")),
    ("get", (PARAPHRASE,)),
    ("clear", ("geo",)),
    ("get", (UNRELATED, "geo")),
    ("put", (RELATED, "Mail settings.")),
    ("lookup", (RELATED,)),
    ("clear", ()),
    ("lookup", (PROMPT,)),
    ("put", (PROMPT, "after clear")),
    ("get", (PARAPHRASE,)),
]


def stats_view(cache: SemanticCache | AsyncSemanticCache) -> dict[str, Any]:
    d = cache.stats.to_dict()
    del d["lookup_p50_ms"], d["lookup_mean_ms"]
    return d


async def test_async_cache_equals_sync(
    client: Client, aclient: AsyncClient, name: str, sims: dict[str, float]
) -> None:
    sync_cache = SemanticCache(client, name)
    async_cache = AsyncSemanticCache(aclient, f"{name}-a")
    try:
        sync_out: list[Any] = []
        async_out: list[Any] = []
        for op, args in SCRIPT:
            result = getattr(sync_cache, op)(*args)
            sync_out.append([op, hit_view(result) if op == "lookup" else result])
            aresult = await getattr(async_cache, op)(*args)
            async_out.append([op, hit_view(aresult) if op == "lookup" else aresult])
        sync_out.append(["stats", stats_view(sync_cache)])
        async_out.append(["stats", stats_view(async_cache)])
        assert_congruent(sync_out, async_out, tol=1e-4, what="sync and async cache transcripts")
        # And the transcript is the one expected (not merely equal).
        assert [x[1] is not None for x in sync_out if x[0] in ("lookup", "get")] == [
            False, True, True, True, False, False, True, True, True, False, True, False, True,
        ]  # fmt: skip
        assert sync_out[-1][1]["hits"] == 8
    finally:
        drop(client, f"{name}-a")


# ---- several cache objects on one collection ------------------------------------------------------------


def test_put_after_another_cache_cleared(client: Client, name: str) -> None:
    """Another cache object on the same collection (another process, or the sync and async caches inside
    one ``VecDBSemanticCache``) keeps working after one of them clears it."""
    a = SemanticCache(client, name)
    b = SemanticCache(client, name)
    a.put(PROMPT, ANSWER)
    b.put(UNRELATED, "Paris")
    assert a.clear() == 2
    try:
        b.put(RELATED, "Mail settings.")
    except CollectionNotFoundError as exc:
        pytest.fail(
            "SemanticCache.put after ANOTHER cache object's clear() raised CollectionNotFoundError "
            f"({exc}): _ensure() trusts its _ready flag and never recreates the dropped collection"
        )
    assert b.get(RELATED) == "Mail settings."
