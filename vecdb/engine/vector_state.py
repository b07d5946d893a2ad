"""The vector index as derived state (``Derived``): recovery from checkpoint + op-log, checkpoints.

Files, in the collection's directory::

    index.ckpt               the exact delta and the description of the whole index (CRC-checked), with
                             the sequence number it covers and the identity of the store it belongs to
    index-main-<id>.faiss    the ANN part, immutable, written once per build

On open: the checkpoint is loaded (when it matches this store, this configuration, and does not run
ahead of the store) and the op-log after it replayed; otherwise the index is rebuilt from the stored
vectors. A checkpoint AHEAD of the store means the store lost acknowledged writes: the collection is
refused (``CorruptionError``), never served short.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vecdb.engine.derived import Change
from vecdb.engine.record_index import RecordIndex
from vecdb.errors import CorruptionError
from vecdb.index import AnnIndex, AnySpec, Calibration, Device, FlatIndex, IndexPolicy, TieredIndex
from vecdb.storage import (
    CollectionStore,
    StoredRecord,
    read_checkpoint,
    read_checkpoint_stream,
    stage_checkpoint_stream,
    write_checkpoint_stream,
)
from vecdb.types import Metric

__all__ = ["CHECKPOINT_FILE", "MAIN_FILE", "VectorIndexState"]

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "index.ckpt"
MAIN_FILE = "index-main-{}.faiss"


class _StoreBehindError(Exception):
    def __init__(self, seq: int) -> None:
        super().__init__(seq)
        self.seq = seq


class VectorIndexState:
    """The collection's ``TieredIndex`` (exact delta + ANN main), its recovery and its checkpoints.

    ``index`` exists once ``recover`` has run. ``strict``: a store behind the checkpoint is refused
    (``storage.sync_writes``); without it the index is rebuilt (unsynced writes may be lost by design).
    """

    name = "vectors"

    def __init__(
        self,
        collection: str,
        path: Path,
        store: CollectionStore,
        records: RecordIndex,
        *,
        dim: int,
        metric: Metric,
        spec: AnySpec,
        policy: IndexPolicy,
        device: Device | None,
        strict: bool,
    ) -> None:
        self._collection = collection
        self._path = path
        self._store = store
        self._records = records
        self._dim = dim
        self._metric: Metric = metric
        self._spec = spec
        self._policy = policy
        self._device = device
        self._strict = strict
        self.index: TieredIndex
        self._checkpoint_seq = 0
        self._checkpoint_main_id: str | None = None
        self._checkpoint_cal: Calibration | None = None

    # ---- Derived -----------------------------------------------------------------------------------

    def restore(self) -> bool:
        return True  # needs no record from the scan: ``recover`` reads the checkpoint or the vectors

    def load(self, record: StoredRecord) -> None:
        pass  # vectors come from the checkpoint and the op-log, or the vectors column family

    def recover(self) -> None:
        self.index, self._checkpoint_seq = self._recover()

    def apply(self, change: Change) -> None:
        self.index.remove(np.fromiter((r.label for r in change.removed), np.int64, len(change.removed)))
        if len(change.added):
            assert change.vectors is not None
            self.index.add(change.labels, change.vectors)

    @property
    def checkpoint_seq(self) -> int:
        return self._checkpoint_seq

    def prepare_checkpoint(self, seq: int, *, final: bool = False) -> Callable[[], None] | None:
        """The ANN part is written once per build (outside the lock: main is immutable); the delta every
        time, streamed here, under the read lock, into the checkpoint's temp file (a serialized copy in
        memory peaked at twice the delta: +233 MiB for 80k x 384, the top of a 100k ingest), published by
        the returned writer once the ANN file it names is durable."""
        main, main_id, cal = self.index.main, self.index.main_id, self.index.calibration
        if (
            seq <= self._checkpoint_seq
            and main_id == self._checkpoint_main_id
            and cal is self._checkpoint_cal
        ):
            return None
        main_meta = None
        if main is not None and main_id is not None:
            main_meta = {
                "id": main_id,
                "kind": main.kind,
                "trained_n": main.trained_n,
                "calibration": None if cal is None else cal.to_json(),
            }
        meta = {"index": self._meta(), "main": main_meta, "store": self._store.uuid}
        publish = stage_checkpoint_stream(self._path / CHECKPOINT_FILE, seq, meta, self.index.delta.write_to)

        def write() -> None:
            if main is not None and main_id is not None and main_id != self._checkpoint_main_id:
                # Streamed: no second in-memory copy of the index (main is immutable: no lock needed).
                write_checkpoint_stream(
                    self._path / MAIN_FILE.format(main_id),
                    0,
                    {"id": main_id, "kind": main.kind, "dim": self._dim},
                    main.write_to,
                )
            publish()
            self._checkpoint_seq = seq
            self._checkpoint_main_id = main_id
            self._checkpoint_cal = cal
            keep = MAIN_FILE.format(main_id)
            for old in self._path.glob(MAIN_FILE.format("*")):
                if old.name != keep:
                    old.unlink(missing_ok=True)

        return write

    def checkpoint_files(self) -> list[str]:
        names = [CHECKPOINT_FILE]
        if self._checkpoint_main_id is not None:
            names.append(MAIN_FILE.format(self._checkpoint_main_id))
        return names

    # ---- recovery ----------------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        # The recall target is left out: it changes no index file (the calibration's curves answer any
        # target), so a checkpoint stays valid when it changes.
        spec = self._spec.model_dump(exclude={"target_recall"})
        if spec.get("storage") == "flat" and spec["type"] == "hnsw":
            # The default: checkpoints written before HNSW had a storage option stay valid.
            del spec["storage"]
        return {"dim": self._dim, "metric": self._metric, "spec": spec}

    def set_spec(self, spec: AnySpec) -> None:
        """A spec differing only in ``target_recall`` (call under the collection's write lock)."""
        self._spec = spec
        self.index.spec = spec

    def new_index(
        self,
        main: AnnIndex | None = None,
        delta: FlatIndex | None = None,
        main_id: str | None = None,
        calibration: Calibration | None = None,
    ) -> TieredIndex:
        return TieredIndex(
            self._spec,
            self._dim,
            self._metric,
            self._policy,
            main,
            delta,
            main_id,
            self._store.get_present_vectors,
            self._device,
            calibration,
        )

    def _recover(self) -> tuple[TieredIndex, int]:
        """Checkpoint + op-log replay, else a rebuild from the store. Returns (index, seq it covers)."""
        store = self._store
        try:
            ckpt = read_checkpoint(self._path / CHECKPOINT_FILE)
            if ckpt.meta.get("index") != self._meta():
                raise CorruptionError("checkpoint was written for another index configuration")
            if ckpt.meta.get("store") != store.uuid:
                raise CorruptionError("checkpoint was written for another store (or before stores had ids)")
            if ckpt.seq > store.last_seq:
                if self._strict:
                    raise _StoreBehindError(ckpt.seq)
                raise CorruptionError(f"checkpoint seq {ckpt.seq} is past the store's {store.last_seq}")
            main = None
            cal = None
            m = ckpt.meta.get("main")
            if m is not None:
                want = {"id": m["id"], "kind": m["kind"], "dim": self._dim}

                def load_main(read: Callable[[int], bytes]) -> AnnIndex:
                    return AnnIndex.read_from(m["kind"], self._dim, int(m["trained_n"]), read)

                # Verified in one chunked pass, then streamed into FAISS: one copy of the index in memory.
                _, main_meta, main = read_checkpoint_stream(self._path / MAIN_FILE.format(m["id"]), load_main)
                if main_meta != want:
                    raise CorruptionError(f"ANN checkpoint {m['id']} does not match the index checkpoint")
                if m.get("calibration") is not None:  # absent: written before calibration existed
                    cal = Calibration.from_json(m["calibration"])
            delta = FlatIndex.deserialize(self._dim, self._metric, ckpt.payload)
            index = self.new_index(main, delta, None if m is None else m["id"], cal)
            self._replay(index, ckpt.seq)
            index.settle(self._records.all)
            if len(index) != len(self._records):
                raise CorruptionError(f"index holds {len(index)} vectors, store {len(self._records)}")
            self._checkpoint_main_id = index.main_id
            self._checkpoint_cal = index.calibration
            return index, ckpt.seq
        except _StoreBehindError as exc:
            # The checkpoint covers writes the store no longer has: acknowledged writes were lost (a
            # damaged or replaced WAL, a store file put back from elsewhere). Refuse, never shrink.
            raise store.mark_damaged(
                CorruptionError(
                    f"collection {self._collection}: its index checkpoint covers sequence {exc.seq} but the "
                    f"store ends at {store.last_seq}: acknowledged writes are missing from the store",
                    seq=store.last_seq,
                    acknowledged=exc.seq,
                )
            ) from None
        except FileNotFoundError as exc:
            if store.last_seq:
                log.warning("collection %s: %s; rebuilding the index from the store", self._collection, exc)
        except (CorruptionError, OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            if store.damage is not None:  # the store itself failed while replaying: refuse
                raise
            log.warning("collection %s: %s; rebuilding the index from the store", self._collection, exc)
        return self._rebuild(), 0

    def _replay(self, index: TieredIndex, after: int) -> None:
        removed: list[np.ndarray] = []
        added: list[np.ndarray] = []
        expected = after + 1
        for entry in self._store.oplog_after(after):
            if entry.seq != expected:
                raise CorruptionError(f"op-log has a gap: expected seq {expected}, found {entry.seq}")
            expected += 1
            removed.append(entry.removed)
            added.append(entry.added)
        if expected != self._store.last_seq + 1:
            raise CorruptionError(f"op-log ends at {expected - 1}, the store is at {self._store.last_seq}")
        if removed:
            index.remove(np.concatenate(removed))
        live = [int(lb) for lb in np.concatenate(added)] if added else []
        live = [lb for lb in live if lb in self._records.all]  # later ops may have retired them
        if live:
            index.add(np.asarray(live, dtype=np.int64), self._store.get_vectors(live))

    def _rebuild(self) -> TieredIndex:
        """Every stored vector into the exact delta; background maintenance builds the ANN index."""
        index = self.new_index()
        for labels, vectors in self._store.iter_vectors():
            index.add(labels, vectors)
        if len(index) != len(self._records):
            raise CorruptionError(
                f"collection {self._collection}: store holds {len(index)} vectors for "
                f"{len(self._records)} records"
            )
        return index
