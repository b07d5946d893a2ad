"""Splitting a document's text into chunks (langchain-text-splitters), each with its character and line
span in the document."""

from __future__ import annotations

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


def split_text(text: str, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Chunks of at most ``chunk_size`` characters (overlapping by up to ``chunk_overlap``), split at
    paragraph, line, then word boundaries. Blank text gives no chunks."""
    if chunk_size < 1 or not 0 <= chunk_overlap < chunk_size:
        raise ValueError(
            f"need chunk_size >= 1 and 0 <= chunk_overlap < chunk_size, got {chunk_size}, {chunk_overlap}"
        )
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, strip_whitespace=True
    )
    out: list[Chunk] = []
    prev_start, prev_end = -1, 0
    for piece in splitter.split_text(text):
        # Chunks come in order, each reaches past the previous one and overlaps it by at most
        # chunk_overlap: the first copy of its text that does so is where it came from (an earlier copy
        # inside the previous chunk is not).
        start = text.find(piece, max(prev_start + 1, prev_end - chunk_overlap, prev_end - len(piece) + 1))
        if start < 0:
            start = text.find(piece, prev_start + 1)
        if start < 0:
            raise AssertionError(f"splitter returned text not in the document: {piece[:40]!r}")
        end = start + len(piece)
        first = text.count("\n", 0, start) + 1
        out.append(Chunk(piece, start, end, first, first + piece.count("\n")))
        prev_start, prev_end = start, end
    return out
