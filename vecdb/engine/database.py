"""The database: a data directory holding named collections.

Layout::

    DATA_DIR/
      LOCK                      held (flock) by the one process that has the directory open
      collections/NAME/
        collection.json         manifest: format, name, dim, metric, index spec (written atomically)
        store/                  RocksDB: the source of truth
        index.ckpt              index checkpoint (derived; rebuilt when missing or damaged)

A collection is created in ``collections/.creating-*`` and renamed into place, and dropped by renaming
it to ``collections/.dropped-*`` before deleting it, so a crash never leaves half a collection under a
real name; leftovers are cleaned on open. Collections are opened (recovered) on first use.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import numpy as np
from filelock import FileLock, Timeout

from vecdb.config import Settings
from vecdb.embed import PACKAGED_MODELS, EmbedderRegistry, EmbeddingSpec
from vecdb.engine.api import get_or_create
from vecdb.engine.capacity import Eviction, parse_capacity
from vecdb.engine.collection import Collection
from vecdb.engine.snapshots import Snapshots, read_snapshot, verify_files
from vecdb.engine.validate import (
    NAME_RE,
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
    CollectionNotFoundError,
    CorruptionError,
    DatabaseLockedError,
    InvalidArgumentError,
    InvalidConfigError,
    ModelUnavailableError,
    StorageError,
)
from vecdb.index import parse_index_spec, resolve_device
from vecdb.storage import CollectionStore, atomic_write_json, fsync_dir, read_json
from vecdb.types import METRICS, Metric, SnapshotInfo

__all__ = ["Database"]

log = logging.getLogger(__name__)

MANIFEST = "collection.json"
MANIFEST_FORMAT = 1


class Database:
    """Opens (or creates) a data directory. Use as a context manager or call ``close()``.

    Only one process may have a data directory open: another gets ``DatabaseLockedError`` at once.
    """

    def __init__(self, path: str | Path | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.path = Path(path) if path is not None else self.settings.data_dir
        #: Where flat and IVF searches are mirrored (None: the CPU only); an error before anything opens.
        self.device = resolve_device(self.settings.index.device)
        # Owner-only: records are the user's data. A directory that exists already keeps its mode.
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir(mode=0o700, exist_ok=True)
        self._lock_file = FileLock(self.path / "LOCK", timeout=0)
        try:
            self._lock_file.acquire()
        except Timeout as exc:
            raise DatabaseLockedError(
                f"data directory {self.path} is in use by another process (or another Database)",
                path=str(self.path),
            ) from exc
        # The directory itself is locked too: deleting the LOCK file (which a new process would then
        # recreate and lock) must not let a second process in.
        self._dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._dir_fd)
            self._lock_file.release()
            raise DatabaseLockedError(
                f"data directory {self.path} is in use by another process (or another Database)",
                path=str(self.path),
            ) from exc
        self._dir = self.path / "collections"
        self._dir.mkdir(mode=0o700, exist_ok=True)
        self._snapshots = Snapshots(self.path / "snapshots")
        for leftover in self._dir.glob(".*"):
            shutil.rmtree(leftover, ignore_errors=True)
        self._lock = threading.RLock()
        self._open: dict[str, Collection] = {}
        #: Collections that could not be opened, with why (storage errors: damage, fds, locks).
        self._failed: dict[str, StorageError] = {}
        emb = self.settings.embedding
        self.embedders = EmbedderRegistry(
            enabled=emb.enabled,
            allow_download=emb.allow_download,
            batch_size=emb.batch_size,
            device=emb.device,
            backend=emb.backend,
            threads=emb.threads,
            models_dir=self.path / "models",  # the ONNX exports (docs/embedding.md)
        )
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecdb-checkpoint")
        self._builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecdb-build")
        self._closed = False
        self._stop_purger = threading.Event()
        self._purger = threading.Thread(target=self._purge_loop, name="vecdb-expiry", daemon=True)
        self._purger.start()

    def _purge_loop(self) -> None:
        """Delete expired records of open collections every ``storage.expiry_purge_seconds``."""
        interval = self.settings.storage.expiry_purge_seconds
        while not self._stop_purger.wait(interval):
            for col in self.open_collections():
                try:
                    col.purge_expired()
                except ClosedError:
                    pass
                except Exception:  # keep purging the others; the next round retries
                    log.exception("collection %s: purging expired records failed", col.name)

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every collection (checkpointing their indexes) and release the directory. Idempotent."""
        self._stop_purger.set()  # before the lock: a purge round takes it
        if self._purger is not threading.current_thread():
            self._purger.join()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                for col in self._open.values():
                    col.close()
                self._open.clear()
                self._builder.shutdown(wait=True)
                self._background.shutdown(wait=True)
            finally:
                os.close(self._dir_fd)
                self._lock_file.release()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"database {self.path} is closed")

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
    ) -> Collection:
        """Create an empty collection. Raises CollectionExistsError, InvalidNameError, InvalidConfigError.

        ``index`` is an index spec (see ``vecdb.index.spec``); None means ``{"type": "auto"}``.
        ``embedding={"model": NAME}`` (``{}``: the default model) lets records and queries be sent as text
        alone; ``dim`` then comes from the model and may be omitted. The model must be available locally
        (``ModelUnavailableError`` at once otherwise). ``max_records`` caps the live records: a write that
        would overflow evicts the oldest (``eviction="fifo"``, the default) or least recently used
        (``"lru"``: a search that returns a record uses it) in the same atomic batch. ``shards`` and
        ``replicas`` other than 1 need a cluster (``vecdb serve --ray-address``): here they raise
        InvalidConfigError. ``text_index`` adds a full-text (BM25) index (docs/search.md; None: none).
        """
        if (shards or 1) != 1 or (replicas or 1) != 1:
            raise InvalidConfigError(
                "sharded collections (shards or replicas > 1) need a cluster: run vecdb serve --ray-address",
                field="shards",
            )
        name = validate_name(name)
        capacity = parse_capacity(max_records, eviction)
        emb_spec = validate_embedding(embedding, self.settings)
        model = None if emb_spec is None else emb_spec.model
        model_dim = self.embedders.get(model).dim if model is not None and self.embedders.enabled else None
        dim = collection_dim(dim, model, model_dim, self.settings.limits)
        metric = validate_metric(metric)
        spec = parse_index_spec(index, dim)
        text_spec = validate_text_index(text_index)
        with self._lock:
            self._check_open()
            final = self._dir / name
            if final.exists():
                raise CollectionExistsError(f"collection {name!r} already exists", name=name)
            tmp = self._dir / f".creating-{name}-{uuid.uuid4().hex}"
            tmp.mkdir()
            manifest = {
                "format": MANIFEST_FORMAT,
                "name": name,
                "dim": dim,
                "metric": metric,
                "index": spec.model_dump(),
                "embedding": None if emb_spec is None else emb_spec.to_dict(),
                "capacity": None if capacity is None else capacity.to_dict(),
                "text_index": None if text_spec is None else text_spec.model_dump(),
                "created_at": datetime.now(UTC).isoformat(),
            }
            atomic_write_json(tmp / MANIFEST, manifest)
            self._make_collection(name, tmp, manifest, create=True).close()
            tmp.rename(final)
            fsync_dir(self._dir)
            col = self._make_collection(name, final, manifest, create=False)
            self._open[name] = col
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
    ) -> Collection:
        """The collection ``name`` when it exists and has every setting given here (a setting left out
        matches anything; CollectionExistsError naming the differences otherwise), else a new one as
        ``create_collection`` makes it (``metric`` None: cosine)."""
        requested = {
            "dim": dim, "metric": metric, "index": index, "embedding": embedding,
            "max_records": max_records, "eviction": eviction, "shards": shards, "replicas": replicas,
            "text_index": text_index,
        }  # fmt: skip
        return cast(Collection, get_or_create(self, self.settings, name, **requested))

    def embed(
        self, texts: Any, model: str | None = None, collection: str | None = None
    ) -> tuple[np.ndarray, str]:
        """Vectors for texts, and the model used: ``collection``'s model (with its ``document_prompt`` and
        ``max_seq_length``), else ``model``, else the default.

        Naming a collection without a model, or a model other than the collection's, is an error.
        """
        self._check_open()
        if collection:
            col = self.get_collection(collection)
            own = col.embedding_model
            if own is None:
                raise InvalidArgumentError(f"collection {collection!r} has no embedding model")
            if model and model != own:
                raise InvalidArgumentError(f"collection {collection!r} uses model {own!r}, not {model!r}")
            # The vectors the collection would store: its document prompt and window.
            return col.embed_documents(validate_texts(texts, self.settings.limits)), own
        if model and self.embedders.enabled:
            self.check_model_allowed(model)
        name = model or self.settings.embedding.default_model
        return self.embedders.get(name).encode(validate_texts(texts, self.settings.limits)), name

    def check_model_allowed(self, model: Any) -> None:
        """Raise ``ModelUnavailableError`` (naming ``model`` only) unless a request may name it: the
        default model, the packaged one, a model of an open collection, or one of
        ``embedding.allowed_models``. Anything else (a folder path, ``~``, a hub name) could make the
        server probe, load and keep arbitrary folders; paths are for the server's configuration only.
        No model (None, "") or not a string: nothing to check here (the caller's validation says)."""
        if not model or not isinstance(model, str):
            return
        if model in PACKAGED_MODELS or model == self.settings.embedding.default_model:
            return
        if model in self.settings.embedding.allowed_models:
            return
        with self._lock:
            if any(col.embedding_model == model for col in self._open.values()):
                return
        raise ModelUnavailableError(
            f"embedding model {model!r} is not one this server offers: requests may name the default "
            "model, the packaged all-MiniLM-L6-v2, a model of an existing collection, or one listed in "
            "embedding.allowed_models",
            model=model,
        )

    def get_collection(self, name: str) -> Collection:
        """The collection (opened and recovered on first use). Raises CollectionNotFoundError."""
        name = validate_name(name)
        with self._lock:
            self._check_open()
            col = self._open.get(name)
            if col is None:
                path = self._dir / name
                if not path.is_dir():
                    raise CollectionNotFoundError(f"collection {name!r} does not exist", name=name)
                try:
                    col = self._make_collection(name, path, self._read_manifest(name, path), create=False)
                except StorageError as exc:
                    self._failed[name] = exc  # refused, and reported by damaged() (/readyz, /metrics)
                    raise
                self._failed.pop(name, None)
                self._open[name] = col
            return col

    def damaged(self) -> dict[str, str]:
        """Collections that failed an integrity check or could not be opened, with the reason: those
        that failed to open (each request to them raises the error again) and open ones whose store met
        damage while serving (that request raised it; nothing partial was returned). Empty when healthy."""
        with self._lock:
            out = {name: f"{exc.code}: {exc.message}" for name, exc in self._failed.items()}
            for name, col in self._open.items():
                if col.damage is not None:
                    out[name] = f"{col.damage.code}: {col.damage.message}"
            return dict(sorted(out.items()))

    def open_collections(self) -> list[Collection]:
        """The collections opened so far (for metrics); ``get_collection`` opens the others."""
        with self._lock:
            return list(self._open.values()) if not self._closed else []

    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""
        with self._lock:
            self._check_open()
            return sorted(p.name for p in self._dir.iterdir() if p.is_dir() and NAME_RE.fullmatch(p.name))

    def drop_collection(self, name: str) -> None:
        """Delete a collection and all its data. Raises CollectionNotFoundError."""
        name = validate_name(name)
        with self._lock:
            self._check_open()
            path = self._dir / name
            if not path.is_dir():
                raise CollectionNotFoundError(f"collection {name!r} does not exist", name=name)
            col = self._open.pop(name, None)
            self._failed.pop(name, None)
            if col is not None:
                col.close()
            trash = self._dir / f".dropped-{name}-{uuid.uuid4().hex}"
            path.rename(trash)
            fsync_dir(self._dir)
            shutil.rmtree(trash, ignore_errors=True)

    # ---- snapshots ---------------------------------------------------------------------------------

    def create_snapshot(self, collection: str, name: str | None = None) -> SnapshotInfo:
        """An online, consistent copy of ``collection`` (store, index checkpoint and manifest as of one
        sequence number) under ``DATA_DIR/snapshots/COLLECTION/NAME``; reads go on meanwhile, writes wait
        for the store's checkpoint (hard links: milliseconds). ``name`` defaults to the UTC time.
        Raises CollectionNotFoundError, SnapshotExistsError, InvalidNameError."""
        col = self.get_collection(collection)
        if name is None:
            name = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = validate_name(name, "snapshot")
        with self._snapshots.lock(col.name, name):
            tmp, final = self._snapshots.begin(col.name, name)
            try:
                seq, records = col.snapshot_into(tmp)
                stored = self._verify_snapshot_store(tmp, col.dim, seq)
                manifest = self._read_manifest(col.name, col.path)
                return self._snapshots.commit(tmp, final, manifest, col.name, name, seq, records, stored)
            except BaseException:
                self._snapshots.abort(tmp)
                raise

    @staticmethod
    def _verify_snapshot_store(path: Path, dim: int, seq: int) -> int:
        """Read the snapshot's store whole (read-only, every block checksummed); its record count."""
        store = CollectionStore(
            path / "store", dim, create=False, sync=False, what=f"snapshot {path.name}", read_only=True
        )
        try:
            if store.last_seq != seq:
                raise CorruptionError(f"snapshot store holds sequence {store.last_seq}, expected {seq}")
            return store.verify().records
        finally:
            store.close()

    def list_snapshots(self, collection: str) -> list[SnapshotInfo]:
        """``collection``'s snapshots, oldest first (they outlive the collection: a dropped collection's
        snapshots are still listed and restorable)."""
        self._check_open()
        return self._snapshots.list(validate_name(collection))

    def delete_snapshot(self, collection: str, name: str) -> None:
        """Raises SnapshotNotFoundError."""
        self._check_open()
        collection, name = validate_name(collection), validate_name(name, "snapshot")
        with self._snapshots.lock(collection, name):
            self._snapshots.delete(collection, name)

    def restore_snapshot(self, collection: str, name: str, target: str | None = None) -> Collection:
        """A new collection ``target`` (default: ``collection``, which must then not exist) holding
        exactly what the snapshot holds. Raises SnapshotNotFoundError, CollectionExistsError."""
        self._check_open()
        collection, name = validate_name(collection), validate_name(name, "snapshot")
        with self._snapshots.lock(collection, name):
            path = self._snapshots.get(collection, name)
            return self.restore_snapshot_dir(path, target or collection)

    def restore_snapshot_dir(self, path: str | Path, target: str) -> Collection:
        """Restore the snapshot directory ``path`` (one of this database's, or one copied from another
        machine) as the new collection ``target``. The files are copied, never moved or linked.

        Nothing becomes visible before the snapshot is verified: its files against the sizes and
        SHA-256 sums its ``snapshot.json`` lists, then the copy opened and read whole (every block
        checksummed), its sequence number and record count against ``snapshot.json``. Raises
        CorruptionError when ``path`` is not a complete, intact snapshot, CollectionExistsError."""
        self._check_open()
        target = validate_name(target)
        src = Path(path)
        meta, manifest = read_snapshot(src)
        if not verify_files(src, meta):
            log.warning("snapshot %s predates file checksums: verifying its store only", src.name)
        with self._lock:
            self._check_open()
            final = self._dir / target
            if final.exists():
                raise CollectionExistsError(f"collection {target!r} already exists", name=target)
            tmp = self._dir / f".creating-{target}-{uuid.uuid4().hex}"
            try:
                shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("snapshot.json", MANIFEST))
                manifest = {
                    **manifest,
                    "name": target,
                    "restored_from": {k: meta[k] for k in ("collection", "name", "seq")},
                }
                atomic_write_json(tmp / MANIFEST, manifest)
                col = self._make_collection(target, tmp, manifest, create=False)
                try:
                    if col.seq != meta["seq"]:
                        raise CorruptionError(
                            f"snapshot {src.name} holds sequence {col.seq}, "
                            f"its snapshot.json says {meta['seq']}"
                        )
                    counts = col.verify()
                    if "stored" in meta and counts["records"] != meta["stored"]:
                        raise CorruptionError(
                            f"snapshot {src.name} holds {counts['records']} records, its snapshot.json says "
                            f"{meta['stored']}"
                        )
                finally:
                    col.close()
                _fsync_tree(tmp)
                tmp.rename(final)
                fsync_dir(self._dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            col = self._make_collection(target, final, manifest, create=False)
            self._open[target] = col
            return col

    def _read_manifest(self, name: str, path: Path) -> dict[str, Any]:
        try:
            manifest = read_json(path / MANIFEST)
            if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
                raise ValueError("unknown manifest format")
            if manifest.get("name") != name:
                raise ValueError(f"manifest names collection {manifest.get('name')!r}")
            return manifest
        except FileNotFoundError as exc:
            raise CorruptionError(
                f"collection {name!r}: manifest {path / MANIFEST} is missing; the data is still in "
                f"{path / 'store'}",
                name=name,
            ) from exc
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            raise CorruptionError(
                f"collection {name!r}: manifest {path / MANIFEST} is damaged ({exc}); the data is still in "
                f"{path / 'store'}",
                name=name,
            ) from exc

    def _make_collection(
        self, name: str, path: Path, manifest: dict[str, Any], *, create: bool
    ) -> Collection:
        try:
            spec = parse_index_spec(manifest["index"])
            dim, metric = int(manifest["dim"]), manifest["metric"]
            if metric not in METRICS:
                raise ValueError(f"unknown metric {metric!r}")
            cap = manifest.get("capacity")
            capacity = None if cap is None else parse_capacity(cap["max_records"], cap["eviction"])
            text_spec = validate_text_index(manifest.get("text_index"))
        except (KeyError, TypeError, ValueError, InvalidConfigError) as exc:
            raise CorruptionError(f"collection {name!r}: manifest is damaged ({exc})", name=name) from exc
        embedding = EmbeddingSpec.from_manifest(manifest.get("embedding"))
        model = None if embedding is None else embedding.model
        return Collection(
            name,
            path,
            dim=dim,
            metric=metric,
            spec=spec,
            embedding_model=model,
            embedding=embedding,
            embedders=self.embedders,
            settings=self.settings,
            background=self._background,
            builder=self._builder,
            create=create,
            capacity=capacity,
            device=self.device,
            text_index=text_spec,
        )


def _fsync_tree(root: Path) -> None:
    """Make every file and directory under ``root`` durable (a restored collection is real data)."""
    for path in [*root.rglob("*"), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
