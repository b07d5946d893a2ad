"""The filter language: what it rejects, what it means, and that the bitmap index agrees with it.

``Filter.matches`` is the reference semantics; ``RecordIndex.evaluate`` must return exactly the labels
whose metadata ``matches`` admits, whatever the filter and whatever was added and removed before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecdb.engine.record_index import RecordIndex
from vecdb.errors import InvalidFilterError
from vecdb.filters import MAX_DEPTH, And, Cmp, Not, Or, parse_filter

# ---- parse errors ---------------------------------------------------------------------------------

NAN = float("nan")
INF = float("inf")

INVALID_FILTERS: dict[str, Any] = {
    # unknown operators
    "unknown-op": {"a": {"$foo": 1}},
    "unknown-op-among-valid": {"a": {"$gt": 1, "$like": "x"}},
    "logical-op-as-comparison": {"a": {"$and": [1]}},
    "unknown-logical": {"$xor": [{"a": 1}]},
    "unknown-logical-nested": {"$and": [{"$nor": [{"a": 1}]}]},
    # empty lists and objects
    "empty-and": {"$and": []},
    "empty-or": {"$or": []},
    "empty-operator-object": {"a": {}},
    "empty-operator-object-nested": {"$or": [{"a": 1}, {"b": {}}]},
    "empty-filter-inside-and": {"$and": [{}]},
    "empty-filter-inside-not": {"$not": {}},
    # $and/$or that are not lists
    "and-not-list": {"$and": {"a": 1}},
    "or-string": {"$or": "a"},
    "and-none": {"$and": None},
    # non-object filters
    "list-filter": [{"a": 1}],
    "string-filter": "a",
    "int-filter": 1,
    "true-filter": True,
    "non-object-in-and": {"$and": [1]},
    "non-object-in-or": {"$or": [{"a": 1}, "b"]},
    "non-object-not": {"$not": "a"},
    "non-object-not-none": {"$not": None},
    # bad field names
    "empty-field-name": {"": 1},
    "non-string-field-name": {1: 1},
    # non-finite operands
    "nan-shorthand": {"a": NAN},
    "nan-eq": {"a": {"$eq": NAN}},
    "nan-ne": {"a": {"$ne": NAN}},
    "nan-range": {"a": {"$gt": NAN}},
    "inf-range": {"a": {"$lte": -INF}},
    "nan-in": {"a": {"$in": [1, NAN]}},
    "inf-nin": {"a": {"$nin": [INF]}},
    # $in / $nin operands
    "in-scalar": {"a": {"$in": 1}},
    "in-string": {"a": {"$in": "ab"}},
    "nin-none": {"a": {"$nin": None}},
    "in-object": {"a": {"$in": {"x": 1}}},
    "in-nested-list": {"a": {"$in": [[1]]}},
    "in-object-item": {"a": {"$in": [{"x": 1}]}},
    # $exists operand
    "exists-int": {"a": {"$exists": 1}},
    "exists-none": {"a": {"$exists": None}},
    "exists-string": {"a": {"$exists": "true"}},
    # range operands
    "gt-bool": {"a": {"$gt": True}},
    "gte-false": {"a": {"$gte": False}},
    "lt-list": {"a": {"$lt": [1]}},
    "lte-none": {"a": {"$lte": None}},
    "gt-object": {"a": {"$gt": {"x": 1}}},
    # nested objects and lists as values
    "nested-object-value": {"a": {"b": 1}},
    "nested-object-deep": {"a": {"b": {"c": 1}}},
    "eq-object": {"a": {"$eq": {"b": 1}}},
    "ne-list": {"a": {"$ne": [1]}},
    "list-shorthand": {"a": [1, 2]},
    "bytes-shorthand": {"a": b"x"},
}


@pytest.mark.parametrize("raw", list(INVALID_FILTERS.values()), ids=list(INVALID_FILTERS))
def test_invalid_filter_raises(raw: Any) -> None:
    with pytest.raises(InvalidFilterError):
        parse_filter(raw)


def test_invalid_filter_error_names_the_part() -> None:
    with pytest.raises(InvalidFilterError) as info:
        parse_filter({"$or": [{"a": 1}, {"b": {"$gt": None}}]})
    assert info.value.code == "invalid_filter"
    assert info.value.details["path"] == "filter.$or[1].b.$gt"


def test_too_deep_filter_raises() -> None:
    raw: dict[str, Any] = {"a": 1}
    for _ in range(MAX_DEPTH + 1):
        raw = {"$not": raw}
    with pytest.raises(InvalidFilterError):
        parse_filter(raw)
    ok: dict[str, Any] = {"a": 1}
    for _ in range(MAX_DEPTH):
        ok = {"$not": ok}
    assert parse_filter(ok) is not None


@pytest.mark.parametrize("raw", [None, {}])
def test_no_filter(raw: Any) -> None:
    assert parse_filter(raw) is None


def test_parsed_shapes() -> None:
    assert parse_filter({"a": 1}) == Cmp("a", "$eq", 1)
    assert parse_filter({"a": {"$gte": 1, "$lt": 3}}) == And((Cmp("a", "$gte", 1), Cmp("a", "$lt", 3)))
    assert parse_filter({"a": 1, "b": "x"}) == And((Cmp("a", "$eq", 1), Cmp("b", "$eq", "x")))
    assert parse_filter({"a": {"$in": [1, "x"]}}) == Cmp("a", "$in", (1, "x"))
    assert parse_filter({"$or": [{"a": 1}, {"$not": {"b": None}}]}) == Or(
        (Cmp("a", "$eq", 1), Not(Cmp("b", "$eq", None)))
    )
    # A dotted key is just a key; an empty $in list is valid (matches nothing).
    assert parse_filter({"a.b": 1}) == Cmp("a.b", "$eq", 1)
    assert parse_filter({"a": {"$in": []}}) == Cmp("a", "$in", ())


# ---- semantics by example -------------------------------------------------------------------------


def _index_of(metas: list[dict[str, Any]]) -> RecordIndex:
    idx = RecordIndex()
    for label, meta in enumerate(metas):
        idx.add(label, f"r{label}", meta, None)
    return idx


def _selected(raw: Any, metas: list[dict[str, Any]]) -> set[int]:
    """Labels admitted by ``raw``, checked to be the same from ``matches`` and from the bitmap index."""
    flt = parse_filter(raw)
    assert flt is not None
    by_matches = {label for label, meta in enumerate(metas) if flt.matches(meta)}
    by_index = set(_index_of(metas).evaluate(flt))
    assert by_index == by_matches, raw
    return by_matches


def test_true_never_equals_one() -> None:
    metas: list[dict[str, Any]] = [{"a": True}, {"a": 1}, {"a": 1.0}, {"a": False}, {"a": 0}]
    assert _selected({"a": 1}, metas) == {1, 2}
    assert _selected({"a": True}, metas) == {0}
    assert _selected({"a": 0}, metas) == {4}
    assert _selected({"a": False}, metas) == {3}
    assert _selected({"a": {"$in": [1]}}, metas) == {1, 2}
    assert _selected({"a": {"$in": [True]}}, metas) == {0}
    assert _selected({"a": {"$ne": True}}, metas) == {1, 2, 3, 4}
    assert _selected({"a": {"$gte": 0}}, metas) == {1, 2, 4}  # booleans are never in a range
    assert _selected({"a": {"$lt": 2}}, metas) == {1, 2, 4}


def test_int_equals_float() -> None:
    metas: list[dict[str, Any]] = [{"a": 1}, {"a": 1.0}, {"a": 1.5}, {"a": "1"}]
    assert _selected({"a": 1}, metas) == {0, 1}
    assert _selected({"a": 1.0}, metas) == {0, 1}
    assert _selected({"a": {"$in": [1.0]}}, metas) == {0, 1}
    assert _selected({"a": {"$nin": [1]}}, metas) == {2, 3}
    assert _selected({"a": {"$gte": 1}}, metas) == {0, 1, 2}
    assert _selected({"a": {"$gt": 1.0}}, metas) == {2}
    assert _selected({"a": {"$lte": 1}}, metas) == {0, 1}
    assert _selected({"a": "1"}, metas) == {3}


def test_ne_and_nin_match_records_lacking_the_field() -> None:
    metas: list[dict[str, Any]] = [{}, {"b": 1}, {"a": 1}, {"a": 2}, {"a": [1]}, {"a": None}, {"a": {"x": 1}}]
    assert _selected({"a": {"$ne": 1}}, metas) == {0, 1, 3, 4, 5, 6}
    assert _selected({"a": {"$nin": [1, 2]}}, metas) == {0, 1, 4, 5, 6}
    assert _selected({"a": {"$nin": []}}, metas) == set(range(len(metas)))
    assert _selected({"a": {"$in": []}}, metas) == set()
    assert _selected({"$not": {"a": 1}}, metas) == {0, 1, 3, 4, 5, 6}


def test_lists_and_objects_only_seen_by_exists() -> None:
    metas: list[dict[str, Any]] = [{"a": [1, 2]}, {"a": {"x": 1}}, {"a": None}, {}]
    assert _selected({"a": {"$exists": True}}, metas) == {0, 1, 2}
    assert _selected({"a": {"$exists": False}}, metas) == {3}
    assert _selected({"a": 1}, metas) == set()
    assert _selected({"a": {"$in": [1, 2]}}, metas) == set()
    assert _selected({"a": {"$gte": 0}}, metas) == set()
    assert _selected({"a": None}, metas) == {2}  # null is a value: only the record holding it
    assert _selected({"a": {"$ne": None}}, metas) == {0, 1, 3}


def test_ranges_compare_strings_only_to_strings() -> None:
    metas: list[dict[str, Any]] = [{"a": "5"}, {"a": 5}, {"a": "b"}, {"a": "B"}, {"a": "2024-01-02"}]
    assert _selected({"a": {"$gt": 1}}, metas) == {1}
    assert _selected({"a": {"$gt": "1"}}, metas) == {0, 2, 3, 4}
    assert _selected({"a": {"$lt": "a"}}, metas) == {0, 3, 4}  # code-point order: "B" < "a"
    assert _selected({"a": {"$gte": "2024-01-01", "$lt": "2024-02-01"}}, metas) == {4}
    assert _selected({"a": {"$lte": 10}}, metas) == {1}


def test_several_fields_and_operators_all_hold() -> None:
    metas: list[dict[str, Any]] = [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 3, "b": "x"}, {"b": "x"}]
    assert _selected({"a": 1, "b": "x"}, metas) == {0}
    assert _selected({"a": {"$gte": 1, "$lt": 3}}, metas) == {0, 1}
    assert _selected({"b": "x", "$or": [{"a": 3}, {"a": {"$exists": False}}]}, metas) == {2, 3}
    assert _selected({"$and": [{"b": "x"}, {"$not": {"a": 1}}]}, metas) == {2, 3}


# ---- property: the bitmap index agrees with ``matches`` -------------------------------------------

FIELDS = ("a", "b", "c")

scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([1.0, 0.0, -0.0, 0.5, -1.5, 2.0, 2.5]),
    st.text(alphabet="ab1B", max_size=2),
)
range_operands: st.SearchStrategy[Any] = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([1.0, 0.0, 0.5, -1.5, 2.0, 2.5]),
    st.text(alphabet="ab1B", max_size=2),
)
metadata_values: st.SearchStrategy[Any] = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.sampled_from(FIELDS), st.integers(0, 2), max_size=1),
)
metadatas: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.sampled_from(FIELDS), metadata_values, max_size=3
)

operator_entries: st.SearchStrategy[tuple[str, Any]] = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), scalars),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), range_operands),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(scalars, max_size=4)),
    st.tuples(st.just("$exists"), st.booleans()),
)
field_conditions: st.SearchStrategy[Any] = st.one_of(
    st.lists(operator_entries, min_size=1, max_size=3).map(dict),  # several operators: all must hold
    # (mapped so that one_of does not flatten the scalar branches and drown the operator objects)
    scalars.map(lambda v: v),  # shorthand for $eq
)
field_filters: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.sampled_from(FIELDS), field_conditions, min_size=1, max_size=3
)


def _extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"$and": xs}),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"$or": xs}),
        children.map(lambda f: {"$not": f}),
        # field conditions and logical operators side by side: an implicit AND
        st.tuples(field_filters, children).map(lambda t: {**t[0], "$not": t[1]}),
        st.tuples(field_filters, st.lists(children, min_size=1, max_size=2)).map(
            lambda t: {**t[0], "$or": t[1]}
        ),
    )


filters: st.SearchStrategy[dict[str, Any]] = st.recursive(field_filters, _extend, max_leaves=8)

labels = st.one_of(st.integers(0, 40), st.integers(2**32 - 4, 2**32 + 4), st.integers(2**62, 2**63 - 1))


def _check_agrees(idx: RecordIndex, live: Mapping[int, dict[str, Any]], raw: dict[str, Any]) -> None:
    flt = parse_filter(raw)
    assert flt is not None
    expected = {label for label, meta in live.items() if flt.matches(meta)}
    got = idx.evaluate(flt)
    assert set(got) == expected, raw
    # evaluate hands back a fresh bitmap: mutating it must not disturb the index.
    got.clear()
    assert set(idx.evaluate(flt)) == expected, raw


sources = st.sampled_from([None, "s1", "s2"])
# Steps after the initial records: add a record under a fresh label, or remove the n-th live record.
steps = st.one_of(
    st.tuples(st.just("add"), metadatas, sources),
    st.tuples(st.just("remove"), st.integers(0, 63), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(
    records=st.dictionaries(labels, st.tuples(metadatas, sources), max_size=12),
    raws=st.lists(filters, min_size=1, max_size=4),
    ops=st.lists(steps, max_size=8),
)
def test_index_agrees_with_matches(
    records: dict[int, tuple[dict[str, Any], str | None]],
    raws: list[dict[str, Any]],
    ops: list[tuple[str, Any, str | None]],
) -> None:
    idx = RecordIndex()
    live: dict[int, dict[str, Any]] = {}
    source_of: dict[int, str | None] = {}

    def add(label: int, meta: dict[str, Any], source: str | None) -> None:
        idx.add(label, f"id{label}", meta, source)
        live[label] = meta
        source_of[label] = source

    def remove(label: int) -> None:
        idx.remove(label, live.pop(label), source_of.pop(label))

    def check_all() -> None:
        assert len(idx) == len(live)
        assert set(idx.all) == set(live)
        assert idx.ids == {label: f"id{label}" for label in live}
        want_sources: dict[str, set[int]] = {}
        for label, src in source_of.items():
            if src is not None:
                want_sources.setdefault(src, set()).add(label)
        assert {s: set(bm) for s, bm in idx.sources.items()} == want_sources
        for raw in raws:
            _check_agrees(idx, live, raw)

    for label, (meta, source) in records.items():
        add(label, meta, source)
    check_all()  # also fills the sorted-value caches that later adds and removals must invalidate

    fresh = 2**40  # the engine never reuses a label: new records get labels never seen before
    for op, arg, source in ops:
        if op == "add":
            add(fresh, arg, source)
            fresh += 1
        elif live:
            remove(sorted(live)[arg % len(live)])
        check_all()

    for label in list(live):
        remove(label)
    check_all()
    assert not idx.sources


range_values = st.one_of(
    st.integers(-3, 3), st.sampled_from([0.5, 1.0, 2.5, -0.0]), st.text(alphabet="abB", max_size=2)
)
range_steps = st.one_of(
    st.tuples(st.just("add"), range_values),
    st.tuples(st.just("remove"), st.integers(0, 63)),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$eq"]), range_values),
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(range_steps, max_size=30))
def test_range_queries_follow_adds_and_removes(ops: list[tuple[str, Any]]) -> None:
    """Range operators read a cached sorted list of distinct values: adds and removes must refresh it.

    Queries are interleaved with the changes (not run after each), so a stale cache gets used.
    """
    idx = RecordIndex()
    live: dict[int, dict[str, Any]] = {}
    for label, (op, arg) in enumerate(ops):
        if op == "add":
            live[label] = {"f": arg}
            idx.add(label, f"id{label}", live[label], None)
        elif op == "remove":
            if live:
                victim = sorted(live)[arg % len(live)]
                idx.remove(victim, live.pop(victim), None)
        else:
            _check_agrees(idx, live, {"f": {op: arg}})


@settings(max_examples=200, deadline=None)
@given(raw=filters)
def test_generated_filters_parse_and_not_is_complement(raw: dict[str, Any]) -> None:
    flt = parse_filter(raw)
    assert flt is not None
    neg = parse_filter({"$not": raw})
    assert neg is not None
    metas: list[dict[str, Any]] = [{}, {"a": 1}, {"a": True, "b": "a"}, {"a": [1], "c": None}, {"b": 2.5}]
    for meta in metas:
        assert neg.matches(meta) is (not flt.matches(meta))
