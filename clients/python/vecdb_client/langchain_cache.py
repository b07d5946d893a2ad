"""``VecDBSemanticCache``: a LangChain ``BaseCache`` on vecdb (extra ``[langchain]``).

Keyed by (prompt, llm_string): the llm_string (model, parameters, bound tools) is the cache scope, so a
hit needs the same llm_string. Chat models hand the cache their messages serialized as LangChain JSON: the
cache's pre-processor (``last_content`` by default, see ``vecdb_client.cache_key``) embeds the last human
message, and the other messages, plus everything but the content of that one (names, tool calls), are
the exact context. A hit then needs the same system prompt and earlier turns and a similar, verified
question (``vecdb_client.cache``). LLM (string) prompts are embedded whole; a prompt longer than the
model's window is cached for exact repeats only. Cache errors never reach ``invoke``: a failed lookup is a
miss and a failed update is skipped (``cache.cache.stats`` counts both).
Generations are stored as JSON (text, generation_info and, for chat models, the message as
``message_to_dict`` writes it), never pickled. Works with ``set_llm_cache`` for LLMs and chat models. The
async methods are native (``AsyncClient``); an ``AsyncClient`` belongs to one event loop, so
the cache makes one per loop unless given one.

    from langchain_core.globals import set_llm_cache
    set_llm_cache(VecDBSemanticCache(url="http://127.0.0.1:8080", ttl=86400, max_entries=100_000))
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation

from vecdb_client.aio import AsyncClient
from vecdb_client.cache import (
    DEFAULT_CANDIDATES,
    DEFAULT_MAX_METADATA_BYTES,
    DEFAULT_THRESHOLD,
    AsyncSemanticCache,
    CacheHit,
    SemanticCache,
)
from vecdb_client.cache_key import MODEL_MAX_TOKENS, KeyParts, Preprocessor, last_content
from vecdb_client.cache_verify import Verifier, guard
from vecdb_client.client import Client

__all__ = [
    "VecDBSemanticCache",
    "chat_messages",
    "dump_generations",
    "load_generations",
    "readable_prompt",
    "scope_of",
    "shape_prompt",
]

log = logging.getLogger("vecdb_client.cache")


def dump_generations(generations: Sequence[Generation]) -> str:
    """Generations as JSON text (chat generations keep their message)."""
    out: list[dict[str, Any]] = []
    for g in generations:
        if isinstance(g, ChatGeneration):
            out.append({"chat": message_to_dict(g.message), "info": g.generation_info})
        else:
            out.append({"text": g.text, "info": g.generation_info})
    return json.dumps(out, ensure_ascii=False)


def load_generations(text: str) -> list[Generation]:
    out: list[Generation] = []
    for d in json.loads(text):
        if "chat" in d:
            message = messages_from_dict([d["chat"]])[0]
            out.append(ChatGeneration(message=message, generation_info=d["info"]))
        else:
            out.append(Generation(text=d["text"], generation_info=d["info"]))
    return out


def readable_prompt(prompt: str) -> str:
    """What to embed for a prompt: chat models hand the cache their messages serialized as LangChain JSON,
    whose boilerplate would make any two chat prompts look alike; their text is what carries the meaning.
    One message gives its content; several give ``type: content`` lines. Other prompts are left as they are.
    """
    if not prompt.startswith("["):
        return prompt
    try:
        items = json.loads(prompt)
    except ValueError:
        return prompt
    parts = []
    for item in items if isinstance(items, list) else ():
        kwargs = item.get("kwargs") if isinstance(item, dict) else None
        if not isinstance(kwargs, dict) or "content" not in kwargs:
            return prompt
        content = kwargs["content"]
        if isinstance(content, list):  # content blocks: keep the text ones
            content = " ".join(
                b if isinstance(b, str) else str(b.get("text", ""))
                for b in content
                if isinstance(b, str | dict)
            )
        parts.append((str(kwargs.get("type", "")), str(content)))
    if not parts:
        return prompt
    if len(parts) == 1:
        return parts[0][1]
    return "\n".join(f"{kind}: {content}" for kind, content in parts)


def chat_messages(prompt: str) -> list[dict[str, Any]] | None:
    """The messages of a chat prompt serialized by LangChain (``dumps(messages)``), as ``{"role",
    "content"}`` dicts, or None when ``prompt`` is not one."""
    if not prompt.startswith("["):
        return None
    try:
        items = json.loads(prompt)
    except ValueError:
        return None
    out = []
    for item in items if isinstance(items, list) else ():
        kwargs = item.get("kwargs") if isinstance(item, dict) else None
        if not isinstance(kwargs, dict) or "content" not in kwargs:
            return None
        out.append({"role": str(kwargs.get("type", "")), "content": kwargs["content"]})
    return out or None


def _structure(prompt: str) -> str:
    """A chat prompt's JSON without any message content: names, tool calls, ids... (exact context)."""
    items = json.loads(prompt)
    for item in items:
        item["kwargs"] = {k: v for k, v in item["kwargs"].items() if k != "content"}
    return json.dumps(items, sort_keys=True, ensure_ascii=False)


def shape_prompt(prompt: str, preprocess: Preprocessor = last_content) -> KeyParts:
    """The key parts of a LangChain prompt: chat prompts through ``preprocess`` on their messages (the
    messages' other fields joined to the exact context), LLM prompts as strings."""
    messages = chat_messages(prompt)
    if messages is None:
        return preprocess(prompt)
    parts = preprocess(messages)
    return KeyParts(parts.text, parts.context + "\x00" + _structure(prompt))


_TEMPERATURE = re.compile(r"""['"]temperature['"]\s*[:,]\s*([0-9.eE+-]+)""")


def sampled(llm_string: str) -> bool:
    """The llm_string asks for a temperature above 0."""
    m = _TEMPERATURE.search(llm_string)
    try:
        return m is not None and float(m.group(1)) > 0
    except ValueError:
        return False


def scope_of(llm_string: str) -> str:
    return hashlib.sha256(llm_string.encode()).hexdigest()[:32]


class VecDBSemanticCache(BaseCache):
    """A semantic LLM cache in the vecdb collection ``collection``.

    Connect with ``client`` / ``async_client`` (closed by their owner), or with ``url``, ``grpc_url``,
    ``prefer_grpc``, ``api_key`` (the cache then owns its clients; ``close()`` / ``aclose()``).
    ``threshold``, ``ttl``, ``max_entries``, ``embedding_model``, ``preprocess`` (applied to the chat
    messages), ``verify``, ``candidates``, ``max_tokens``, ``count_tokens``, ``fail_open`` and
    ``max_metadata_bytes`` are ``SemanticCache``'s. ``bypass_temperature``: models whose llm_string has a
    temperature above 0 skip the cache (counted in ``cache.stats.bypassed``).
    """

    def __init__(
        self,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
        *,
        url: str = "http://127.0.0.1:8080",
        grpc_url: str | None = None,
        prefer_grpc: bool | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        collection: str = "llm_cache",
        threshold: float = DEFAULT_THRESHOLD,
        ttl: float | None = None,
        max_entries: int | None = None,
        embedding_model: str | None = None,
        preprocess: Preprocessor = last_content,
        verify: Verifier | None = guard,
        candidates: int = DEFAULT_CANDIDATES,
        max_tokens: int = MODEL_MAX_TOKENS,
        count_tokens: Callable[[str], int] | None = None,
        fail_open: bool = True,
        max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
        bypass_temperature: bool = False,
    ) -> None:
        self._owns_client = client is None
        self.preprocess = preprocess
        self.fail_open = fail_open
        self.bypass_temperature = bypass_temperature
        self.client = client or Client(
            url, grpc_url=grpc_url, prefer_grpc=prefer_grpc, api_key=api_key, timeout=timeout
        )
        self._options: dict[str, Any] = {
            "collection": collection,
            "threshold": threshold,
            "ttl": ttl,
            "max_entries": max_entries,
            "embedding_model": embedding_model,
            "preprocess": preprocess,
            "verify": verify,
            "candidates": candidates,
            "max_tokens": max_tokens,
            "count_tokens": count_tokens,
            "fail_open": fail_open,
            "max_metadata_bytes": max_metadata_bytes,
        }
        self.cache = SemanticCache(self.client, **self._options)
        self._given_async = async_client
        self._async: dict[asyncio.AbstractEventLoop, AsyncSemanticCache] = {}

    def _acache(self) -> AsyncSemanticCache:
        loop = asyncio.get_running_loop()
        cache = self._async.get(loop)
        if cache is None:
            for old in [lp for lp in self._async if lp.is_closed()]:
                del self._async[old]
            aclient = self._given_async or AsyncClient.like(self.client)
            cache = self._async[loop] = AsyncSemanticCache(aclient, **self._options)
            cache.stats = self.cache.stats  # one set of counters for the sync and async paths
        return cache

    def _skip(self, llm_string: str) -> bool:
        if self.bypass_temperature and sampled(llm_string):
            self.cache.stats.count("bypassed")
            return True
        return False

    def _shape(self, prompt: str) -> KeyParts:
        return shape_prompt(prompt, self.preprocess)

    def _generations(self, hit: CacheHit | None) -> RETURN_VAL_TYPE | None:
        if hit is None:
            return None
        try:
            return load_generations(hit.response)
        except Exception as exc:  # an entry this code cannot read is a miss, not a failed invoke
            if not self.fail_open:
                raise
            log.warning("semantic cache: unreadable entry (a miss): %s", exc)
            self.cache.stats.count("lookup_errors")
            return None

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached generations for a prompt like ``prompt`` and the same ``llm_string``, or None."""
        if self._skip(llm_string):
            return None
        return self._generations(self.cache.lookup(self._shape(prompt), scope_of(llm_string)))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Cache ``return_val`` for (``prompt``, ``llm_string``)."""
        if self.bypass_temperature and sampled(llm_string):
            return
        parts = self._shape(prompt)
        if parts.text.strip():
            self.cache.put(parts, dump_generations(return_val), scope_of(llm_string))
        else:
            self.cache.stats.skip("empty")

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry (``llm_string=...``: only that model's)."""
        llm_string = kwargs.get("llm_string")
        self.cache.clear(None if llm_string is None else scope_of(llm_string))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        if self._skip(llm_string):
            return None
        acache = self._acache()
        hit = await acache.lookup(self._shape(prompt), scope_of(llm_string))
        return self._generations(hit)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        if self.bypass_temperature and sampled(llm_string):
            return
        parts = self._shape(prompt)
        if parts.text.strip():
            await self._acache().put(parts, dump_generations(return_val), scope_of(llm_string))
        else:
            self.cache.stats.skip("empty")

    async def aclear(self, **kwargs: Any) -> None:
        llm_string = kwargs.get("llm_string")
        await self._acache().clear(None if llm_string is None else scope_of(llm_string))

    def close(self) -> None:
        """Close the sync client if this cache made it. Idempotent."""
        if self._owns_client:
            self.client.close()

    async def aclose(self) -> None:
        """Close the async client this cache made for the running loop (and the sync one it made)."""
        cache = self._async.pop(asyncio.get_running_loop(), None)
        if cache is not None and self._given_async is None:
            await cache.client.close()
        self.close()
