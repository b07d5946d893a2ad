"""In-memory structures derived from the store, rebuilt on open: what makes filters set algebra.

- ``all``: every live label;
- ``label -> id`` (search results carry labels);
- per source: the labels of its records (``list_sources`` with counts);
- per metadata field: labels having the field, and labels per scalar value (``kind_key``), with the
  distinct values kept sorted on demand for range operators;
- expiry times (records with a time to live), in a heap: ``expired(now)`` is the bitmap of live labels
  whose time has come (readers subtract it; the purger deletes them).

A parsed filter evaluates to a ``BitMap64`` of labels whose size is known before searching.
Mutated only under the collection's write lock; read under its read lock (``expired`` takes its own
small lock, since readers advance the expiry heap).
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import Any

import numpy as np
from pyroaring import BitMap64

from vecdb.filters import And, Cmp, Filter, Not, Or, kind_key

__all__ = ["RecordIndex", "to_labels"]


def to_labels(bitmap: BitMap64) -> np.ndarray:
    """The labels of a bitmap as a sorted int64 array."""
    return np.frombuffer(bitmap.to_array(), dtype=np.uint64).view(np.int64)


class RecordIndex:
    def __init__(self) -> None:
        self.all = BitMap64()
        self.ids: dict[int, str] = {}
        self.sources: dict[str, BitMap64] = {}
        self._present: dict[str, BitMap64] = {}
        self._values: dict[str, dict[tuple[str, Any], BitMap64]] = {}
        self._sorted: dict[tuple[str, str], list[Any]] = {}
        self.expiry: dict[int, float] = {}
        self._expiry_heap: list[tuple[float, int]] = []
        self._expired = BitMap64()
        self._expiry_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.all)

    @property
    def fields(self) -> dict[str, BitMap64]:
        """The distinct top-level metadata keys some live record has (read-only view)."""
        return self._present

    def add(
        self,
        label: int,
        rid: str,
        metadata: dict[str, Any],
        source: str | None,
        expires_at: float | None = None,
    ) -> None:
        self.all.add(label)
        self.ids[label] = rid
        if expires_at is not None:
            with self._expiry_lock:
                self.expiry[label] = expires_at
                heapq.heappush(self._expiry_heap, (expires_at, label))
        if source is not None:
            self.sources.setdefault(source, BitMap64()).add(label)
        for field, value in metadata.items():
            self._present.setdefault(field, BitMap64()).add(label)
            key = kind_key(value)
            if key is None:
                continue
            values = self._values.setdefault(field, {})
            bm = values.get(key)
            if bm is None:
                values[key] = bm = BitMap64()
                self._sorted.pop((field, key[0]), None)
            bm.add(label)

    def remove(self, label: int, metadata: dict[str, Any], source: str | None) -> None:
        self.all.discard(label)
        self.ids.pop(label, None)
        if label in self.expiry:
            with self._expiry_lock:
                del self.expiry[label]  # its heap entry goes when it comes up...
                self._expired.discard(label)
                if len(self._expiry_heap) > 2 * len(self.expiry) + 1024:  # ...or here, if they pile up
                    self._expiry_heap = [(t, lb) for lb, t in self.expiry.items()]
                    heapq.heapify(self._expiry_heap)
        if source is not None:
            _discard(self.sources, source, label)
        for field, value in metadata.items():
            _discard(self._present, field, label)
            key = kind_key(value)
            values = self._values.get(field)
            if key is None or values is None:
                continue
            if _discard(values, key, label):
                self._sorted.pop((field, key[0]), None)
                if not values:
                    del self._values[field]

    def expired(self, now: float) -> BitMap64:
        """Live labels whose expiry time is ``now`` or earlier (a new bitmap)."""
        if not self.expiry:
            return BitMap64()
        with self._expiry_lock:
            heap = self._expiry_heap
            while heap and heap[0][0] <= now:
                when, label = heapq.heappop(heap)
                if self.expiry.get(label) == when:
                    self._expired.add(label)
            return self._expired.copy()

    def evaluate(self, flt: Filter) -> BitMap64:
        """The live labels that ``flt`` admits (a new bitmap the caller may keep)."""
        if isinstance(flt, And):
            result = self.evaluate(flt.items[0])
            for item in flt.items[1:]:
                if not result:
                    break
                result &= self.evaluate(item)
            return result
        if isinstance(flt, Or):
            return BitMap64.union(*(self.evaluate(item) for item in flt.items))
        if isinstance(flt, Not):
            return self.all - self.evaluate(flt.item)
        return self._cmp(flt)

    def _cmp(self, c: Cmp) -> BitMap64:
        op = c.op
        if op == "$exists":
            present = self._present.get(c.field, BitMap64())
            return present.copy() if c.value else self.all - present
        if op in ("$ne", "$nin"):
            return self.all - self._cmp(Cmp(c.field, "$eq" if op == "$ne" else "$in", c.value))
        values = self._values.get(c.field, {})
        if op == "$eq":
            return _copy(values.get(kind_key(c.value)))  # type: ignore[arg-type]
        if op == "$in":
            return BitMap64.union(BitMap64(), *(values.get(kind_key(v), BitMap64()) for v in c.value))  # type: ignore[arg-type]
        want = kind_key(c.value)
        assert want is not None
        keys = self._sorted_values(c.field, want[0])
        if op == "$gt":
            chosen = keys[bisect_right(keys, want[1]) :]
        elif op == "$gte":
            chosen = keys[bisect_left(keys, want[1]) :]
        elif op == "$lt":
            chosen = keys[: bisect_left(keys, want[1])]
        else:  # $lte
            chosen = keys[: bisect_right(keys, want[1])]
        return BitMap64.union(BitMap64(), *(values[(want[0], v)] for v in chosen))

    def _sorted_values(self, field: str, kind: str) -> list[Any]:
        cached = self._sorted.get((field, kind))
        if cached is None:
            values: Iterable[tuple[str, Any]] = self._values.get(field, {})
            cached = sorted(v for k, v in values if k == kind)
            self._sorted[(field, kind)] = cached
        return cached


def _copy(bm: BitMap64 | None) -> BitMap64:
    return BitMap64() if bm is None else bm.copy()


def _discard(table: dict[Any, BitMap64], key: Any, label: int) -> bool:
    """Remove ``label`` from ``table[key]``; drop the entry when empty. True when the entry was dropped."""
    bm = table.get(key)
    if bm is None:
        return False
    bm.discard(label)
    if not bm:
        del table[key]
        return True
    return False
