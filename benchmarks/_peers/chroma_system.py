"""Chroma: ``chromadb.PersistentClient(path)``, in-process, one collection with cosine space.

Defaults (chromadb 1.5): HNSW max_neighbors 16, ef_construction 100, ef_search 100. Records are added in
batches within ``get_max_batch_size()`` with ids, embeddings and the metadata dict. Queries ask for
``include=["distances"]`` (ids and distances, like the others; Chroma's default also returns documents and
metadatas). Filter: ``where={"source": ...}``; delete: ``delete(where={"source": ...})``. Reopen: the
client is dropped, Chroma's per-path system cache cleared, and a new PersistentClient opens the folder.
Tuned: ``collection.modify(configuration={"hnsw": {"ef_search": ...}})``, then the client is reopened:
the index already loaded in the process keeps its old ef_search until then.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import chromadb
from chromadb.api.client import SharedSystemClient

EF_SWEEP = (16, 32, 64, 128, 256, 512)
DEFAULT_EF = 100
NAME = "bench"


class Chroma:
    exact = False

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.ef = DEFAULT_EF

    def describe(self) -> dict[str, Any]:
        return {
            "library": "chromadb",
            "index": "HNSW, configuration {'hnsw': {'space': 'cosine'}}, other settings default",
            "configuration": self.configuration,
            "metric": "cosine",
            "default_search": {"ef_search": DEFAULT_EF},
            "returns": "ids and distances (include=['distances'])",
            "filter": "where={'source': 'file7.txt'}",
            "delete": "delete(where={'source': ...})",
            "persistence": "PersistentClient(path) (SQLite + HNSW files)",
        }

    configuration: Any = None

    def default_params(self) -> dict[str, Any]:
        return {}

    def sweep(self) -> list[dict[str, Any]]:
        return [{"ef_search": v} for v in EF_SWEEP]

    def create(self, work: Path, dim: int, n: int) -> None:
        self.path = str(work / "chroma")
        self.client = chromadb.PersistentClient(path=self.path)
        self.col = self.client.create_collection(
            NAME, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        self.max_batch = int(self.client.get_max_batch_size())
        hnsw = dict(self.col.configuration.get("hnsw") or {})
        self.configuration = {"hnsw": hnsw, "max_batch_size": self.max_batch}

    def insert(self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        for s in range(0, len(ids), self.max_batch):
            self.col.add(
                ids=ids[s : s + self.max_batch],
                embeddings=vectors[s : s + self.max_batch],
                metadatas=metas[s : s + self.max_batch],  # type: ignore[arg-type]
            )

    def finish_ingest(self) -> dict[str, Any]:
        return {"count": int(self.col.count())}

    def _ef(self, params: dict[str, Any]) -> None:
        ef = int(params.get("ef_search", DEFAULT_EF))
        if ef != self.ef:
            # modify() persists the new ef_search, but the index already loaded in this process keeps
            # searching with the old one (measured: recall unchanged); it takes effect once reopened.
            self.col.modify(configuration={"hnsw": {"ef_search": ef}})
            self.close()
            self.reopen()
            if self.ef != ef:
                raise RuntimeError(f"chroma kept ef_search {self.ef} after setting {ef}")

    def _query(self, q: np.ndarray, k: int, where: Any = None) -> list[list[int]]:
        res = self.col.query(query_embeddings=q, n_results=k, where=where, include=["distances"])
        return [[int(i) for i in row] for row in res["ids"]]

    def search(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[int]:
        self._ef(params)
        return self._query(q[None, :], k)[0]

    def search_batch(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[list[int]] | None:
        self._ef(params)
        return self._query(q, k)

    def search_filtered(self, q: np.ndarray, k: int, source: str, params: dict[str, Any]) -> list[int]:
        self._ef(params)
        return self._query(q[None, :], k, where={"source": source})[0]

    def delete_source(self, source: str) -> dict[str, Any]:
        self.col.delete(where={"source": source})
        return {"call": "delete(where={'source': ...})"}

    def check_deleted(self, source: str, ids: list[str]) -> dict[str, int]:
        return {
            "get_by_id": len(self.col.get(ids=ids, include=[])["ids"]),
            "count_by_filter": len(self.col.get(where={"source": source}, include=[])["ids"]),
        }

    def close(self) -> dict[str, Any]:
        self.col = None
        self.client = None
        gc.collect()
        SharedSystemClient.clear_system_cache()
        return {"call": "drop the client, SharedSystemClient.clear_system_cache()"}

    def reopen(self) -> None:
        self.client = chromadb.PersistentClient(path=self.path)
        self.col = self.client.get_collection(NAME)
        self.ef = int((self.col.configuration.get("hnsw") or {}).get("ef_search", DEFAULT_EF))

    def peaks(self) -> dict[str, int]:
        return {}

    def shutdown(self) -> None:
        self.col = None
        self.client = None
