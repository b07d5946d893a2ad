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
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=True, strip_whitespace=True
    )
    out = []
    for doc in splitter.create_documents([text]):
        start = int(doc.metadata["start_index"])
        if start < 0 or text[start : start + len(doc.page_content)] != doc.page_content:
            start = text.find(doc.page_content)  # the splitter could not place it: search
        end = start + len(doc.page_content)
        first = text.count("\n", 0, start) + 1
        out.append(Chunk(doc.page_content, start, end, first, first + doc.page_content.count("\n")))
    return out
