"""Online recall audit: a sampled share of live queries is re-run exactly in the background.

The request path only draws a random number per query and, for the few sampled, appends (query, k,
returned labels and scores) to a bounded queue (``offer``; a full queue drops the sample and counts it).
A background task (``take`` -> exact search -> ``record``) compares them with the exact top-k over the
live vectors and keeps a window of per-query recall@k, reset whenever a new index is swapped in (its
knobs changed). ``summary`` is what ``info()["index_state"]["recall"]["audit"]`` and ``/metrics`` show.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecdb.index.calibrate import BANDS

__all__ = ["AuditSample", "RecallAudit"]

QUEUE = 256
WINDOW = 2000


@dataclass(frozen=True, slots=True)
class AuditSample:
    query: np.ndarray  # raw (as the client sent it); the index prepares it
    k: int
    labels: np.ndarray
    scores: np.ndarray


class RecallAudit:
    """Thread-safe. ``fraction`` 0 turns it off (nothing is sampled)."""

    def __init__(self, fraction: float, seed: int = 0) -> None:
        self.fraction = fraction
        self._rng = np.random.default_rng(seed)
        self._queue: deque[AuditSample] = deque()
        self._window: deque[tuple[int, float]] = deque(maxlen=WINDOW)
        self._lock = threading.Lock()
        self.dropped = 0
        self.scheduled = False

    def offer(self, queries: np.ndarray, k: int, labels: np.ndarray, scores: np.ndarray) -> bool:
        """Sample some of a search's queries; True when the caller should schedule ``take``."""
        if self.fraction <= 0:
            return False
        with self._lock:
            picked = np.flatnonzero(self._rng.random(len(queries)) < self.fraction)
            for i in picked.tolist():
                if len(self._queue) >= QUEUE:
                    self.dropped += 1
                    continue
                self._queue.append(AuditSample(queries[i].copy(), k, labels[i].copy(), scores[i].copy()))
            if self._queue and not self.scheduled:
                self.scheduled = True
                return True
            return False

    def take(self, most: int = 64) -> list[AuditSample]:
        """Up to ``most`` queued samples; an empty list ends the background task (``scheduled`` off)."""
        with self._lock:
            out = [self._queue.popleft() for _ in range(min(most, len(self._queue)))]
            if not out:
                self.scheduled = False
            return out

    def record(self, k: int, recall: float) -> None:
        with self._lock:
            self._window.append((k, recall))

    def reset(self) -> None:
        """A new index (or new knobs) serves searches: earlier measurements no longer describe it."""
        with self._lock:
            self._window.clear()

    def summary(self) -> dict[str, Any]:
        with self._lock:
            window = list(self._window)
            pending = len(self._queue)
        out: dict[str, Any] = {
            "fraction": self.fraction,
            "samples": len(window),
            "estimated_recall": None,
            "stderr": None,
            "pending": pending,
            "dropped": self.dropped,
            "bands": {},
        }
        if window:
            r = np.array([w[1] for w in window])
            out["estimated_recall"] = round(float(r.mean()), 4)
            out["stderr"] = round(float(r.std(ddof=1) / math.sqrt(len(r))), 4) if len(r) > 1 else None
            ks = np.array([w[0] for w in window])
            low = 0
            for b in BANDS:
                sel = (ks > low) & (ks <= b) if b != BANDS[-1] else ks > low
                if sel.any():
                    out["bands"][str(b)] = {
                        "samples": int(sel.sum()),
                        "estimated_recall": round(float(r[sel].mean()), 4),
                    }
                low = b
        return out
