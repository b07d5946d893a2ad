"""Plan and apply: make a collection's sources mirror a set of documents, file by file.

For each document (source = its path relative to its root):

- its SHA-256 equals the ``content_hash`` stored with its first chunk, and the chunk count and the
  chunking (size, overlap) match: **unchanged**, nothing sent;
- otherwise its text is split and ``replace_source`` swaps the source's old chunks for the new ones in
  ONE atomic write (**added** or **changed**); a reader never sees a mix, and a failure leaves the old
  chunks in place;
- it cannot be read as text: **failed**, reported, its stored chunks (if any) left alone;
- it has no text: **empty**, its stored chunks (if any) deleted.

With ``delete_missing``, every source of the collection that is not among the documents (and is in scope,
e.g. matches the run's glob) is deleted (**removed**). Chunk ids are
``<first 16 hex of sha256(source)>:<chunk number>``; each chunk's metadata: ``path``, ``chunk``,
``chunks``, ``start`` / ``end`` (character span), ``lines`` ([first, last], 1-based), ``mtime`` (ISO 8601,
UTC), ``content_hash`` and ``chunking`` ([size, overlap], with "tokens" third when sized in model
tokens). Texts are embedded by the collection's model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from vecdb.ingest.chunks import split_text
from vecdb.ingest.documents import Document, UnreadableFileError, read_text

__all__ = ["FileReport", "IngestSummary", "Target", "chunk_id", "ingest"]

Status = Literal["added", "changed", "unchanged", "empty", "removed", "failed"]
#: ids per ``get`` when reading the stored hashes
_GET_BATCH = 1000


class Target(Protocol):
    """What ingest needs of a collection: ``vecdb.engine.Collection`` and ``vecdb_client.Collection``."""

    def list_sources(self) -> Sequence[Any]: ...
    def get(self, ids: Sequence[str], include: Sequence[str] = ...) -> Sequence[Any]: ...
    def replace_source(
        self,
        source: str,
        ids: Sequence[str],
        vectors: Any = ...,
        texts: Sequence[str | None] | None = ...,
        metadatas: Sequence[dict[str, Any] | None] | None = ...,
    ) -> int: ...
    def delete(
        self, ids: Sequence[str] | None = ..., *, filter: Any = ..., source: str | None = ...
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class FileReport:
    source: str
    status: Status
    chunks: int = 0  # chunks written (added, changed) or kept (unchanged)
    removed_chunks: int = 0  # chunks this run deleted or replaced
    error: str | None = None


@dataclass
class IngestSummary:
    files: list[FileReport] = field(default_factory=list)

    def count(self, status: Status) -> tuple[int, int]:
        """(files, chunks) with ``status``; chunks are those removed for ``removed``, else written/kept."""
        reports = [f for f in self.files if f.status == status]
        chunks = sum(f.removed_chunks if status in ("removed", "empty") else f.chunks for f in reports)
        return len(reports), chunks

    @property
    def failed(self) -> list[FileReport]:
        return [f for f in self.files if f.status == "failed"]

    def line(self) -> str:
        """One line: added / changed / unchanged / removed files and chunks, then empty and failed files."""
        (a, ac), (c, cc), (u, _), (r, rc) = (
            self.count(s) for s in ("added", "changed", "unchanged", "removed")
        )
        parts = [
            f"added {a} files ({ac} chunks)",
            f"changed {c} files ({cc} chunks)",
            f"unchanged {u} files",
            f"removed {r} files ({rc} chunks)",
        ]
        empty, failed = self.count("empty")[0], len(self.failed)
        if empty:
            parts.append(f"{empty} empty")
        if failed:
            parts.append(f"{failed} failed")
        return ", ".join(parts)


def chunk_id(source: str, number: int) -> str:
    """The id of a source's chunk: short, stable, and within any id length limit whatever the path."""
    return f"{hashlib.sha256(source.encode()).hexdigest()[:16]}:{number}"


def _stored_hashes(target: Target, sources: list[str]) -> dict[str, tuple[Any, Any, Any]]:
    """source -> (content_hash, chunks, chunking) from each source's first chunk."""
    out: dict[str, tuple[Any, Any, Any]] = {}
    by_id = {chunk_id(s, 0): s for s in sources}
    ids = list(by_id)
    for lo in range(0, len(ids), _GET_BATCH):
        for rec in target.get(ids[lo : lo + _GET_BATCH], include=["metadata"]):
            meta = rec.metadata or {}
            out[by_id[rec.id]] = (meta.get("content_hash"), meta.get("chunks"), meta.get("chunking"))
    return out


def ingest(
    target: Target,
    documents: list[Document],
    *,
    chunk_size: int = 800,
    chunk_overlap: int = 100,
    length: Callable[[str], int] | None = None,
    delete_missing: bool = False,
    in_scope: Callable[[str], bool] | None = None,
    on_file: Callable[[FileReport], None] | None = None,
) -> IngestSummary:
    """Bring ``target`` in step with ``documents`` (see the module docstring); returns what was done.

    Chunk sizes are in characters, or in tokens counted by ``length`` when given (a file with a chunk
    over ``chunk_size`` tokens fails rather than be embedded cut short).

    ``delete_missing`` deletes the stored sources that are not among ``documents`` (only those for which
    ``in_scope(source)`` holds, when given: e.g. the ones matching the run's glob). ``on_file`` is called
    after each file (for progress). Errors of one file (unreadable, rejected by the
    collection) are reported in its ``FileReport`` and never stop the run; errors reaching the
    collection at all (listing its sources) propagate.
    """
    split_text("", chunk_size, chunk_overlap)  # checks the sizes before any work
    existing = {s.source: s.count for s in target.list_sources()}
    stored = _stored_hashes(target, [d.source for d in documents if d.source in existing])
    summary = IngestSummary()

    def report(rep: FileReport) -> None:
        summary.files.append(rep)
        if on_file is not None:
            on_file(rep)

    for doc in documents:
        report(
            _one(
                target,
                doc,
                existing.get(doc.source, 0),
                stored.get(doc.source),
                chunk_size,
                chunk_overlap,
                length,
            )
        )
    if delete_missing:
        present = {d.source for d in documents}
        for source in sorted(existing):
            if source not in present and (in_scope is None or in_scope(source)):
                try:
                    removed = target.delete(source=source)
                    report(FileReport(source, "removed", removed_chunks=removed))
                except Exception as exc:  # reported like any file's failure
                    report(FileReport(source, "failed", error=f"delete failed: {exc}"))
    return summary


def _one(
    target: Target,
    doc: Document,
    old_count: int,
    stored: tuple[Any, Any, Any] | None,
    chunk_size: int,
    chunk_overlap: int,
    length: Callable[[str], int] | None,
) -> FileReport:
    try:
        data = doc.path.read_bytes()
        mtime = datetime.fromtimestamp(doc.path.stat().st_mtime, UTC).isoformat()
    except OSError as exc:
        return FileReport(doc.source, "failed", error=f"cannot read: {exc.strerror or exc}")
    digest = hashlib.sha256(data).hexdigest()
    chunking: list[Any] = (
        [chunk_size, chunk_overlap] if length is None else [chunk_size, chunk_overlap, "tokens"]
    )
    if old_count and stored == (digest, old_count, chunking):
        return FileReport(doc.source, "unchanged", chunks=old_count)
    try:
        chunks = split_text(read_text(doc.path, data), chunk_size, chunk_overlap, length)
        if length is not None:
            longest = max((length(c.text) for c in chunks), default=0)
            if longest > chunk_size:  # the splitter sums its pieces' counts: never trust it blindly
                raise UnreadableFileError(
                    f"a chunk of {longest} tokens exceeds the chunk size of {chunk_size}: it would be "
                    "cut short"
                )
    except Exception as exc:  # unreadable, or an extractor's surprise: never the end of the run
        error = str(exc) if isinstance(exc, UnreadableFileError) else f"{type(exc).__name__}: {exc}"
        return FileReport(doc.source, "failed", error=error)
    ids = [chunk_id(doc.source, i) for i in range(len(chunks))]
    metadatas: list[dict[str, Any] | None] = [
        {
            "path": doc.source,
            "source": doc.source,  # LangChain loaders name it so: filter={"source": ...} in the store
            "chunk": i,
            "chunks": len(chunks),
            "start": c.start,
            "end": c.end,
            "lines": [c.first_line, c.last_line],
            "mtime": mtime,
            "content_hash": digest,
            "chunking": chunking,
        }
        for i, c in enumerate(chunks)
    ]
    try:
        target.replace_source(doc.source, ids, None, [c.text for c in chunks], metadatas)
    except Exception as exc:  # the collection refused this file (too large, ...): the old chunks stay
        return FileReport(doc.source, "failed", error=f"{type(exc).__name__}: {exc}")
    if not chunks:
        return FileReport(doc.source, "empty", removed_chunks=old_count)
    return FileReport(doc.source, "changed" if old_count else "added", len(chunks), old_count)
