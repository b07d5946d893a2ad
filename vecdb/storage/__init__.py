"""RocksDB storage (the source of truth) and crash-safe files. Imports only the leaves."""

from vecdb.storage.checkpoint import (
    Checkpoint,
    read_checkpoint,
    read_checkpoint_stream,
    stage_checkpoint_stream,
    write_checkpoint,
    write_checkpoint_stream,
)
from vecdb.storage.files import atomic_write, atomic_write_json, fsync_dir, read_json
from vecdb.storage.store import CollectionStore, NewRecord, OpLogEntry, StoreCounts, StoredRecord

__all__ = [
    "Checkpoint",
    "CollectionStore",
    "NewRecord",
    "OpLogEntry",
    "StoreCounts",
    "StoredRecord",
    "atomic_write",
    "atomic_write_json",
    "fsync_dir",
    "read_checkpoint",
    "read_checkpoint_stream",
    "read_json",
    "stage_checkpoint_stream",
    "write_checkpoint",
    "write_checkpoint_stream",
]
