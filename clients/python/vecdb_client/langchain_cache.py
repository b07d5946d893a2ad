"""``VecDBSemanticCache``: a LangChain ``BaseCache`` on vecdb (extra ``[langchain]``).

Keyed by (prompt, llm_string): the llm_string (model and parameters) is the cache scope, so a hit needs the
same llm_string and a prompt whose similarity to a cached one is at least ``threshold`` (see
``vecdb_client.cache``). For chat models the similarity is that of the messages' text, not of the JSON
LangChain serializes them to (``readable_prompt``); the exact path still compares the whole prompt.
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
from collections.abc import Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation

from vecdb_client.aio import AsyncClient
from vecdb_client.cache import DEFAULT_THRESHOLD, AsyncSemanticCache, SemanticCache
from vecdb_client.client import Client

__all__ = ["VecDBSemanticCache", "dump_generations", "load_generations", "readable_prompt", "scope_of"]


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


def scope_of(llm_string: str) -> str:
    return hashlib.sha256(llm_string.encode()).hexdigest()[:32]


class VecDBSemanticCache(BaseCache):
    """A semantic LLM cache in the vecdb collection ``collection``.

    Connect with ``client`` / ``async_client`` (closed by their owner), or with ``url``, ``grpc_url``,
    ``prefer_grpc``, ``api_key`` (the cache then owns its clients; ``close()`` / ``aclose()``).
    ``threshold``, ``ttl``, ``max_entries`` and ``embedding_model`` are ``SemanticCache``'s.
    """

    def __init__(
        self,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
        *,
        url: str = "http://127.0.0.1:8080",
        grpc_url: str | None = None,
        prefer_grpc: bool = False,
        api_key: str | None = None,
        timeout: float = 30.0,
        collection: str = "llm_cache",
        threshold: float = DEFAULT_THRESHOLD,
        ttl: float | None = None,
        max_entries: int | None = None,
        embedding_model: str | None = None,
    ) -> None:
        self._owns_client = client is None
        self.client = client or Client(
            url, grpc_url=grpc_url, prefer_grpc=prefer_grpc, api_key=api_key, timeout=timeout
        )
        self._options: dict[str, Any] = {
            "collection": collection,
            "threshold": threshold,
            "ttl": ttl,
            "max_entries": max_entries,
            "embedding_model": embedding_model,
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
        return cache

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached generations for a prompt like ``prompt`` and the same ``llm_string``, or None."""
        hit = self.cache.lookup(prompt, scope_of(llm_string), text=readable_prompt(prompt))
        return None if hit is None else load_generations(hit.response)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Cache ``return_val`` for (``prompt``, ``llm_string``)."""
        text = readable_prompt(prompt)
        self.cache.put(prompt, dump_generations(return_val), scope_of(llm_string), text=text)

    def clear(self, **kwargs: Any) -> None:
        """Delete every entry (``llm_string=...``: only that model's)."""
        llm_string = kwargs.get("llm_string")
        self.cache.clear(None if llm_string is None else scope_of(llm_string))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        hit = await self._acache().lookup(prompt, scope_of(llm_string), text=readable_prompt(prompt))
        return None if hit is None else load_generations(hit.response)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        text = readable_prompt(prompt)
        await self._acache().put(prompt, dump_generations(return_val), scope_of(llm_string), text=text)

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
