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

Integrity: RocksDB opens with WAL recovery that tolerates only an incomplete last record (what a process
killed in the middle of an unacknowledged write leaves) and fails on a damaged record anywhere else (never
RocksDB's default silent rollback to the last good record); the last acknowledged sequence number is also
kept in a watermark file beside the store, so a WAL deleted, emptied or cut short past an acknowledged
write is noticed; every iterator's status is checked when
its loop ends (a checksum error ends iteration exactly like the end of the data), and every RocksDB
error is translated by ``vecdb.storage.translate``. ``verify`` reads every block of every column family.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    Checkpoint,
    DBRecoveryMode,
    Options,
    Rdict,
    RdictIter,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from vecdb.errors import CorruptionError, VecDBError
from vecdb.storage.translate import translate
from vecdb.storage.watermark import Watermark

__all__ = ["CollectionStore", "NewRecord", "OpLogEntry", "StoreCounts", "StoredRecord"]

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
class StoreCounts:
    """What ``verify`` read: entries per column family (all of them, every block checksummed)."""

    records: int
    vectors: int
    ids: int
    sources: int
    oplog: int


@dataclass(frozen=True, slots=True)
class OpLogEntry:
    seq: int
    added: np.ndarray  # int64 labels
    removed: np.ndarray  # int64 labels


def _bulk_read() -> ReadOptions:
    """Read options of a pass over much of the store: its blocks are not put in the block cache (they
    would evict the blocks that point reads use, and fill the cache to its bound during every build)."""
    opts = ReadOptions()
    opts.fill_cache(False)  # type: ignore[call-arg]  # (rocksdict's stub omits the argument it takes)
    return opts


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
    """The RocksDB of one collection. Not thread-safe for writes: the engine serializes ``commit``.

    ``what`` names the store in error messages (clients see them: no server paths). ``watermark`` is the
    file holding the last acknowledged sequence number (None: no such check, e.g. a read-only look).
    ``on_damage`` is called with the first ``CorruptionError`` any operation meets, so the owner can
    report the store as damaged. ``read_only`` opens it beside a writer (or without touching a copy):
    nothing is written, not even the identity of a store that has none.
    """

    def __init__(
        self,
        path: Path,
        dim: int,
        *,
        create: bool,
        sync: bool,
        what: str | None = None,
        max_open_files: int = -1,
        block_cache_bytes: int = 32 << 20,
        write_buffer_bytes: int = 16 << 20,
        watermark: Path | None = None,
        on_damage: Callable[[CorruptionError], None] | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = path
        self.dim = dim
        self.what = what or f"store {path.name}"
        self._sync = sync
        self._on_damage = on_damage
        self.damage: CorruptionError | None = None
        opts = Options(raw_mode=True)
        opts.create_if_missing(create)
        opts.create_missing_column_families(True)
        # Not absolute_consistency: a SIGKILL between the write() calls of one WAL record leaves a torn
        # last record, which belongs to a write never acknowledged; refusing it would refuse every store
        # a crash interrupted (tests/engine/test_crash.py). Torn tails past an acknowledged write are
        # caught by the watermark instead.
        opts.set_wal_recovery_mode(DBRecoveryMode.tolerate_corrupted_tail_records())
        opts.set_paranoid_checks(True)
        opts.set_max_open_files(max_open_files)
        # Bounded memory: every column family reads through ONE block cache of ``block_cache_bytes``
        # (RocksDB's default gives each its own 32 MiB cache), and the memtables of all of them together
        # are flushed once they pass ``write_buffer_bytes`` (default: 64 MiB per family, two of them each).
        self._cache = Cache(max(1, block_cache_bytes))
        opts.set_db_write_buffer_size(write_buffer_bytes)
        access = AccessType.read_only(False) if read_only else AccessType.read_write()
        with self._guard("opening"):
            self._db = Rdict(
                str(path),
                self._bounded(opts, write_buffer_bytes),
                column_families={
                    name: self._bounded(Options(raw_mode=True), write_buffer_bytes) for name in _CFS
                },
                access_type=access,
            )
        self._closed = False
        self._watermark: Watermark | None = None
        try:
            self._cf = {name: self._db.get_column_family(name) for name in _CFS}
            self._h = {name: self._db.get_column_family_handle(name) for name in _CFS}
            self._wopts = WriteOptions()
            self._wopts.sync = sync
            with self._guard("reading"):
                fmt = self._db.get(b"format")
                if fmt is None and not read_only:
                    self._db.put(b"format", _U64.pack(FORMAT), self._wopts)
                elif fmt is not None and _U64.unpack(fmt)[0] != FORMAT:
                    raise CorruptionError(f"{self.what} has format {_U64.unpack(fmt)[0]}, expected {FORMAT}")
                raw_id = self._db.get(b"uuid")
                if raw_id is None and read_only:
                    raw_id = b""
                elif raw_id is None:  # new, or written before stores had an identity
                    raw_id = uuid.uuid4().hex.encode()
                    self._db.put(b"uuid", raw_id, self._wopts)
            #: This store's identity: index checkpoints record it, so a foreign one is never loaded.
            self.uuid = raw_id.decode()
            self.last_seq = self._get_u64(b"seq")
            self.next_label = self._get_u64(b"next_label")
            if watermark is not None:
                self._watermark = Watermark(watermark)
                acked = self._watermark.read()
                if acked is not None and acked > self.last_seq:
                    raise self.mark_damaged(
                        CorruptionError(
                            f"{self.what} ends at sequence {self.last_seq} but sequence {acked} was "
                            "acknowledged: its write-ahead log was lost or damaged",
                            seq=self.last_seq,
                            acknowledged=acked,
                        )
                    )
                if acked != self.last_seq:
                    self._watermark.write(self.last_seq, durable=True)
        except BaseException:
            self.close()
            raise

    def _bounded(self, opts: Options, write_buffer_bytes: int) -> Options:
        table = BlockBasedOptions()
        table.set_block_cache(self._cache)
        opts.set_block_based_table_factory(table)
        opts.set_write_buffer_size(max(64 << 10, write_buffer_bytes // 2))
        opts.set_max_write_buffer_number(2)
        return opts

    def memory(self) -> dict[str, int]:
        """Bytes RocksDB holds for this store: ``memtables`` (writes not yet flushed, all column
        families), ``block_cache`` (the shared cache of table blocks), ``table_readers`` (open table files'
        indexes and filters)."""
        mem = tables = 0
        with self._guard("reading its memory use"):
            for cf in [self._db, *self._cf.values()]:
                mem += int(cf.property_int_value("rocksdb.cur-size-all-mem-tables") or 0)
                tables += int(cf.property_int_value("rocksdb.estimate-table-readers-mem") or 0)
            return {"memtables": mem, "block_cache": int(self._cache.get_usage()), "table_readers": tables}

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Translate whatever RocksDB raises while ``action`` (the one place that does)."""
        try:
            yield
        except VecDBError as exc:
            if isinstance(exc, CorruptionError):
                self.mark_damaged(exc)
            raise
        except Exception as exc:
            err = translate(exc, f"{self.what} ({action})")
            if isinstance(err, CorruptionError):
                self.mark_damaged(err)
            raise err from exc

    def mark_damaged(self, err: CorruptionError) -> CorruptionError:
        """Remember ``err`` as this store's damage (the first one wins) and return it, to raise."""
        if self.damage is None:
            self.damage = err
            if self._on_damage is not None:
                self._on_damage(err)
        return err

    def _get_u64(self, key: bytes) -> int:
        with self._guard("reading"):
            raw = self._db.get(key)
        return 0 if raw is None else int(_U64.unpack(raw)[0])

    def close(self) -> None:
        """Release every handle (rocksdict keeps the LOCK while any is alive). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._watermark is not None:
            if not self._sync and self.damage is None:
                self._watermark.write(self.last_seq, durable=True)
            self._watermark.close()
        for cf in getattr(self, "_cf", {}).values():
            cf.close()
        getattr(self, "_cf", {}).clear()
        getattr(self, "_h", {}).clear()
        if hasattr(self, "_db"):
            self._db.close()
            del self._db

    # ---- reads -------------------------------------------------------------------------------------

    def _scan(
        self, cf: str, start: bytes | None = None, action: str = "reading", *, bulk: bool = False
    ) -> Generator[tuple[bytes, bytes], None, None]:
        """(key, value) pairs of ``cf`` from ``start`` (the first key when None) to the end, in key order.

        When the loop ends the iterator's status is checked: a checksum error stops a RocksDB iterator
        exactly like the end of the data, so without this a damaged block is a silently short result.
        A caller that stops early (``break``) needs no check: everything it read was valid. ``bulk``: a
        pass over much of the store (open, build, verify) that leaves the block cache as it was.
        """
        with self._guard(action):
            it: RdictIter = self._cf[cf].iter(_bulk_read()) if bulk else self._cf[cf].iter()
            try:
                if start is None:
                    it.seek_to_first()
                else:
                    it.seek(start)
                while it.valid():
                    yield it.key(), it.value()
                    it.next()
                it.status()  # raises RocksDB's error, if the loop ended on one
            finally:
                del it

    def _multi_get(self, cf: str, keys: list[bytes], *, bulk: bool = False) -> list[bytes | None]:
        with self._guard("reading"):
            if bulk:  # rocksdict's multi-get ignores read_opt (fill_cache): single gets honour it
                table, opts = self._cf[cf], _bulk_read()
                return [cast("bytes | None", table.get(key, read_opt=opts)) for key in keys]
            return cast("list[bytes | None]", self._cf[cf].get(keys))  # type: ignore[arg-type]

    def lookup_labels(self, ids: Sequence[str]) -> list[int | None]:
        """The current label of each id, None where the id does not exist."""
        raw = self._multi_get("ids", [i.encode() for i in ids])
        return [None if r is None else int(_U64.unpack(r)[0]) for r in raw]

    def get_records(self, labels: Sequence[int]) -> list[StoredRecord | None]:
        raw = self._multi_get("records", [_label_key(lb) for lb in labels])
        with self._guard("decoding records"):
            return [None if r is None else _decode_record(lb, r) for lb, r in zip(labels, raw, strict=True)]

    def get_vectors(self, labels: Sequence[int]) -> np.ndarray:
        """Vectors of live labels, shape (len(labels), dim). A missing label is corruption."""
        out = np.empty((len(labels), self.dim), dtype=np.float32)
        raw = self._multi_get("vectors", [_label_key(lb) for lb in labels])
        for i, (lb, r) in enumerate(zip(labels, raw, strict=True)):
            if r is None or len(r) != 4 * self.dim:
                raise self.mark_damaged(
                    CorruptionError(f"{self.what}: vector of label {lb} is missing or damaged", label=lb)
                )
            out[i] = np.frombuffer(r, dtype=np.float32)
        return out

    def get_present_vectors(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels still stored, their vectors): labels deleted meanwhile are skipped."""
        raw = self._multi_get("vectors", [_label_key(int(lb)) for lb in labels], bulk=True)
        keep = [i for i, r in enumerate(raw) if r is not None]
        if not keep:
            return np.empty(0, np.int64), np.empty((0, self.dim), np.float32)
        vecs = np.frombuffer(b"".join(raw[i] for i in keep), dtype=np.float32)  # type: ignore[misc]
        if vecs.size != len(keep) * self.dim:
            raise self.mark_damaged(CorruptionError(f"{self.what} holds vectors of the wrong size"))
        return np.asarray(labels, dtype=np.int64)[keep], vecs.reshape(len(keep), self.dim)

    def iter_records(self) -> Iterator[StoredRecord]:
        for key, value in self._scan("records", bulk=True):
            with self._guard("decoding records"):
                rec = _decode_record(_U64.unpack(key)[0], value)
            yield rec

    def count_readable(self, cf: str = "records") -> int:
        """Read every entry of ``cf`` without decoding any (RocksDB checks each block's checksum as it
        reads it) and return how many there are. A damaged table file raises ``CorruptionError`` here: an
        open that restores its derived state from checkpoints still refuses a store whose records it can
        no longer read, as the open scan did."""
        n = 0
        with self._guard("reading"):
            it: RdictIter = self._cf[cf].iter(_bulk_read())
            try:
                it.seek_to_first()
                while it.valid():
                    n += 1
                    it.next()
                it.status()  # raises RocksDB's error, if the loop ended on one
            finally:
                del it
        return n

    def iter_vectors(self, batch: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (labels, vectors) in label order, in chunks of at most ``batch``."""
        keys: list[bytes] = []
        vals: list[bytes] = []
        for key, value in self._scan("vectors", bulk=True):
            keys.append(key)
            vals.append(value)
            if len(keys) == batch:
                yield self._vector_chunk(keys, vals)
                keys, vals = [], []
        if keys:
            yield self._vector_chunk(keys, vals)

    def _vector_chunk(self, keys: list[bytes], vals: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        labels = np.frombuffer(b"".join(keys), dtype=">u8").astype(np.int64)
        vecs = np.frombuffer(b"".join(vals), dtype=np.float32)
        if vecs.size != len(keys) * self.dim:
            raise self.mark_damaged(CorruptionError(f"{self.what} holds vectors of the wrong size"))
        return labels, vecs.reshape(len(keys), self.dim)

    def scan_ids(self, after: bytes | None, limit: int) -> list[tuple[bytes, int]]:
        """Up to ``limit`` (id as UTF-8, label) pairs in id byte order, starting after ``after``."""
        out: list[tuple[bytes, int]] = []
        if limit <= 0:
            return out
        scan = self._scan("ids", after)
        try:
            for key, value in scan:
                if key == after:
                    continue
                out.append((key, _U64.unpack(value)[0]))
                if len(out) >= limit:
                    break
        finally:
            scan.close()
        return out

    def checkpoint(self, dest: Path) -> None:
        """A consistent copy of the whole store at ``dest`` (must not exist): RocksDB's checkpoint, hard
        links to the immutable table files where the file system allows, copies otherwise."""
        with self._guard("checkpointing"):
            cp = Checkpoint(self._db)
            try:
                cp.create_checkpoint(str(dest))
            finally:
                del cp

    def source_labels(self, source: str) -> list[int]:
        """Labels of the records of ``source``: a prefix scan, cost proportional to the source."""
        prefix = _source_prefix(source)
        out: list[int] = []
        scan = self._scan("sources", prefix)
        try:
            for key, _ in scan:
                if not key.startswith(prefix):  # the length prefix makes this the source's whole range
                    break
                out.append(_U64.unpack(key[len(prefix) :])[0])
        finally:
            scan.close()
        return out

    def oplog_after(self, seq: int) -> Iterator[OpLogEntry]:
        for key, value in self._scan("oplog", _U64.pack(seq + 1)):
            entry_seq = _U64.unpack(key)[0]
            n_add, n_rem = _OPHEAD.unpack_from(value)
            body = np.frombuffer(value, dtype="<i8", offset=_OPHEAD.size)
            if body.size != n_add + n_rem:
                raise self.mark_damaged(CorruptionError(f"{self.what}: op-log entry {entry_seq} is damaged"))
            yield OpLogEntry(entry_seq, body[:n_add], body[n_add:])

    def verify(self) -> StoreCounts:
        """Read every entry of every column family (each block's checksum verified) and check that they
        agree: one vector per record, ids and sources pointing at stored records, records decodable.
        Raises CorruptionError at the first disagreement. Cost: one pass over the whole store."""
        labels: set[int] = set()
        for key, value in self._scan("records", action="verifying", bulk=True):
            label = _U64.unpack(key)[0]
            with self._guard("verifying"):
                _decode_record(label, value)
            labels.add(label)
        n_vec = 0
        for key, value in self._scan("vectors", action="verifying", bulk=True):
            label = _U64.unpack(key)[0]
            if label not in labels or len(value) != 4 * self.dim:
                raise self.mark_damaged(
                    CorruptionError(f"{self.what}: vector of label {label} has no record or a bad size")
                )
            n_vec += 1
        if n_vec != len(labels):
            raise self.mark_damaged(
                CorruptionError(f"{self.what} holds {len(labels)} records but {n_vec} vectors")
            )
        n_ids = 0
        for _, value in self._scan("ids", action="verifying", bulk=True):
            if _U64.unpack(value)[0] not in labels:
                raise self.mark_damaged(CorruptionError(f"{self.what}: an id points at a missing record"))
            n_ids += 1
        if n_ids != len(labels):
            raise self.mark_damaged(
                CorruptionError(f"{self.what} holds {len(labels)} records but {n_ids} ids")
            )
        n_src = 0
        for key, _ in self._scan("sources", action="verifying", bulk=True):
            if _U64.unpack(key[-8:])[0] not in labels:
                raise self.mark_damaged(
                    CorruptionError(f"{self.what}: a source entry points at a missing record")
                )
            n_src += 1
        n_op = sum(1 for _ in self._scan("oplog", action="verifying", bulk=True))
        return StoreCounts(len(labels), n_vec, n_ids, n_src, n_op)

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
        with self._guard("writing"):
            self._db.write(wb, self._wopts)
        self.last_seq = seq
        self.next_label += len(new)
        if self._watermark is not None and self._sync:
            self._watermark.write(seq)  # after the WAL's fsync: it never runs ahead of the store
        return seq, labels

    def truncate_oplog(self, upto_seq: int) -> None:
        """Drop op-log entries with seq <= ``upto_seq`` (they are in a durable index checkpoint)."""
        wb = WriteBatch(raw_mode=True)
        wb.delete_range(_U64.pack(0), _U64.pack(upto_seq + 1), self._h["oplog"])
        with self._guard("truncating the op-log"):
            self._db.write(wb, self._wopts)
