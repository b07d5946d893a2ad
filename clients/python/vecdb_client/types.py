"""What the client returns: records, hits, sources and collection info (the engine's value types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "DEFAULT_INCLUDE",
    "INCLUDE_FIELDS",
    "CollectionInfo",
    "Hit",
    "Metric",
    "Record",
    "SearchMode",
    "SnapshotInfo",
    "SourceInfo",
]

Metric = Literal["l2", "ip", "cosine"]
#: What a search ranks by: the vector index, the full-text index (BM25), or both fused.
SearchMode = Literal["vector", "text", "hybrid"]

#: What a get or search may return besides the id (and the score, for search).
INCLUDE_FIELDS = frozenset({"text", "metadata", "source", "vector"})
DEFAULT_INCLUDE: tuple[str, ...] = ("text", "metadata", "source")


@dataclass(frozen=True, slots=True)
class Record:
    """One stored record. Fields not asked for in ``include`` are None (``metadata``: empty)."""

    id: str
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    vector: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "metadata": self.metadata,
            "source": self.source,
        }
        if self.vector is not None:
            out["vector"] = self.vector.tolist()
        return out


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result, best first in its list.

    ``score``: for ``cosine`` and ``ip`` a similarity (higher is better; cosine lies in [-1, 1]); for
    ``l2`` the squared Euclidean distance (lower is better).
    """

    id: str
    score: float
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    vector: np.ndarray | None = None
    #: With ``"explain"`` in ``include``: each branch's ``{"rank": r, "score": s}`` (``"vector"``,
    #: ``"text"``; a branch is absent when the hit was not among its candidates). None otherwise.
    explain: dict[str, dict[str, float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "score": self.score,
            "text": self.text,
            "metadata": self.metadata,
            "source": self.source,
        }
        if self.vector is not None:
            out["vector"] = self.vector.tolist()
        if self.explain is not None:
            out["explain"] = self.explain
        return out


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A source (the file or document records came from) and how many live records it has."""

    source: str
    count: int


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A snapshot of a collection in the server's data directory (``created_at``: ISO 8601, UTC;
    ``seq``: the collection's sequence number it covers; ``records``: visible records then)."""

    collection: str
    name: str
    created_at: str
    seq: int
    records: int
    dim: int
    metric: str
    bytes: int


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A collection's configuration and state, as ``GET /v1/collections/{name}`` reports it."""

    name: str
    dim: int
    metric: Metric
    index: dict[str, Any]
    count: int
    sources: int
    index_state: dict[str, Any]
    seq: int
    checkpoint_seq: int
    embedding: dict[str, Any] | None = None
    capacity: dict[str, Any] | None = None  # {"max_records": N, "eviction": "fifo" | "lru"}
    text_index: dict[str, Any] | None = None  # the full-text index's spec and {"documents": N}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dim": self.dim,
            "metric": self.metric,
            "index": self.index,
            "count": self.count,
            "sources": self.sources,
            "index_state": self.index_state,
            "seq": self.seq,
            "checkpoint_seq": self.checkpoint_seq,
            "embedding": self.embedding,
            "capacity": self.capacity,
            "text_index": self.text_index,
        }
