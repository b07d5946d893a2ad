"""Index checkpoint files: one self-checking file per collection.

Layout (little endian)::

    magic    8 bytes  b"VECDBIX1"
    seq      u64      the last op-log sequence number the index reflects
    meta_len u32      length of the JSON that describes the index (kind, dim, metric, spec)
    pay_len  u64      length of the FAISS payload
    crc32    u32      CRC-32 of meta + payload
    meta     meta_len bytes
    payload  pay_len bytes (faiss.serialize_index output; never pickle)

The file is written with ``atomic_write``, so a crash leaves the old checkpoint or the new one. A file that
fails any check raises ``CorruptionError``; the engine then rebuilds the index from the store.

Large payloads (an ANN index of hundreds of MB) are streamed: ``write_checkpoint_stream`` takes a function
that writes the payload chunk by chunk (the CRC is computed on the way, the header is written last), and
``read_checkpoint_stream`` verifies the CRC in one chunked pass, then hands the payload to a reader chunk
by chunk. Neither holds the payload in memory, so checkpointing or loading an index costs one copy of it
(the index itself) instead of two or three. The file format is the same either way.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vecdb.errors import CorruptionError
from vecdb.storage.files import atomic_write, fsync_dir

__all__ = [
    "Checkpoint",
    "read_checkpoint",
    "read_checkpoint_stream",
    "stage_checkpoint_stream",
    "write_checkpoint",
    "write_checkpoint_stream",
]

MAGIC = b"VECDBIX1"
_HEADER = struct.Struct("<8sQIQI")
_CHUNK = 8 << 20  # bytes read at a time while verifying or loading a streamed payload


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    meta: dict[str, Any]
    payload: np.ndarray  # uint8


def write_checkpoint(path: Path, seq: int, meta: dict[str, Any], payload: np.ndarray) -> None:
    meta_bytes = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
    body = np.ascontiguousarray(payload, dtype=np.uint8).data.cast("B")
    crc = zlib.crc32(body, zlib.crc32(meta_bytes))
    header = _HEADER.pack(MAGIC, seq, len(meta_bytes), len(body), crc)
    atomic_write(path, [header, meta_bytes, body])


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and verify a checkpoint. Raises FileNotFoundError or CorruptionError."""
    data = np.fromfile(path, dtype=np.uint8)
    if len(data) < _HEADER.size:
        raise CorruptionError(f"index checkpoint {path} is truncated", path=str(path))
    magic, seq, meta_len, pay_len, crc = _HEADER.unpack(data[: _HEADER.size].tobytes())
    if magic != MAGIC:
        raise CorruptionError(f"index checkpoint {path} has a bad magic number", path=str(path))
    if len(data) != _HEADER.size + meta_len + pay_len:
        raise CorruptionError(
            f"index checkpoint {path} is {len(data)} bytes, expected {_HEADER.size + meta_len + pay_len}",
            path=str(path),
        )
    meta_bytes = data[_HEADER.size : _HEADER.size + meta_len]
    payload = data[_HEADER.size + meta_len :]
    if zlib.crc32(payload.data, zlib.crc32(meta_bytes.data)) != crc:
        raise CorruptionError(f"index checkpoint {path} fails its checksum", path=str(path))
    try:
        meta = orjson.loads(meta_bytes.tobytes())
    except orjson.JSONDecodeError as exc:
        raise CorruptionError(f"index checkpoint {path} has unreadable metadata", path=str(path)) from exc
    return Checkpoint(seq=seq, meta=meta, payload=payload)


def write_checkpoint_stream(
    path: Path, seq: int, meta: dict[str, Any], produce: Callable[[Callable[[bytes], None]], None]
) -> None:
    """Like ``write_checkpoint``, but ``produce(sink)`` writes the payload by calling ``sink(chunk)``
    repeatedly: the payload is never held in memory whole. Crash-safe the same way (temp file, fsync,
    rename, fsync of the directory)."""
    stage_checkpoint_stream(path, seq, meta, produce)()


def stage_checkpoint_stream(
    path: Path, seq: int, meta: dict[str, Any], produce: Callable[[Callable[[bytes], None]], None]
) -> Callable[[], None]:
    """``write_checkpoint_stream`` in two steps: write and fsync the temp file now (``produce`` may read
    state that must not change meanwhile: call it under the lock that guards it), and return the function
    that publishes it (rename, fsync of the directory), to call once whatever the checkpoint refers to is
    durable. A crash in between leaves the old checkpoint and a temp file that opening removes."""
    meta_bytes = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
    tmp = path.with_name(f".{path.name}.tmp")
    crc = zlib.crc32(meta_bytes)
    size = 0
    with open(tmp, "wb") as f:
        f.write(b"\0" * _HEADER.size)
        f.write(meta_bytes)

        def sink(chunk: bytes) -> None:
            nonlocal crc, size
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            f.write(chunk)

        produce(sink)
        f.seek(0)
        f.write(_HEADER.pack(MAGIC, seq, len(meta_bytes), size, crc))
        f.flush()
        os.fsync(f.fileno())

    def publish() -> None:
        os.replace(tmp, path)
        fsync_dir(path.parent)

    return publish


def read_checkpoint_stream(
    path: Path, consume: Callable[[Callable[[int], bytes]], Any]
) -> tuple[int, dict[str, Any], Any]:
    """Verify a checkpoint (one chunked pass: its size and CRC), then call ``consume(read)`` where
    ``read(n)`` returns the next at most ``n`` bytes of the payload (b"" at its end). Returns (seq, meta,
    what ``consume`` returned). Raises FileNotFoundError or CorruptionError (also when ``consume`` did not
    read the payload to its end)."""
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        head = f.read(_HEADER.size)
        if len(head) < _HEADER.size:
            raise CorruptionError(f"index checkpoint {path} is truncated", path=str(path))
        magic, seq, meta_len, pay_len, crc = _HEADER.unpack(head)
        if magic != MAGIC:
            raise CorruptionError(f"index checkpoint {path} has a bad magic number", path=str(path))
        if total != _HEADER.size + meta_len + pay_len:
            raise CorruptionError(
                f"index checkpoint {path} is {total} bytes, expected {_HEADER.size + meta_len + pay_len}",
                path=str(path),
            )
        meta_bytes = f.read(meta_len)
        check = zlib.crc32(meta_bytes)
        if pay_len:  # checked in place (mmap): no copy of the payload through Python buffers
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
                for start in range(_HEADER.size + meta_len, total, _CHUNK):
                    check = zlib.crc32(view[start : min(start + _CHUNK, total)], check)
        if check != crc:
            raise CorruptionError(f"index checkpoint {path} fails its checksum", path=str(path))
        try:
            meta = orjson.loads(meta_bytes)
        except orjson.JSONDecodeError as exc:
            raise CorruptionError(f"index checkpoint {path} has unreadable metadata", path=str(path)) from exc
        f.seek(_HEADER.size + meta_len)
        left = pay_len

        def read(n: int) -> bytes:
            nonlocal left
            data = f.read(min(n, left))
            left -= len(data)
            return data

        result = consume(read)
        if left:
            raise CorruptionError(f"index checkpoint {path} has {left} bytes past its index", path=str(path))
    return seq, meta, result
