"""Shared value types: records, hits, metrics, what a read may include."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "DEFAULT_INCLUDE",
    "INCLUDE_FIELDS",
    "METRICS",
    "SEARCH_INCLUDE_FIELDS",
    "SEARCH_MODES",
    "Hit",
    "Metric",
    "Record",
    "SnapshotInfo",
    "SourceInfo",
]

Metric = Literal["l2", "ip", "cosine"]
METRICS: tuple[Metric, ...] = ("l2", "ip", "cosine")

#: What a get or search may return besides the id (and the score, for search).
INCLUDE_FIELDS = frozenset({"text", "metadata", "source", "vector"})
DEFAULT_INCLUDE: tuple[str, ...] = ("text", "metadata", "source")
#: A search may also ask for ``explain``: each branch's rank and score behind a hit's score.
SEARCH_INCLUDE_FIELDS = INCLUDE_FIELDS | {"explain"}
#: ``search(mode=...)``: the vector index, the full-text (BM25) index, or both fused.
SEARCH_MODES = ("vector", "text", "hybrid")


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
    """One search result.

    ``score`` depends on the search mode and the collection's metric. Vector mode: ``cosine`` and ``ip``
    give a similarity (higher is better; cosine lies in [-1, 1]); ``l2`` gives the squared Euclidean
    distance (lower is better). Text mode: the BM25 score (higher is better). Hybrid mode: the fused
    score (higher is better; docs/search.md). Hits are always ordered best first.

    ``explain`` (only when the search's include has ``"explain"``): ``{"vector": {"rank": r, "score": s},
    "text": {"rank": r, "score": s}}``, 1-based ranks within each branch's candidates, a branch absent
    when the hit was not among its candidates.
    """

    id: str
    score: float
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    vector: np.ndarray | None = None
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
    """A snapshot of a collection: a directory under ``DATA_DIR/snapshots/COLLECTION/NAME``.

    ``seq`` is the collection's sequence number it covers, ``records`` the records visible then,
    ``created_at`` an ISO 8601 UTC time, ``bytes`` its size on disk.
    """

    collection: str
    name: str
    created_at: str
    seq: int
    records: int
    dim: int
    metric: Metric
    bytes: int
