"""In-memory structures derived from the store, rebuilt on open: what makes filters set algebra.

- ``all``: every live label;
- ``label -> id`` (search results carry labels);
- per source: the labels of its records (``list_sources`` with counts);
- per metadata field: labels having the field, and labels per scalar value (``kind_key``), with the
  distinct values kept sorted on demand for range operators;
- per numeric field: a ``NumericColumn`` (values sorted with their labels) that answers a range or a long
  ``$in`` list over a field whose numbers rarely repeat (timestamps, prices) in O(log n + matches), where
  the union of one bitmap per distinct value would cost O(distinct values in the range). A field whose
  numbers repeat ``range_max_repeat`` times or more on average keeps the bitmap union: measured at 100k
  records, a union costs ~3-5 us per distinct value in the range and the column ~0.05-0.2 ms whatever the
  range (two partial blocks of labels plus the union of whole ones): the union wins for narrow ranges
  and from ~250 records per value, the column for wide ranges below that;
- expiry times (records with a time to live), in a heap: ``expired(now)`` is the bitmap of live labels
  whose time has come (readers subtract it; the purger deletes them).

A parsed filter evaluates to a ``BitMap64`` of labels whose size is known before searching. Range operators
on one field under one ``$and`` are evaluated together as one interval.
Mutated only under the collection's write lock; read under its read lock (``expired`` takes its own
small lock, since readers advance the expiry heap).
"""

from __future__ import annotations

import heapq
import json
import math
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, cast

import numpy as np
import orjson
from pyroaring import BitMap64

from vecdb.engine.range_index import MERGE_MIN, Bound, NumericColumn, is_number, to_bitmap
from vecdb.filters import RANGE_OPS, And, Cmp, Filter, Not, Or, kind_key

__all__ = ["DUMP_FORMAT", "RANGE_MAX_REPEAT", "RecordIndex", "to_labels"]

#: Fields whose numbers repeat this often on average answer ranges by a union of per-value bitmaps.
RANGE_MAX_REPEAT = 128
#: An ``$in`` list with more numbers than this goes to the numeric column (when the field has one in use).
IN_COLUMN_MIN = 128
#: A value's labels: a bitmap, or its only label.
Entry = BitMap64 | int
#: The layout of ``RecordIndex.dump`` (a checkpoint of another format is rebuilt by the open scan).
DUMP_FORMAT = 1
#: Groups of at most this many labels are built from a list slice, larger ones from the array.
_SMALL_GROUP = 64


def to_labels(bitmap: BitMap64) -> np.ndarray:
    """The labels of a bitmap as a sorted int64 array."""
    return np.frombuffer(bitmap.to_array(), dtype=np.uint64).view(np.int64)


class RecordIndex:
    #: Keep and use the numeric columns (ranges in O(log n + matches)). Off only to measure the
    #: difference (benchmarks/filters.py); each index reads it once, when it is created.
    range_index = True

    def __init__(
        self,
        *,
        range_max_repeat: int = RANGE_MAX_REPEAT,
        in_column_min: int = IN_COLUMN_MIN,
        merge_min: int = MERGE_MIN,
    ) -> None:
        """The thresholds are tuning knobs (tests lower them to reach every path with few records)."""
        self._range_max_repeat = range_max_repeat
        self._in_column_min = in_column_min
        self._merge_min = merge_min
        self._keep_columns = RecordIndex.range_index
        self.all = BitMap64()
        self.ids: dict[int, str] = {}
        self.sources: dict[str, BitMap64] = {}
        self._present: dict[str, BitMap64] = {}
        #: field -> value key -> its labels: a bitmap, or the one label itself as an int (a value held by one
        #: record: ~200 bytes an entry instead of ~590 for a one-label bitmap; ids, timestamps, hashes)
        self._values: dict[str, dict[tuple[str, Any], Entry]] = {}
        self._sorted: dict[tuple[str, str], list[Any]] = {}
        self._columns: dict[str, NumericColumn] = {}
        self._numbers: dict[str, int] = {}  # field -> its distinct numeric values (keys of kind "n")
        self.expiry: dict[int, float] = {}
        self._expiry_heap: list[tuple[float, int]] = []
        self._expired = BitMap64()
        self._expiry_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.all)

    # ---- checkpoint (``FilterState``) ---------------------------------------------------------------

    def dump(self) -> tuple[dict[str, Any], list[bytes]]:
        """Everything as checkpoint sections: (JSON-able meta, byte blobs). Call under the read lock.

        Bitmaps travel as groups: the names (JSON), each group's label count (int64) and all the labels
        (int64, group after group). Metadata values go through the standard library's JSON (exact big
        ints; NaN refused with ``ValueError``, never turned into null). The numeric columns, the sorted
        value lists and the expiry heap are derived from the rest and rebuilt by ``load_dump``.
        """
        labels = to_labels(self.all)
        ids = self.ids
        with self._expiry_lock:
            expiry = list(self.expiry.items())
        fields = list(self._values)
        keys = [list(key) for values in self._values.values() for key in values]
        entries = [e for values in self._values.values() for e in values.values()]
        blobs = [
            labels.tobytes(),
            orjson.dumps([ids[lb] for lb in labels.tolist()]),
            np.array([lb for lb, _ in expiry], dtype=np.int64).tobytes(),
            np.array([t for _, t in expiry], dtype=np.float64).tobytes(),
            *_dump_groups(list(self.sources), list(self.sources.values())),
            *_dump_groups(list(self._present), list(self._present.values())),
            *_dump_groups(keys, entries),
        ]
        meta = {
            "format": DUMP_FORMAT,
            "count": len(labels),
            "sizes": [len(b) for b in blobs],
            "value_fields": fields,
            "value_keys": [len(values) for values in self._values.values()],
        }
        return meta, blobs

    def load_dump(self, meta: dict[str, Any], payload: bytes | memoryview) -> None:
        """Fill this empty index from ``dump``'s output. Raises ``ValueError`` (or ``KeyError``,
        ``TypeError``) on a payload that does not decode; the index is then left empty."""
        if self.all or meta.get("format") != DUMP_FORMAT:
            raise ValueError("not an empty index, or a dump of another format")
        sizes = [int(n) for n in meta["sizes"]]
        if len(sizes) != 13 or sum(sizes) != len(payload):
            raise ValueError("dump sections do not add up")
        view = memoryview(payload)
        parts: list[memoryview] = []
        at = 0
        for n in sizes:
            parts.append(view[at : at + n])
            at += n
        labels = np.frombuffer(parts[0], dtype=np.int64)
        id_list = orjson.loads(parts[1])
        if len(labels) != meta["count"] or len(id_list) != len(labels):
            raise ValueError("dump ids do not match its labels")
        exp_labels = np.frombuffer(parts[2], dtype=np.int64).tolist()
        exp_times = np.frombuffer(parts[3], dtype=np.float64).tolist()
        source_names, _, _, source_bitmaps = _load_groups(parts[4:7])
        field_names, _, _, field_bitmaps = _load_groups(parts[7:10])
        values: dict[str, dict[tuple[str, Any], Entry]] = {}
        numbers: dict[str, int] = {}
        keys, counts, value_labels, bitmaps = _load_groups(parts[10:13], single=True)
        numeric: dict[str, list[int]] = {}  # field -> positions of its numeric keys
        first = 0
        for field, n in zip(meta["value_fields"], meta["value_keys"], strict=True):
            field_keys = keys[first : first + n]
            values[field] = dict(zip(field_keys, bitmaps[first : first + n], strict=True))
            if len(values[field]) != n:
                raise ValueError("dump has a value twice")
            where = [first + j for j, key in enumerate(field_keys) if key[0] == "n"]
            if where:
                numeric[field] = where
            first += n
        if first != len(keys):
            raise ValueError("dump value keys do not add up")
        columns: dict[str, NumericColumn] = {}
        if numeric:
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
            for field, where in numeric.items():
                numbers[field] = len(where)
                if self._keep_columns:  # the labels of the field's numeric groups, and each one's number
                    pos = np.asarray(where, dtype=np.int64)
                    c = counts[pos]
                    rows = np.repeat(starts[pos] - np.cumsum(c) + c, c) + np.arange(int(c.sum()))
                    nums = [keys[i][1] for i in where]
                    repeated = [nums[j] for j in np.repeat(np.arange(len(where)), c).tolist()]
                    columns[field] = NumericColumn.build(value_labels[rows], repeated, self._merge_min)
        all_ = to_bitmap(labels)
        if len(all_) != len(labels) or len(exp_labels) != len(exp_times):
            raise ValueError("dump labels are not distinct")
        self.ids = dict(zip(labels.tolist(), id_list, strict=True))
        self.sources = dict(zip(source_names, source_bitmaps, strict=True))
        self._present = dict(zip(field_names, field_bitmaps, strict=True))
        self._values = values
        self._numbers = numbers
        self._columns = columns
        self.expiry = dict(zip(exp_labels, exp_times, strict=True))
        self._expiry_heap = [(t, lb) for lb, t in self.expiry.items()]
        heapq.heapify(self._expiry_heap)
        self.all = all_

    def reset(self) -> None:
        """Forget everything (a restore that failed half-way, before the open scan refills it)."""
        self.__init__(  # type: ignore[misc]
            range_max_repeat=self._range_max_repeat,
            in_column_min=self._in_column_min,
            merge_min=self._merge_min,
        )

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
            held = values.get(key)
            if held is None:
                values[key] = label
                self._sorted.pop((field, key[0]), None)
                if key[0] == "n":
                    self._numbers[field] = self._numbers.get(field, 0) + 1
            elif isinstance(held, int):
                values[key] = BitMap64((held, label))
            else:
                held.add(label)
            if key[0] == "n" and self._keep_columns:
                column = self._columns.get(field)
                if column is None:
                    self._columns[field] = column = NumericColumn(self._merge_min)
                column.add(label, value)

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
            if _discard_value(values, key, label):
                self._sorted.pop((field, key[0]), None)
                if key[0] == "n":
                    self._numbers[field] -= 1
                    if not self._numbers[field]:
                        del self._numbers[field]
                if not values:
                    del self._values[field]
            if key[0] == "n" and self._keep_columns:
                column = self._columns.get(field)
                if column is not None:
                    column.remove(label, value)
                    if not len(column):
                        del self._columns[field]

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
            parts = self._and_parts(flt.items)
            result = parts[0]()
            for part in parts[1:]:
                if not result:
                    break
                result &= part()
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
            return self._in(c.field, c.value, values)
        return self._ranged(c, values)

    def _in(self, field: str, wanted: tuple[Any, ...], values: dict[tuple[str, Any], Entry]) -> BitMap64:
        column = self._column(field) if len(wanted) > self._in_column_min else None
        if column is None:
            return _union([values.get(kind_key(v)) for v in wanted])  # type: ignore[arg-type]
        numbers: list[int | float] = []
        others: list[Entry | None] = []
        for v in wanted:
            if type(v) is int or type(v) is float or is_number(v):
                numbers.append(v)
            else:
                others.append(values.get(kind_key(v)))  # type: ignore[arg-type]
        return _union(others, column.isin(numbers))

    def _ranged(self, c: Cmp, values: dict[tuple[str, Any], Entry]) -> BitMap64:
        op = c.op
        want = kind_key(c.value)
        assert want is not None
        column = self._column(c.field) if want[0] == "n" else None
        if column is not None:
            bound = (c.value, op in ("$gte", "$lte"))
            return column.range(bound, None) if op in ("$gt", "$gte") else column.range(None, bound)
        keys = self._sorted_values(c.field, want[0])
        if op == "$gt":
            chosen = keys[bisect_right(keys, want[1]) :]
        elif op == "$gte":
            chosen = keys[bisect_left(keys, want[1]) :]
        elif op == "$lt":
            chosen = keys[: bisect_left(keys, want[1])]
        else:  # $lte
            chosen = keys[: bisect_right(keys, want[1])]
        return _union([values[(want[0], v)] for v in chosen])

    def _column(self, field: str) -> NumericColumn | None:
        """The field's numeric column when it is the cheaper way to answer (numbers that rarely repeat)."""
        column = self._columns.get(field)
        if column is None or len(column) >= self._range_max_repeat * self._numbers.get(field, 0):
            return None
        return column

    def _and_parts(self, items: tuple[Filter, ...]) -> list[Callable[[], BitMap64]]:
        """The conjuncts of an ``$and`` as deferred evaluations, the numeric range operators on one field
        that has a column merged into one interval (``{"t": {"$gte": a, "$lt": b}}`` is one slice, not the
        intersection of two large sets)."""
        bounds: dict[str, tuple[Bound | None, Bound | None]] = {}
        parts: list[Callable[[], BitMap64]] = []
        for item in items:
            if (
                isinstance(item, Cmp)
                and item.op in RANGE_OPS
                and is_number(item.value)
                and self._column(item.field) is not None
            ):
                lower, upper = bounds.get(item.field, (None, None))
                inclusive = item.op in ("$gte", "$lte")
                if item.op in ("$gt", "$gte"):
                    lower = _tighter(lower, (item.value, inclusive), upper=False)
                else:
                    upper = _tighter(upper, (item.value, inclusive), upper=True)
                bounds[item.field] = (lower, upper)
            else:
                parts.append(partial(self.evaluate, item))
        ranges = [partial(self._range, field, lo, hi) for field, (lo, hi) in bounds.items()]
        return ranges + parts

    def _range(self, field: str, lower: Bound | None, upper: Bound | None) -> BitMap64:
        column = self._columns.get(field)
        return BitMap64() if column is None else column.range(lower, upper)

    def _sorted_values(self, field: str, kind: str) -> list[Any]:
        cached = self._sorted.get((field, kind))
        if cached is None:
            values: Iterable[tuple[str, Any]] = self._values.get(field, {})
            cached = sorted(v for k, v in values if k == kind)
            self._sorted[(field, kind)] = cached
        return cached


def _tighter(old: Bound | None, new: Bound, *, upper: bool) -> Bound:
    """The stricter of two lower (or upper) bounds; at equal values the exclusive one."""
    if old is None:
        return new
    if old[0] == new[0]:
        return (old[0], old[1] and new[1])
    return new if (new[0] < old[0]) == upper else old


def _dump_groups(names: list[Any], entries: list[BitMap64] | list[Entry]) -> list[bytes]:
    """Named bitmaps (or single labels) as three sections: names (JSON), label counts (int64), labels
    (int64)."""
    arrays = [np.array([e], dtype=np.int64) if isinstance(e, int) else to_labels(e) for e in entries]
    return [
        _dump_json(names),
        np.array([len(a) for a in arrays], dtype=np.int64).tobytes(),
        np.concatenate(arrays).tobytes() if arrays else b"",
    ]


def _dump_json(value: list[Any]) -> bytes:
    """orjson where it is exact; the standard library's JSON (prefixed by a space) for ints beyond 64
    bits, which orjson cannot write and would read back as floats. NaN or inf: ``ValueError`` (orjson
    would write null)."""
    for item in value:
        v = item[-1] if isinstance(item, list) else item
        if type(v) is float and not math.isfinite(v):
            raise ValueError(f"metadata value {v!r} cannot be checkpointed")
    try:
        return orjson.dumps(value)
    except TypeError:
        return b" " + json.dumps(value, ensure_ascii=False).encode()


def _load_json(data: memoryview) -> list[Any]:
    raw = bytes(data)
    return cast("list[Any]", json.loads(raw) if raw.startswith(b" ") else orjson.loads(raw))


def _load_groups(
    parts: list[memoryview], *, single: bool = False
) -> tuple[list[Any], np.ndarray, np.ndarray, list[Any]]:
    """``_dump_groups``'s sections back: (names, counts, labels, one bitmap per name; with ``single``, a
    group of one label is that label, an int). A name that was a list comes back as a tuple."""
    names = [tuple(n) if isinstance(n, list) else n for n in _load_json(parts[0])]
    counts = np.frombuffer(parts[1], dtype=np.int64)
    labels = np.frombuffer(parts[2], dtype=np.int64)
    if len(names) != len(counts) or int(counts.sum()) != len(labels) or (len(counts) and counts.min() <= 0):
        raise ValueError("dump groups do not add up")
    listed = labels.tolist()
    bitmaps: list[Any] = []
    at = 0
    for n in counts.tolist():
        if n == 1:
            bitmaps.append(listed[at] if single else BitMap64((listed[at],)))
        elif n <= _SMALL_GROUP:
            bitmaps.append(BitMap64(listed[at : at + n]))
        else:
            bitmaps.append(to_bitmap(labels[at : at + n]))
        at += n
    return names, counts, labels, bitmaps


def _copy(entry: Entry | None) -> BitMap64:
    """The labels of a value entry as a new bitmap (empty for None)."""
    if entry is None:
        return BitMap64()
    return BitMap64((entry,)) if isinstance(entry, int) else entry.copy()


def _union(entries: list[Entry | None], *more: BitMap64) -> BitMap64:
    """The union of value entries (bitmaps and single labels; None skipped) and ``more`` bitmaps."""
    singles = [e for e in entries if isinstance(e, int)]
    bitmaps = [e for e in entries if isinstance(e, BitMap64)]
    return BitMap64.union(BitMap64(singles), *bitmaps, *more)


def _discard_value(table: dict[tuple[str, Any], Entry], key: tuple[str, Any], label: int) -> bool:
    """``_discard`` for value entries: a bitmap left with one label becomes that label. True when the
    entry was dropped."""
    held = table.get(key)
    if held is None:
        return False
    if isinstance(held, int):
        if held != label:
            return False
        del table[key]
        return True
    held.discard(label)
    if len(held) == 1:
        table[key] = held.min()
    elif not held:
        del table[key]
        return True
    return False


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
