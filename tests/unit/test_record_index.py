"""RecordIndex's value entries: a value held by one record is kept as that label (an int), by more as a
bitmap; every filter answers the same whichever form an entry has, through every transition, and a dump
(the filter checkpoint) restores the same answers."""

from __future__ import annotations

from typing import Any

import pytest
from pyroaring import BitMap64

from vecdb.engine.record_index import RecordIndex
from vecdb.filters import parse_filter

FILTERS: list[dict[str, Any]] = [
    {"v": "a"},
    {"v": {"$ne": "a"}},
    {"v": {"$in": ["a", "b", "zz"]}},
    {"v": {"$nin": ["a"]}},
    {"v": {"$gt": "a"}},
    {"v": {"$lte": "b"}},
    {"n": 1},
    {"n": {"$in": [1, 2, 3]}},
    {"n": {"$in": list(range(0, 400, 2))}},  # long: the numeric column
    {"n": {"$gte": 1, "$lt": 3}},
    {"n": {"$gt": 1}},
]


def check(index: RecordIndex, model: dict[int, dict[str, Any]]) -> None:
    for flt in FILTERS:
        parsed = parse_filter(flt)
        assert parsed is not None
        want = sorted(lb for lb, meta in model.items() if parsed.matches(meta))
        assert sorted(index.evaluate(parsed)) == want, flt


@pytest.mark.parametrize("columns", [True, False])
def test_single_label_entries_through_every_transition(
    columns: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RecordIndex, "range_index", columns)
    index = RecordIndex(range_max_repeat=4, in_column_min=8, merge_min=2)
    model: dict[int, dict[str, Any]] = {}

    def add(label: int, meta: dict[str, Any]) -> None:
        index.add(label, f"id{label}", meta, None)
        model[label] = meta
        check(index, model)

    def remove(label: int) -> None:
        index.remove(label, model.pop(label), None)
        check(index, model)

    add(1, {"v": "a", "n": 1})  # one record each: single labels
    assert index._values["v"][("s", "a")] == 1
    add(2, {"v": "a", "n": 2})  # "a" on two records: a bitmap
    assert isinstance(index._values["v"][("s", "a")], BitMap64)
    add(3, {"v": "b", "n": 1})
    remove(1)  # "a" back to one record: its label again
    assert index._values["v"][("s", "a")] == 2
    remove(2)  # gone
    assert ("s", "a") not in index._values["v"]
    add(4, {"v": "a", "n": 3})
    for label in range(10, 60):  # many distinct values, some repeated
        add(label, {"v": f"x{label % 17}", "n": label % 23})

    restored = RecordIndex(range_max_repeat=4, in_column_min=8, merge_min=2)
    meta, blobs = index.dump()
    restored.load_dump(meta, b"".join(blobs))
    check(restored, model)
    assert restored._values == index._values
    remove(4)
    restored.remove(4, {"v": "a", "n": 3}, None)
    check(restored, model)
