"""Recall calibration: an ANN index measures its own recall@k and picks the cheapest ef_search / nprobe.

Run in the background job that built the index, before it serves searches (never under a lock). The
sample queries are *query-like*, not stored records plus tiny noise (queries that are near-copies of
stored records make every index look good; that is how fixed defaults went wrong):

- real queries from the collection's reservoir of recent searches, when it has some;
- synthetic ones: stored vectors (a seeded sample) plus isotropic noise, the noise scaled so that the
  queries' median similarity (l2: distance) to their nearest neighbour matches what real queries see
  (the reservoir's median), or, with no real queries yet, what a fresh draw from the data's own
  distribution sees: the median similarity of a stored vector to its nearest *other* stored vector.

Ground truth is exact (a chunked scan of every vector in the index; the stored raw vectors for a
compressed IVF). For each k band (10, 100, 1000) the recall curve over a geometric grid of ef_search /
nprobe values is kept, up to ``CURVE_CEILING`` recall, so any target (the collection's, or a per-query
one) is a lookup: the smallest value whose measured recall reaches it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "BANDS",
    "CURVE_CEILING",
    "BandCurve",
    "Calibration",
    "ExactScan",
    "QueryReservoir",
    "calibrate",
    "recall_at_k",
]

#: Upper k of each band: a query with k <= 10 uses the first band's curve, k <= 100 the second, else the
#: third.
BANDS = (10, 100, 1000)
#: The sweep stops once a band reaches this recall (per-query targets above it get the largest value).
CURVE_CEILING = 0.995
HNSW_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
IVF_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
SYNTHETIC_QUERIES = 200
REAL_QUERIES = 200
#: Queries per band (the first band uses them all).
BAND_QUERIES = (400, 100, 40)
LADDER = (0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0, 1.2, 1.5, 2.0, 2.6, 3.5)
LADDER_QUERIES = 50
NEIGHBOURS = 16
#: Real queries needed before their nearest-neighbour scores set the synthetic queries' distance.
MIN_REAL = 20
SCAN_CHUNK = 4_096
#: Once the reservoir is full, the chance that a new query replaces one in it.
REPLACE = 0.05
#: A band's sweep stops after this many seconds (the curve then ends at the last value measured).
BAND_BUDGET_S = 30.0

Search = Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, slots=True)
class BandCurve:
    """Measured recall@k (``k``: the band's upper k, clamped to the index size) per parameter value."""

    k: int
    queries: int
    values: tuple[int, ...]
    recalls: tuple[float, ...]

    def choose(self, target: float) -> int:
        """The smallest value measured to reach ``target``; the largest measured when none does."""
        for v, r in zip(self.values, self.recalls, strict=True):
            if r >= target:
                return v
        return self.values[-1]

    def recall_at(self, value: int) -> float:
        """Measured recall at the largest grid value <= ``value`` (0 below the grid)."""
        best = 0.0
        for v, r in zip(self.values, self.recalls, strict=True):
            if v <= value:
                best = r
        return best


@dataclass(frozen=True, slots=True)
class Calibration:
    """An index's recall curves per k band: part of its derived state (checkpointed with it)."""

    param: Literal["ef_search", "nprobe"]
    bands: tuple[BandCurve, ...]
    seconds: float
    synthetic_queries: int
    real_queries: int
    #: Median score of the calibration queries' exact nearest neighbour (similarity; l2: distance).
    query_top1: float
    #: How far synthetic queries moved from their stored vector, in steps of the local spread.
    noise: float
    vectors: int

    def band(self, k: int) -> BandCurve:
        for b in self.bands:
            if k <= b.k:
                return b
        return self.bands[-1]

    def choose(self, k: int, target: float) -> int:
        value = self.band(k).choose(target)
        return max(value, k) if self.param == "ef_search" else value

    def summary(self, target: float) -> dict[str, Any]:
        """What ``info()["index_state"]["recall"]["calibration"]`` shows."""
        return {
            "param": self.param,
            "bands": [
                {
                    "k": b.k,
                    "value": b.choose(target),
                    "estimated_recall": round(b.recall_at(b.choose(target)), 4),
                    "reachable": b.recalls[-1] >= target,
                    "queries": b.queries,
                }
                for b in self.bands
            ],
            "seconds": round(self.seconds, 3),
            "synthetic_queries": self.synthetic_queries,
            "real_queries": self.real_queries,
            "query_top1": round(self.query_top1, 4),
            "noise": round(self.noise, 4),
            "vectors": self.vectors,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "param": self.param,
            "bands": [
                {"k": b.k, "queries": b.queries, "values": list(b.values), "recalls": list(b.recalls)}
                for b in self.bands
            ],
            "seconds": self.seconds,
            "synthetic_queries": self.synthetic_queries,
            "real_queries": self.real_queries,
            "query_top1": self.query_top1,
            "noise": self.noise,
            "vectors": self.vectors,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Calibration:
        """Raises KeyError / TypeError / ValueError on a malformed object."""
        param = raw["param"]
        if param not in ("ef_search", "nprobe"):
            raise ValueError(f"unknown calibration parameter {param!r}")
        bands = tuple(
            BandCurve(
                int(b["k"]),
                int(b["queries"]),
                tuple(int(v) for v in b["values"]),
                tuple(float(r) for r in b["recalls"]),
            )
            for b in raw["bands"]
        )
        if not bands or any(not b.values or len(b.values) != len(b.recalls) for b in bands):
            raise ValueError("calibration without measurements")
        return cls(
            param,
            bands,
            float(raw["seconds"]),
            int(raw["synthetic_queries"]),
            int(raw["real_queries"]),
            float(raw["query_top1"]),
            float(raw["noise"]),
            int(raw["vectors"]),
        )


class QueryReservoir:
    """A sample of recent real queries (prepared vectors). Thread-safe.

    Fills up, then each offered query replaces a random slot with probability ``REPLACE``: old queries
    fade out (a query stays about size / REPLACE queries), so the sample follows today's traffic.
    """

    def __init__(self, dim: int, size: int = REAL_QUERIES, seed: int = 0) -> None:
        self._x = np.zeros((size, dim), np.float32)
        self._size = size
        self._seen = 0
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def offer(self, q: np.ndarray) -> None:
        with self._lock:
            for row in q[: self._size]:
                if self._seen < self._size:
                    self._x[self._seen] = row
                elif self._rng.random() < REPLACE:
                    self._x[int(self._rng.integers(0, self._size))] = row
                self._seen += 1

    def sample(self) -> np.ndarray:
        with self._lock:
            return self._x[: min(self._seen, self._size)].copy()


class ExactScan:
    """Exact top-k over every vector of an index, read chunk by chunk (no full copy in memory)."""

    def __init__(
        self, labels: np.ndarray, vectors_of: Callable[[np.ndarray], np.ndarray], metric: str
    ) -> None:
        self.labels = labels
        self.vectors_of = vectors_of
        self._l2 = metric == "l2"

    def top(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels) per query, best first; scores are similarities, or l2 squared distances."""
        k = min(k, len(self.labels))
        best_key = np.full((len(q), 0), np.inf, np.float32)
        best_lab = np.zeros((len(q), 0), np.int64)
        qq = (q * q).sum(axis=1)[:, None] if self._l2 else None
        for start in range(0, len(self.labels), SCAN_CHUNK):
            lab = self.labels[start : start + SCAN_CHUNK]
            x = np.ascontiguousarray(self.vectors_of(lab), dtype=np.float32)
            dots = q @ x.T
            # key: lower is better
            key = ((x * x).sum(axis=1)[None, :] - 2 * dots + qq) if qq is not None else -dots
            kk = min(k, len(lab))
            part = (
                np.argpartition(key, kk - 1, axis=1)[:, :kk]
                if kk < len(lab)
                else np.tile(np.arange(len(lab)), (len(q), 1))
            )
            best_key = np.concatenate([best_key, np.take_along_axis(key, part, axis=1)], axis=1)
            best_lab = np.concatenate([best_lab, lab[part]], axis=1)
            if best_key.shape[1] > k:
                keep = np.argpartition(best_key, k - 1, axis=1)[:, :k]
                best_key = np.take_along_axis(best_key, keep, axis=1)
                best_lab = np.take_along_axis(best_lab, keep, axis=1)
        order = np.argsort(best_key, axis=1, kind="stable")
        key = np.take_along_axis(best_key, order, axis=1)
        scores = np.maximum(key, 0) if self._l2 else -key
        return scores.astype(np.float32), np.take_along_axis(best_lab, order, axis=1)


def recall_at_k(
    found: np.ndarray, truth: np.ndarray, truth_scores: np.ndarray, found_scores: np.ndarray | None, l2: bool
) -> float:
    """Mean share of the exact top-k found. A found label scoring as well as the k-th exact one (a tie,
    within 1e-5) counts as found: duplicates of a vector are interchangeable."""
    total = 0.0
    k = truth.shape[1]
    for i in range(len(truth)):
        want = set(truth[i].tolist())
        got = found[i][found[i] >= 0]
        hit = sum(1 for lb in got.tolist() if lb in want)
        if found_scores is not None and hit < k:
            kth = float(truth_scores[i, -1])
            sc = found_scores[i][found[i] >= 0]
            ties = [s for lb, s in zip(got.tolist(), sc.tolist(), strict=True) if lb not in want]
            ok = sum(1 for s in ties if (s <= kth + 1e-5 if l2 else s >= kth - 1e-5))
            hit = min(k, hit + ok)
        total += hit / k
    return total / max(1, len(truth))


def _median_top1(scores: np.ndarray) -> float:
    return float(np.median(scores[:, 0])) if len(scores) else math.nan


def calibrate(
    kind: Literal["hnsw", "ivf"],
    scan: ExactScan,
    search: Search,
    prepare: Callable[[np.ndarray], np.ndarray],
    metric: str,
    real: np.ndarray,
    nlist: int,
    cancel: threading.Event | None = None,
    exact_scores: bool = True,
    seed: int = 20,
) -> Calibration | None:
    """Measure recall curves of an index. ``search(q, k, value)`` searches it with ef_search / nprobe
    ``value`` and returns (scores, labels) (for a compressed index: the candidates it would re-rank, and
    ``exact_scores`` False). ``real``: prepared real queries (may be empty). None when the index holds
    fewer than 2 vectors or ``cancel`` is set."""
    started = time.perf_counter()
    n = len(scan.labels)
    if n < 2:
        return None
    l2 = metric == "l2"
    rng = np.random.default_rng(seed)
    pick = scan.labels[np.sort(rng.choice(n, size=min(n, SYNTHETIC_QUERIES), replace=False))]
    base = np.ascontiguousarray(scan.vectors_of(pick), dtype=np.float32)
    # Pass 1: the sample's nearest neighbours (the first is itself, bar duplicates), the real queries'
    # nearest.
    nn = min(n, NEIGHBOURS + 1)
    s_self, l_self = scan.top(base, nn)
    s_real = scan.top(real, 1)[0] if len(real) else np.zeros((0, 1), np.float32)
    if cancel is not None and cancel.is_set():
        return None
    other = np.where(l_self[:, 0] == pick, s_self[:, 1], s_self[:, 0]) if nn > 1 else s_self[:, 0]
    want = _median_top1(s_real) if len(real) >= MIN_REAL else float(np.median(other))
    # A synthetic query moves a stored vector along directions of its own neighbourhood:
    # x_a + lam * ((x_b - x_a) + (x_c - x_d)) / 2 with b, c, d among its neighbours. At lam = 1 that is
    # (x_a + x_b + x_c - x_d) / 2: for a Gaussian cluster, exactly a fresh draw from it.
    others = l_self[:, 1:] if nn > 1 else l_self
    j = rng.integers(0, others.shape[1], size=(len(pick), 3))
    bcd = np.take_along_axis(others, j, axis=1)
    xb, xc, xd = (np.ascontiguousarray(scan.vectors_of(bcd[:, i]), dtype=np.float32) for i in range(3))
    step = ((xb - base) + (xc - xd)) / 2
    m = min(LADDER_QUERIES, len(base))
    ladder = np.concatenate([prepare(base[:m] + lam * step[:m]) for lam in LADDER])
    s_ladder = scan.top(ladder, 1)[0]
    med = np.array([np.median(s_ladder[i * m : (i + 1) * m, 0]) for i in range(len(LADDER))])
    # The nearest neighbour's score falls (l2: its distance rises) with lam: interpolate where it meets
    # ``want``.
    key = np.maximum.accumulate(med if l2 else -med)
    target_key = want if l2 else -want
    if target_key <= key[0]:
        lam = LADDER[0]
    elif target_key >= key[-1]:
        lam = LADDER[-1]
    else:
        i = int(np.searchsorted(key, target_key))
        lo, hi = key[i - 1], key[i]
        t = 0.0 if hi == lo else (target_key - lo) / (hi - lo)
        lam = LADDER[i - 1] + t * (LADDER[i] - LADDER[i - 1])
    syn = prepare(base + lam * step)
    noise = lam
    queries = np.concatenate([real, syn]) if len(real) else syn
    bands = sorted({min(b, n) for b in BANDS})
    truth_s, truth_l = scan.top(queries, bands[-1])
    grid = HNSW_GRID if kind == "hnsw" else (*(v for v in IVF_GRID if v < nlist), nlist)
    curves = []
    for bi, k in enumerate(bands):
        m = min(len(queries), BAND_QUERIES[min(bi, len(BAND_QUERIES) - 1)])
        # Real and synthetic queries both stay represented when a band uses fewer.
        rows = np.unique(np.linspace(0, len(queries) - 1, m).round().astype(np.int64))
        q = queries[rows]
        values, recalls = [], []
        band_start = time.perf_counter()
        for v in grid:
            if kind == "hnsw" and v < k and v != grid[-1]:
                continue
            if cancel is not None and cancel.is_set():
                return None
            sc, lab = search(q, k, v)
            r = recall_at_k(
                lab[:, :k] if exact_scores else lab,
                truth_l[rows, :k],
                truth_s[rows, :k],
                sc if exact_scores else None,
                l2,
            )
            values.append(v)
            recalls.append(round(r, 5))
            if r >= CURVE_CEILING or time.perf_counter() - band_start > BAND_BUDGET_S:
                break
        curves.append(BandCurve(k, len(q), tuple(values), tuple(recalls)))
    return Calibration(
        "ef_search" if kind == "hnsw" else "nprobe",
        tuple(curves),
        time.perf_counter() - started,
        len(syn),
        len(real),
        _median_top1(truth_s),
        float(noise),
        n,
    )
