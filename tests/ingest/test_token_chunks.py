"""Chunks sized in the packaged model's tokens: none longer than the model's window, for English and for
CJK text (no spaces: a character-sized chunk of 800 would be ~800 tokens, over three times the window of
256, and the model would silently drop the rest), and every character of the text in some chunk."""

from __future__ import annotations

import pytest

from vecdb.embed import read_folder, resolve_model
from vecdb.ingest import split_text

FOLDER = read_folder(resolve_model("all-MiniLM-L6-v2", allow_download=False))
TOKENS = FOLDER.token_counter()
BUDGET = FOLDER.max_seq_length - FOLDER.count_tokens([""])[0]  # the window less [CLS] and [SEP]

ENGLISH = " ".join(
    f"Sentence {i} tells of the river that ran past the mill, and of the miller's {i % 7} daughters."
    for i in range(120)
)
# Chinese and Japanese prose without spaces or newlines (fullwidth punctuation is the point of them).
CHINESE = "".join(f"今天天气很好，我们在公园里散步，看到了第{i}棵开花的树。" for i in range(150))  # noqa: RUF001
JAPANESE = "".join(f"東京の{i}番目の駅で電車を降りて、古い本屋に入りました！" for i in range(150))  # noqa: RUF001


def test_the_packaged_window() -> None:
    assert (FOLDER.max_seq_length, BUDGET) == (256, 254)
    assert TOKENS("今天天气很好") == 6  # one token per Han character (mostly [UNK]: the model is English)


@pytest.mark.parametrize("text", [ENGLISH, CHINESE, JAPANESE], ids=["english", "chinese", "japanese"])
def test_chunks_fit_the_window_and_cover_the_text(text: str) -> None:
    chunks = split_text(text, BUDGET, BUDGET // 8, TOKENS)
    assert len(chunks) > 1
    counts = [TOKENS(c.text) for c in chunks]
    assert max(counts) <= BUDGET, counts
    assert sum(counts) > 0.5 * TOKENS(text)  # real chunks, not slivers
    covered = [False] * len(text)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        covered[c.start : c.end] = [True] * (c.end - c.start)
    missing = "".join(ch for ch, ok in zip(text, covered, strict=True) if not ok)
    assert missing.strip() == "", missing[:80]


def test_character_sizes_would_overflow_cjk() -> None:
    """The old default (800 characters) puts ~3x the window into one CJK chunk: what tokens prevent."""
    chunks = split_text(CHINESE, 800, 100)
    assert max(TOKENS(c.text) for c in chunks) > 2 * BUDGET
