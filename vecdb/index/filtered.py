"""Filtered search: the plan choice (exact over the admitted vectors, or the ANN index with a selector) and
the exact plan's in-place reads of the ANN index's storage.

**The choice** (``choose_plan``) compares the work of both plans, in units of one admitted vector scored
exactly (a gathered row of the index's storage, one multiply-add per dimension):

- exact: ``a`` rows, ``a`` = the filter's admitted records in the ANN index (the delta is scored exactly
  by both plans); rows read from the store (compressed storage) cost ``STORE_ROW_COST`` each.
- HNSW with a selector: ef is widened to ``ef' = ef x n / a`` (``n`` = the index's vectors) so that ef'
  candidates still hold ~ef admitted ones; its work is ``HNSW_VISIT_COST x ef'`` (each unit of ef expands
  a node: distances to its unvisited neighbours, random reads of the storage, heap updates).
- IVF with a selector: ``nprobe' = min(nlist, nprobe x n / a)`` lists of ``n / nlist`` vectors each, every
  one scored (the selector is tested per vector): ``nprobe' x n / nlist`` rows.

So exact wins below the break-even ``a* = sqrt(HNSW_VISIT_COST x ef x n)`` for HNSW (the exact cost grows
with ``a``, the ANN cost with ``1 / a``), and IVF's widened scan costs ``nprobe x n^2 / (nlist x a)``: the
rule depends only on the index's size, its knob (the calibrated ef / nprobe, which already grows with
``n``) and a per-operation cost ratio of the machine, not on a fixed count. It also keeps low
selectivities away from the ANN plan, whose recall falls there (plain FAISS HNSW with a selector collapses
at 1%, see FACTS.md): ``a*`` grows with ``sqrt(n)`` while ``a`` at a fixed selectivity grows with ``n``,
and a widening that ef's cap (``MAX_EF``) would cut short always goes exact. The cost ratio is measured by
``benchmarks/filtered_plan.py`` (results in ``benchmarks/results/filtered_plan.md``).

**The exact plan** reads main's vectors where the index stores them (``RowMap``: label -> row position,
built once per main, which is immutable), gathers the admitted rows into a buffer of ``GATHER_BYTES`` (one
per searching thread, kept: a fresh one per search paid a page fault per 4 KiB every time, since
``vecdb.engine.malloc`` has blocks over 256 KiB mmapped: 4 ms of an 11.7 ms search of 1,936 rows) and scores
each chunk with FAISS's exhaustive k-NN (``faiss.knn``: a SIMD scan with a top-k heap for a few queries,
blocked BLAS for batches; no queries x rows score matrix). No per-label ``reconstruct`` call. Measured under
load on 2 cores: numpy's multi-threaded GEMV for one query against 4,000 rows took 20 ms (OpenBLAS threads
waiting for a core) where ``faiss.knn`` on the engine's single OpenMP thread took 0.09 ms.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "GATHER_BYTES",
    "HNSW_VISIT_COST",
    "STORE_ROW_COST",
    "FilterPlan",
    "GatherBuffers",
    "RowMap",
    "choose_plan",
    "chunk_rows",
    "row_chunks",
]

#: Work of one unit of HNSW's ef at m = 32, in exactly scored rows (measured: benchmarks/filtered_plan.py;
#: both sides score d-dimensional vectors, so the ratio does not depend on d to first order).
HNSW_VISIT_COST = 8.0
#: Work of one vector read from the store and scored (compressed indexes), in rows of in-place storage
#: (measured through a collection at 20k x 384: 12-20 us a row from RocksDB, 0.27-0.6 us in place).
STORE_ROW_COST = 40.0
#: Bytes of admitted vectors the exact plan gathers at once (its buffer: one per searching thread).
GATHER_BYTES = 2 << 20


@dataclass(frozen=True, slots=True)
class FilterPlan:
    """The planner's choice for one filtered search, with the estimated work of both plans (in rows)."""

    plan: Literal["exact", "ann"]
    admitted: int  # admitted records in the ANN index (the delta is scored exactly either way)
    exact_cost: float
    ann_cost: float  # inf when the ANN plan cannot widen enough (ef capped) or has nothing to search
    reason: str  # "pinned" (index.exact_max_admitted is a number), "cost", "cap" or "no-main"


def choose_plan(
    *,
    kind: str,
    admitted: int,
    n_main: int,
    k: int,
    knob: int,
    nlist: int,
    lossy: bool,
    rerank: int,
    max_ef: int,
    m: int = 32,
) -> FilterPlan:
    """The cheaper plan for a filter admitting ``admitted`` of the ``n_main`` vectors of an ANN index.

    ``kind`` is "hnsw" or "ivf"; ``knob`` the ef_search / nprobe the unfiltered query would use;
    ``lossy`` says exact scores come from the store (compressed storage), where the ANN plan also re-ranks
    ``rerank`` candidates per query from the store; ``m`` is HNSW's neighbours per node (a node expansion
    scores up to 2m of them: the measured cost is for m = 32). Ties go to exact (recall 1.0).
    """
    row = STORE_ROW_COST if lossy else 1.0
    exact = admitted * row
    if admitted <= 0:
        return FilterPlan("exact", admitted, exact, math.inf, "cost")
    widen = n_main / admitted
    extra = rerank * STORE_ROW_COST if lossy else 0.0
    if kind == "hnsw":
        ef = max(k, math.ceil(knob * widen))
        if ef > max_ef:
            return FilterPlan("exact", admitted, exact, math.inf, "cap")
        ann = HNSW_VISIT_COST * (m / 32) * ef + extra
    else:
        probes = min(nlist, math.ceil(knob * widen))
        ann = probes * n_main / max(1, nlist) + extra
    return FilterPlan("exact" if exact <= ann else "ann", admitted, exact, ann, "cost")


def chunk_rows(dim: int) -> int:
    """Rows of ``dim`` floats gathered at once: ``GATHER_BYTES`` of them, at least 256."""
    return max(256, GATHER_BYTES // (4 * dim))


def row_chunks(n_rows: int, dim: int) -> Iterator[slice]:
    """Slices of ``chunk_rows(dim)`` rows covering ``n_rows`` rows (none for 0)."""
    step = chunk_rows(dim)
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


class GatherBuffers:
    """One gather buffer per thread (searches run concurrently under the engine's read lock), made at the
    thread's first exact plan over more than a few rows and kept while the thread lives."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._local = threading.local()

    def get(self, rows: int) -> np.ndarray:
        """A float32 buffer of at least ``min(rows, chunk_rows(dim))`` rows (contents undefined)."""
        want = min(rows, chunk_rows(self.dim))
        buf: np.ndarray | None = getattr(self._local, "buf", None)
        if buf is None or len(buf) < want:
            if want < chunk_rows(self.dim) // 8:
                return np.empty((want, self.dim), np.float32)  # small: from the heap, no faults
            buf = self._local.buf = np.empty((chunk_rows(self.dim), self.dim), np.float32)
        return buf


class RowMap:
    """Label -> row of an ANN index's own float32 storage (``AnnIndex.stored_blocks()``), no copy of it.

    One block whose labels are already ascending (an HNSW main: labels are handed out in increasing order,
    merges append the delta's sorted labels, rebuilds add the live labels sorted) is searched as it is;
    otherwise (IVF lists, or an HNSW built from out-of-order labels) a sorted copy of the labels and the
    permutation to rows are kept: 16 bytes per vector (1% of a 384-d float32 vector). The block views
    point into the index: keep the index alive while the map is used (it is never mutated).
    """

    def __init__(self, blocks: list[tuple[np.ndarray, np.ndarray]], dim: int) -> None:
        self.dim = dim
        self._blocks = [x for _, x in blocks]
        sizes = np.array([len(lb) for lb, _ in blocks], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(sizes)])
        labels = np.concatenate([lb for lb, _ in blocks]) if blocks else np.empty(0, np.int64)
        labels = labels.astype(np.int64, copy=False)
        if len(labels) < 2 or bool(np.all(labels[1:] > labels[:-1])):
            self._sorted, self._order = labels, None
        else:
            order = np.argsort(labels, kind="stable")
            self._sorted, self._order = labels[order], order

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def nbytes(self) -> int:
        """Bytes the map holds besides the index (its label copy, and the permutation when it needs one)."""
        return int(self._sorted.nbytes + (self._order.nbytes if self._order is not None else 0))

    def rows(self, labels: np.ndarray) -> np.ndarray:
        """Rows of ``labels`` (each must be in the index; raises KeyError naming one that is not)."""
        pos = np.searchsorted(self._sorted, labels)
        ok = pos < len(self._sorted)
        ok[ok] = self._sorted[pos[ok]] == labels[ok]
        if not ok.all():
            raise KeyError(f"label {int(labels[~ok][0])} is not in the index")
        return pos if self._order is None else self._order[pos]

    def gather(self, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The stored vectors at ``rows``, copied into ``out[:len(rows)]`` (a float32 (m, dim) buffer)."""
        out = out[: len(rows)]
        if len(self._blocks) == 1:
            np.take(self._blocks[0], rows, axis=0, out=out, mode="clip")  # "raise" buffers a copy
            return out
        block = np.searchsorted(self._starts, rows, side="right") - 1
        for b in np.unique(block):
            at = block == b
            out[at] = self._blocks[b][rows[at] - self._starts[b]]
        return out
