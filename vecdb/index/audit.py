"""Online recall audit: a sampled share of live queries is re-run exactly in the background.

The request path only draws a random number per query and, for the few sampled, appends (query, k,
returned labels and scores) to a bounded queue (``offer``; a full queue drops the sample and counts it).
A background task (``take`` -> exact search -> ``record``) compares them with the exact top-k over the
live vectors and keeps a window of per-query recall@k, reset whenever a new index is swapped in (its
knobs changed). ``summary`` is what ``info()["index_state"]["recall"]["audit"]`` and ``/metrics`` show.

Cost. One exact pass over the vectors serves a whole batch of samples (a matrix product per chunk of
vectors, ``AuditView``), so samples are batched: ``offer`` asks for the task once ``BATCH`` samples are
queued, or ``MAX_WAIT`` seconds after the first of fewer (the caller arms a timer). The pass reads the
index's own storage (no copy) through a view the index caches until a write or swap changes it.
Budget: the audit works at most ``SHARE`` of wall time. It earns ``SHARE`` seconds of work per second
(at most ``BURST`` saved up) and pays for each pass it runs; while in debt, sampled queries are dropped
and counted in ``dropped`` like a full queue's. Over any interval T it runs at most
``SHARE * T + BURST`` plus one pass.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from vecdb.index.calibrate import BANDS, SCAN_CHUNK

__all__ = ["AuditPart", "AuditSample", "AuditView", "RecallAudit", "Start"]

QUEUE = 256
WINDOW = 2000
#: Samples that make a batch: the task is scheduled at once when this many are queued.
BATCH = 16
#: Seconds a smaller batch waits for more samples before it is audited anyway.
MAX_WAIT = 2.0
#: Share of wall time the audit may work, and the most work (seconds) it may save up while idle.
SHARE = 0.05
BURST = 0.25
#: Rows an exact pass reads first, sorted in full, before it only merges what beats the k-th best.
WARM = 1024


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _one_blas_thread() -> Any:
    """numpy's BLAS on one thread while the audit's pass runs (process-wide while it lasts: the setting
    is global; the audit task is the only user). On two threads a pass costs about twice the CPU, and the
    idle BLAS thread then spins for ~0.1 s: 10x the pass at 20k x 384, measured in benchmarks/audit.py."""
    return _blas().limit(limits=1, user_api="blas")


class Start(IntEnum):
    """What ``offer`` asks of its caller: nothing, start the task now, or start it in ``MAX_WAIT`` s."""

    NO = 0
    NOW = 1
    LATER = 2


@dataclass(frozen=True, slots=True)
class AuditSample:
    query: np.ndarray  # raw (as the client sent it); the index prepares it
    k: int
    labels: np.ndarray
    scores: np.ndarray


class RecallAudit:
    """Thread-safe. ``fraction`` 0 turns it off (nothing is sampled)."""

    def __init__(self, fraction: float, seed: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.fraction = fraction
        self._rng = np.random.default_rng(seed)
        self._queue: deque[AuditSample] = deque()
        self._window: deque[tuple[int, float]] = deque(maxlen=WINDOW)
        self._lock = threading.Lock()
        self._clock = clock
        self._credit = BURST  # seconds of work the audit may still do (negative: in debt)
        self._earned_at = clock()
        self._state = Start.NO  # NO: idle; NOW: the task is scheduled or runs; LATER: a timer is armed
        self.dropped = 0  # full queue or over budget
        self.over_budget = 0  # of which over budget
        self.busy = 0.0  # seconds the audit has worked (``charge``)

    @property
    def scheduled(self) -> bool:
        return self._state != Start.NO

    def _earn(self) -> None:
        now = self._clock()
        self._credit = min(BURST, self._credit + SHARE * (now - self._earned_at))
        self._earned_at = now

    def offer(self, queries: np.ndarray, k: int, labels: np.ndarray, scores: np.ndarray) -> Start:
        """Sample some of a search's queries. ``Start.NOW``: the caller schedules the task (``take``) now;
        ``Start.LATER``: it schedules ``fire`` in ``MAX_WAIT`` seconds; ``Start.NO``: nothing to do."""
        if self.fraction <= 0:
            return Start.NO
        with self._lock:
            picked = np.flatnonzero(self._rng.random(len(queries)) < self.fraction)
            if len(picked):
                self._earn()
            for i in picked.tolist():
                if len(self._queue) >= QUEUE or self._credit < 0:
                    self.dropped += 1
                    self.over_budget += self._credit < 0
                    continue
                self._queue.append(AuditSample(queries[i].copy(), k, labels[i].copy(), scores[i].copy()))
            if not self._queue or self._state == Start.NOW:
                return Start.NO
            if len(self._queue) >= BATCH:
                self._state = Start.NOW
                return Start.NOW
            if self._state == Start.NO:
                self._state = Start.LATER
                return Start.LATER
            return Start.NO

    def fire(self) -> bool:
        """The timer armed by ``Start.LATER`` went off: True when the caller should schedule the task."""
        with self._lock:
            if self._state != Start.LATER:
                return False  # a full batch started the task meanwhile
            self._state = Start.NOW if self._queue else Start.NO
            return self._state == Start.NOW

    def take(self, most: int = 64) -> list[AuditSample]:
        """Up to ``most`` queued samples; an empty list ends the background task (``scheduled`` off)."""
        with self._lock:
            out = [self._queue.popleft() for _ in range(min(most, len(self._queue)))]
            if not out:
                self._state = Start.NO
            return out

    def charge(self, seconds: float) -> None:
        """The task worked ``seconds`` (one exact pass): paid from the budget."""
        with self._lock:
            self._earn()
            self._credit -= seconds
            self.busy += seconds

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


@dataclass(frozen=True, slots=True)
class AuditPart:
    """Vectors an ``AuditView`` scans: ``labels[i]`` names row i of ``vectors`` (an array, read in
    slices without a copy) or of ``fetch(labels[a:b])`` (read chunk by chunk); ``dead`` masks rows that
    are no longer live (None: all live); ``norms`` are the rows' squared norms (l2 only; None: computed)."""

    labels: np.ndarray
    vectors: np.ndarray | None = None
    fetch: Callable[[np.ndarray], np.ndarray] | None = None
    dead: np.ndarray | None = None
    norms: np.ndarray | None = None

    @property
    def live(self) -> int:
        return len(self.labels) - (0 if self.dead is None else int(self.dead.sum()))


class AuditView:
    """Exact top-k over the live vectors of some parts, for a batch of queries at once: each chunk of
    vectors is one matrix product with all the queries (the pass costs about the same for 1 query or
    64: reading the vectors dominates). ``keep`` holds what the parts' arrays point into."""

    def __init__(self, parts: list[AuditPart], metric: str, keep: Any = None) -> None:
        self.parts = [p for p in parts if len(p.labels)]
        self.size = sum(p.live for p in self.parts)
        self._l2 = metric == "l2"
        self._keep = keep

    def top(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels) per query, best first; scores are similarities, or l2 squared distances.

        Once every query has k candidates (after a first ``WARM`` rows), a chunk's keys are only
        compared with each query's current k-th best: the few that beat it are merged in (a partial sort
        of a whole chunk per query cost a third of the pass)."""
        q = np.ascontiguousarray(q, dtype=np.float32)
        k = min(k, self.size)
        nq = len(q)
        best_key = np.full((nq, 0), np.inf, np.float32)
        best_lab = np.zeros((nq, 0), np.int64)
        keys = np.empty((SCAN_CHUNK, nq), np.float32)  # key per (vector, query): lower is better
        labs = np.empty(SCAN_CHUNK, np.int64)
        rows = np.arange(nq)

        def merge(fill: int) -> None:
            nonlocal best_key, best_lab
            if fill == 0 or k == 0:
                return
            if best_key.shape[1] == k:  # only what beats each query's k-th best
                r, c = np.nonzero(keys[:fill] < best_key.max(axis=1)[None, :])
                if len(r) <= fill * nq // 8:
                    if len(r):
                        who = np.concatenate([np.repeat(rows, k), c])
                        key = np.concatenate([best_key.ravel(), keys[r, c]])
                        lab = np.concatenate([best_lab.ravel(), labs[r]])
                        order = np.lexsort((key, who))
                        starts = np.concatenate([[0], np.cumsum(np.bincount(who, minlength=nq))[:-1]])
                        pick = order[(starts[:, None] + np.arange(k)[None, :]).ravel()]
                        best_key, best_lab = key[pick].reshape(nq, k), lab[pick].reshape(nq, k)
                    return
            kk = min(k, fill)
            if kk < fill:
                part = np.argpartition(keys[:fill], kk - 1, axis=0)[:kk]
                got_key, got_lab = np.take_along_axis(keys[:fill], part, axis=0), labs[part]
            else:
                got_key, got_lab = keys[:fill], np.broadcast_to(labs[:fill, None], (fill, nq))
            best_key = np.concatenate([best_key, got_key.T], axis=1)
            best_lab = np.concatenate([best_lab, got_lab.T], axis=1)
            if best_key.shape[1] > k:
                keep = np.argpartition(best_key, k - 1, axis=1)[:, :k]
                best_key = np.take_along_axis(best_key, keep, axis=1)
                best_lab = np.take_along_axis(best_lab, keep, axis=1)

        fill = 0
        with _one_blas_thread():
            for p in self.parts:
                start = 0
                while start < len(p.labels):
                    step = SCAN_CHUNK if best_key.shape[1] == k else min(SCAN_CHUNK, max(WARM, k))
                    lab = p.labels[start : start + step]
                    if p.vectors is not None:
                        x = p.vectors[start : start + step]
                    else:
                        assert p.fetch is not None
                        x = np.ascontiguousarray(p.fetch(lab), dtype=np.float32)
                    m = len(lab)
                    if fill + m > SCAN_CHUNK or (fill and best_key.shape[1] < k):
                        merge(fill)
                        fill = 0
                    out = keys[fill : fill + m]
                    np.matmul(x, q.T, out=out)
                    if self._l2:
                        norms = (
                            p.norms[start : start + m] if p.norms is not None else np.einsum("ij,ij->i", x, x)
                        )
                        out *= -2
                        out += norms[:, None]
                    else:
                        np.negative(out, out=out)
                    if p.dead is not None:
                        out[p.dead[start : start + m]] = np.inf
                    labs[fill : fill + m] = lab
                    fill += m
                    start += m
        merge(fill)
        order = np.argsort(best_key, axis=1, kind="stable")
        key = np.take_along_axis(best_key, order, axis=1)
        scores = np.maximum(key + (q * q).sum(axis=1)[:, None], 0) if self._l2 else -key
        return scores.astype(np.float32), np.take_along_axis(best_lab, order, axis=1)
