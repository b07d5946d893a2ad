"""Capacity of a collection: at most ``max_records`` live records, the oldest evicted on overflow.

``fifo`` evicts in write order (a re-written id counts as new); ``lru`` in order of last use, where a
use is a write, or a search or get that returns the record (only ``lru`` collections track reads, in
memory: reads never write to the store). Eviction happens inside the write that overflows: the new
records and the evicted ones are one atomic batch, so index and store never disagree. Recency lives in
memory; on open it starts from write order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from vecdb.errors import InvalidConfigError

__all__ = ["EVICTION_POLICIES", "Capacity", "Eviction", "Recency", "parse_capacity"]

Eviction = Literal["lru", "fifo"]
EVICTION_POLICIES: tuple[Eviction, ...] = ("lru", "fifo")
MAX_RECORDS_LIMIT = 1 << 40


@dataclass(frozen=True, slots=True)
class Capacity:
    max_records: int
    eviction: Eviction

    def to_dict(self) -> dict[str, Any]:
        return {"max_records": self.max_records, "eviction": self.eviction}


def parse_capacity(max_records: Any, eviction: Any) -> Capacity | None:
    """The capacity for ``create_collection``; None when ``max_records`` is None (no limit).

    ``eviction`` defaults to ``fifo``; naming it without ``max_records`` is an error.
    """
    if max_records is None:
        if eviction is not None:
            raise InvalidConfigError("eviction needs max_records", field="eviction")
        return None
    valid_int = isinstance(max_records, int) and not isinstance(max_records, bool)
    if not valid_int or not 1 <= max_records <= MAX_RECORDS_LIMIT:
        shown = "a larger integer" if valid_int and max_records > MAX_RECORDS_LIMIT else repr(max_records)
        raise InvalidConfigError(
            f"max_records must be an integer from 1 to {MAX_RECORDS_LIMIT}, got {shown}", field="max_records"
        )
    policy = "fifo" if eviction is None else eviction
    if policy not in EVICTION_POLICIES:
        raise InvalidConfigError(
            f"eviction must be one of {list(EVICTION_POLICIES)}, got {eviction!r}", field="eviction"
        )
    return Capacity(max_records, policy)


class Recency:
    """Live labels from least to most recently used. Thread-safe (searches touch it under a read lock)."""

    def __init__(self) -> None:
        self._order: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, label: int) -> None:
        with self._lock:
            self._order[label] = None

    def remove(self, label: int) -> None:
        with self._lock:
            self._order.pop(label, None)

    def touch(self, labels: Iterable[int]) -> None:
        with self._lock:
            for label in labels:
                if label in self._order:
                    self._order.move_to_end(label)

    def oldest(self, n: int, skip: set[int]) -> list[int]:
        """The ``n`` least recently used labels not in ``skip`` (fewer when there are not that many)."""
        out: list[int] = []
        if n <= 0:
            return out
        with self._lock:
            for label in self._order:
                if label not in skip:
                    out.append(label)
                    if len(out) == n:
                        break
        return out
