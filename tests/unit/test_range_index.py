"""The range index (``NumericColumn`` inside ``RecordIndex``) against the reference ``Filter.matches``.

Indexes are built with the thresholds set to reach the column (``range_max_repeat=ALWAYS``: every numeric
field answers from it; ``in_column_min=0``: every ``$in`` too; small ``merge_min``: changes are merged into
the sorted arrays often, and queries see both merged and pending ones), next to one with the defaults.
Values mix ints and floats, ``-0.0``, ints past 2**53 that no float64 equals (they compare exactly, as in
Python), booleans, strings, null, lists and missing fields: a record whose field is missing or not a number
is never in a numeric range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecdb.engine.range_index import NumericColumn
from vecdb.engine.record_index import RecordIndex
from vecdb.filters import parse_filter

BIG = 2**53
ALWAYS = 2**40  # range_max_repeat: the column answers whatever the field's values
SPECIAL_NUMBERS: list[Any] = [
    0,
    0.0,
    -0.0,
    1,
    1.0,
    -1,
    0.5,
    -1.5,
    BIG - 1,
    BIG,
    float(BIG),
    BIG + 1,  # no float64 equals it: float(BIG + 1) == BIG
    BIG + 2,
    float(BIG + 2),
    -(BIG + 1),
    2**63 - 1,
    float(2**63),
    -(2**63),
    2**64 - 1,
    float(2**64),
    1e300,
    -1e-300,
]
near_big = st.integers(BIG - 3, BIG + 3)  # 2**53 +- 1 and +- 3 have no float64
numbers: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(SPECIAL_NUMBERS),
    st.integers(-5, 5),
    near_big,
    near_big.map(float),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
not_numbers: st.SearchStrategy[Any] = st.sampled_from([True, False, "1", "a", None, [1], {"x": 1}])
field_values = st.one_of(numbers, numbers, numbers, not_numbers)
# bounds go past what metadata can hold (orjson stores 64-bit ints): 2**70, 10**400 (no float64 at all)
bounds: st.SearchStrategy[Any] = st.one_of(
    numbers, st.sampled_from([2**70, -(2**70), 10**400, -(10**400), "1", "b"])
)
RANGE_OPS = ["$gt", "$gte", "$lt", "$lte"]
queries: st.SearchStrategy[Any] = st.one_of(
    st.dictionaries(st.sampled_from(RANGE_OPS), bounds, min_size=1, max_size=4).map(lambda c: {"t": c}),
    st.tuples(st.sampled_from(RANGE_OPS), bounds, st.sampled_from(RANGE_OPS), bounds).map(
        lambda q: {"$and": [{"t": {q[0]: q[1]}}, {"t": {q[2]: q[3]}}, {"g": {"$ne": "z"}}]}
    ),
    st.lists(st.one_of(bounds, not_numbers.filter(lambda v: not isinstance(v, list | dict))), max_size=8).map(
        lambda vs: {"t": {"$in": vs}}
    ),
    st.lists(bounds, max_size=4).map(lambda vs: {"t": {"$nin": vs}}),
    bounds.map(lambda b: {"$not": {"t": {"$gte": b}}}),
    bounds.map(lambda b: {"t": {"$ne": b}}),
    numbers.map(lambda b: {"t": b}),
    st.tuples(bounds, bounds).map(lambda q: {"$or": [{"t": {"$lt": q[0]}}, {"t": {"$gt": q[1]}, "g": "x"}]}),
)
steps = st.one_of(
    st.tuples(st.just("add"), field_values),
    st.tuples(st.just("add"), st.just(None)),  # a record without the field
    st.tuples(st.just("remove"), st.integers(0, 1000)),
    st.tuples(st.just("update"), st.tuples(st.integers(0, 1000), field_values)),  # a new value, same label
    st.tuples(st.just("upsert"), st.tuples(st.integers(0, 1000), field_values)),  # a new value, new label
    st.tuples(st.just("query"), queries),
)


def _indexes(merge_min: int) -> list[RecordIndex]:
    return [RecordIndex(range_max_repeat=ALWAYS, in_column_min=0, merge_min=merge_min), RecordIndex()]


def _check(indexes: list[RecordIndex], live: dict[int, dict[str, Any]], raw: Any) -> None:
    flt = parse_filter(raw)
    assert flt is not None
    expected = {label for label, meta in live.items() if flt.matches(meta)}
    for idx in indexes:
        assert set(idx.evaluate(flt)) == expected, raw


@settings(max_examples=400, deadline=None)
@given(
    ops=st.lists(steps, max_size=60),
    merge_min=st.sampled_from([0, 1, 4, 2048]),
    final=st.lists(queries, min_size=1, max_size=6),
)
def test_range_index_agrees_with_matches(
    ops: list[tuple[str, Any]], merge_min: int, final: list[Any]
) -> None:
    indexes = _indexes(merge_min)
    live: dict[int, dict[str, Any]] = {}
    fresh = 0

    def add(label: int, value: Any) -> None:
        meta = {"g": "x" if label % 2 else "y"}
        if value is not None:
            meta["t"] = value
        for idx in indexes:
            idx.add(label, f"r{label}", meta, None)
        live[label] = meta

    def remove(label: int) -> None:
        meta = live.pop(label)
        for idx in indexes:
            idx.remove(label, meta, None)

    for op, arg in ops:
        if op == "add":
            add(fresh, arg)
            fresh += 1
        elif op in ("remove", "update", "upsert") and live:
            n, value = (arg, None) if op == "remove" else arg
            label = sorted(live)[n % len(live)]
            remove(label)
            if op == "update":
                add(label, value)  # the column must take a label back after removing it
            elif op == "upsert":
                add(fresh, value)
                fresh += 1
        elif op == "query":
            _check(indexes, live, arg)
    for raw in final:
        _check(indexes, live, raw)
    for label in list(live):
        remove(label)
    for raw in final:
        _check(indexes, live, raw)


def _column_index(values: list[Any]) -> tuple[RecordIndex, dict[int, dict[str, Any]]]:
    idx = RecordIndex(range_max_repeat=ALWAYS, in_column_min=0, merge_min=0)
    live = {label: {"t": v} for label, v in enumerate(values)}
    for label, meta in live.items():
        idx.add(label, f"r{label}", meta, None)
    return idx, live


def _selected(idx: RecordIndex, raw: Any) -> set[int]:
    flt = parse_filter(raw)
    assert flt is not None
    return set(idx.evaluate(flt))


def test_huge_ints_compare_exactly() -> None:
    """2**53 + 1 has no float64 (it rounds to 2**53): it still compares as the integer it is."""
    idx, _ = _column_index([BIG, BIG + 1, float(BIG), BIG + 2, float(BIG + 2), 2**64 - 1, float(2**64)])
    assert _selected(idx, {"t": {"$gt": BIG}}) == {1, 3, 4, 5, 6}
    assert _selected(idx, {"t": {"$gte": BIG + 1}}) == {1, 3, 4, 5, 6}
    assert _selected(idx, {"t": {"$gt": float(BIG)}}) == {1, 3, 4, 5, 6}
    assert _selected(idx, {"t": {"$lt": BIG + 1}}) == {0, 2}
    assert _selected(idx, {"t": {"$lte": BIG + 1}}) == {0, 1, 2}
    assert _selected(idx, {"t": {"$gt": BIG, "$lt": BIG + 2}}) == {1}
    assert _selected(idx, {"t": {"$in": [BIG + 1]}}) == {1}
    assert _selected(idx, {"t": {"$in": [float(BIG)]}}) == {0, 2}
    assert _selected(idx, {"t": {"$lt": 2**64}}) == {0, 1, 2, 3, 4, 5}
    assert _selected(idx, {"t": {"$gte": 2**64}}) == {6}
    assert _selected(idx, {"t": {"$gt": 10**400}}) == set()
    assert _selected(idx, {"t": {"$gt": -(10**400)}}) == set(range(7))


def test_negative_zero_is_zero() -> None:
    idx, _ = _column_index([-0.0, 0, 0.0, -1e-300, 1e-300])
    assert _selected(idx, {"t": {"$gte": 0}}) == {0, 1, 2, 4}
    assert _selected(idx, {"t": {"$lte": -0.0}}) == {0, 1, 2, 3}
    assert _selected(idx, {"t": {"$gt": 0.0}}) == {4}
    assert _selected(idx, {"t": {"$in": [-0.0]}}) == {0, 1, 2}
    assert _selected(idx, {"t": {"$nin": [0]}}) == {3, 4}


def test_booleans_and_non_numbers_are_never_in_a_numeric_range() -> None:
    idx, _ = _column_index([True, False, 1, "1", None, [1], {"x": 1}, 0.5])
    assert _selected(idx, {"t": {"$gte": 0}}) == {2, 7}
    assert _selected(idx, {"t": {"$in": [1, True]}}) == {0, 2}
    assert _selected(idx, {"$not": {"t": {"$lt": 10}}}) == {0, 1, 3, 4, 5, 6}


@pytest.mark.parametrize("merge_min", [0, 3, 2048])
def test_column_merges_keep_every_label(merge_min: int) -> None:
    """Adds and removes pending or merged: the column always holds exactly the live labels."""
    column = NumericColumn(merge_min)
    live: dict[int, float] = {}
    for label in range(200):
        value = float((label * 7919) % 101)
        column.add(label, value)
        live[label] = value
        if label % 3 == 0 and label // 2 in live:
            column.remove(label // 2, live.pop(label // 2))
    assert len(column) == len(live)
    assert set(column.range(None, None)) == set(live)
    assert set(column.range((50, True), (60, False))) == {lb for lb, v in live.items() if 50 <= v < 60}
    assert set(column.isin([3, 4.0, 1000])) == {lb for lb, v in live.items() if v in (3, 4)}
    if merge_min == 0:
        assert column.merges > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_large_column_against_numpy(seed: int) -> None:
    """Thousands of labels: ranges span the precomputed label blocks, merged and pending changes mixed."""
    rng = np.random.default_rng(seed)
    column = NumericColumn(merge_min=500)
    live: dict[int, float] = {}
    for label in range(6000):
        value = float(rng.integers(0, 3000)) if label % 4 else float(rng.normal(0, 1000))
        column.add(label, value)
        live[label] = value
    for label in rng.choice(6000, 700, replace=False).tolist():
        column.remove(label, live.pop(label))
    for label in range(6000, 6300):  # pending: fewer than merge_min since the last merge
        live[label] = float(rng.integers(-100, 3100))
        column.add(label, live[label])
    labels = np.fromiter(live, dtype=np.int64)
    values = np.fromiter(live.values(), dtype=np.float64)
    for _ in range(100):
        lo, hi = sorted(rng.integers(-200, 3200, 2).tolist())
        lo_incl, hi_incl = bool(rng.integers(2)), bool(rng.integers(2))
        mask = (values >= lo if lo_incl else values > lo) & (values <= hi if hi_incl else values < hi)
        assert set(column.range((lo, lo_incl), (hi, hi_incl))) == set(labels[mask].tolist())
        above = values >= lo if lo_incl else values > lo
        assert set(column.range((lo, lo_incl), None)) == set(labels[above].tolist())
    assert len(column) == len(live)
