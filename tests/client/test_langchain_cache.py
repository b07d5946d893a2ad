"""``VecDBSemanticCache`` (``vecdb_client.langchain_cache``), a LangChain ``BaseCache``, against a real
``vecdb serve`` subprocess and its real embedding model. Pinned:

- LangChain's own standard cache suites (``SyncCacheTestSuite``, ``AsyncCacheTestSuite``), unchanged, once
  over REST and once over gRPC; no xfail, no override but the ``cache`` fixture (an empty cache on a fresh
  collection, dropped and closed afterwards; the async one awaits ``aclose()`` in the test's loop).
- ``set_llm_cache`` with a chat model (``FakeListChatModel``) and an LLM (``FakeListLLM``), ``invoke`` and
  ``ainvoke``: the same prompt again is answered from the cache (the fake's next response is not
  consumed); another llm_string (other responses, or ``stop=``) does not hit; for an LLM a paraphrase is a
  hit and an unrelated prompt a miss. For a chat model a different question must be a miss (fails today:
  see ``test_chat_model_other_question_is_a_miss``).
- ``clear(llm_string=...)`` / ``aclear(llm_string=...)`` clear that model's entries only.
- Sync and async calls on one cache object: a write after the other side's ``clear`` works (fails today:
  see ``test_sync_update_after_aclear``).
- ``dump_generations`` / ``load_generations``: ``Generation`` and ``ChatGeneration`` (``AIMessage`` with
  ``response_metadata``, ``tool_calls``, ``usage_metadata``, id) round trip equal, through JSON and through
  the server; non-ASCII text kept as is.
- A cache given a ``client`` leaves it open on ``close()``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from langchain_core.caches import BaseCache
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, Generation
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite
from serverproc import ServerProcess
from test_cache_issue21 import SYSTEM

from vecdb_client import Client
from vecdb_client.cache import DEFAULT_THRESHOLD
from vecdb_client.errors import CollectionNotFoundError
from vecdb_client.langchain_cache import VecDBSemanticCache, dump_generations, load_generations, scope_of

PROMPT = "How do I reset my password?"
PARAPHRASE = "What is the way to reset my password?"  # ~0.97 to PROMPT
UNRELATED = "What is the capital of France?"  # ~0.07 to PROMPT


def make_cache(server: ServerProcess, transport: str, name: str) -> VecDBSemanticCache:
    """A cache that owns its clients, over ``transport``, in collection ``name``."""
    if transport == "grpc":
        return VecDBSemanticCache(
            url=server.rest_url, grpc_url=server.grpc_target, prefer_grpc=True, collection=name
        )
    assert transport == "rest", transport
    return VecDBSemanticCache(url=server.rest_url, collection=name)


def drop(cache: VecDBSemanticCache) -> None:
    with contextlib.suppress(CollectionNotFoundError):
        cache.client.drop_collection(cache.cache.collection_name)


def fresh_name(transport: str) -> str:
    return f"lcc_{transport}_{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def sync_cache(server: ServerProcess, transport: str) -> Iterator[VecDBSemanticCache]:
    cache = make_cache(server, transport, fresh_name(transport))
    try:
        yield cache
    finally:
        drop(cache)
        cache.close()


@contextlib.asynccontextmanager
async def async_cache(server: ServerProcess, transport: str) -> AsyncIterator[VecDBSemanticCache]:
    cache = make_cache(server, transport, fresh_name(transport))
    try:
        yield cache
    finally:
        drop(cache)
        await cache.aclose()  # closes the async client the test opened in this loop


# ---- LangChain's standard suites ------------------------------------------------------------------------


class TestSyncCacheOverRest(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, vecdb_server: ServerProcess) -> Iterator[BaseCache]:  # type: ignore[override]
        with sync_cache(vecdb_server, "rest") as c:
            yield c


class TestSyncCacheOverGrpc(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, vecdb_server: ServerProcess) -> Iterator[BaseCache]:  # type: ignore[override]
        with sync_cache(vecdb_server, "grpc") as c:
            yield c


class TestAsyncCacheOverRest(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, vecdb_server: ServerProcess) -> AsyncIterator[BaseCache]:  # type: ignore[override]
        async with async_cache(vecdb_server, "rest") as c:
            yield c


class TestAsyncCacheOverGrpc(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, vecdb_server: ServerProcess) -> AsyncIterator[BaseCache]:  # type: ignore[override]
        async with async_cache(vecdb_server, "grpc") as c:
            yield c


# ---- set_llm_cache --------------------------------------------------------------------------------------


@pytest.fixture
async def llm_cache(vecdb_server: ServerProcess, transport: str) -> AsyncIterator[VecDBSemanticCache]:
    """A fresh cache installed with ``set_llm_cache``; uninstalled, dropped and closed afterwards."""
    async with async_cache(vecdb_server, transport) as cache:
        set_llm_cache(cache)
        try:
            yield cache
        finally:
            set_llm_cache(None)


def content(message: object) -> str:
    assert isinstance(message, AIMessage), type(message)
    assert isinstance(message.content, str)
    return message.content


def entries(cache: VecDBSemanticCache) -> int:
    try:
        return cache.client.collection(cache.cache.collection_name).count()
    except CollectionNotFoundError:
        return 0


def test_chat_model_uses_the_cache(llm_cache: VecDBSemanticCache) -> None:
    assert get_llm_cache() is llm_cache
    model = FakeListChatModel(responses=["Paris.", "Lyon.", "Nice."])
    assert content(model.invoke(UNRELATED)) == "Paris."
    assert model.i == 1
    assert content(model.invoke(UNRELATED)) == "Paris.", "the same prompt again must come from the cache"
    assert model.i == 1, "a cache hit must not consume the fake's next response"
    assert entries(llm_cache) == 1

    other = FakeListChatModel(responses=["Other."])  # another llm_string
    assert content(other.invoke(UNRELATED)) == "Other."
    assert content(model.invoke(UNRELATED, stop=["\n\n"])) == "Lyon.", "stop= changes the llm_string"
    assert model.i == 2
    assert entries(llm_cache) == 3


def test_llm_uses_the_cache(llm_cache: VecDBSemanticCache) -> None:
    llm = FakeListLLM(responses=["a1", "a2", "a3"])
    assert llm.invoke(PROMPT) == "a1"
    assert llm.invoke(PROMPT) == "a1"
    assert llm.i == 1, "a cache hit must not consume the fake's next response"
    assert llm.invoke(PARAPHRASE) == "a1", "an LLM prompt's paraphrase is a semantic hit"
    assert llm.invoke(UNRELATED) == "a2"
    assert llm.i == 2
    assert FakeListLLM(responses=["z"]).invoke(PROMPT) == "z", "another llm_string does not hit"
    assert llm.invoke(PROMPT, stop=["\n"]) == "a3", "stop= changes the llm_string"
    assert entries(llm_cache) == 4


async def test_async_models_use_the_cache(llm_cache: VecDBSemanticCache) -> None:
    model = FakeListChatModel(responses=["Paris.", "Lyon."])
    assert content(await model.ainvoke(UNRELATED)) == "Paris."
    assert content(await model.ainvoke(UNRELATED)) == "Paris."
    assert model.i == 1
    assert content(model.invoke(UNRELATED)) == "Paris.", "sync and async share the entries"
    assert content(await FakeListChatModel(responses=["Other."]).ainvoke(UNRELATED)) == "Other."

    llm = FakeListLLM(responses=["a1", "a2"])
    assert await llm.ainvoke(PROMPT) == "a1"
    assert await llm.ainvoke(PROMPT) == "a1"
    assert await llm.ainvoke(PARAPHRASE) == "a1"
    assert llm.i == 1
    assert await llm.ainvoke(UNRELATED) == "a2"
    assert llm.invoke(UNRELATED) == "a2"
    assert llm.i == 0  # cycled once: a2 was the last response
    assert await FakeListLLM(responses=["z"]).ainvoke(PROMPT) == "z"


def test_chat_model_other_question_is_a_miss(llm_cache: VecDBSemanticCache) -> None:
    """Chat models hand the cache ``dumps(messages)``: a JSON document whose LangChain boilerplate
    (``{"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "HumanMessage"], ...}``)
    is most of what gets embedded, so two unrelated questions come out about 0.95 similar and the second
    one gets the first one's answer."""
    first, second = "What is 2+2?", "Tell me a joke about cats."
    vectors, _ = llm_cache.client.embed([first, second])
    plain = float(np.dot(vectors[0], vectors[1]))
    assert plain < 0.5, f"the questions themselves are unrelated ({plain:.3f})"
    model = FakeListChatModel(responses=["4.", "Why did the cat sit on the computer?"])
    assert content(model.invoke(first)) == "4."
    answer = content(model.invoke(second))
    assert answer != "4.", (
        f"chat model: {second!r} got the cached answer to {first!r} (their plain similarity is {plain:.3f}, "
        f"below the {DEFAULT_THRESHOLD} threshold, but VecDBSemanticCache embeds the JSON that "
        "langchain_core.load.dumps makes of the message list, whose boilerplate dominates the embedding)"
    )
    assert model.i == 0


# ---- clear ----------------------------------------------------------------------------------------------


async def test_clear_one_llm_string(vecdb_server: ServerProcess, transport: str) -> None:
    async with async_cache(vecdb_server, transport) as cache:
        gen_a, gen_b = [Generation(text="from a")], [Generation(text="from b")]
        cache.update(PROMPT, "model a", gen_a)
        cache.update(PROMPT, "model b", gen_b)
        await cache.aupdate(UNRELATED, "model b", gen_b)
        assert cache.lookup(PROMPT, "model a") == gen_a
        assert await cache.alookup(PARAPHRASE, "model b") == gen_b
        assert cache.lookup(PROMPT, "model c") is None

        cache.clear(llm_string="model a")
        assert cache.lookup(PROMPT, "model a") is None
        assert cache.lookup(PROMPT, "model b") == gen_b
        await cache.aclear(llm_string="model b")
        assert await cache.alookup(PROMPT, "model b") is None
        assert await cache.alookup(UNRELATED, "model b") is None
        assert entries(cache) == 0
        assert scope_of("model a") != scope_of("model b")


async def test_sync_update_after_aclear(vecdb_server: ServerProcess, transport: str) -> None:
    """One ``VecDBSemanticCache`` holds a sync ``SemanticCache`` and one ``AsyncSemanticCache`` per loop;
    ``clear()`` / ``aclear()`` drop the collection through one of them and the other one's next write
    goes to a collection that no longer exists."""
    async with async_cache(vecdb_server, transport) as cache:
        gen = [Generation(text="cached")]
        cache.update(PROMPT, "llm", gen)
        await cache.aclear()
        assert cache.lookup(PROMPT, "llm") is None
        try:
            cache.update(PROMPT, "llm", gen)
        except CollectionNotFoundError as exc:
            pytest.fail(
                f"update() after aclear() on the same VecDBSemanticCache raised CollectionNotFoundError "
                f"({exc}): the sync SemanticCache still has _ready=True for the dropped collection"
            )
        assert cache.lookup(PROMPT, "llm") == gen
        await cache.aupdate(UNRELATED, "llm", gen)
        cache.clear()
        try:
            await cache.aupdate(UNRELATED, "llm", gen)
        except CollectionNotFoundError as exc:
            pytest.fail(
                f"aupdate() after clear() raised CollectionNotFoundError ({exc}): the loop's "
                "AsyncSemanticCache still has _ready=True for the dropped collection"
            )
        assert await cache.alookup(UNRELATED, "llm") == gen


# ---- generations as JSON --------------------------------------------------------------------------------


def sample_generations() -> list[Generation]:
    message = AIMessage(
        content="Calling the weather tool. ✓ délta",
        id="run-123",
        response_metadata={"model_name": "fake-1", "finish_reason": "tool_calls", "logprobs": None},
        tool_calls=[
            {
                "name": "get_weather",
                "args": {"city": "Paris", "days": 3},
                "id": "call_1",
                "type": "tool_call",
            },
            {"name": "get_time", "args": {}, "id": "call_2", "type": "tool_call"},
        ],
        usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
        additional_kwargs={"refusal": None},
    )
    return [
        Generation(text="plain text", generation_info={"reason": "stop", "nested": {"k": [1, 2.5, None]}}),
        Generation(text="no info"),
        ChatGeneration(message=message, generation_info={"finish_reason": "tool_calls"}),
        ChatGeneration(message=AIMessage(content="")),
    ]


def test_dump_load_round_trip() -> None:
    gens = sample_generations()
    text = dump_generations(gens)
    assert "✓ délta" in text, "non-ASCII text is stored as is"
    assert isinstance(json.loads(text), list)
    back = load_generations(text)
    assert back == gens
    assert [type(g) for g in back] == [Generation, Generation, ChatGeneration, ChatGeneration]
    chat = back[2]
    assert isinstance(chat, ChatGeneration)
    assert isinstance(chat.message, AIMessage)
    assert chat.message.tool_calls == gens[2].message.tool_calls  # type: ignore[attr-defined]
    assert chat.message.response_metadata["model_name"] == "fake-1"
    assert chat.message.usage_metadata == {"input_tokens": 12, "output_tokens": 7, "total_tokens": 19}
    assert chat.text == "Calling the weather tool. ✓ délta"
    assert load_generations(dump_generations([])) == []
    chunk = ChatGeneration(message=AIMessageChunk(content="streamed"))
    assert isinstance(load_generations(dump_generations([chunk]))[0].message, AIMessageChunk)  # type: ignore[attr-defined]


async def test_generations_round_trip_through_the_server(vecdb_server: ServerProcess, transport: str) -> None:
    async with async_cache(vecdb_server, transport) as cache:
        gens = sample_generations()
        cache.update(PROMPT, "chat llm", gens)
        assert cache.lookup(PROMPT, "chat llm") == gens
        assert cache.lookup(PARAPHRASE, "chat llm") == gens
        await cache.aupdate(UNRELATED, "chat llm", gens[2:])
        assert await cache.alookup(UNRELATED, "chat llm") == gens[2:]


def test_given_client_is_left_open(client: Client, unique_name: str) -> None:
    cache = VecDBSemanticCache(client, collection=unique_name)
    try:
        cache.update(PROMPT, "llm", [Generation(text="x")])
        cache.close()
        assert client.collection(unique_name).count() == 1, "close() must not close a client it was given"
    finally:
        with contextlib.suppress(CollectionNotFoundError):
            client.drop_collection(unique_name)


# ---- issue 21: wrong answers and failures ---------------------------------------------------------------

CONTEXT = " ".join(
    f"Clause {i}: the warranty for product line {chr(65 + i % 26)} covers parts and labour for {i % 7 + 1} "
    f"years when registered within {i % 5 + 2} weeks of purchase."
    for i in range(30)
)


async def test_chat_system_prompt_and_history(llm_cache: VecDBSemanticCache) -> None:
    from langchain_core.messages import AIMessage as AI
    from langchain_core.messages import HumanMessage, SystemMessage

    questions = ["How do I cancel my subscription?", "What are your opening hours?", "Can I get a refund?"]
    model = FakeListChatModel(responses=["cancel", "hours", "refund", "reset", "free plan"])
    answers = [content(model.invoke([SystemMessage(SYSTEM), HumanMessage(q)])) for q in questions]
    assert answers == ["cancel", "hours", "refund"], "a shared system prompt must not make questions hit"
    assert content(model.invoke([SystemMessage(SYSTEM), HumanMessage(questions[1])])) == "hours"
    assert content(await model.ainvoke([SystemMessage(SYSTEM), HumanMessage(PROMPT)])) == "reset"
    assert content(await model.ainvoke([SystemMessage(SYSTEM), HumanMessage(PARAPHRASE)])) == "reset"

    def turns(plan: str) -> list[Any]:
        return [HumanMessage(f"I use the {plan} plan."), AI("Noted."), HumanMessage("How much does it cost?")]

    paid = FakeListChatModel(responses=["pro plan", "free plan"])
    assert content(paid.invoke(turns("Pro"))) == "pro plan"
    assert content(paid.invoke(turns("Free"))) == "free plan", "another earlier turn: another context"
    assert content(paid.invoke(turns("Pro"))) == "pro plan"


def test_llm_long_prompt_and_guard(llm_cache: VecDBSemanticCache) -> None:
    llm = FakeListLLM(responses=["b", "wet", "km", "miles"])
    rag = "Context:\n{}\n\nQuestion: {}"
    assert llm.invoke(rag.format(CONTEXT, "Who sells product line B?")) == "b"
    assert llm.invoke(rag.format(CONTEXT, "Is water wet?")) == "wet", "truncated embeddings must not hit"
    assert llm.invoke(rag.format(CONTEXT, "Who sells product line B?")) == "b"
    assert llm_cache.cache.stats.exact_only == 3
    assert llm.invoke("Convert 10 miles to kilometers") == "km"
    assert llm.invoke("Convert 10 kilometers to miles") == "miles"
    assert llm_cache.cache.stats.rejected == 1


@pytest.mark.parametrize("transport", ["rest", "grpc"])
async def test_invoke_with_the_server_stopped(server_factory: Any, transport: str) -> None:
    sp = server_factory()
    cache = make_cache(sp, transport, fresh_name(transport))
    set_llm_cache(cache)
    try:
        model = FakeListChatModel(responses=["a", "b", "c"])
        assert content(model.invoke(PROMPT)) == "a"
        assert content(model.invoke(PROMPT)) == "a"
        assert sp.stop() == 0
        assert content(model.invoke(UNRELATED)) == "b", "invoke returns the model's answer"
        assert content(await model.ainvoke(PARAPHRASE)) == "c", "ainvoke too"
        stats = cache.cache.stats
        assert (stats.lookup_errors, stats.store_errors) == (2, 2)
    finally:
        set_llm_cache(None)
        cache.close()
        await cache.aclose()


def test_sampled_llm_string() -> None:
    from vecdb_client.langchain_cache import sampled

    assert sampled("[('_type', 'openai'), ('temperature', 0.7)]")
    assert sampled('{"model": "x", "temperature": 1}')
    assert not sampled("[('_type', 'openai'), ('temperature', 0.0)]")
    assert not sampled("[('_type', 'fake')]")
