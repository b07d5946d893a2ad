"""A ``DatabaseAPI`` whose collections may be sharded over Ray actors (``vecdb serve --ray-address``).

It composes the engine: a local ``Database`` holds the unsharded collections in the data directory as
always, and every call about one of them is delegated to it. Sharded ones are listed in
``DATA_DIR/cluster.json`` (name, shards, replicas, dim, metric, index spec, embedding, placement; written
atomically); their records live in the shard actors' own directories, ``DATA_DIR/shards/NAME/sS-rR`` on
whichever node Ray placed each actor (see docs/scaling.md). A name is held by one kind or the other,
never both: creating or restoring a collection under a name either kind holds raises
CollectionExistsError.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import ray

from vecdb.cluster.collection import ShardedCollection
from vecdb.cluster.replicas import place_replicas, start_replicas
from vecdb.config import Settings
from vecdb.engine import CollectionAPI, Database, Eviction
from vecdb.engine.api import get_or_create
from vecdb.engine.validate import (
    collection_dim,
    validate_embedding,
    validate_metric,
    validate_name,
    validate_text_index,
    validate_texts,
)
from vecdb.errors import (
    ClosedError,
    CollectionExistsError,
    CorruptionError,
    InvalidArgumentError,
    InvalidConfigError,
    UnavailableError,
)
from vecdb.index import parse_index_spec
from vecdb.storage import atomic_write_json, read_json
from vecdb.types import Metric, SnapshotInfo

__all__ = ["ClusterDatabase"]

REGISTRY = "cluster.json"
REGISTRY_FORMAT = 1
MAX_SHARDS = 1024
MAX_REPLICAS = 16


class ClusterDatabase:
    """``DatabaseAPI``: a local ``Database`` plus sharded collections. Connects to Ray at
    ``ray_address`` (``"auto"``: the cluster this node belongs to; None: the Ray already initialized in
    this process, or a new local one).

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
        self._local = Database(path, settings=settings)
        try:
            if not ray.is_initialized():
                try:
                    ray.init(address=ray_address, namespace="vecdb", log_to_driver=False)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise UnavailableError(
                        f"cannot connect to the Ray cluster at {ray_address!r}: {exc}", address=ray_address
                    ) from exc
            self.settings = self._local.settings
            self.path = self._local.path.resolve()
            #: The embedding models, shared with the local database (texts are embedded in the front end).
            self.embedders = self._local.embedders
            self._lock = threading.RLock()
            self._closed = False
            self._actor_options = actor_options
            self._registry_path = self.path / REGISTRY
            self._registry: dict[str, dict[str, Any]] = self._read_registry()
            self._sharded: dict[str, ShardedCollection] = {}
        except BaseException:
            self._local.close()
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

    # ---- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every sharded collection (its actors checkpoint and end), then the local database.
        Idempotent."""
        with self._lock:
            self._closed = True
            sharded, self._sharded = list(self._sharded.values()), {}
        for col in sharded:
            col.close()
        self._local.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"database {self.path} is closed")

    def _check_free(self, name: str) -> None:
        """CollectionExistsError when a sharded collection holds ``name`` (call under the lock)."""
        self._check_open()
        if name in self._registry:
            raise CollectionExistsError(f"collection {name!r} already exists", name=name)

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
        text_index: dict[str, Any] | None = None,
    ) -> CollectionAPI:
        """As ``Database.create_collection``; given ``shards`` or ``replicas`` (even 1) make a sharded
        collection held by ``shards x replicas`` Ray actors. A sharded collection has no capacity."""
        if shards is None and replicas is None:
            with self._lock:
                self._check_free(validate_name(name))
                return self._local.create_collection(
                    name, dim, metric, index, embedding, max_records, eviction, text_index=text_index
                )
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
        emb_spec = validate_embedding(embedding, self.settings)
        if emb_spec is not None and (
            emb_spec.query_prompt or emb_spec.document_prompt or (embedding or {}).get("max_seq_length")
        ):
            raise InvalidConfigError(
                'a sharded collection takes embedding={"model"} only (no prompts or max_seq_length yet)',
                field="embedding",
            )
        model = None if emb_spec is None else emb_spec.model
        model_dim = self.embedders.get(model).dim if model is not None and self.embedders.enabled else None
        dim = collection_dim(dim, model, model_dim, self.settings.limits)
        metric = validate_metric(metric)
        spec = parse_index_spec(index, dim)
        text_spec = validate_text_index(text_index)
        with self._lock:
            self._check_free(name)
            if name in self._local.list_collections():
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
                "text_index": None if text_spec is None else text_spec.model_dump(),
                "created_at": datetime.now(UTC).isoformat(),
                "placement": place_replicas(shards or 1, replicas or 1),
            }
            col = self._open_sharded(name, config)
            self._registry[name] = config
            self._write_registry()
            return col

    def get_or_create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: Metric | None = None,
        index: dict[str, Any] | None = None,
        embedding: dict[str, Any] | None = None,
        max_records: int | None = None,
        eviction: Eviction | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        text_index: dict[str, Any] | None = None,
    ) -> CollectionAPI:
        """As ``Database.get_or_create_collection``; a new one is sharded when ``shards`` or
        ``replicas`` is given (as ``create_collection``)."""
        requested = {
            "dim": dim, "metric": metric, "index": index, "embedding": embedding,
            "max_records": max_records, "eviction": eviction, "shards": shards, "replicas": replicas,
            "text_index": text_index,
        }  # fmt: skip
        return get_or_create(self, self.settings, name, **requested)

    def _open_sharded(self, name: str, config: dict[str, Any]) -> ShardedCollection:
        path = self.path / "shards" / name
        groups = start_replicas(name, config, path, self.settings, self._actor_options)
        col = ShardedCollection(
            name, config, groups, path=path, settings=self.settings, embedders=self.embedders
        )
        col.on_config = self._config_changed
        self._sharded[name] = col
        return col

    def _config_changed(self, config: dict[str, Any]) -> None:
        """A sharded collection's config changed (its text index): persist it in the registry."""
        with self._lock:
            if config["name"] in self._registry:
                self._registry[config["name"]] = config
                self._write_registry()

    def get_collection(self, name: str) -> CollectionAPI:
        """The collection; a sharded one's actors are started on first use."""
        name = validate_name(name)
        with self._lock:
            self._check_open()
            if name in self._registry:
                return self._sharded.get(name) or self._open_sharded(name, self._registry[name])
        return self._local.get_collection(name)

    def open_collections(self) -> Sequence[CollectionAPI]:
        """The collections opened so far: the local ones and the sharded ones (metrics read them)."""
        with self._lock:
            if self._closed:
                return []
            return [*self._local.open_collections(), *self._sharded.values()]

    def list_collections(self) -> list[str]:
        with self._lock:
            self._check_open()
            return sorted(set(self._local.list_collections()) | set(self._registry))

    def drop_collection(self, name: str) -> None:
        name = validate_name(name)
        with self._lock:
            self._check_open()
            if name not in self._registry:
                self._local.drop_collection(name)
                return
            col = self._sharded.pop(name, None) or self._open_sharded(name, self._registry[name])
            self._sharded.pop(name, None)
            del self._registry[name]
            self._write_registry()
        col.destroy()

    def is_sharded(self, name: str) -> bool:
        return name in self._registry

    def damaged(self) -> dict[str, str]:
        """The local collections' (a shard's damage fails the requests that meet it; its actor's
        database is not polled here)."""
        return self._local.damaged()

    def check_model_allowed(self, model: Any) -> None:
        """As ``Database.check_model_allowed``; sharded collections' models count too."""
        if model and isinstance(model, str):
            with self._lock:
                if any(col.embedding_model == model for col in self._sharded.values()):
                    return
        self._local.check_model_allowed(model)

    def embed(
        self, texts: Any, model: str | None = None, collection: str | None = None
    ) -> tuple[np.ndarray, str]:
        """As ``Database.embed``; a sharded collection's model is the front end's."""
        self._check_open()
        if not collection or collection not in self._registry:
            return self._local.embed(texts, model, collection)
        own = self.get_collection(collection).embedding_model
        if own is None:
            raise InvalidArgumentError(f"collection {collection!r} has no embedding model")
        if model and model != own:
            raise InvalidArgumentError(f"collection {collection!r} uses model {own!r}, not {model!r}")
        return self.embedders.get(own).encode(validate_texts(texts, self.settings.limits)), own

    # ---- snapshots (local collections only, for now) -----------------------------------------------

    def create_snapshot(self, collection: str, name: str | None = None) -> SnapshotInfo:
        if collection in self._registry:
            raise InvalidConfigError(f"collection {collection!r} is sharded: snapshots are not supported yet")
        return self._local.create_snapshot(collection, name)

    def list_snapshots(self, collection: str) -> list[SnapshotInfo]:
        return self._local.list_snapshots(collection)

    def delete_snapshot(self, collection: str, name: str) -> None:
        self._local.delete_snapshot(collection, name)

    def restore_snapshot(self, collection: str, name: str, target: str | None = None) -> CollectionAPI:
        with self._lock:
            self._check_free(validate_name(target or collection))
            return self._local.restore_snapshot(collection, name, target)

    def restore_snapshot_dir(self, path: str | Path, target: str) -> CollectionAPI:
        with self._lock:
            self._check_free(validate_name(target))
            return self._local.restore_snapshot_dir(path, target)
