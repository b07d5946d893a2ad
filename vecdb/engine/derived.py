"""Derived state: everything a collection keeps besides its store, and the one lifecycle it shares.

RocksDB is the only truth. The vector index, the filter bitmaps and the use order of a capped collection
are derived from it, and each implements ``Derived``: fed every stored record by the one scan of the
store at open (``load``), then brought up to the store's sequence number (``recover``: from a checkpoint
and the op-log, or rebuilt), changed by each committed write batch (``apply``), and checkpointed when it
is costly to rebuild (``prepare_checkpoint``). The collection's write path, recovery, checkpoints and
snapshots loop over its list of them: adding a structure (a full-text index, say) is one class
implementing this protocol and one entry in that list (docs/architecture.md), with no change to the
write path or recovery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vecdb.engine.capacity import Recency
from vecdb.engine.record_index import RecordIndex
from vecdb.storage import NewRecord, StoredRecord

__all__ = ["Change", "Derived", "FilterState", "RecencyState"]


@dataclass(frozen=True, slots=True)
class Change:
    """One committed write batch, as derived state sees it: ``removed`` records went, ``added`` records
    came with the labels ``labels`` and (when the batch has any) the float32 ``vectors``, row for row."""

    seq: int
    labels: np.ndarray
    added: Sequence[NewRecord]
    vectors: np.ndarray | None
    removed: Sequence[StoredRecord]


class Derived(Protocol):
    """One structure derived from a collection's store.

    Threading: ``load`` and ``recover`` run once, in the collection's constructor, before anything else
    sees the structure. ``apply`` runs under the collection's write lock and its read-write lock's write
    side, after the batch is durable in the store: it must not fail on valid input (a failure there
    leaves the structure behind the store until the next open). ``prepare_checkpoint`` runs under the
    read side (readers may run; no writer).
    """

    #: A short name for logs and ``info()``.
    name: str

    def load(self, record: StoredRecord) -> None:
        """Take one stored record; the open scan calls it for every record, in label (write) order."""

    def recover(self) -> None:
        """After the scan: reach the store's last sequence number (load a checkpoint and replay the
        op-log past it, or rebuild). Raises ``CorruptionError`` when the store itself cannot be trusted
        (the collection is then refused); damage to the structure's own checkpoint is rebuilt instead."""

    def apply(self, change: Change) -> None:
        """Apply a committed batch: its removals first, then its additions."""

    @property
    def checkpoint_seq(self) -> int | None:
        """The sequence number its durable checkpoint covers; None for a structure that is rebuilt from
        the open scan alone (it needs no op-log)."""

    def prepare_checkpoint(self, seq: int) -> Callable[[], None] | None:
        """Capture what a checkpoint as of ``seq`` needs (a memory copy) and return the function that
        writes it durably (run outside the lock; it updates ``checkpoint_seq``), or None when there is
        nothing to write."""

    def checkpoint_files(self) -> list[str]:
        """Names of the files, in the collection's directory, of its current durable checkpoint (a
        snapshot copies them)."""


class _RebuiltAtOpen:
    """For a structure the open scan rebuilds whole: nothing to recover, checkpoint or snapshot."""

    def recover(self) -> None:
        pass

    @property
    def checkpoint_seq(self) -> int | None:
        return None

    def prepare_checkpoint(self, seq: int) -> Callable[[], None] | None:
        return None

    def checkpoint_files(self) -> list[str]:
        return []


class FilterState(_RebuiltAtOpen):
    """The filter bitmaps, ids, sources and expiry times (``RecordIndex``): rebuilt by the open scan."""

    name = "filters"

    def __init__(self, records: RecordIndex) -> None:
        self.records = records

    def load(self, record: StoredRecord) -> None:
        self.records.add(record.label, record.id, record.metadata, record.source, record.expires_at)

    def apply(self, change: Change) -> None:
        for r in change.removed:
            self.records.remove(r.label, r.metadata, r.source)
        for label, rec in zip(change.labels.tolist(), change.added, strict=True):
            self.records.add(label, rec.id, rec.metadata, rec.source, rec.expires_at)


class RecencyState(_RebuiltAtOpen):
    """The use order of a capped collection (``Recency``): write order at open, not persisted."""

    name = "recency"

    def __init__(self, recency: Recency) -> None:
        self.recency = recency

    def load(self, record: StoredRecord) -> None:
        self.recency.add(record.label)  # labels come in write order

    def apply(self, change: Change) -> None:
        for r in change.removed:
            self.recency.remove(r.label)
        for label in change.labels.tolist():
            self.recency.add(label)
