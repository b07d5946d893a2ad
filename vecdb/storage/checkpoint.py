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
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vecdb.errors import CorruptionError
from vecdb.storage.files import atomic_write

__all__ = ["Checkpoint", "read_checkpoint", "write_checkpoint"]

MAGIC = b"VECDBIX1"
_HEADER = struct.Struct("<8sQIQI")


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
