"""Where a record lives: shard ``blake2b(id) mod N``. Pure functions (no Ray)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["route", "shard_of"]


def shard_of(record_id: str, shards: int) -> int:
    """The shard of a record id: stable everywhere (blake2b, never Python's salted ``hash``)."""
    digest = hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def route(ids: Sequence[str], shards: int) -> dict[int, list[int]]:
    """The positions of ``ids`` per shard, in order; shards holding none of them are absent."""
    out: dict[int, list[int]] = {}
    for i, rid in enumerate(ids):
        out.setdefault(shard_of(rid, shards), []).append(i)
    return out
