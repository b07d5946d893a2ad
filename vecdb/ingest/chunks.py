"""Splitting a document's text into chunks (langchain-text-splitters), each with its character and line
span in the document. Sizes are in characters, or in model tokens when a ``length`` function (a
tokenizer's count) is given: ``vecdb ingest`` sizes chunks in the collection's model's tokens, so no chunk
is cut short by the model's window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

__all__ = ["Chunk", "split_text"]


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    start: int  # character offsets in the document: text == document[start:end]
    end: int
    first_line: int  # 1-based, inclusive
    last_line: int


#: Token-sized splitting also breaks at CJK sentence ends (text without spaces or newlines otherwise
#: falls through to single characters): the ideographic full stop, fullwidth ! ? ;.
_TOKEN_SEPARATORS = ["\n\n", "\n", "\u3002", "\uff01", "\uff1f", "\uff1b", " ", ""]


def split_text(
    text: str, chunk_size: int, chunk_overlap: int, length: Callable[[str], int] | None = None
) -> list[Chunk]:
    """Chunks of at most ``chunk_size`` characters, or tokens by ``length`` when given (overlapping by up
    to ``chunk_overlap``), split at paragraph, line, (with ``length``: CJK sentence end,) then word
    boundaries. Blank text gives no chunks."""
    if chunk_size < 1 or not 0 <= chunk_overlap < chunk_size:
        raise ValueError(
            f"need chunk_size >= 1 and 0 <= chunk_overlap < chunk_size, got {chunk_size}, {chunk_overlap}"
        )
    if length is None:
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size, chunk_overlap=chunk_overlap, strip_whitespace=True
        )
    else:
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            strip_whitespace=True,
            length_function=length,
            separators=_TOKEN_SEPARATORS,
            keep_separator="end",
        )
    # _place bounds the overlap in characters: a token is a few characters (8 is generous).
    overlap_chars = chunk_overlap if length is None else chunk_overlap * 8
    spans: list[tuple[int, int]] = []
    pieces = splitter.split_text(text)
    for i, piece in enumerate(pieces):
        span = _place(text, piece, spans, overlap_chars)
        if span is None:
            continue  # nothing new: the overlap carried from the previous chunk, emitted alone
        if spans and i + 1 < len(pieces) and piece in text[spans[-1][0] : spans[-1][1]]:
            # Words carried over as overlap and emitted alone, or a chunk of its own further on? The
            # former when the next chunk starts before the place found for this one.
            after = _place(text, pieces[i + 1], spans, overlap_chars)
            if after is not None and after[0] < span[0]:
                continue
        while spans and span[0] <= spans[-1][0]:
            spans.pop()  # the new chunk holds the previous one whole
        spans.append(span)
    out = []
    for start, end in spans:
        first = text.count("\n", 0, start) + 1
        out.append(Chunk(text[start:end], start, end, first, first + text.count("\n", start, end)))
    return out


def _place(text: str, piece: str, spans: list[tuple[int, int]], chunk_overlap: int) -> tuple[int, int] | None:
    """Where ``piece`` sits: its first occurrence that reaches past the previous chunk and overlaps it by
    at most ``chunk_overlap``, else its first occurrence that starts no earlier than the previous chunk
    and reaches past it; None when every occurrence lies inside what the chunks cover already.

    The splitter returns chunks in document order, but not their places, and its output is not always
    tidy: a chunk may hold the previous one whole (["ccc", "ccc xxxxxxxxxxxxxxx"]), or repeat the words
    carried over as overlap with nothing after them. Taking, for each chunk, the first place that adds
    text keeps every chunk at its own position and leaves no text out.
    """
    prev_start, prev_end = spans[-1] if spans else (-1, 0)
    if spans and text.startswith(piece, prev_start) and prev_start + len(piece) > prev_end:
        return prev_start, prev_start + len(piece)  # the previous chunk and more
    for lowest in (max(prev_start + 1, prev_end - chunk_overlap), max(prev_start, 0)):
        at = text.find(piece, lowest)
        while at >= 0:
            if at + len(piece) > prev_end:
                return at, at + len(piece)
            at = text.find(piece, at + 1)
    if not spans:
        raise AssertionError(f"splitter returned text not in the document: {piece[:40]!r}")
    return None
