"""Milvus Lite: ``pymilvus.MilvusClient("./milvus.db")``, in-process (milvus-lite 3.x is a Python engine).

Schema: a VARCHAR primary key ``id``, a 384-d FLOAT_VECTOR ``vector`` and the dynamic field on, so the
metadata dict's keys (``source``, ``n``) are stored as dynamic fields. Ingest: insert in batches, then
``flush``, ``create_index`` (AUTOINDEX, COSINE) and ``load_collection``. With faiss-cpu importable (it is
in the peers environment) milvus-lite builds AUTOINDEX as a FAISS HNSW (M 16, efConstruction 200) and
searches with ef 64 by default. Queries ask for ``output_fields=["id"]`` (without it Milvus Lite returns
every field, the vector included). Filter: ``filter='source == "file7.txt"'``; delete:
``delete(filter=...)``. Tuned: ``search_params={"params": {"ef": ...}}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

EF_SWEEP = (16, 32, 64, 128, 256, 512)
NAME = "bench"


class MilvusLite:
    exact = False

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.index_info: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "library": "milvus-lite (pymilvus MilvusClient on a local file)",
            "index": "AUTOINDEX, metric COSINE",
            "index_info": self.index_info,
            "metric": "cosine",
            "default_search": {"ef": "milvus-lite default (64 for its FAISS HNSW)"},
            "returns": "ids and distances (output_fields=['id'])",
            "filter": "filter='source == \"file7.txt\"' (dynamic field)",
            "delete": "delete(filter='source == \"file3.txt\"')",
            "persistence": "local .db folder",
        }

    def default_params(self) -> dict[str, Any]:
        return {}

    def sweep(self) -> list[dict[str, Any]]:
        return [{"ef": v} for v in EF_SWEEP]

    def create(self, work: Path, dim: int, n: int) -> None:
        self.path = str(work / "milvus.db")
        self.client = MilvusClient(self.path)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        self.client.create_collection(NAME, schema=schema)

    def insert(self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        rows = [{"id": i, "vector": v, **m} for i, v, m in zip(ids, vectors, metas, strict=True)]
        self.client.insert(NAME, rows)

    def finish_ingest(self) -> dict[str, Any]:
        self.client.flush(NAME)
        ip = self.client.prepare_index_params()
        ip.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
        self.client.create_index(NAME, ip)
        self.client.load_collection(NAME)
        self.index_info = dict(self.client.describe_index(NAME, "vector"))
        return {"index": self.index_info}

    def _search(self, q: np.ndarray, k: int, params: dict[str, Any], flt: str = "") -> list[list[int]]:
        kwargs: dict[str, Any] = {"limit": k, "output_fields": ["id"]}
        if params:
            kwargs["search_params"] = {"params": params}
        if flt:
            kwargs["filter"] = flt
        res = self.client.search(NAME, data=list(q), **kwargs)
        return [[int(h["id"]) for h in row] for row in res]

    def search(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[int]:
        return self._search(q[None, :], k, params)[0]

    def search_batch(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[list[int]] | None:
        return self._search(q, k, params)

    def search_filtered(self, q: np.ndarray, k: int, source: str, params: dict[str, Any]) -> list[int]:
        return self._search(q[None, :], k, params, f'source == "{source}"')[0]

    def delete_source(self, source: str) -> dict[str, Any]:
        res = self.client.delete(NAME, filter=f'source == "{source}"')
        n = res.get("delete_count") if isinstance(res, dict) else len(res) if res is not None else None
        return {"call": "delete(filter=...)", "deleted": n}

    def check_deleted(self, source: str, ids: list[str]) -> dict[str, int]:
        got = self.client.get(NAME, ids=ids, output_fields=["id"])
        cnt = self.client.query(NAME, filter=f'source == "{source}"', output_fields=["count(*)"])
        return {"get_by_id": len(got), "count_by_filter": int(cnt[0]["count(*)"])}

    def close(self) -> dict[str, Any]:
        self.client.close()
        self.client = None
        return {"call": "MilvusClient.close()"}

    def reopen(self) -> None:
        self.client = MilvusClient(self.path)
        self.client.load_collection(NAME)

    def peaks(self) -> dict[str, int]:
        return {}

    def shutdown(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
