"""Exact index: FAISS IndexIDMap2 over IndexFlatIP / IndexFlatL2, addressed by int64 labels.

It works on *prepared* vectors (normalized for cosine by ``TieredIndex``). Removal is real. Serves as
the whole index of a flat collection and as the delta buffer in front of an ANN index.
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np

from vecdb.index.device import Device, FlatMirror
from vecdb.index.selectors import LabelSelector

__all__ = ["FlatIndex", "faiss_metric", "set_search_threads", "write_index_to"]

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


def faiss_metric(metric: str) -> int:
    """FAISS metric for a collection metric (cosine is inner product on normalized vectors)."""
    return int(faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT)


def write_index_to(index: faiss.Index, sink: Callable[[bytes], None]) -> None:
    """``faiss.write_index``'s bytes handed to ``sink`` chunk by chunk (FAISS's callback writer buffers
    1 MiB): no in-memory copy of the whole serialized index."""

    def write(chunk: bytes) -> int:
        sink(bytes(chunk))
        return len(chunk)

    writer = faiss.PyCallbackIOWriter(write)  # type: ignore[attr-defined]
    try:
        faiss.write_index(index, writer)
    finally:
        del writer  # flushes its last buffered chunk


class FlatIndex:
    kind = "flat"

    def __init__(self, dim: int, metric: str, index: faiss.Index | None = None) -> None:
        self.dim = dim
        self.metric = metric
        if index is None:
            inner = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
            index = faiss.IndexIDMap2(inner)
        self._index = index
        self._mirror: FlatMirror | None = None

    def attach(self, device: Device) -> None:
        """Mirror this index on ``device``: unfiltered searches run there from now on."""
        self._mirror = FlatMirror(device, self.dim, faiss_metric(self.metric))
        self._mirror.reload(*self.vectors())

    @property
    def on_device(self) -> bool:
        return self._mirror is not None and self._mirror.usable

    def _sync_mirror(self) -> None:
        if self._mirror is not None and self._mirror.needs_reload():
            self._mirror.reload(*self.vectors())

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add prepared vectors under labels that are not in the index (the caller guarantees it)."""
        if len(labels):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(labels, dtype=np.int64)
            )
            if self._mirror is not None:
                self._mirror.add(labels, vectors)
                self._sync_mirror()

    def remove(self, labels: np.ndarray) -> int:
        """Remove labels; labels not in the index are ignored. Returns how many were removed."""
        if not len(labels):
            return 0
        ids = np.ascontiguousarray(labels, dtype=np.int64)
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))))
        if self._mirror is not None:
            self._mirror.remove(ids)
            self._sync_mirror()
        return removed

    def labels(self) -> np.ndarray:
        id_map = self._index.id_map  # type: ignore[attr-defined]
        return faiss.vector_to_array(id_map).astype(np.int64, copy=False)

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """A copy of (labels, prepared vectors), in storage order."""
        n = len(self)
        inner = faiss.downcast_index(self._index.index)  # type: ignore[attr-defined]
        if n == 0:
            return np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        xb = faiss.rev_swig_ptr(inner.get_xb(), n * self.dim)  # type: ignore[attr-defined]
        return self.labels().copy(), np.array(xb, dtype=np.float32).reshape(n, self.dim)

    def reconstruct(self, labels: np.ndarray) -> np.ndarray:
        """Prepared vectors of labels that are in the index."""
        out: np.ndarray = self._index.reconstruct_batch(np.ascontiguousarray(labels, dtype=np.int64))
        return out

    def search(
        self, queries: np.ndarray, k: int, selector: LabelSelector | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k per prepared query: (scores, labels), label -1 where fewer than k exist."""
        k = max(1, min(k, len(self)))
        if selector is None:
            if self._mirror is not None:
                found = self._mirror.search(queries, k)
                if found is not None:
                    return found
            return self._index.search(queries, k)
        params = faiss.SearchParameters(sel=selector.selector)  # type: ignore[call-arg]
        return self._index.search(queries, k, params=params)

    def serialize(self) -> np.ndarray:
        return faiss.serialize_index(self._index)

    def write_to(self, sink: Callable[[bytes], None]) -> None:
        """``serialize``'s bytes, handed to ``sink`` in chunks of at most 1 MiB: one copy of the index in
        all. ``serialize`` peaks at twice the index (FAISS's growing byte vector, then the numpy copy):
        +233 MiB for an 80k x 384 delta, against +118 MiB for the chunks."""

        write_index_to(self._index, sink)

    @classmethod
    def deserialize(cls, dim: int, metric: str, payload: np.ndarray) -> FlatIndex:
        index = faiss.deserialize_index(payload)
        if not isinstance(index, faiss.IndexIDMap2) or index.d != dim:
            raise ValueError("payload does not hold a flat IDMap2 index of this dimension")
        return cls(dim, metric, index)
