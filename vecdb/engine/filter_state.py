"""The filter bitmaps as derived state with a checkpoint: a reopen without reading every record.

``FilterState`` keeps the collection's ``RecordIndex`` (live labels, ids, sources, metadata bitmaps, numeric
columns, expiry times). Without a checkpoint the open scan rebuilds it record by record: at 100,000
records that scan (read + JSON-decode every record, index its metadata) was ~2 s of a 3 s reopen. With one:

- **restore** (before the scan): load ``filters.ckpt`` (CRC-checked, tied to the store's uuid), then replay
  the op-log past its sequence number: the labels added since are read from the store (a multi-get) and
  indexed. Labels are never reused, so a label at or below the checkpoint's highest label that the op-log
  removes was in the checkpoint; its metadata is gone from the store, so such a replay is not attempted and
  the structure asks for the open scan instead. Whatever fails (no file, damage, another store, another
  format, a gap in the op-log, the store behind the checkpoint) also falls back to the scan: the
  checkpoint only ever saves time, the store stays the truth.
- **checkpoint**: at a clean close (and an explicit ``checkpoint()``) whenever the state moved, and in the
  background only once the changes since the last one reach ``max(REWRITE_MIN, records // REWRITE_FRACTION)``:
  a dump holds writers (not readers) for ~0.1 s per 100,000 records, so it is not paid at every index
  checkpoint. Until then the op-log is kept past it (labels only, 8 bytes each).

Collections whose other derived state needs the scan anyway (a capped collection's use order, a full-text
index) still scan; this one then simply restores instead of loading records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vecdb.engine.derived import Change
from vecdb.engine.record_index import RecordIndex
from vecdb.storage import CollectionStore, StoredRecord, read_checkpoint, write_checkpoint

__all__ = ["FILTER_CHECKPOINT_FILE", "REWRITE_FRACTION", "REWRITE_MIN", "FilterState"]

log = logging.getLogger(__name__)

FILTER_CHECKPOINT_FILE = "filters.ckpt"
#: A background checkpoint rewrites the dump once this many labels were added or removed since the last...
REWRITE_MIN = 10_000
#: ...or this share of the collection, whichever is larger.
REWRITE_FRACTION = 10


class _NeedsScan(Exception):
    """The checkpoint cannot bring the bitmaps to the store's sequence number: use the open scan."""


class FilterState:
    """The filter bitmaps, ids, sources and expiry times (``RecordIndex``), checkpointed."""

    name = "filters"

    def __init__(self, records: RecordIndex, store: CollectionStore, path: Path, collection: str) -> None:
        self.records = records
        self._store = store
        self._file = path / FILTER_CHECKPOINT_FILE
        self._collection = collection
        self._seq: int | None = None  # the seq of the durable dump (None: none written or loaded)
        self._changes = 0  # labels added or removed since that dump
        self.restored = False  # for info and tests: this open restored instead of scanning

    # ---- Derived -----------------------------------------------------------------------------------

    def restore(self) -> bool:
        try:
            self._restore()
        except Exception as exc:  # any flaw of its own checkpoint only costs the scan
            if self._store.damage is not None:  # the store itself failed while replaying: refuse
                raise
            if not isinstance(exc, FileNotFoundError):
                log.info("collection %s: filter checkpoint not used (%s); scanning", self._collection, exc)
            self.discard()
            return False
        self.restored = True
        return True

    def discard(self) -> None:
        """Forget what ``restore`` loaded (the open scan then rebuilds it)."""
        self.records.reset()
        self._seq = None
        self.restored = False

    def load(self, record: StoredRecord) -> None:
        self.records.add(record.label, record.id, record.metadata, record.source, record.expires_at)

    def recover(self) -> None:
        pass  # restored with its op-log replay, or rebuilt by the scan

    def apply(self, change: Change) -> None:
        for r in change.removed:
            self.records.remove(r.label, r.metadata, r.source)
        for label, rec in zip(change.labels.tolist(), change.added, strict=True):
            self.records.add(label, rec.id, rec.metadata, rec.source, rec.expires_at)
        self._changes += len(change.removed) + len(change.added)

    @property
    def checkpoint_seq(self) -> int | None:
        return self._seq

    def prepare_checkpoint(self, seq: int, *, final: bool = False) -> Callable[[], None] | None:
        if seq == self._seq or (self._seq is None and seq == 0 and not len(self.records)):
            return None
        if not final and self._changes < max(REWRITE_MIN, len(self.records) // REWRITE_FRACTION):
            return None
        try:
            meta, blobs = self.records.dump()
        except ValueError as exc:  # a value JSON cannot carry exactly (NaN): keep scanning at open
            log.warning("collection %s: filter checkpoint skipped: %s", self._collection, exc)
            return None
        self._changes = 0
        meta["store"] = self._store.uuid
        meta["max_label"] = int(self.records.all.max()) if len(self.records) else -1

        def write() -> None:
            payload = np.frombuffer(b"".join(blobs), dtype=np.uint8)
            write_checkpoint(self._file, seq, meta, payload)
            self._seq = seq

        return write

    def checkpoint_files(self) -> list[str]:
        return [FILTER_CHECKPOINT_FILE] if self._seq is not None else []

    # ---- restore -----------------------------------------------------------------------------------

    def _restore(self) -> None:
        store = self._store
        ckpt = read_checkpoint(self._file)
        if ckpt.meta.get("store") != store.uuid:
            raise _NeedsScan("written for another store")
        if ckpt.seq > store.last_seq:
            raise _NeedsScan(f"it covers seq {ckpt.seq}, past the store's {store.last_seq}")
        max_label = int(ckpt.meta["max_label"])
        added: list[np.ndarray] = []
        removed: list[np.ndarray] = []
        expected = ckpt.seq + 1
        for entry in store.oplog_after(ckpt.seq):
            if entry.seq != expected:
                raise _NeedsScan(f"the op-log has a gap at seq {expected}")
            if len(entry.removed) and int(entry.removed.min()) <= max_label:
                raise _NeedsScan(f"op {entry.seq} removed records of the checkpoint")
            expected += 1
            added.append(entry.added)
            removed.append(entry.removed)
        if expected != store.last_seq + 1:
            raise _NeedsScan(f"the op-log ends at {expected - 1}, the store at {store.last_seq}")
        self.records.load_dump(ckpt.meta, ckpt.payload.data)
        if added:
            gone = set(np.concatenate(removed).tolist())
            live = sorted(lb for lb in np.concatenate(added).tolist() if lb not in gone)
            for rec in store.get_records(live):
                if rec is None:
                    raise _NeedsScan("a record the op-log added is not in the store")
                self.load(rec)
        self._seq = ckpt.seq
        self._changes = sum(len(a) for a in added) + sum(len(r) for r in removed)
