"""One collection's RocksDB store: the source of truth.

Column families (raw mode: bytes in, bytes out; nothing is pickled)::

    default  b"seq" -> u64 last sequence number, b"next_label" -> u64, b"format" -> u64
    records  label (u64 BE) -> record JSON {"i": id, "t": text, "s": source, "m": metadata}
    vectors  label (u64 BE) -> float32 x dim, as given (not normalized)
    ids      id (UTF-8)     -> label (u64 BE)
    sources  u16 BE len(source) + source (UTF-8) + label (u64 BE) -> b""
    oplog    seq (u64 BE)   -> u32 n_added, u32 n_removed, int64 added[], int64 removed[]

Labels are the int64 ids the FAISS index knows. A label is never reused: an upsert of an existing id
gives the record a new label and retires the old one, so replaying the op-log is idempotent.

Every change is ONE WriteBatch (records, vectors, id map, source index, op-log entry, counters), written
with the WAL on and, when ``sync`` is set, fsynced before ``commit`` returns.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
from rocksdict import Checkpoint, Options, Rdict, WriteBatch, WriteOptions

from vecdb.errors import CorruptionError, DatabaseLockedError, StorageError

__all__ = ["CollectionStore", "NewRecord", "OpLogEntry", "StoredRecord"]

FORMAT = 1
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")
_OPHEAD = struct.Struct("<II")
_CFS = ("records", "vectors", "ids", "sources", "oplog")


@dataclass(frozen=True, slots=True)
class StoredRecord:
    label: int
    id: str
    text: str | None
    metadata: dict[str, Any]
    source: str | None
    expires_at: float | None = None  # unix seconds; the record is invisible from then on


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A validated record, ready to write. ``metadata_json`` is the compact JSON of ``metadata``."""

    id: str
    text: str | None
    metadata: dict[str, Any]
    metadata_json: bytes
    source: str | None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class OpLogEntry:
    seq: int
    added: np.ndarray  # int64 labels
    removed: np.ndarray  # int64 labels


def _label_key(label: int) -> bytes:
    return _U64.pack(label)


def _source_prefix(source: str) -> bytes:
    raw = source.encode()
    return _U16.pack(len(raw)) + raw


def _encode_record(rec: NewRecord) -> bytes:
    expiry = b"" if rec.expires_at is None else b',"x":%b' % orjson.dumps(rec.expires_at)
    return b'{"i":%b,"t":%b,"s":%b,"m":%b%b}' % (
        orjson.dumps(rec.id),
        orjson.dumps(rec.text),
        orjson.dumps(rec.source),
        rec.metadata_json,
        expiry,
    )


def _decode_record(label: int, blob: bytes) -> StoredRecord:
    try:
        d = orjson.loads(blob)
        return StoredRecord(
            label=label, id=d["i"], text=d["t"], metadata=d["m"], source=d["s"], expires_at=d.get("x")
        )
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise CorruptionError(f"record with label {label} is unreadable", label=label) from exc


class CollectionStore:
    """The RocksDB of one collection. Not thread-safe for writes: the engine serializes ``commit``."""

    def __init__(self, path: Path, dim: int, *, create: bool, sync: bool) -> None:
        self.path = path
        self.dim = dim
        opts = Options(raw_mode=True)
        opts.create_if_missing(create)
        opts.create_missing_column_families(True)
        try:
            self._db = Rdict(str(path), opts, column_families={name: Options(raw_mode=True) for name in _CFS})
        except Exception as exc:
            text = str(exc)
            if "lock" in text.lower():
                raise DatabaseLockedError(
                    f"store {path} is in use by another process", path=str(path)
                ) from exc
            raise StorageError(f"cannot open store {path}: {text}", path=str(path)) from exc
        self._cf = {name: self._db.get_column_family(name) for name in _CFS}
        self._h = {name: self._db.get_column_family_handle(name) for name in _CFS}
        self._wopts = WriteOptions()
        self._wopts.sync = sync
        fmt = self._db.get(b"format")
        if fmt is None:
            self._db.put(b"format", _U64.pack(FORMAT), self._wopts)
        elif _U64.unpack(fmt)[0] != FORMAT:
            raise CorruptionError(f"store {path} has format {_U64.unpack(fmt)[0]}, expected {FORMAT}")
        self.last_seq = self._get_u64(b"seq")
        self.next_label = self._get_u64(b"next_label")
        self._closed = False

    def _get_u64(self, key: bytes) -> int:
        raw = self._db.get(key)
        return 0 if raw is None else int(_U64.unpack(raw)[0])

    def close(self) -> None:
        """Release every handle (rocksdict keeps the LOCK while any is alive). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for cf in self._cf.values():
            cf.close()
        self._cf.clear()
        self._h.clear()
        self._db.close()
        del self._db

    # ---- reads -------------------------------------------------------------------------------------

    def _multi_get(self, cf: str, keys: list[bytes]) -> list[bytes | None]:
        return cast("list[bytes | None]", self._cf[cf].get(keys))  # type: ignore[arg-type]

    def lookup_labels(self, ids: Sequence[str]) -> list[int | None]:
        """The current label of each id, None where the id does not exist."""
        raw = self._multi_get("ids", [i.encode() for i in ids])
        return [None if r is None else int(_U64.unpack(r)[0]) for r in raw]

    def get_records(self, labels: Sequence[int]) -> list[StoredRecord | None]:
        raw = self._multi_get("records", [_label_key(lb) for lb in labels])
        return [None if r is None else _decode_record(lb, r) for lb, r in zip(labels, raw, strict=True)]

    def get_vectors(self, labels: Sequence[int]) -> np.ndarray:
        """Vectors of live labels, shape (len(labels), dim). A missing label is corruption."""
        out = np.empty((len(labels), self.dim), dtype=np.float32)
        raw = self._multi_get("vectors", [_label_key(lb) for lb in labels])
        for i, (lb, r) in enumerate(zip(labels, raw, strict=True)):
            if r is None or len(r) != 4 * self.dim:
                raise CorruptionError(f"vector of label {lb} is missing or damaged", label=lb)
            out[i] = np.frombuffer(r, dtype=np.float32)
        return out

    def get_present_vectors(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels still stored, their vectors): labels deleted meanwhile are skipped."""
        raw = self._multi_get("vectors", [_label_key(int(lb)) for lb in labels])
        keep = [i for i, r in enumerate(raw) if r is not None]
        if not keep:
            return np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        vecs = np.frombuffer(b"".join(raw[i] for i in keep), dtype=np.float32)  # type: ignore[misc]
        return np.asarray(labels, dtype=np.int64)[keep], vecs.reshape(len(keep), self.dim)

    def iter_records(self) -> Iterator[StoredRecord]:
        it = self._cf["records"].iter()
        try:
            it.seek_to_first()
            while it.valid():
                yield _decode_record(_U64.unpack(it.key())[0], it.value())
                it.next()
        finally:
            del it

    def iter_vectors(self, batch: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (labels, vectors) in label order, in chunks of at most ``batch``."""
        it = self._cf["vectors"].iter()
        try:
            it.seek_to_first()
            while it.valid():
                keys: list[bytes] = []
                vals: list[bytes] = []
                while it.valid() and len(keys) < batch:
                    keys.append(it.key())
                    vals.append(it.value())
                    it.next()
                labels = np.frombuffer(b"".join(keys), dtype=">u8").astype(np.int64)
                vecs = np.frombuffer(b"".join(vals), dtype=np.float32)
                if vecs.size != len(keys) * self.dim:
                    raise CorruptionError(f"store {self.path} holds vectors of the wrong size")
                yield labels, vecs.reshape(len(keys), self.dim)
        finally:
            del it

    def scan_ids(self, after: bytes | None, limit: int) -> list[tuple[bytes, int]]:
        """Up to ``limit`` (id as UTF-8, label) pairs in id byte order, starting after ``after``."""
        out: list[tuple[bytes, int]] = []
        it = self._cf["ids"].iter()
        try:
            if after is None:
                it.seek_to_first()
            else:
                it.seek(after)
                if it.valid() and it.key() == after:
                    it.next()
            while it.valid() and len(out) < limit:
                out.append((it.key(), _U64.unpack(it.value())[0]))
                it.next()
        finally:
            del it
        return out

    def checkpoint(self, dest: Path) -> None:
        """A consistent copy of the whole store at ``dest`` (must not exist): RocksDB's checkpoint, hard
        links to the immutable table files where the file system allows, copies otherwise."""
        cp = Checkpoint(self._db)
        try:
            cp.create_checkpoint(str(dest))
        except Exception as exc:
            raise StorageError(f"cannot checkpoint store {self.path} to {dest}: {exc}") from exc
        finally:
            del cp

    def source_labels(self, source: str) -> list[int]:
        """Labels of the records of ``source``: a prefix scan, cost proportional to the source."""
        prefix = _source_prefix(source)
        out: list[int] = []
        it = self._cf["sources"].iter()
        try:
            it.seek(prefix)
            while it.valid():
                key = it.key()
                if not key.startswith(prefix):  # the length prefix makes this the source's whole range
                    break
                out.append(_U64.unpack(key[len(prefix) :])[0])
                it.next()
        finally:
            del it
        return out

    def oplog_after(self, seq: int) -> Iterator[OpLogEntry]:
        it = self._cf["oplog"].iter()
        try:
            it.seek(_U64.pack(seq + 1))
            while it.valid():
                value = it.value()
                n_add, n_rem = _OPHEAD.unpack_from(value)
                body = np.frombuffer(value, dtype="<i8", offset=_OPHEAD.size)
                if body.size != n_add + n_rem:
                    raise CorruptionError(f"op-log entry {_U64.unpack(it.key())[0]} is damaged")
                yield OpLogEntry(_U64.unpack(it.key())[0], body[:n_add], body[n_add:])
                it.next()
        finally:
            del it

    # ---- writes ------------------------------------------------------------------------------------

    def commit(
        self, new: Sequence[NewRecord], vectors: np.ndarray | None, removed: Sequence[StoredRecord]
    ) -> tuple[int, np.ndarray]:
        """Write one atomic batch: retire ``removed``, add ``new`` with ``vectors``.

        Returns (the batch's sequence number, the labels given to ``new``). Nothing is written when it
        raises.
        """
        seq = self.last_seq + 1
        labels = np.arange(self.next_label, self.next_label + len(new), dtype=np.int64)
        removed_labels = np.fromiter((r.label for r in removed), dtype=np.int64, count=len(removed))
        wb = WriteBatch(raw_mode=True)
        h_rec, h_vec, h_ids, h_src = (
            self._h["records"],
            self._h["vectors"],
            self._h["ids"],
            self._h["sources"],
        )
        for r in removed:
            key = _label_key(r.label)
            wb.delete(key, h_rec)
            wb.delete(key, h_vec)
            wb.delete(r.id.encode(), h_ids)
            if r.source is not None:
                wb.delete(_source_prefix(r.source) + key, h_src)
        if new:
            assert vectors is not None and vectors.shape == (len(new), self.dim)
            vecs = np.ascontiguousarray(vectors, dtype=np.float32)
            for i, rec in enumerate(new):
                key = _label_key(int(labels[i]))
                wb.put(key, _encode_record(rec), h_rec)
                wb.put(key, vecs[i].tobytes(), h_vec)
                wb.put(rec.id.encode(), key, h_ids)
                if rec.source is not None:
                    wb.put(_source_prefix(rec.source) + key, b"", h_src)
        entry = _OPHEAD.pack(len(labels), len(removed_labels)) + labels.astype("<i8").tobytes()
        wb.put(_U64.pack(seq), entry + removed_labels.astype("<i8").tobytes(), self._h["oplog"])
        wb.put(b"seq", _U64.pack(seq))
        wb.put(b"next_label", _U64.pack(self.next_label + len(new)))
        try:
            self._db.write(wb, self._wopts)
        except Exception as exc:
            raise StorageError(f"write to {self.path} failed: {exc}", path=str(self.path)) from exc
        self.last_seq = seq
        self.next_label += len(new)
        return seq, labels

    def truncate_oplog(self, upto_seq: int) -> None:
        """Drop op-log entries with seq <= ``upto_seq`` (they are in a durable index checkpoint)."""
        wb = WriteBatch(raw_mode=True)
        wb.delete_range(_U64.pack(0), _U64.pack(upto_seq + 1), self._h["oplog"])
        self._db.write(wb, self._wopts)
