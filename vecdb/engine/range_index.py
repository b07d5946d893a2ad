"""A sorted numeric column per metadata field: ranges and long ``$in`` lists in O(log n + matches).

``NumericColumn`` keeps the numeric values of one field (``kind_key`` kind ``"n"``: ints and floats, never
booleans) as a float64 array sorted ascending with the labels in the same order. A range is two binary
searches and a slice of labels; ``$in`` is two binary searches per value. Changes since the last merge wait
in small side structures (``_pending``: added labels and their values; ``_dead``: labels removed from the
sorted arrays) that every query also consults, and are merged into the sorted arrays (O(n + p log p))
once they pass ``max(MERGE_MIN, n // MERGE_FRACTION)``: the write path never sorts the whole column.

Exactness. Filters compare numbers exactly, as Python does (``2**53 + 1 > 2.0**53``). Every int within
+-2**53 and every float is its own float64; a larger int ``v`` may not be (``float(v) != v``). Such values
are "inexact": they sit in the column at ``float(v)`` and are also kept in ``_inexact[float(v)]`` with their
exact value. Since rounding is monotonic, ``float(v) > float(b)`` implies ``v > b``: only the entries whose
float equals the float of a bound can be decided wrongly by float comparison, and those are the inexact
ones at that float, re-checked exactly (a dict lookup per bound). A bound is compared the same way
(``float(b)`` against the column, the run equal to ``float(b)`` decided by one exact comparison); a bound
beyond the float range (a Python int past 1e308) becomes +-inf. ``-0.0`` equals ``0`` as it does in Python.

Threading: mutated under the collection's write lock; queries run under its read lock. The only state a
query writes is the cached array view of ``_pending`` (replaced whole, so concurrent readers at worst
build it twice).
"""

from __future__ import annotations

import array
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pyroaring import BitMap64

__all__ = ["MERGE_MIN", "Bound", "NumericColumn", "is_number", "to_bitmap"]

MERGE_MIN = 2048
MERGE_FRACTION = 16
#: Labels per precomputed bitmap of consecutive sorted positions (``_blocks``): a range is the union of
#: the whole blocks inside it plus at most two partial ones built from the label array.
BLOCK = 1024
EXACT_INT = 2**53  # every int within +-2**53 is a float64

#: One side of a range: ``(value, inclusive)``.
Bound = tuple[int | float, bool]


def is_number(value: Any) -> bool:
    """True for the values the column holds: ints and floats, not booleans (a kind of their own)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_bitmap(labels: np.ndarray) -> BitMap64:
    """A bitmap of int64 labels (any order). Sorted input builds fastest, so small inputs are sorted."""
    out = BitMap64()
    if len(labels):
        out.update(array.array("Q", np.sort(labels).view(np.uint64).tobytes()))
    return out


def _float(value: int | float) -> float:
    """``value`` as a float64, an int past the float range as +-inf (it still orders correctly)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _passes_lower(value: int | float, bound: Bound) -> bool:
    return value >= bound[0] if bound[1] else value > bound[0]


def _passes_upper(value: int | float, bound: Bound) -> bool:
    return value <= bound[0] if bound[1] else value < bound[0]


class NumericColumn:
    """The numeric values of one field, sorted, with their labels (see the module docstring)."""

    def __init__(self, merge_min: int = MERGE_MIN) -> None:
        self._merge_min = merge_min
        self._values = np.empty(0, dtype=np.float64)
        self._labels = np.empty(0, dtype=np.int64)
        self._dead = BitMap64()  # labels of _labels removed since the last merge
        self._pending: dict[int, float] = {}  # labels added since the last merge -> float value
        self._pending_view: tuple[np.ndarray, np.ndarray] | None = None  # (values, labels) of _pending
        self._inexact: dict[float, dict[int, int]] = {}  # float(v) -> {label: v} for ints with float(v) != v
        self._blocks: list[BitMap64] | None = None  # bitmaps of _labels[i * BLOCK:(i + 1) * BLOCK], lazily
        self._changes = 0  # adds and removes since the last merge
        self._merge_at = merge_min
        self.merges = 0

    def __len__(self) -> int:
        return len(self._labels) - len(self._dead) + len(self._pending)

    @classmethod
    def build(
        cls, labels: np.ndarray, values: Sequence[int | float], merge_min: int = MERGE_MIN
    ) -> NumericColumn:
        """A merged column of ``labels`` (int64, distinct) with ``values`` (numbers), row for row: one sort,
        for loading a whole field at once (a checkpoint) instead of ``add`` per label."""
        col = cls(merge_min)
        floats = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            if type(v) is float or -EXACT_INT <= v <= EXACT_INT:
                floats[i] = v
            else:
                f = floats[i] = _float(v)
                if f != v:
                    col._inexact.setdefault(f, {})[int(labels[i])] = int(v)
        order = np.argsort(floats, kind="stable")
        col._values, col._labels = floats[order], np.ascontiguousarray(labels, dtype=np.int64)[order]
        col._merge_at = max(merge_min, len(labels) // MERGE_FRACTION)
        return col

    # ---- changes (under the write lock) -------------------------------------------------------------

    def add(self, label: int, value: int | float) -> None:
        """Index ``label`` with ``value`` (a number: see ``is_number``); the label must not be indexed."""
        if type(value) is float or -EXACT_INT <= value <= EXACT_INT:
            f = float(value)
        else:
            f = _float(value)
            if f != value:
                self._inexact.setdefault(f, {})[label] = int(value)
        self._pending[label] = f
        self._pending_view = None
        self._changes += 1
        if self._changes > self._merge_at:
            self.merge()

    def remove(self, label: int, value: int | float) -> None:
        """Forget ``label``, indexed with ``value``."""
        f = _float(value)
        if type(value) is not float and f != value:
            same = self._inexact.get(f)
            if same is not None:
                same.pop(label, None)
                if not same:
                    del self._inexact[f]
        if self._pending.pop(label, None) is not None:
            self._pending_view = None
        else:
            self._dead.add(label)
        self._changes += 1
        if self._changes > self._merge_at:
            self.merge()

    def merge(self) -> None:
        """Fold the pending additions and removals into the sorted arrays: O(n + p log p)."""
        values, labels = self._values, self._labels
        if self._dead:
            dead = np.frombuffer(self._dead.to_array(), dtype=np.uint64).view(np.int64)
            keep = ~np.isin(labels, dead)
            values, labels = values[keep], labels[keep]
        if self._pending:
            pv, pl = self._pending_arrays()
            order = np.argsort(pv, kind="stable")
            pv, pl = pv[order], pl[order]
            at = np.searchsorted(values, pv, side="right")
            values, labels = np.insert(values, at, pv), np.insert(labels, at, pl)
        self._values, self._labels = values, labels
        self._dead = BitMap64()
        self._pending = {}
        self._pending_view = None
        self._blocks = None
        self._changes = 0
        self._merge_at = max(self._merge_min, len(labels) // MERGE_FRACTION)
        self.merges += 1

    # ---- queries (under the read lock) --------------------------------------------------------------

    def range(self, lower: Bound | None, upper: Bound | None) -> BitMap64:
        """Labels whose value lies within the bounds (None: unbounded on that side)."""
        lo = None if lower is None else _float(lower[0])
        hi = None if upper is None else _float(upper[0])
        values = self._values
        start = 0
        if lo is not None and lower is not None:
            # Entries equal to float(lower) are exact (the inexact ones are re-checked below): one
            # exact comparison decides the whole run.
            start = int(np.searchsorted(values, lo, side="left" if _passes_lower(lo, lower) else "right"))
        end = len(values)
        if hi is not None and upper is not None:
            end = int(np.searchsorted(values, hi, side="right" if _passes_upper(hi, upper) else "left"))
        out = self._slice(start, end)
        if self._dead and out:
            out -= self._dead
        if self._pending:
            pv, pl = self._pending_arrays()
            mask = np.ones(len(pv), dtype=bool)
            if lo is not None and lower is not None:
                mask &= pv >= lo if _passes_lower(lo, lower) else pv > lo
            if hi is not None and upper is not None:
                mask &= pv <= hi if _passes_upper(hi, upper) else pv < hi
            if mask.any():
                out |= to_bitmap(pl[mask])
        if self._inexact:  # the entries that float comparison may have misjudged: re-check exactly
            for f in {lo, hi} - {None}:
                for label, exact in self._inexact.get(f, {}).items():  # type: ignore[arg-type]
                    lower_ok = lower is None or _passes_lower(exact, lower)
                    if lower_ok and (upper is None or _passes_upper(exact, upper)):
                        out.add(label)
                    else:
                        out.discard(label)
        return out

    def isin(self, wanted: Sequence[int | float]) -> BitMap64:
        """Labels whose value equals one of ``wanted`` (numbers)."""
        try:
            asked = np.asarray(wanted, dtype=np.float64)
        except OverflowError:
            asked = np.asarray([_float(v) for v in wanted], dtype=np.float64)
        odd: list[int] = []  # ints that no float64 equals: only inexact entries can equal them
        big = np.flatnonzero(np.abs(asked) >= 2.0**53)  # below that, every int is a float
        if len(big):
            keep = np.ones(len(asked), dtype=bool)
            for i in big.tolist():
                v = wanted[i]
                if isinstance(v, int) and _float(v) != v:
                    odd.append(v)
                    keep[i] = False
            asked = asked[keep]
        out = BitMap64()
        if len(asked):
            keys = np.unique(asked)
            starts = np.searchsorted(self._values, keys, side="left")
            lengths = np.searchsorted(self._values, keys, side="right") - starts
            total = int(lengths.sum())
            if total:
                # every position of every run: run start + offset within the run
                heads = np.cumsum(lengths) - lengths
                at = np.arange(total, dtype=np.int64) + np.repeat(starts - heads, lengths)
                out = to_bitmap(self._labels[at])
                if self._dead:
                    out -= self._dead
            if self._pending:
                pv, pl = self._pending_arrays()
                mask = np.isin(pv, keys)
                if mask.any():
                    out |= to_bitmap(pl[mask])
            if self._inexact:  # an inexact entry sits at a float it does not equal
                for f in set(keys.tolist()).intersection(self._inexact):
                    for label in self._inexact[f]:
                        out.discard(label)
        for v in odd:
            for label, value in self._inexact.get(_float(v), {}).items():
                if value == v:
                    out.add(label)
        return out

    def _slice(self, start: int, end: int) -> BitMap64:
        """The labels at sorted positions [start, end): whole blocks by union, the ends from the array."""
        first, last = -(-start // BLOCK), end // BLOCK  # the whole blocks: [first, last)
        if last - first < 2:
            return to_bitmap(self._labels[start:end]) if start < end else BitMap64()
        blocks = self._blocks
        if blocks is None:  # under the read lock: concurrent readers at worst build it twice
            labels = self._labels
            blocks = [to_bitmap(labels[i : i + BLOCK]) for i in range(0, len(labels) - BLOCK + 1, BLOCK)]
            self._blocks = blocks
        edges = np.concatenate((self._labels[start : first * BLOCK], self._labels[last * BLOCK : end]))
        return BitMap64.union(to_bitmap(edges), *blocks[first:last])

    def _pending_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        view = self._pending_view
        if view is None:
            n = len(self._pending)
            view = (
                np.fromiter(self._pending.values(), dtype=np.float64, count=n),
                np.fromiter(self._pending.keys(), dtype=np.int64, count=n),
            )
            self._pending_view = view
        return view
