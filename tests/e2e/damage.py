"""Damage to a closed store's files, as a disk, an operator or a copy can do it (integrity tests)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["flip", "table_file_of"]


def flip(path: Path, at: float = 0.5) -> None:
    """Flip one byte at ``at`` (a fraction) of ``path``."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


def table_file_of(store: Path, cf: str) -> Path:
    """The largest table (SST) file of column family ``cf`` in a closed store: a table file names its
    column family in its properties block (``rocksdb.column.family.name``: delta-encoded after
    ``...family.id`` as 4 key bytes "name" and the value, each preceded by its length)."""
    found = []
    for sst in store.glob("*.sst"):
        data = sst.read_bytes()
        at = data.rfind(b"column.family.id")  # the next key shares this prefix, then "name" + value
        if at >= 0 and bytes([4, len(cf)]) + b"name" + cf.encode() in data[at : at + 60]:
            found.append(sst)
    assert found, f"no table file for {cf}"
    return max(found, key=lambda p: p.stat().st_size)
