"""Shared value types: records, hits, metrics, what a read may include."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "DEFAULT_INCLUDE",
    "INCLUDE_FIELDS",
    "METRICS",
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

    ``score`` depends on the collection's metric: ``cosine`` and ``ip`` give a similarity (higher is
    better; cosine lies in [-1, 1]); ``l2`` gives the squared Euclidean distance (lower is better).
    Hits are always ordered best first.
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
