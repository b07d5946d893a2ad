"""Raw FAISS: IndexFlatIP (exact) and IndexHNSWFlat, in memory, on unit vectors (inner product = cosine).

FAISS stores vectors and int64 labels only, so the application keeps the metadata: here an array of source
numbers per label, grouped into label arrays per source (rebuilt on load). Filters are an
``IDSelectorBatch`` of the source's labels in the search parameters. Persistence is ``write_index`` /
``read_index`` of the index file plus ``np.save`` of that array.

- faiss-flat: ``IndexIDMap(IndexFlatIP)`` so that labels survive ``remove_ids`` (a bare IndexFlat renumbers
  on removal); delete-by-source is a real ``remove_ids``. Default: FAISS's OpenMP threads for every call
  and its ``distance_compute_blas_threshold`` (batches smaller than it do not use BLAS); tuned: one
  thread for single queries, BLAS from 20 queries. Recall is 1.0 either way.
- faiss-hnsw: ``IndexHNSWFlat(d, 32, METRIC_INNER_PRODUCT)`` (M=32 and efConstruction=40 are FAISS's
  defaults), default efSearch 16. HNSW cannot remove: delete-by-source adds the labels to an application
  tombstone set excluded with ``IDSelectorNot`` on every later search. Tuned: efSearch raised and one
  OpenMP thread for single queries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

EF_SWEEP = (16, 32, 64, 128, 256, 512)
SOURCES = 100
MAX_THREADS = faiss.omp_get_max_threads()
DEFAULT_BLAS_THRESHOLD = int(faiss.cvar.distance_compute_blas_threshold)


def _code(source: str) -> int:
    return int(source[len("file") : -len(".txt")])


def _rows(labels: np.ndarray) -> list[int]:
    return [int(v) for v in labels if v >= 0]


class _Faiss:
    exact = False
    index: Any

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.codes = np.empty(0, dtype=np.int32)
        self.by_source: dict[int, np.ndarray] = {}

    def create(self, work: Path, dim: int, n: int) -> None:
        self.work, self.dim = work, dim
        self.codes = np.full(n, -1, dtype=np.int32)
        self.index = self._new(dim)

    def _new(self, dim: int) -> Any:
        raise NotImplementedError

    def _group(self) -> None:
        order = np.argsort(self.codes, kind="stable")
        bounds = np.searchsorted(self.codes[order], np.arange(SOURCES + 1))
        self.by_source = {c: order[bounds[c] : bounds[c + 1]].astype(np.int64) for c in range(SOURCES)}

    def finish_ingest(self) -> dict[str, Any]:
        self._group()
        return {"ntotal": int(self.index.ntotal)}

    def _threads(self, single: bool, params: dict[str, Any]) -> None:
        want = 1 if single and params.get("single_thread") else MAX_THREADS
        if faiss.omp_get_max_threads() != want:
            faiss.omp_set_num_threads(want)
        blas = int(params.get("blas_threshold", DEFAULT_BLAS_THRESHOLD))
        if faiss.cvar.distance_compute_blas_threshold != blas:
            faiss.cvar.distance_compute_blas_threshold = blas

    def _search(self, q: np.ndarray, k: int, params: dict[str, Any], sel: Any = None) -> np.ndarray:
        raise NotImplementedError

    def search(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[int]:
        self._threads(True, params)
        return _rows(self._search(q[None, :], k, params)[0])

    def search_batch(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[list[int]] | None:
        self._threads(False, params)
        return [_rows(r) for r in self._search(q, k, params)]

    def search_filtered(self, q: np.ndarray, k: int, source: str, params: dict[str, Any]) -> list[int]:
        self._threads(True, params)
        sel = faiss.IDSelectorBatch(self.by_source[_code(source)])
        return _rows(self._search(q[None, :], k, params, sel)[0])

    def check_deleted(self, source: str, ids: list[str]) -> dict[str, int]:
        labels = np.array([int(i) for i in ids])
        return {"app_metadata_rows": int((self.codes[labels] >= 0).sum())}

    def close(self) -> dict[str, Any]:
        faiss.write_index(self.index, str(self.work / "index.faiss"))
        np.save(self.work / "codes.npy", self.codes)
        size = os.path.getsize(self.work / "index.faiss")
        self.index = None
        return {"call": "write_index + np.save of the application's metadata", "index_file_bytes": size}

    def reopen(self) -> None:
        self.index = faiss.read_index(str(self.work / "index.faiss"))
        self.codes = np.load(self.work / "codes.npy")
        self._group()

    def peaks(self) -> dict[str, int]:
        return {}

    def shutdown(self) -> None:
        self.index = None


class FaissFlat(_Faiss):
    exact = False  # exact search, but it has a tuned row: threads and BLAS (see the module docstring)

    def _new(self, dim: int) -> Any:
        return faiss.IndexIDMap(faiss.IndexFlatIP(dim))

    def describe(self) -> dict[str, Any]:
        return {
            "library": "faiss",
            "index": "IndexIDMap(IndexFlatIP)",
            "metric": "inner product on unit vectors",
            "default_search": {"omp_threads": MAX_THREADS, "blas_threshold": DEFAULT_BLAS_THRESHOLD},
            "returns": "labels and scores",
            "filter": "SearchParameters(sel=IDSelectorBatch(labels of the source)), labels from app metadata",
            "delete": "remove_ids(labels of the source)",
            "persistence": "none built in: write_index/read_index (+ the app's metadata)",
        }

    def default_params(self) -> dict[str, Any]:
        return {}

    def sweep(self) -> list[dict[str, Any]]:
        return [{"single_thread": True, "blas_threshold": 20}]

    def insert(self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        labels = np.array([int(i) for i in ids], dtype=np.int64)
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), labels)
        self.codes[labels] = [_code(m["source"]) for m in metas]

    def _search(self, q: np.ndarray, k: int, params: dict[str, Any], sel: Any = None) -> np.ndarray:
        if sel is None:
            return self.index.search(q, k)[1]
        return self.index.search(q, k, params=faiss.SearchParameters(sel=sel))[1]

    def delete_source(self, source: str) -> dict[str, Any]:
        labels = self.by_source.pop(_code(source))
        removed = self.index.remove_ids(labels)
        self.codes[labels] = -1
        return {"call": "IndexIDMap.remove_ids", "deleted": int(removed)}


class FaissHnsw(_Faiss):
    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.tombstones = np.empty(0, dtype=np.int64)
        self._not: Any = None
        self._keep: list[Any] = []

    def _new(self, dim: int) -> Any:
        return faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)

    def describe(self) -> dict[str, Any]:
        return {
            "library": "faiss",
            "index": "IndexHNSWFlat(d, M=32, METRIC_INNER_PRODUCT), efConstruction 40 (FAISS defaults)",
            "metric": "inner product on unit vectors",
            "default_search": {"efSearch": 16, "omp_threads": MAX_THREADS},
            "returns": "labels and scores",
            "filter": "SearchParametersHNSW(sel=IDSelectorBatch(labels of the source), efSearch=ef)",
            "delete": "no remove_ids for HNSW: application tombstones, IDSelectorNot on every later search",
            "persistence": "none built in: write_index/read_index (+ the app's metadata and tombstones)",
        }

    def default_params(self) -> dict[str, Any]:
        return {}

    def sweep(self) -> list[dict[str, Any]]:
        return [{"efSearch": v, "single_thread": True} for v in EF_SWEEP]

    def insert(self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        labels = np.array([int(i) for i in ids], dtype=np.int64)
        if int(labels[0]) != self.index.ntotal:  # HNSWFlat numbers vectors in insertion order
            raise RuntimeError("records must arrive in label order")
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.codes[labels] = [_code(m["source"]) for m in metas]

    def _search(self, q: np.ndarray, k: int, params: dict[str, Any], sel: Any = None) -> np.ndarray:
        ef = params.get("efSearch")
        if sel is None:
            sel = self._not
        elif self._not is not None:
            both = faiss.IDSelectorAnd(sel, self._not)
            self._keep = [sel, both]
            sel = both
        if sel is None and ef is None:
            return self.index.search(q, k)[1]
        sp = faiss.SearchParametersHNSW()
        if ef is not None:
            sp.efSearch = int(ef)
        if sel is not None:
            sp.sel = sel
        return self.index.search(q, k, params=sp)[1]

    def _tombstone(self) -> None:
        if len(self.tombstones):
            inner = faiss.IDSelectorBatch(self.tombstones)
            self._not = faiss.IDSelectorNot(inner)
            self._keep_not = inner
        else:
            self._not = None

    def delete_source(self, source: str) -> dict[str, Any]:
        labels = self.by_source.pop(_code(source))
        self.codes[labels] = -1
        self.tombstones = np.union1d(self.tombstones, labels)
        self._tombstone()
        return {"call": "application tombstones + IDSelectorNot (HNSW has no remove_ids)"}

    def close(self) -> dict[str, Any]:
        np.save(self.work / "tombstones.npy", self.tombstones)
        return super().close()

    def reopen(self) -> None:
        super().reopen()
        self.tombstones = np.load(self.work / "tombstones.npy")
        self._tombstone()
