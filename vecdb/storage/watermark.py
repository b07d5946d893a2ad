"""The last acknowledged sequence number, kept outside RocksDB so that a shorter store is noticed.

RocksDB cannot tell that its write-ahead log was deleted or replaced: it opens at the last flushed
state and acknowledged writes silently disappear (and deleted records come back). The collection writes
each acknowledged batch's sequence number here, after RocksDB has it durably; on open, a store whose
last sequence number is below the watermark has lost acknowledged writes.

File: 16 bytes, ``u64 seq`` + ``u32 crc32(seq)`` + 4 zero bytes, rewritten in place with ``pwrite``
(one page, never torn by a process crash). It is not fsynced on every write: it is written after the
WAL's fsync, so after a power loss it can only lag behind the store, never run ahead of it (a lagging
watermark detects less, it never raises a false alarm). With ``storage.sync_writes`` off the WAL is not
fsynced either and that order is not guaranteed: the store then writes its watermark only at a clean
close (durably).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

__all__ = ["Watermark"]

_FMT = struct.Struct("<QI4x")


class Watermark:
    """``read()`` the recorded sequence number (None: none recorded or unreadable), ``write(seq)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def read(self) -> int | None:
        raw = os.pread(self._fd, _FMT.size, 0)
        if len(raw) != _FMT.size:
            return None
        seq, crc = _FMT.unpack(raw)
        return int(seq) if zlib.crc32(struct.pack("<Q", seq)) == crc else None

    def write(self, seq: int, *, durable: bool = False) -> None:
        os.pwrite(self._fd, _FMT.pack(seq, zlib.crc32(struct.pack("<Q", seq))), 0)
        if durable:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
