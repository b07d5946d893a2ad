"""The pure parts of the semantic cache (no server): key shaping presets, context keys, token counting and
the default guard's decisions (``vecdb_client.cache_key``, ``vecdb_client.cache_verify``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from vecdb_client.cache_key import (
    KeyParts,
    all_content,
    context_key,
    estimate_tokens,
    last_content,
    messages_of,
    token_counter,
)
from vecdb_client.cache_verify import CrossEncoderVerifier, accept_all, guard, guard_reason
from vecdb_client.langchain_cache import chat_messages, shape_prompt


def test_last_content_shapes() -> None:
    assert last_content("plain prompt") == KeyParts("plain prompt", "")
    dicts = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Reset my password?"},
    ]
    parts = last_content(dicts)
    assert parts.text == "Reset my password?"
    assert "Be brief." in parts.context and "Hello" in parts.context
    pairs = [(d["role"], d["content"]) for d in dicts]
    assert last_content(pairs) == parts, "pairs and mappings shape alike"
    lc = [
        SystemMessage("Be brief."),
        HumanMessage("Hi"),
        AIMessage("Hello"),
        HumanMessage("Reset my password?"),
    ]
    assert last_content(lc).text == "Reset my password?"
    blocks = [{"role": "user", "content": [{"type": "text", "text": "part one"}, "part two"]}]
    assert last_content(blocks) == KeyParts("part one part two", "")
    assert last_content([]) == KeyParts("")
    other_system = [{"role": "system", "content": "Be verbose."}, *dicts[1:]]
    assert last_content(other_system).context != parts.context
    with pytest.raises(TypeError):
        messages_of([42])


def test_all_content_and_context_key() -> None:
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert all_content(msgs) == KeyParts("system: S\nuser: Q", "")
    assert all_content(msgs[1:]) == KeyParts("Q", "")
    assert context_key("") == "" and context_key("", {}) == ""
    assert context_key("c") == context_key("c") != context_key("d")
    assert context_key("", {"t": 0, "m": "x"}) == context_key("", {"m": "x", "t": 0}), "keys sorted"
    assert context_key("", {"t": 0}) != context_key("", {"t": 0.5})


def test_token_counting() -> None:
    count, how = token_counter()
    assert how == "tokenizer"
    assert token_counter(model_tokenizer=False)[1] == "estimate"
    texts = [
        "How do I reset my password?",
        "Is it unsafe to take ibuprofen with alcohol? 400mg, twice.",
        "Antidisestablishmentarianism and pneumonoultramicroscopicsilicovolcanoconiosis!",
        " ".join(["word"] * 300),
    ]
    for text in texts:
        assert estimate_tokens(text) >= count(text), text
    assert count("How do I reset my password?") == 9  # [CLS] how do i reset my password ? [SEP]
    assert count(" ".join(["word"] * 300)) == 302, "no truncation, no padding"


GUARD_CASES = [
    ("Convert 10 miles to kilometers", "Convert 10 kilometers to miles", "order"),
    ("How many ounces are in a pound?", "How many pounds are in an ounce?", "order"),
    (
        "Is it safe to take ibuprofen with alcohol?",
        "Is it unsafe to take ibuprofen with alcohol?",
        "negation",
    ),
    ("I can log in", "I can't log in", "negation"),
    ("Book a table for 2 people", "Book a table for four people", "numbers"),
    ("What is 15% of 200?", "What is 25% of 200?", "numbers"),
    ("Who is the CEO of Apple?", "Who is the CEO of Microsoft?", "entities"),
    ("How do I reset my password?", "What is the way to reset my password?", None),
    ("What is the capital of France?", "What's the capital city of France?", None),
    ("How many legs does a spider have?", "How many legs do spiders have?", None),
    # A known cost: a possessive rewording reads as two words swapping roles, so it is a miss (never a
    # wrong answer; the LLM is asked again).
    ("the CEO of Apple said", "Apple's CEO said", "order"),
    ("SAME text", "same   TEXT", None),
]


@pytest.mark.parametrize(("a", "b", "reason"), GUARD_CASES)
def test_guard(a: str, b: str, reason: str | None) -> None:
    assert guard_reason(a, b) == reason
    assert guard_reason(b, a) == reason, "symmetric"
    assert guard(a, b) is (reason is None)
    assert accept_all(a, b)


def test_cross_encoder_needs_a_local_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CrossEncoderVerifier(tmp_path / "absent")


def test_langchain_prompt_shaping() -> None:
    from langchain_core.load import dumps

    prompt = dumps([SystemMessage("Be brief."), HumanMessage("Reset my password?")])
    assert chat_messages(prompt) == [
        {"role": "system", "content": "Be brief."},
        {"role": "human", "content": "Reset my password?"},
    ]
    parts = shape_prompt(prompt)
    assert parts.text == "Reset my password?"
    assert "Be brief." in parts.context
    other = shape_prompt(dumps([SystemMessage("Be brief."), HumanMessage("Reset my password?", name="bob")]))
    assert other.text == parts.text and other.context != parts.context, "other message fields are exact"
    assert shape_prompt("plain LLM prompt") == KeyParts("plain LLM prompt", "")
    assert chat_messages("[not json") is None
