"""A collection: records in RocksDB (truth), a FAISS index and in-memory bitmaps (derived).

Write path (one writer at a time): validate the whole batch -> one atomic RocksDB WriteBatch with an
op-log entry -> apply to the index and bitmaps under the write lock -> acknowledge. Reads share the
read lock. The index is checkpointed in the background every so many writes; on open the checkpoint is
loaded and the op-log past it replayed, or the index is rebuilt from the stored vectors when the
checkpoint is missing, damaged or cannot be caught up.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from vecdb.config import Settings
from vecdb.embed import EmbedderRegistry, EmbeddingSpec
from vecdb.engine.api import scroll_all
from vecdb.engine.capacity import Capacity, Recency
from vecdb.engine.derived import Change, Derived, RecencyState
from vecdb.engine.filter_state import FilterState
from vecdb.engine.locks import RWLock
from vecdb.engine.malloc import bound_allocator, release_free_memory
from vecdb.engine.record_index import RecordIndex, to_labels
from vecdb.engine.text_state import TextIndexState
from vecdb.engine.validate import (
    check_embedded_dim,
    decode_cursor,
    encode_cursor,
    expiry_times,
    merge_metadata,
    split_missing_vectors,
    validate_fusion,
    validate_hits,
    validate_id_list,
    validate_include,
    validate_k,
    validate_limit,
    validate_mode,
    validate_queries,
    validate_records,
    validate_source,
    validate_text_filter,
    validate_text_index,
    validate_texts,
    validate_update,
    validate_vector_bytes,
)
from vecdb.engine.vector_state import VectorIndexState
from vecdb.errors import (
    ClosedError,
    CorruptionError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidFilterError,
    LimitExceededError,
    NotFoundError,
)
from vecdb.filters import parse_filter
from vecdb.index import (
    AnySpec,
    BuildCancelledError,
    Device,
    FlatSpec,
    IndexPolicy,
    Job,
    RecallAudit,
    parse_index_spec,
    parse_search_params,
    recall_at_k,
    set_search_threads,
    target_of,
)
from vecdb.index.audit import MAX_WAIT, Start
from vecdb.index.calibrate import BANDS
from vecdb.index.fulltext import TextFilter, TextIndexSpec
from vecdb.index.fusion import fuse
from vecdb.storage import CollectionStore, NewRecord, StoredRecord, atomic_write_json, read_json
from vecdb.types import DEFAULT_INCLUDE, Hit, Metric, Record, SourceInfo

__all__ = ["Collection"]

log = logging.getLogger(__name__)

#: The audit asks for a new calibration once this many k <= 10 queries disagree with it by this much.
RECALIBRATE_SAMPLES = 200
RECALIBRATE_GAP = 0.02

#: Ids a filtered scroll page may scan beyond its limit before it returns (possibly short).
SCROLL_SCAN = 10_000

WATERMARK_FILE = "seq.watermark"
STORE_DIR = "store"
MANIFEST_FILE = "collection.json"


class Collection:
    """A named set of records with one dimension, metric and index. Thread-safe.

    Obtain it from ``Database.create_collection`` / ``get_collection``; do not construct it directly.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        dim: int,
        metric: Metric,
        spec: AnySpec,
        embedding_model: str | None,
        embedders: EmbedderRegistry,
        embedding: EmbeddingSpec | None = None,
        settings: Settings,
        background: Executor,
        builder: Executor,
        create: bool = False,
        capacity: Capacity | None = None,
        device: Device | None = None,
        text_index: TextIndexSpec | None = None,
    ) -> None:
        bound_allocator()  # once per process (vecdb.engine.malloc)
        self.name = name
        self._device = device
        self.path = path
        self.dim = dim
        self.metric: Metric = metric
        self.spec = spec
        self.embedding_model = embedding_model
        #: Prompts and window of the model (None: the model's defaults, no prompts).
        self.embedding = (
            embedding if embedding is not None or embedding_model is None else EmbeddingSpec(embedding_model)
        )
        self.capacity = capacity
        # Use order for eviction; only collections with a capacity keep one.
        self._recency: Recency | None = None if capacity is None else Recency()
        self._embedders = embedders
        self._settings = settings
        self._limits = settings.limits
        self._background = background
        self._builder = builder
        ix = settings.index
        self._policy = IndexPolicy(
            merge_min=ix.merge_min_records,
            merge_ratio=ix.merge_ratio,
            tombstone_share=ix.tombstone_share,
            ivf_train_min=ix.ivf_train_min,
            ivf_regrow=ix.ivf_regrow_factor,
            exact_max=ix.exact_max_admitted,
        )
        self._build_future: Future[None] | None = None
        self._write_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._rw = RWLock()
        self._closed = False
        for stale in path.glob(".*.tmp"):  # a checkpoint write cut short by a crash
            stale.unlink(missing_ok=True)
        self._store = CollectionStore(
            path / STORE_DIR,
            dim,
            create=create,
            sync=settings.storage.sync_writes,
            what=f"store of collection {name!r}",
            max_open_files=settings.storage.max_open_files,
            block_cache_bytes=settings.storage.block_cache_mb << 20,
            write_buffer_bytes=settings.storage.write_buffer_mb << 20,
            watermark=path / WATERMARK_FILE,
            on_damage=self._on_damage,
        )
        self._records = RecordIndex(range_max_repeat=ix.range_max_repeat)
        self._vectors = VectorIndexState(
            name,
            path,
            self._store,
            self._records,
            dim=dim,
            metric=metric,
            spec=spec,
            policy=self._policy,
            device=device,
            strict=settings.storage.sync_writes,
        )
        #: Everything derived from the store: one scan feeds them at open, each write batch updates them,
        #: checkpoints and snapshots loop over them (vecdb.engine.derived). Order: the vector index
        #: recovers last (it settles against the records' live labels).
        self._text = None if text_index is None else TextIndexState(name, path, self._store, text_index)
        self._filters = FilterState(self._records, self._store, path, name)
        self._derived: list[Derived] = [self._filters]
        if self._recency is not None:
            self._derived.append(RecencyState(self._recency))
        if self._text is not None:
            self._derived.append(self._text)
        self._derived.append(self._vectors)
        try:
            scanned = [d for d in self._derived if not d.restore()]
            if not scanned and self._store.count_readable() != len(self._records):
                # Every block of the records was read (a damaged one raised); the count disagrees with
                # the restored filter state: trust the store, rebuild it by the scan.
                log.warning("collection %s: filter checkpoint disagrees with the store; scanning", name)
                self._filters.discard()
                scanned = [self._filters]
            if scanned:  # one pass over the store feeds every structure its checkpoint could not restore
                for rec in self._store.iter_records():
                    for d in scanned:
                        d.load(rec)
            for d in self._derived:
                d.recover()
        except BaseException:
            self._store.close()
            raise
        self._index = self._vectors.index
        self._audit = RecallAudit(settings.index.audit_fraction)
        self._calibrating: Future[None] | None = None
        self._audit_future: Future[None] | None = None
        self._audit_timer: threading.Timer | None = None  # armed by a batch of fewer than audit.BATCH
        self._recalibrated: Any = None  # the index the audit last had calibrated again
        self._applied_seq = self._store.last_seq
        self._changes_since_checkpoint = 0
        self._ops_since_checkpoint = 0
        self._pending_checkpoint: Future[None] | None = None
        if self._checkpoint_seq() < self._applied_seq:
            self._schedule_checkpoint()
        with self._write_lock:
            self._maybe_maintain()
            self._maybe_calibrate()
        release_free_memory()  # what the open scan and the checkpoint's load left behind

    # ---- integrity ---------------------------------------------------------------------------------

    def _on_damage(self, err: CorruptionError) -> None:
        log.error("collection %s is damaged: %s", self.name, err.message)

    @property
    def damage(self) -> CorruptionError | None:
        """The first corruption any operation met in this collection's store (None: none so far). Such
        an operation raised it; nothing partial was returned. ``Database.damaged`` lists these."""
        return self._store.damage

    def verify(self) -> dict[str, Any]:
        """Read the whole store (every block checksummed), check that its column families agree with
        each other and with the in-memory state and the index. Raises CorruptionError; returns counts."""
        self._check_open()
        with self._reading():
            counts = self._store.verify()
            if counts.records != len(self._records):
                raise CorruptionError(
                    f"collection {self.name}: the store holds {counts.records} records, "
                    f"{len(self._records)} were loaded"
                )
            if len(self._index) != counts.records:
                raise CorruptionError(
                    f"collection {self.name}: the index holds {len(self._index)} vectors, "
                    f"the store {counts.records}"
                )
            if self._text is not None:
                text = self._text.searchable()
                if text.searched_documents != text.documents:
                    raise CorruptionError(
                        f"collection {self.name}: the text index holds {text.searched_documents} "
                        f"documents, {text.documents} were indexed"
                    )
            return {"records": counts.records, "seq": self._store.last_seq, "oplog": counts.oplog}

    # ---- lifecycle ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"collection {self.name!r} is closed")

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """The read lock, on a collection that is still open (close takes the write lock)."""
        with self._rw.read():
            self._check_open()
            yield

    def close(self) -> None:
        """Checkpoint the index if it moved, release the store. Idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            pending = self._pending_checkpoint
            building = self._build_future
            calibrating = self._calibrating
            auditing = self._audit_future
            if self._audit_timer is not None:
                self._audit_timer.cancel()
            if self._index.job is not None:
                self._index.job.cancel.set()
        if building is not None:
            building.result()
        if calibrating is not None:
            calibrating.result()
        if auditing is not None:
            auditing.result()  # it may read the store (compressed IVF): finish before the store closes
        if pending is not None:
            pending.result()
        try:
            self._checkpoint(final=True)
        finally:
            with self._rw.write():  # waits for searches in flight; later ones see ClosedError
                self._store.close()
                self._index.release()  # a handle kept after close holds no vectors

    @property
    def seq(self) -> int:
        """The sequence number of the last write (0 for a collection never written)."""
        return self._store.last_seq

    def snapshot_into(self, dest: Path) -> tuple[int, int]:
        """Write a consistent copy of this collection's data into the empty directory ``dest``: the store
        (a RocksDB checkpoint) and the index checkpoint files, all as of one sequence number. Returns
        (that sequence number, records visible then).

        Writes and index checkpoints wait while it runs (a checkpoint hard-links the store's immutable
        files, so this takes milliseconds where the file system allows links); reads go on. Whatever the
        index checkpoint lags behind is in the store's op-log, replayed when the copy is opened.
        """
        self._check_open()
        with self._checkpoint_lock, self._write_lock:
            self._check_open()
            seq = self._store.last_seq
            visible = len(self._records) - len(self._records.expired(time.time()))
            self._store.checkpoint(dest / STORE_DIR)
            for name in [f for d in self._derived for f in d.checkpoint_files()]:
                src = self.path / name
                if src.exists():
                    _link_or_copy(src, dest / name)
        return seq, visible

    def checkpoint(self) -> None:
        """Write the index checkpoint now (normally done in the background)."""
        self._check_open()
        self._checkpoint(final=True)

    def _checkpoint_seq(self) -> int:
        """The op-log must be kept past this: the oldest checkpoint of the structures that have one."""
        seqs = [seq for d in self._derived if (seq := d.checkpoint_seq) is not None]
        return min(seqs) if seqs else self._applied_seq

    def _checkpoint(self, *, final: bool = False) -> None:
        """Checkpoint every derived structure that keeps one, as of one sequence number: each captures
        its state under the read lock (a memory copy) and writes its files outside it; then the op-log
        entries every checkpoint covers are dropped. ``final``: at close or on request (see
        ``Derived.prepare_checkpoint``)."""
        with self._checkpoint_lock:
            with self._rw.read():
                seq = self._applied_seq
                prepared = [d.prepare_checkpoint(seq, final=final) for d in self._derived]
                writers = [w for w in prepared if w is not None]
            for write in writers:
                write()
            if writers:
                self._store.truncate_oplog(self._checkpoint_seq())

    def _schedule_checkpoint(self) -> None:
        if self._pending_checkpoint is not None and not self._pending_checkpoint.done():
            return
        self._changes_since_checkpoint = 0
        self._ops_since_checkpoint = 0
        self._pending_checkpoint = self._background.submit(self._background_checkpoint)

    def _background_checkpoint(self) -> None:
        try:
            if not self._closed:
                self._checkpoint()
                release_free_memory()
        except Exception:  # the op-log still covers everything; the next checkpoint retries
            log.exception("collection %s: background checkpoint failed", self.name)

    # ---- index maintenance -------------------------------------------------------------------------

    def _maybe_maintain(self) -> None:
        """Start the background job the index needs, if any (call under the write lock)."""
        if self._closed or self._index.job is not None:
            return
        kind = self._index.plan(len(self._records))
        if kind is None:
            return
        job = self._index.start_job(kind, self._records.all, self._store.get_present_vectors)
        self._build_future = self._builder.submit(self._run_job, job)

    def _run_job(self, job: Job) -> None:
        started = time.perf_counter()
        try:
            new_main, added = self._index.run_job(job)
        except BuildCancelledError:
            with self._write_lock:
                self._index.abandon_job(job)
            return
        except Exception:
            log.exception("collection %s: background %s failed", self.name, job.kind)
            with self._write_lock:
                self._index.abandon_job(job)
            return
        with self._write_lock:
            if self._closed:
                self._index.abandon_job(job)
                return
            with self._rw.write():
                self._index.finish_job(job, new_main, added, uuid.uuid4().hex[:16])
            self._audit.reset()
            log.info(
                "collection %s: %s of %d vectors took %.1f s",
                self.name,
                job.kind,
                len(added),
                time.perf_counter() - started,
            )
            self._schedule_checkpoint()
            self._maybe_maintain()
        release_free_memory()  # the old main and the job's inputs

    def _maybe_calibrate(self, again: bool = False) -> None:
        """An ANN index loaded without a calibration (checkpointed by an older version) is calibrated in
        the background; until then it searches with the fallback knobs (ef 64, nprobe 32). ``again``:
        calibrate a calibrated index anew (the audit disagrees with it). Call under the write lock."""
        if self._closed or self._index.main is None or (self._index.calibration is not None and not again):
            return
        if self._calibrating is not None and not self._calibrating.done():
            return
        self._calibrating = self._builder.submit(self._run_calibration, self._index.main)

    def _run_calibration(self, main: Any) -> None:
        try:
            cal = self._index.calibrate(main)
        except Exception:
            log.exception("collection %s: calibration failed", self.name)
            return
        with self._write_lock:
            if self._closed or self._index.main is not main or cal is None:
                return
            with self._rw.write():
                self._index.calibration = cal
            self._audit.reset()
            self._schedule_checkpoint()

    def _check_audit(self) -> None:
        """Once the audit has ``RECALIBRATE_SAMPLES`` queries of k <= 10 and its estimate differs from the
        calibration's prediction by more than ``RECALIBRATE_GAP``, the index is calibrated again (once per
        index): by then the reservoir holds real queries, which the new calibration samples."""
        main, cal, target = self._index.main, self._index.calibration, target_of(self.spec)
        if main is None or cal is None or target is None or self._recalibrated is main:
            return
        band = self._audit.summary()["bands"].get(str(BANDS[0]))
        if band is None or band["samples"] < RECALIBRATE_SAMPLES:
            return
        predicted = cal.band(BANDS[0]).recall_at(cal.choose(BANDS[0], target))
        if abs(band["estimated_recall"] - predicted) <= RECALIBRATE_GAP:
            return
        log.info(
            "collection %s: audit recall %.3f, calibration predicted %.3f: calibrating again",
            self.name,
            band["estimated_recall"],
            predicted,
        )
        with self._write_lock:
            self._recalibrated = main
            self._maybe_calibrate(again=True)

    def set_target_recall(self, target: float) -> None:
        """Change the collection's recall target (0 < target <= 1) without rebuilding: the index's
        calibration curves answer any target at once. Persisted in the collection's manifest. Raises
        InvalidConfigError for a bad value or a flat collection (exact: no target)."""
        self._check_open()
        if isinstance(self.spec, FlatSpec):
            raise InvalidConfigError("a flat collection is exact: it has no recall target", field="index")
        spec = parse_index_spec({**self.spec.model_dump(), "target_recall": target}, self.dim)
        with self._write_lock:
            self._check_open()
            manifest_path = self.path / MANIFEST_FILE
            if manifest_path.exists():
                manifest = read_json(manifest_path)
                manifest["index"] = spec.model_dump()
                atomic_write_json(manifest_path, manifest)
            with self._rw.write():
                self.spec = spec
                self._vectors.set_spec(spec)
            self._audit.reset()

    def _start_audit(self, start: Start) -> None:
        """Act on ``RecallAudit.offer``'s answer: schedule the task now, or arm the timer of a small batch."""
        if start == Start.NOW:
            timer = self._audit_timer
            if timer is not None:
                timer.cancel()
            try:
                self._audit_future = self._background.submit(self._audit_task)
            except RuntimeError:  # the database is shutting down
                self._audit.take(0)
        elif start == Start.LATER:
            timer = threading.Timer(MAX_WAIT, self._audit_due)
            timer.daemon = True
            timer.name = f"vecdb-audit-{self.name}"
            self._audit_timer = timer
            timer.start()

    def _audit_due(self) -> None:
        """The timer of a small batch went off (a full batch may have started the task meanwhile)."""
        if not self._closed and self._audit.fire():
            self._start_audit(Start.NOW)

    def _audit_task(self) -> None:
        """Background: re-run sampled queries exactly and record their recall (never under a lock while
        scanning: the live vectors are captured under the read lock, then scanned outside it). One pass
        over the vectors serves a whole batch; its wall time is charged to the audit's budget."""
        while True:
            batch = self._audit.take()
            if not batch:
                return
            if self._closed:
                while self._audit.take():
                    pass
                return
            try:
                started = time.perf_counter()
                with self._reading():
                    view = self._index.audit_view()
                q = self._index.prepare(np.stack([s.query for s in batch]))
                k = max(s.k for s in batch)
                truth_s, truth_l = view.top(q, k)
                self._audit.charge(time.perf_counter() - started)
                for i, s in enumerate(batch):
                    kk = min(s.k, truth_l.shape[1])
                    if kk == 0:
                        continue
                    r = recall_at_k(
                        s.labels[None, :kk],
                        truth_l[i : i + 1, :kk],
                        truth_s[i : i + 1, :kk],
                        s.scores[None, :kk],
                        self.metric == "l2",
                    )
                    self._audit.record(s.k, r)
                self._check_audit()
            except Exception:  # closed meanwhile, or a store error: the audit is best effort
                log.debug("collection %s: recall audit stopped", self.name, exc_info=True)
                while self._audit.take():
                    pass
                return

    def wait_for_index(self, timeout: float | None = None) -> bool:
        """Block until no index build is running or due. Returns False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._write_lock:
                self._check_open()
                self._maybe_maintain()
                if self._index.job is None:
                    return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    # ---- writes ------------------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any = None,
        texts: Sequence[str | None] | None = None,
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        sources: Sequence[str | None] | None = None,
        *,
        ttl: float | None = None,
        expires_at: float | Sequence[float | None] | None = None,
    ) -> int:
        """Insert or replace records; returns how many were written.

        Re-sending an id replaces its record (vector, text, metadata, source and expiry) entirely. The
        whole batch is validated first: any bad item rejects the batch and nothing is written. In a
        collection with an embedding model, ``vectors`` may be omitted (or hold None for some records):
        those records' texts are embedded. ``ttl`` (seconds from now, for every record) or ``expires_at``
        (unix seconds, one for all or one per record, None for never) make records expire: an expired
        record is never returned or counted, and is deleted in the background. In a collection with a
        capacity, the write evicts the oldest records (by its policy) in the same atomic batch.
        """
        self._check_open()
        new, vecs = self._validate(ids, vectors, texts, metadatas, sources)
        new = _with_expiry(new, ttl, expires_at)
        return self._write(new, vecs, lambda: self._existing([r.id for r in new]))

    def _validate(
        self, ids: Any, vectors: Any, texts: Any, metadatas: Any, sources: Any, *, allow_empty: bool = False
    ) -> tuple[list[NewRecord], np.ndarray]:
        missing: list[int] = []
        if self.embedding_model is not None:
            vectors, missing = split_missing_vectors(ids, vectors, texts, self.dim)
        elif isinstance(vectors, list | tuple) and any(v is None for v in vectors):
            raise InvalidArgumentError(
                f"collection {self.name!r} has no embedding model: every record needs a vector"
            )
        new, vecs = validate_records(
            ids,
            vectors,
            texts,
            metadatas,
            sources,
            dim=self.dim,
            metric=self.metric,
            limits=self._limits,
            allow_empty=allow_empty,
        )
        if missing:  # embedding is slow: done after validation, before the write lock
            vecs[missing] = self.embed_documents([new[i].text or "" for i in missing])
        text = self._text
        if text is not None:  # so is Chinese segmentation
            text.warm([r.text for r in new])
        return new, vecs

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Vectors of record texts (the ``document_prompt`` prepended). Raises InvalidArgumentError
        without an embedding model."""
        return self._embed(texts, query=False)

    def _embed(self, texts: list[str], *, query: bool) -> np.ndarray:
        if self.embedding_model is None or self.embedding is None:
            raise InvalidArgumentError(
                f"collection {self.name!r} has no embedding model: send vectors (create it with "
                'embedding={"model": ...} to send texts alone)'
            )
        spec = self.embedding
        vectors = self._embedders.get(self.embedding_model).encode(
            texts,
            prompt=spec.query_prompt if query else spec.document_prompt,
            max_seq_length=spec.max_seq_length,
        )
        return check_embedded_dim(vectors, self.embedding_model, self.dim)

    def replace_source(
        self,
        source: str,
        ids: Sequence[str],
        vectors: Any = None,
        texts: Sequence[str | None] | None = None,
        metadatas: Sequence[dict[str, Any] | None] | None = None,
    ) -> int:
        """Atomically replace every record of ``source`` with the given ones (which get that source).

        The source's old records and the new ones are swapped in one write: a reader sees all old or
        all new. Ids that lived in another source move here. Returns how many were written; with no
        ids it deletes the source.
        """
        self._check_open()
        source = validate_source(source, self._limits)
        n = len(ids) if ids is not None and not isinstance(ids, str) else -1
        new, vecs = self._validate(ids, vectors, texts, metadatas, [source] * max(n, 0), allow_empty=True)

        def removed() -> list[StoredRecord]:
            by_label = {r.label: r for r in self._existing([r.id for r in new])}
            for rec in self._load(self._store.source_labels(source)):
                by_label.setdefault(rec.label, rec)
            return list(by_label.values())

        return self._write(new, vecs, removed)

    def delete(
        self,
        ids: Sequence[str] | None = None,
        *,
        filter: Any = None,
        source: str | None = None,
        text_filter: Any = None,
    ) -> int:
        """Delete by ids, by metadata filter and/or text filter (records matching both), or by source
        (exactly one of the three). Returns how many were deleted."""
        self._check_open()
        filters = filter is not None or text_filter is not None
        present = (("ids", ids is not None), ("filter", filters), ("source", source is not None))
        given = [name for name, yes in present if yes]
        if len(given) != 1:
            raise InvalidArgumentError(
                f"delete takes exactly one of ids, filter (and/or text_filter), source; got {given or 'none'}"
            )
        if ids is not None:
            id_list = validate_id_list(ids, self._limits, allow_duplicates=True)
            return self._write([], None, lambda: self._existing(id_list))
        if source is not None:
            src = validate_source(source, self._limits)
            return self._write([], None, lambda: self._load(self._store.source_labels(src)))
        flt = parse_filter(filter)
        tflt = validate_text_filter(text_filter)
        if (filter is not None and flt is None) or (flt is None and tflt is None):
            raise InvalidFilterError(
                "delete by filter needs a non-empty filter; drop the collection to empty it"
            )
        return self._write([], None, lambda: self._load(to_labels(self._admitted(flt, tflt)).tolist()))

    # ---- the full-text index -------------------------------------------------------------------------

    def _require_text(self, what: str) -> TextIndexState:
        if self._text is None:
            raise InvalidArgumentError(
                f"collection {self.name!r} has no text index, needed for {what}: add one with "
                "set_text_index (or create the collection with text_index={...})",
                field="text_index",
            )
        return self._text

    def _admitted(self, flt: Any, tflt: TextFilter | None) -> Any:
        """The labels ``flt`` and ``tflt`` admit (None: no filter). Call under a lock."""
        allowed = None if flt is None else self._records.evaluate(flt)
        if tflt is not None:
            universe = self._records.all if allowed is None else allowed
            allowed = self._require_text("text_filter").searchable().matching(tflt, universe)
        return allowed

    def set_text_index(self, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        """Add (built from the store), replace, or (None) drop the full-text index; persisted in the
        collection's manifest. Writes wait while it is built; reads go on with the old one."""
        self._check_open()
        new_spec = validate_text_index(spec)
        with self._checkpoint_lock, self._write_lock:
            self._check_open()
            old = self._text
            if (old.spec if old is not None else None) != new_spec:
                state = None
                if new_spec is not None:
                    state = TextIndexState(self.name, self.path, self._store, new_spec)
                    state.load_all()
                manifest_path = self.path / MANIFEST_FILE
                if manifest_path.exists():
                    manifest = read_json(manifest_path)
                    manifest["text_index"] = None if new_spec is None else new_spec.model_dump()
                    atomic_write_json(manifest_path, manifest)
                with self._rw.write():
                    self._derived = [d for d in self._derived if d is not old]
                    if state is not None:
                        self._derived.insert(len(self._derived) - 1, state)  # before the vectors
                    self._text = state
                if old is not None:
                    old.drop_files()
        if self._text is not None and self._text.checkpoint_files():
            self._schedule_checkpoint()
        with self._reading():
            return None if self._text is None else self._text.info()

    def update(
        self,
        ids: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None] | None = None,
        texts: Sequence[str | None] | None = None,
        sources: Sequence[str | None] | None = None,
    ) -> int:
        """Change existing records' metadata, text or source in place; returns how many were updated.

        Per record, None (or a column left out) keeps that field. Metadata merges: the given keys replace
        the stored ones, a key given as None is removed, the others stay. A new text in a collection with
        an embedding model is embedded again (the record's vector changes); otherwise the vector and the
        expiry time stay as stored. Every id must exist (NotFoundError naming the missing ones);
        the whole batch is one atomic write, like an upsert, and the filter bitmaps and the source index
        follow it."""
        self._check_open()
        id_list, meta_col, text_col, src_col = validate_update(ids, metadatas, texts, sources, self._limits)
        embedded: dict[int, np.ndarray] = {}
        if self.embedding_model is not None:  # slow: before the write lock
            changed = [i for i, t in enumerate(text_col) if t is not None]
            if changed:
                embedded = dict(
                    zip(changed, self.embed_documents([text_col[i] for i in changed]), strict=True)
                )
        with self._write_lock:
            self._check_open()
            labels = self._store.lookup_labels(id_list)
            missing = [rid for rid, lb in zip(id_list, labels, strict=True) if lb is None]
            if missing:
                raise NotFoundError(
                    f"update: {len(missing)} of {len(id_list)} ids are not in collection {self.name!r}, "
                    f"e.g. {missing[:5]}; nothing was written",
                    missing=missing[:100],
                )
            stored = self._load([lb for lb in labels if lb is not None])
            vecs = self._store.get_vectors([r.label for r in stored])
            for i, vec in embedded.items():
                vecs[i] = vec
            new, vecs = validate_records(
                id_list,
                vecs,
                [t if t is not None else r.text for t, r in zip(text_col, stored, strict=True)],
                [merge_metadata(r.metadata, m) for m, r in zip(meta_col, stored, strict=True)],
                [s if s is not None else r.source for s, r in zip(src_col, stored, strict=True)],
                dim=self.dim,
                metric=self.metric,
                limits=self._limits,
            )
            new = [dataclasses.replace(n, expires_at=r.expires_at) for n, r in zip(new, stored, strict=True)]
            return self._write_locked(new, vecs, lambda: stored)

    def _check_metadata_fields(self, new: list[NewRecord]) -> None:
        """Refuse a write that would bring the collection's distinct metadata keys past the limit: each
        key is filterable and costs memory for as long as any record has it (call under the write lock)."""
        known = self._records.fields
        fresh = {key for rec in new for key in rec.metadata if key not in known}
        limit = self._limits.max_metadata_fields
        if fresh and len(known) + len(fresh) > limit:
            raise LimitExceededError(
                f"collection {self.name!r} would hold {len(known) + len(fresh)} distinct metadata keys, "
                f"more than max_metadata_fields ({limit}): store open-ended data as values, not keys",
                limit=limit,
                existing=len(known),
                new=len(fresh),
            )

    def _evictions(self, n_new: int, removed: list[StoredRecord]) -> list[StoredRecord]:
        """The records a write of ``n_new`` records must evict to stay within capacity: expired ones
        first, then the least recently used (lru) or oldest written (fifo). Call under the write lock."""
        assert self.capacity is not None and self._recency is not None
        overflow = len(self._records) - len(removed) + n_new - self.capacity.max_records
        if overflow <= 0:
            return []
        skip = {r.label for r in removed}
        victims = [lb for lb in self._records.expired(time.time()) if lb not in skip][:overflow]
        victims += self._recency.oldest(overflow - len(victims), skip | set(victims))
        if len(victims) < overflow:
            raise LimitExceededError(
                f"{n_new} records do not fit in collection {self.name!r} "
                f"(max_records {self.capacity.max_records})",
                limit=self.capacity.max_records,
            )
        return self._load(victims)

    def purge_expired(self) -> int:
        """Delete the records whose time has come (the database's purger calls this); returns how many."""
        if self._closed or not self._records.expiry:
            return 0
        return self._write(
            [], None, lambda: self._load(list(self._records.expired(time.time()))), count_expired=True
        )

    def _existing(self, ids: Sequence[str]) -> list[StoredRecord]:
        labels = [lb for lb in self._store.lookup_labels(ids) if lb is not None]
        return self._load(labels)

    def _load(self, labels: Sequence[int]) -> list[StoredRecord]:
        unique = list(dict.fromkeys(labels))
        records = self._store.get_records(unique)
        missing = [lb for lb, r in zip(unique, records, strict=True) if r is None]
        if missing:
            raise CorruptionError(f"collection {self.name}: labels {missing[:5]} are indexed but not stored")
        return records  # type: ignore[return-value]

    def _write(
        self,
        new: list[NewRecord],
        vecs: np.ndarray | None,
        removed_fn: Callable[[], list[StoredRecord]],
        *,
        count_expired: bool = False,
    ) -> int:
        """Commit ``new`` and the records ``removed_fn`` names (plus evictions); returns how many were
        written, or for a pure delete how many visible records went (expired ones are already gone to
        readers, so they count only when ``count_expired``)."""
        with self._write_lock:
            return self._write_locked(new, vecs, removed_fn, count_expired=count_expired)

    def _write_locked(
        self,
        new: list[NewRecord],
        vecs: np.ndarray | None,
        removed_fn: Callable[[], list[StoredRecord]],
        *,
        count_expired: bool = False,
    ) -> int:
        """``_write``'s body, for a caller that holds the write lock already (``update``)."""
        self._check_open()
        removed = removed_fn()
        if new:
            self._check_metadata_fields(new)
        if new and self.capacity is not None:
            removed = removed + self._evictions(len(new), removed)
        if not new and not removed:
            return 0
        hidden = 0
        if not new and self._records.expiry:
            dead = self._records.expired(time.time())
            hidden = sum(r.label in dead for r in removed) if dead else 0
        with self._rw.write():
            seq, labels = self._store.commit(new, vecs, removed)
            change = Change(seq, labels, new, vecs if new else None, removed)
            for d in self._derived:
                d.apply(change)
            self._applied_seq = seq
        self._maybe_maintain()
        self._ops_since_checkpoint += 1
        self._changes_since_checkpoint += len(new) + len(removed)
        storage = self._settings.storage
        if (
            self._ops_since_checkpoint >= storage.checkpoint_every_ops
            or self._changes_since_checkpoint >= storage.checkpoint_every_records
        ):
            self._schedule_checkpoint()
        return len(new) if new else len(removed) - (0 if count_expired else hidden)

    # ---- reads -------------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], include: Sequence[str] = DEFAULT_INCLUDE) -> list[Record]:
        """The records that exist among ``ids``, in request order (each once); missing ids are skipped."""
        self._check_open()
        id_list = list(dict.fromkeys(validate_id_list(ids, self._limits, allow_duplicates=True)))
        fields = validate_include(include)
        validate_vector_bytes(len(id_list), self.dim, fields, self._limits, "get")
        with self._reading():
            dead = self._records.expired(time.time())
            labels = [lb for lb in self._store.lookup_labels(id_list) if lb is not None and lb not in dead]
            self._touch(labels)
            return self._materialize(labels, fields)

    def search(
        self,
        vectors: Any = None,
        k: int = 10,
        filter: Any = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
        params: dict[str, Any] | None = None,
        texts: Sequence[str] | str | None = None,
        score_threshold: float | None = None,
        *,
        mode: str = "vector",
        text_filter: Any = None,
        fusion: dict[str, Any] | None = None,
    ) -> list[list[Hit]]:
        """Top-k records per query, best first; only records matching ``filter`` and ``text_filter``.

        ``mode="vector"`` (default): scores: cosine and ip give similarity (higher is better), l2 the
        squared distance (lower is better). On a flat index the result is exact, filtered or not; a
        filter admitting few records is searched exactly on every index. ``params`` overrides
        ``ef_search`` / ``nprobe`` for this call. A single 1-d vector counts as one query. Give ``texts``
        instead of ``vectors`` to search with query texts (collections with an embedding model).
        ``mode="text"``: BM25 over the full-text index (``texts``; no model needed). ``mode="hybrid"``:
        both branches, each ``fusion["candidates"]`` deep, fused (docs/search.md); the vector branch uses
        ``vectors`` (one row per text) or the collection's model. Filters apply exactly to every branch.
        Fewer than k hits come back when fewer records match. ``score_threshold`` keeps only hits scoring
        at least that (l2's vector distance: at most that); hits it drops are not returned, so they do
        not count as use in an lru collection. ``include`` may hold ``"explain"``.
        """
        self._check_open()
        mode = validate_mode(mode)
        keep = _score_filter(score_threshold, self.metric if mode == "vector" else "ip")
        k = validate_k(k, self._limits)
        fields = validate_include(include, search=True)
        fus = validate_fusion(fusion, mode, k, self._limits)
        tflt = validate_text_filter(text_filter)
        query_texts: list[str] | None = None
        if mode == "vector":
            if (vectors is None) == (texts is None):
                raise InvalidArgumentError("search takes exactly one of vectors and texts")
            if texts is not None:
                texts = validate_texts(texts, self._limits)
                validate_hits(len(texts), k, self.dim, fields, self._limits)  # before embedding them
                vectors = self._embed(texts, query=True)
        else:
            if texts is None:
                raise InvalidArgumentError(f"search mode {mode!r} needs texts", field="texts")
            if mode == "text" and vectors is not None:
                raise InvalidArgumentError("search mode 'text' takes texts, not vectors", field="vectors")
            if mode == "text" and params is not None:
                raise InvalidArgumentError(
                    "params (ef_search, nprobe, target_recall) tune the vector index: not for mode 'text'",
                    field="params",
                )
            self._require_text(f"search mode {mode!r}")
            query_texts = validate_texts(texts, self._limits)
            validate_hits(len(query_texts), k, self.dim, fields, self._limits)
            if mode == "hybrid" and vectors is None:
                vectors = self._embed(query_texts, query=True)
        queries = None if vectors is None else validate_queries(vectors, self.dim, self.metric, self._limits)
        if queries is not None and query_texts is not None and len(queries) != len(query_texts):
            raise InvalidArgumentError(
                f"a hybrid search needs one vector per text: got {len(queries)} vectors for "
                f"{len(query_texts)} texts",
                field="vectors",
            )
        n_queries = len(queries) if queries is not None else len(query_texts or [])
        validate_hits(n_queries, k, self.dim, fields, self._limits)
        flt = parse_filter(filter)
        search_params = parse_search_params(params)
        depth = fus.depth(k) if mode == "hybrid" else k
        with self._reading():
            allowed = self._admitted(flt, tflt)
            dead = self._records.expired(time.time())
            if dead:
                allowed = (self._records.all if allowed is None else allowed) - dead
            elif allowed is not None and len(allowed) == len(self._records):
                allowed = None  # a filter that admits everything: search as unfiltered (no selector)
            available = len(self._index) if allowed is None else len(allowed)
            if available == 0:
                return [[] for _ in range(n_queries)]
            vec_rows: list[list[tuple[int, float]]] = []
            text_rows: list[list[tuple[int, float]]] = []
            if queries is not None:
                vec_rows = self._vector_rows(queries, min(depth, available), allowed, search_params, mode)
            if query_texts is not None:
                text = self._require_text(f"search mode {mode!r}").searchable()
                for qt in query_texts:
                    lbs, scs = text.search(text.query(qt), depth, allowed, self._records.ids.__getitem__)
                    text_rows.append(list(zip(lbs.tolist(), scs.tolist(), strict=True)))
            rows = self._combine(mode, vec_rows, text_rows, fus, k, keep)
            flat = list(dict.fromkeys(lb for row in rows for lb, _, _ in row))
            by_label = dict(zip(flat, self._materialize(flat, fields - {"explain"}), strict=True))
            self._touch(flat)
        explain = "explain" in fields
        return [
            [
                Hit(
                    id=(rec := by_label[lb]).id,
                    score=score,
                    text=rec.text,
                    metadata=rec.metadata,
                    source=rec.source,
                    vector=rec.vector,
                    explain=why if explain else None,
                )
                for lb, score, why in row
            ]
            for row in rows
        ]

    def _vector_rows(
        self, queries: np.ndarray, n: int, allowed: Any, search_params: Any, mode: str
    ) -> list[list[tuple[int, float]]]:
        """Each query's best ``n`` (label, score) of the vector index (call under the read lock)."""
        set_search_threads(len(queries), self._settings.search.single_thread_max_queries)
        scores, labels = self._index.search(queries, n, allowed, search_params)
        if (
            mode == "vector"
            and allowed is None
            and self._index.main is not None
            and search_params.ef_search is None
            and search_params.nprobe is None
            and search_params.target_recall is None
        ):
            self._start_audit(self._audit.offer(queries, n, labels, scores))
        return [
            [(int(lb), float(sc)) for lb, sc in zip(lrow, srow, strict=True) if lb >= 0]
            for lrow, srow in zip(labels, scores, strict=True)
        ]

    def _combine(
        self,
        mode: str,
        vec_rows: list[list[tuple[int, float]]],
        text_rows: list[list[tuple[int, float]]],
        fus: Any,
        k: int,
        keep: Callable[[float], bool],
    ) -> list[list[tuple[int, float, dict[str, dict[str, float]]]]]:
        """Per query: (label, score, explain) of the final hits, best first."""
        if mode != "hybrid":
            branch = "vector" if mode == "vector" else "text"
            return [
                [
                    (lb, sc, {branch: {"rank": r, "score": sc}})
                    for r, (lb, sc) in enumerate(row, 1)
                    if keep(sc)
                ]
                for row in (vec_rows if mode == "vector" else text_rows)
            ]
        ids = self._records.ids
        out = []
        for vrow, trow in zip(vec_rows, text_rows, strict=True):
            vkeys = [ids[lb] for lb, _ in vrow]
            tkeys = [ids[lb] for lb, _ in trow]
            label_of = {key: lb for key, (lb, _) in zip(vkeys, vrow, strict=True)} | {
                key: lb for key, (lb, _) in zip(tkeys, trow, strict=True)
            }
            fused = fuse(
                [(key, sc) for key, (_, sc) in zip(vkeys, vrow, strict=True)],
                [(key, sc) for key, (_, sc) in zip(tkeys, trow, strict=True)],
                fus,
                k,
                lower_better=self.metric == "l2",
            )
            out.append([(label_of[i], sc, why) for i, sc, why in fused if keep(sc)])
        return out

    def _touch(self, labels: list[int]) -> None:
        """Reads count as use in an ``lru`` collection (only there: other reads stay read-only)."""
        if self._recency is not None and self.capacity is not None and self.capacity.eviction == "lru":
            self._recency.touch(labels)

    def _materialize(self, labels: list[int], fields: frozenset[str]) -> list[Record]:
        """Records for live labels, with only the fields asked for. Call under the read lock."""
        if not labels:
            return []
        vectors = self._store.get_vectors(labels) if "vector" in fields else None
        if not fields - {"vector"}:
            stored: list[StoredRecord | None] = [None] * len(labels)
        else:
            stored = self._store.get_records(labels)
        out = []
        for i, lb in enumerate(labels):
            rec = stored[i]
            if rec is None and fields - {"vector"}:
                raise CorruptionError(f"collection {self.name}: label {lb} is indexed but not stored")
            out.append(
                Record(
                    id=self._records.ids[lb],
                    text=rec.text if rec is not None and "text" in fields else None,
                    metadata=rec.metadata if rec is not None and "metadata" in fields else {},
                    source=rec.source if rec is not None and "source" in fields else None,
                    vector=None if vectors is None else vectors[i],
                )
            )
        return out

    def scroll(
        self,
        cursor: str | None = None,
        limit: int = 1000,
        filter: Any = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
        *,
        text_filter: Any = None,
    ) -> tuple[list[Record], str | None]:
        """One page of records in id order (UTF-8 byte order) after ``cursor``, and the cursor of the
        next page (None once the collection is exhausted). Start with ``cursor=None``.

        Each page is read under the read lock and nothing is held between pages: writes go on during a
        scroll. A record written or deleted during the scroll may or may not appear; none appears twice;
        every record that exists for the whole scroll appears once. With a ``filter``, a page scans at
        most ``SCROLL_SCAN`` ids past ``limit``, so it may hold fewer than ``limit`` records (even none)
        while the next cursor is not None. Scrolling does not count as use in an ``lru`` collection.
        """
        self._check_open()
        after = decode_cursor(cursor)
        limit = validate_limit(limit, self._limits)
        flt = parse_filter(filter)
        tflt = validate_text_filter(text_filter)
        fields = validate_include(include)
        validate_vector_bytes(limit, self.dim, fields, self._limits, "a scroll page")
        with self._reading():
            allowed = self._admitted(flt, tflt)
            dead = self._records.expired(time.time())
            labels: list[int] = []
            last, scanned, more = after, 0, True
            budget = limit + SCROLL_SCAN
            while len(labels) < limit and scanned < budget:
                page = self._store.scan_ids(last, min(limit - len(labels) + 64, budget - scanned))
                if not page:
                    more = False
                    break
                for key, label in page:
                    last, scanned = key, scanned + 1
                    if label in dead or (allowed is not None and label not in allowed):
                        continue
                    labels.append(label)
                    if len(labels) == limit:
                        break
            if more:
                more = bool(self._store.scan_ids(last, 1))
            records = self._materialize(labels, fields)
        return records, encode_cursor(last) if more and last is not None else None

    def iter_records(
        self,
        limit: int = 1000,
        filter: Any = None,
        include: Sequence[str] = DEFAULT_INCLUDE,
        *,
        text_filter: Any = None,
    ) -> Iterator[Record]:
        """Every record (matching ``filter`` and ``text_filter``), ``limit`` a page, as ``scroll`` reads
        them."""
        return scroll_all(self, limit, filter, include, text_filter=text_filter)

    def count(self, filter: Any = None, *, text_filter: Any = None) -> int:
        """How many records exist (that match ``filter`` and ``text_filter``, when given)."""
        self._check_open()
        flt = parse_filter(filter)
        tflt = validate_text_filter(text_filter)
        with self._reading():
            dead = self._records.expired(time.time())
            allowed = self._admitted(flt, tflt)
            if allowed is None:
                return len(self._records) - len(dead)
            return len(allowed - dead)

    def list_sources(self) -> list[SourceInfo]:
        """Every source with its number of records, sorted by source."""
        self._check_open()
        with self._reading():
            return self._sources()

    def _sources(self) -> list[SourceInfo]:
        dead = self._records.expired(time.time())
        counts = ((s, len(bm - dead) if dead else len(bm)) for s, bm in sorted(self._records.sources.items()))
        return [SourceInfo(s, n) for s, n in counts if n]

    def _index_state(self) -> dict[str, Any]:
        state = self._index.state()
        state["recall"]["audit"] = self._audit.summary()
        return state

    def _embedding_info(self) -> dict[str, Any] | None:
        """The declaration, the dimension and the server's backend (the model is not loaded for it)."""
        if self.embedding is None:
            return None
        return {**self.embedding.to_dict(), "dim": self.dim, "backend": self._settings.embedding.backend}

    def info(self) -> dict[str, Any]:
        """Name, dimension, metric, index spec and state, counts, sequence numbers and memory (bytes
        held by each index part and the store's caches; embedded only, /metrics serves it too)."""
        self._check_open()
        with self._reading():
            return {
                "name": self.name,
                "dim": self.dim,
                "metric": self.metric,
                "index": self.spec.model_dump(),
                "embedding": self._embedding_info(),
                "text_index": None if self._text is None else self._text.info(),
                "count": len(self._records) - len(self._records.expired(time.time())),
                "sources": len(self._sources()),
                "capacity": None if self.capacity is None else self.capacity.to_dict(),
                "index_state": self._index_state(),
                "seq": self._applied_seq,
                "checkpoint_seq": self._checkpoint_seq(),
                "memory": self._memory(),
            }

    def _memory(self) -> dict[str, Any]:
        """Bytes held by the index's parts and the store's caches (docs/indexes.md#memory)."""
        parts = {"index": self._index.memory(), "store": self._store.memory()}
        return {**parts, "total": sum(b for part in parts.values() for b in part.values())}


def _score_filter(threshold: Any, metric: Metric) -> Callable[[float], bool]:
    """Which scores pass ``score_threshold``: similarity at least it, or l2 distance at most it."""
    if threshold is None:
        return lambda _: True
    number = isinstance(threshold, int | float) and not isinstance(threshold, bool)
    if not number or not math.isfinite(threshold):
        raise InvalidArgumentError(
            f"score_threshold must be a finite number, got {threshold!r}", field="score_threshold"
        )
    t = float(threshold)
    return (lambda d: d <= t) if metric == "l2" else (lambda s: s >= t)


def _with_expiry(new: list[NewRecord], ttl: Any, expires_at: Any) -> list[NewRecord]:
    """The records with their expiry time: ``ttl`` seconds from now, or ``expires_at`` (one or per record)."""
    times = expiry_times(ttl, expires_at, len(new))
    if times is None:
        return new
    return [dataclasses.replace(r, expires_at=t) for r, t in zip(new, times, strict=True)]


def _link_or_copy(src: Path, dest: Path) -> None:
    """Checkpoint files are replaced by rename, never rewritten in place: a hard link is a safe copy."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
