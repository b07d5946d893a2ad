"""LanceDB: ``lancedb.connect(folder)``, one table (id string, vector fixed-size list, source, n).

The metadata dict becomes two columns (``source``, ``n``). Searches use cosine distance, select only
``id`` (plus LanceDB's ``_distance``), and filter with ``.where("source = 'file7.txt'", prefilter=True)``;
a batch is one multi-vector query. Delete: ``table.delete("source = 'file3.txt'")``. Reopen: a new
connection and ``open_table``.

- lancedb-flat: no index (LanceDB's brute-force scan; exact).
- lancedb-ivfpq: ``create_index("vector", config=IvfPq(distance_type="cosine"))`` after the adds
  (LanceDB's defaults: about sqrt(n) partitions, dim/16 sub-vectors of 8 bits), searched with its
  default nprobes and no refine. Tuned: ``refine_factor`` (re-rank with the full vectors) and
  ``nprobes`` raised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

NAME = "bench"


class _Lance:
    exact = True
    indexed = False

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.index_info: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "library": "lancedb",
            "index": "IVF_PQ (defaults)" if self.indexed else "none (brute force)",
            "index_info": self.index_info,
            "metric": "cosine",
            "default_search": {"nprobes": "LanceDB default", "refine_factor": None} if self.indexed else {},
            "returns": "id and _distance (select(['id']))",
            "filter": ".where(\"source = 'file7.txt'\", prefilter=True)",
            "delete": "table.delete(\"source = 'file3.txt'\")",
            "persistence": "Lance files in a local folder",
        }

    def default_params(self) -> dict[str, Any]:
        return {}

    def sweep(self) -> list[dict[str, Any]]:
        return []

    def create(self, work: Path, dim: int, n: int) -> None:
        self.path = str(work / "lance")
        self.dim = dim
        self.schema = pa.schema(
            [
                pa.field("id", pa.string()),
                pa.field("vector", pa.list_(pa.float32(), dim)),
                pa.field("source", pa.string()),
                pa.field("n", pa.int64()),
            ]
        )
        self.db = lancedb.connect(self.path)
        self.table = self.db.create_table(NAME, schema=self.schema)

    def insert(self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        batch = pa.table(
            {
                "id": ids,
                "vector": pa.FixedSizeListArray.from_arrays(flat, self.dim),
                "source": [m["source"] for m in metas],
                "n": [m["n"] for m in metas],
            },
            schema=self.schema,
        )
        self.table.add(batch)

    def finish_ingest(self) -> dict[str, Any]:
        return {"rows": int(self.table.count_rows())}

    def _query(self, q: Any, k: int, params: dict[str, Any], where: str | None = None) -> Any:
        query = self.table.search(q, vector_column_name="vector").distance_type("cosine").limit(k)
        if "nprobes" in params:
            query = query.nprobes(int(params["nprobes"]))
        if params.get("refine_factor"):
            query = query.refine_factor(int(params["refine_factor"]))
        if where is not None:
            query = query.where(where, prefilter=True)
        return query.select(["id"]).to_arrow()

    def search(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[int]:
        return [int(i) for i in self._query(q, k, params).column("id").to_pylist()]

    def search_batch(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[list[int]] | None:
        res = self._query(list(q), k, params)
        out: list[list[int]] = [[] for _ in range(len(q))]
        qi = res.column("query_index").to_pylist()
        distances = res.column("_distance").to_pylist()
        ids = res.column("id").to_pylist()
        for i, _d, rid in sorted(zip(qi, distances, ids, strict=True), key=lambda t: (t[0], t[1])):
            out[i].append(int(rid))
        return out

    def search_filtered(self, q: np.ndarray, k: int, source: str, params: dict[str, Any]) -> list[int]:
        res = self._query(q, k, params, f"source = '{source}'")
        return [int(i) for i in res.column("id").to_pylist()]

    def delete_source(self, source: str) -> dict[str, Any]:
        self.table.delete(f"source = '{source}'")
        return {"call": "table.delete(\"source = '...'\")"}

    def check_deleted(self, source: str, ids: list[str]) -> dict[str, int]:
        listed = ", ".join(f"'{i}'" for i in ids)
        return {
            "get_by_id": int(self.table.count_rows(f"id IN ({listed})")),
            "count_by_filter": int(self.table.count_rows(f"source = '{source}'")),
        }

    def close(self) -> dict[str, Any]:
        self.table = None
        self.db = None
        return {"call": "drop the table and connection (writes are already on disk)"}

    def reopen(self) -> None:
        self.db = lancedb.connect(self.path)
        self.table = self.db.open_table(NAME)

    def peaks(self) -> dict[str, int]:
        return {}

    def shutdown(self) -> None:
        self.table = None
        self.db = None


class LanceFlat(_Lance):
    exact = True
    indexed = False


class LanceIvfPq(_Lance):
    exact = False
    indexed = True

    def sweep(self) -> list[dict[str, Any]]:
        return [
            {"refine_factor": 2},
            {"refine_factor": 5},
            {"refine_factor": 10},
            {"nprobes": 40, "refine_factor": 10},
            {"nprobes": 80, "refine_factor": 10},
            {"nprobes": 80, "refine_factor": 25},
            {"nprobes": 160, "refine_factor": 50},
        ]

    def finish_ingest(self) -> dict[str, Any]:
        from lancedb.index import IvfPq

        self.table.create_index("vector", config=IvfPq(distance_type="cosine"))
        idx = self.table.list_indices()
        stats = self.table.index_stats(idx[0].name) if idx else None
        self.index_info = {
            "indices": [str(i) for i in idx],
            "num_indexed_rows": getattr(stats, "num_indexed_rows", None),
            "num_unindexed_rows": getattr(stats, "num_unindexed_rows", None),
        }
        return {"rows": int(self.table.count_rows()), "index": self.index_info}
