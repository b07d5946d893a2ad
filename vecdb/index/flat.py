"""Exact (flat) index: FAISS IndexIDMap2 over IndexFlatL2 / IndexFlatIP.

Vectors are addressed by int64 labels. For ``cosine`` the wrapper normalizes vectors and queries, so
the inner product it returns is the cosine similarity. Not thread-safe for mutation: the engine
serializes add/remove against searches (searches may run concurrently with each other).
"""

from __future__ import annotations

import faiss
import numpy as np

from vecdb.types import Metric

__all__ = ["FlatIndex", "set_search_threads"]

# Batched exact search is a GEMM. FAISS takes its BLAS path when n_queries * dim >= this threshold
# (1.15's default, 128000, leaves 384-d batches under 333 queries on a scalar loop ~5x slower). One
# query is faster on the scalar loop (~8 ms vs ~33 ms on 100k x 384): BLAS from ~4 queries of 384-d up.
faiss.cvar.distance_compute_blas_threshold = 2048
_MAX_THREADS = faiss.omp_get_max_threads()


def set_search_threads(nq: int, single_thread_max: int) -> None:
    """Small batches on one OpenMP thread (no spin-up: ~0.1 ms instead of ~8 ms a query), big ones on all.

    OpenMP's thread count is per calling thread, so concurrent searches do not disturb each other.
    """
    faiss.omp_set_num_threads(1 if nq <= single_thread_max else _MAX_THREADS)


class FlatIndex:
    kind = "flat"

    def __init__(self, dim: int, metric: Metric, index: faiss.Index | None = None) -> None:
        self.dim = dim
        self.metric = metric
        if index is None:
            inner = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
            index = faiss.IndexIDMap2(inner)
        self._index = index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.metric == "cosine":
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under labels that are not in the index (the engine guarantees it)."""
        if len(labels):
            self._index.add_with_ids(self._prepare(vectors), np.ascontiguousarray(labels, dtype=np.int64))

    def remove(self, labels: np.ndarray) -> int:
        """Remove labels; labels not in the index are ignored. Returns how many were removed."""
        if not len(labels):
            return 0
        ids = np.ascontiguousarray(labels, dtype=np.int64)
        return int(self._index.remove_ids(faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))))

    def labels(self) -> np.ndarray:
        id_map = self._index.id_map  # type: ignore[attr-defined]
        return faiss.vector_to_array(id_map).astype(np.int64, copy=False)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query, best first: (scores, labels), label -1 where fewer than k exist.

        ``allowed`` (int64 labels) restricts the search to those labels; the result is still exact.
        """
        q = self._prepare(queries)
        if allowed is None:
            scores, labels = self._index.search(q, k)
        else:
            ids = np.ascontiguousarray(allowed, dtype=np.int64)
            sel = faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))
            scores, labels = self._index.search(q, k, params=faiss.SearchParameters(sel=sel))  # type: ignore[call-arg]
            del sel  # ids must outlive the search: keep both alive until here
        return scores, labels

    def serialize(self) -> np.ndarray:
        return faiss.serialize_index(self._index)

    @classmethod
    def deserialize(cls, dim: int, metric: Metric, payload: np.ndarray) -> FlatIndex:
        index = faiss.deserialize_index(payload)
        if not isinstance(index, faiss.IndexIDMap2) or index.d != dim:
            raise ValueError("checkpoint does not hold a flat IDMap2 index of this dimension")
        return cls(dim, metric, index)
