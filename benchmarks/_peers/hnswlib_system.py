"""hnswlib: ``Index(space="ip")`` on unit vectors, in memory.

Defaults: ``init_index(M=16, ef_construction=200)`` and query ``ef=10`` (hnswlib's documented defaults;
ef below k is raised to k). The application keeps the metadata (a source number per label); filtered search
passes ``filter=`` a Python callable testing membership in the source's label set (hnswlib then needs
``num_threads=1``). Delete-by-source is ``mark_deleted`` per label (native soft delete). Persistence is
``save_index`` / ``load_index`` plus ``np.save`` of the metadata array. Tuned: ``set_ef`` raised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

EF_SWEEP = (16, 32, 64, 128, 256, 512)
SOURCES = 100
DEFAULT_EF = 10


def _code(source: str) -> int:
    return int(source[len("file") : -len(".txt")])


class Hnswlib:
    exact = False

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.ef = DEFAULT_EF
        self.allowed: dict[int, set[int]] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "library": "hnswlib",
            "index": "Index(space='ip'), init_index(M=16, ef_construction=200) (defaults)",
            "metric": "inner product on unit vectors",
            "default_search": {"ef": DEFAULT_EF},
            "returns": "labels and distances",
            "filter": "knn_query(filter=callable: label in the source's set), num_threads=1",
            "delete": "mark_deleted(label) for each label of the source",
            "persistence": "none built in: save_index/load_index (+ the app's metadata)",
        }

    def default_params(self) -> dict[str, Any]:
        return {}

    def sweep(self) -> list[dict[str, Any]]:
        return [{"ef": v} for v in EF_SWEEP]

    def create(self, work: Path, dim: int, n: int) -> None:
        self.work, self.dim, self.n = work, dim, n
        self.codes = np.full(n, -1, dtype=np.int32)
        self.index = hnswlib.Index(space="ip", dim=dim)
        self.index.init_index(max_elements=n, ef_construction=200, M=16)

    def insert(self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        labels = np.array([int(i) for i in ids], dtype=np.int64)
        self.index.add_items(np.ascontiguousarray(vectors, dtype=np.float32), labels)
        self.codes[labels] = [_code(m["source"]) for m in metas]

    def _group(self) -> None:
        self.allowed = {c: set(np.flatnonzero(self.codes == c).tolist()) for c in range(SOURCES)}

    def finish_ingest(self) -> dict[str, Any]:
        self._group()
        return {"count": int(self.index.get_current_count())}

    def _ef(self, params: dict[str, Any]) -> None:
        ef = int(params.get("ef", DEFAULT_EF))
        if ef != self.ef:
            self.index.set_ef(ef)
            self.ef = ef

    def search(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[int]:
        self._ef(params)
        return [int(v) for v in self.index.knn_query(q, k=k)[0][0]]

    def search_batch(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[list[int]] | None:
        self._ef(params)
        return [[int(v) for v in row] for row in self.index.knn_query(q, k=k)[0]]

    def search_filtered(self, q: np.ndarray, k: int, source: str, params: dict[str, Any]) -> list[int]:
        self._ef(params)
        allowed = self.allowed[_code(source)]
        try:
            labels = self.index.knn_query(q, k=k, num_threads=1, filter=allowed.__contains__)[0][0]
        except RuntimeError:  # fewer than k reachable under the filter
            return []
        return [int(v) for v in labels]

    def delete_source(self, source: str) -> dict[str, Any]:
        c = _code(source)
        for label in sorted(self.allowed.pop(c)):
            self.index.mark_deleted(label)
        self.codes[self.codes == c] = -1
        return {"call": "mark_deleted per label"}

    def check_deleted(self, source: str, ids: list[str]) -> dict[str, int]:
        labels = np.array([int(i) for i in ids])
        return {"app_metadata_rows": int((self.codes[labels] >= 0).sum())}

    def close(self) -> dict[str, Any]:
        self.index.save_index(str(self.work / "index.hnsw"))
        np.save(self.work / "codes.npy", self.codes)
        self.index = None
        return {"call": "save_index + np.save of the application's metadata"}

    def reopen(self) -> None:
        self.index = hnswlib.Index(space="ip", dim=self.dim)
        self.index.load_index(str(self.work / "index.hnsw"), max_elements=self.n)
        self.ef = DEFAULT_EF
        self.codes = np.load(self.work / "codes.npy")
        self._group()

    def peaks(self) -> dict[str, int]:
        return {}

    def shutdown(self) -> None:
        self.index = None
