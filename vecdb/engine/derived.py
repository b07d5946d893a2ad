"""Derived state: everything a collection keeps besides its store, and the one lifecycle it shares.

RocksDB is the only truth. The vector index, the filter bitmaps and the use order of a capped collection
are derived from it, and each implements ``Derived``: restored from its own checkpoint at open when it
keeps one (``restore``), else fed every stored record by the one scan of the store (``load``), then
brought up to the store's sequence number (``recover``: from a checkpoint and the op-log, or rebuilt),
changed by each committed write batch (``apply``), and checkpointed when it is costly to rebuild
(``prepare_checkpoint``). The collection's write path, recovery, checkpoints and
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
from vecdb.storage import NewRecord, StoredRecord

__all__ = ["Change", "Derived", "RecencyState"]


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

    def restore(self) -> bool:
        """Before the open scan: reach the store's last sequence number without it, from the structure's
        own checkpoint and the op-log, if it can. True: done, ``load`` will not be called (when no
        structure needs the scan, the store is not scanned at open); False: feed me the scan. Never
        raises for damage to its own checkpoint (that only costs the scan)."""

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

    def prepare_checkpoint(self, seq: int, *, final: bool = False) -> Callable[[], None] | None:
        """Capture what a checkpoint as of ``seq`` needs (a memory copy, or a temp file staged now) and
        return the function that makes it durable (run outside the lock; it updates ``checkpoint_seq``),
        or None when there is nothing to write. ``final``: the collection closes (or was asked to
        checkpoint now), so a structure that spaces its checkpoints out writes one whenever it moved."""

    def checkpoint_files(self) -> list[str]:
        """Names of the files, in the collection's directory, of its current durable checkpoint (a
        snapshot copies them)."""


class _RebuiltAtOpen:
    """For a structure the open scan rebuilds whole: nothing to recover, checkpoint or snapshot."""

    def restore(self) -> bool:
        return False

    def recover(self) -> None:
        pass

    @property
    def checkpoint_seq(self) -> int | None:
        return None

    def prepare_checkpoint(self, seq: int, *, final: bool = False) -> Callable[[], None] | None:
        return None

    def checkpoint_files(self) -> list[str]:
        return []


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
