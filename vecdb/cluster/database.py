"""A Database whose collections may be sharded over Ray actors (``vecdb serve --ray-address``).

Unsharded collections live in the data directory as always. Sharded ones are listed in
``DATA_DIR/cluster.json`` (name, shards, replicas, dim, metric, index spec, embedding; written
atomically); their records live in the shard actors' own directories, ``DATA_DIR/shards/NAME/sS-rR`` on
whichever node Ray placed each actor (see docs/scaling.md).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray

from vecdb.cluster.collection import ShardedCollection, place_replicas
from vecdb.config import Settings
from vecdb.engine import Database
from vecdb.engine.capacity import Eviction
from vecdb.engine.collection import Collection
from vecdb.engine.validate import validate_name
from vecdb.errors import (
    CollectionExistsError,
    CorruptionError,
    InvalidConfigError,
    UnavailableError,
)
from vecdb.index import parse_index_spec
from vecdb.storage import atomic_write_json, read_json
from vecdb.types import METRICS, Metric, SnapshotInfo

__all__ = ["ClusterDatabase"]

REGISTRY = "cluster.json"
REGISTRY_FORMAT = 1
MAX_SHARDS = 1024
MAX_REPLICAS = 16


class ClusterDatabase(Database):
    """``Database`` plus sharded collections. Connects to Ray at ``ray_address`` (``"auto"``: the
    cluster this node belongs to; None: the Ray already initialized in this process, or a new local one).

    ``actor_options`` are Ray options for every shard actor (default ``{"num_cpus": 1}``), e.g.
    ``{"num_cpus": 0.5}`` or ``{"resources": {"vecdb": 1}}`` to keep shards on labelled nodes.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        settings: Settings | None = None,
        ray_address: str | None = None,
        actor_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(path, settings=settings)
        try:
            if not ray.is_initialized():
                try:
                    ray.init(address=ray_address, namespace="vecdb", log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise UnavailableError(
                        f"cannot connect to the Ray cluster at {ray_address!r}: {exc}", address=ray_address
                    ) from exc
            self.path = self.path.resolve()
            self._actor_options = actor_options
            self._registry_path = self.path / REGISTRY
            self._registry: dict[str, dict[str, Any]] = self._read_registry()
            self._sharded: dict[str, ShardedCollection] = {}
        except BaseException:
            super().close()
            raise

    def _read_registry(self) -> dict[str, dict[str, Any]]:
        if not self._registry_path.exists():
            return {}
        try:
            data = read_json(self._registry_path)
            if not isinstance(data, dict) or data.get("format") != REGISTRY_FORMAT:
                raise ValueError("unknown format")
            collections = data["collections"]
            if not isinstance(collections, dict):
                raise ValueError("collections is not an object")
            return collections
        except (ValueError, KeyError) as exc:
            raise CorruptionError(
                f"sharded collection registry {self._registry_path} is damaged ({exc})"
            ) from exc

    def _write_registry(self) -> None:
        atomic_write_json(self._registry_path, {"format": REGISTRY_FORMAT, "collections": self._registry})

    def close(self) -> None:
        """Close every sharded collection (its actors checkpoint and end), then the local ones."""
        with self._lock:
            sharded, self._sharded = list(getattr(self, "_sharded", {}).values()), {}
        for col in sharded:
            col.close()
        super().close()

    # ---- collections -------------------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: Metric = "cosine",
        index: dict[str, Any] | None = None,
        embedding: dict[str, Any] | None = None,
        max_records: int | None = None,
        eviction: Eviction | None = None,
        shards: int | None = None,
        replicas: int | None = None,
    ) -> Collection:
        """As ``Database.create_collection``; given ``shards`` or ``replicas`` (even 1) make a sharded
        collection held by ``shards x replicas`` Ray actors. A sharded collection has no capacity."""
        if shards is None and replicas is None:
            return super().create_collection(name, dim, metric, index, embedding, max_records, eviction)
        name = validate_name(name)
        for what, value, top in (
            ("shards", shards or 1, MAX_SHARDS),
            ("replicas", replicas or 1, MAX_REPLICAS),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise InvalidConfigError(
                    f"{what} must be an integer from 1 to {top}, got {value!r}", field=what
                )
        if max_records is not None or eviction is not None:
            raise InvalidConfigError(
                "a sharded collection has no capacity (max_records / eviction)", field="max_records"
            )
        model = self._embedding_model(embedding)
        if model is not None and self.embedders.enabled:
            model_dim = self.embedders.get(model).dim
            dim = model_dim if dim is None else dim
            if dim != model_dim:
                raise InvalidConfigError(
                    f"dim {dim} does not match model {model!r} ({model_dim})", field="dim"
                )
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= self.settings.limits.max_dim:
            raise InvalidConfigError(
                f"dim must be an integer from 1 to {self.settings.limits.max_dim}, got {dim!r}", field="dim"
            )
        if metric not in METRICS:
            raise InvalidConfigError(f"metric must be one of {list(METRICS)}, got {metric!r}", field="metric")
        spec = parse_index_spec(index, dim)
        with self._lock:
            self._check_open()
            if name in self._registry or (self._dir / name).exists():
                raise CollectionExistsError(f"collection {name!r} already exists", name=name)
            shutil.rmtree(self.path / "shards" / name, ignore_errors=True)  # a dropped one's leftovers
            config = {
                "name": name,
                "shards": shards or 1,
                "replicas": replicas or 1,
                "dim": dim,
                "metric": metric,
                "index": spec.model_dump(),
                "embedding": None if model is None else {"model": model},
                "created_at": datetime.now(UTC).isoformat(),
                "placement": place_replicas(shards or 1, replicas or 1),
            }
            col = self._open_sharded(name, config)
            self._registry[name] = config
            self._write_registry()
            return col

    def _open_sharded(self, name: str, config: dict[str, Any]) -> ShardedCollection:
        col = ShardedCollection(
            name,
            config,
            data_dir=self.path,
            settings=self.settings,
            embedders=self.embedders,
            actor_options=self._actor_options,
        )
        self._sharded[name] = col
        return col

    def get_collection(self, name: str) -> Collection:
        """The collection; a sharded one's actors are started on first use."""
        name = validate_name(name)
        with self._lock:
            self._check_open()
            if name in self._registry:
                return self._sharded.get(name) or self._open_sharded(name, self._registry[name])
        return super().get_collection(name)

    def list_collections(self) -> list[str]:
        with self._lock:
            return sorted(set(super().list_collections()) | set(self._registry))

    def drop_collection(self, name: str) -> None:
        name = validate_name(name)
        with self._lock:
            self._check_open()
            if name not in self._registry:
                super().drop_collection(name)
                return
            col = self._sharded.pop(name, None) or self._open_sharded(name, self._registry[name])
            self._sharded.pop(name, None)
            del self._registry[name]
            self._write_registry()
        col.destroy()

    def is_sharded(self, name: str) -> bool:
        return name in self._registry

    def create_snapshot(self, collection: str, name: str | None = None) -> SnapshotInfo:
        if collection in self._registry:
            raise InvalidConfigError(f"collection {collection!r} is sharded: snapshots are not supported yet")
        return super().create_snapshot(collection, name)
