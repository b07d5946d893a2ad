"""The metadata filter language: parse, validate, evaluate one record.

A filter is JSON, close to what LangChain and Chroma users write::

    {"lang": "en"}                                   equality (shorthand for {"lang": {"$eq": "en"}})
    {"year": {"$gte": 2020, "$lt": 2024}}           several operators on one field: all must hold
    {"lang": "en", "year": {"$gt": 2020}}           several fields: all must hold
    {"$and": [f, ...]}  {"$or": [f, ...]}  {"$not": f}

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists``.

Semantics (the reference is ``Filter.matches``; the engine's bitmap index must agree with it):

- Fields are top-level metadata keys (a key with a dot in it is just a key). Only scalar values take part
  in comparisons: strings, numbers, booleans and null. A list or object value never equals anything and
  is never in a range; ``$exists`` sees it.
- Kinds do not mix: ``1`` equals ``1.0`` but not ``true`` or ``"1"``; ``$gt``/``$gte``/``$lt``/``$lte``
  take a number or a string and compare only with values of that kind (strings lexicographically by code
  point, so ISO dates work).
- ``$ne`` is ``$not $eq`` and ``$nin`` is ``$not $in``: a record that lacks the field matches them (as in
  MongoDB). ``$not`` is the complement among the collection's records.
- ``$exists: true`` matches records that have the key (whatever its value, null included).
- ``None`` and ``{}`` mean "no filter". An unknown operator, a malformed operand, an empty ``$and``/``$or``
  list or an empty operator object is an ``InvalidFilterError``, never a silent no-op.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from vecdb.errors import InvalidFilterError

__all__ = [
    "COMPARISON_OPS",
    "RANGE_OPS",
    "And",
    "Cmp",
    "Filter",
    "Not",
    "Or",
    "Scalar",
    "kind_key",
    "parse_filter",
]

Scalar = str | int | float | bool | None
Kind = Literal["s", "n", "b", "z"]

COMPARISON_OPS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
RANGE_OPS = frozenset({"$gt", "$gte", "$lt", "$lte"})
LOGICAL_OPS = frozenset({"$and", "$or", "$not"})
MAX_IN_VALUES = 10_000
MAX_DEPTH = 32


def kind_key(value: Any) -> tuple[Kind, Any] | None:
    """The comparison key of a metadata value: ``(kind, value)``, or None for lists and objects.

    ``("n", 1)`` and ``("n", 1.0)`` are equal and hash alike, as JSON numbers should; booleans get their
    own kind so that ``True`` never equals ``1``.
    """
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z", None)
    return None


@dataclass(frozen=True, slots=True)
class Cmp:
    """``field op value``. For ``$in``/``$nin`` ``value`` is a tuple of scalars; for ``$exists`` a bool."""

    field: str
    op: str
    value: Any

    def matches(self, metadata: Mapping[str, Any]) -> bool:  # noqa: PLR0911
        if self.op == "$exists":
            return (self.field in metadata) is self.value
        if self.op == "$ne":
            return not Cmp(self.field, "$eq", self.value).matches(metadata)
        if self.op == "$nin":
            return not Cmp(self.field, "$in", self.value).matches(metadata)
        if self.field not in metadata:
            return False
        key = kind_key(metadata[self.field])
        if key is None:
            return False
        if self.op == "$eq":
            return key == kind_key(self.value)
        if self.op == "$in":
            return any(key == kind_key(v) for v in self.value)
        want = kind_key(self.value)
        assert want is not None
        if key[0] != want[0]:
            return False
        a, b = key[1], want[1]
        if self.op == "$gt":
            return bool(a > b)
        if self.op == "$gte":
            return bool(a >= b)
        if self.op == "$lt":
            return bool(a < b)
        return bool(a <= b)  # $lte


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Filter, ...]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return all(f.matches(metadata) for f in self.items)


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Filter, ...]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return any(f.matches(metadata) for f in self.items)


@dataclass(frozen=True, slots=True)
class Not:
    item: Filter

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return not self.item.matches(metadata)


Filter = Cmp | And | Or | Not


def parse_filter(raw: Any) -> Filter | None:
    """Validate ``raw`` and return its parsed form; None when ``raw`` is None or ``{}`` (no filter).

    Raises ``InvalidFilterError`` naming the offending part.
    """
    if raw is None:
        return None
    if isinstance(raw, Mapping) and not raw:
        return None
    return _parse(raw, "filter", 0)


def _parse(raw: Any, where: str, depth: int) -> Filter:
    if depth > MAX_DEPTH:
        raise InvalidFilterError(f"{where}: filter nested deeper than {MAX_DEPTH} levels", path=where)
    if not isinstance(raw, Mapping):
        raise InvalidFilterError(f"{where}: a filter must be a JSON object, got {_type(raw)}", path=where)
    if not raw:
        raise InvalidFilterError(f"{where}: empty filter object", path=where)
    parts: list[Filter] = []
    for key, value in raw.items():
        at = f"{where}.{key}"
        if not isinstance(key, str) or not key:
            raise InvalidFilterError(f"{where}: field names must be non-empty strings", path=where)
        if key in ("$and", "$or"):
            if not isinstance(value, list | tuple) or not value:
                raise InvalidFilterError(f"{at}: expects a non-empty list of filters", path=at)
            items = tuple(_parse(v, f"{at}[{i}]", depth + 1) for i, v in enumerate(value))
            parts.append(And(items) if key == "$and" else Or(items))
        elif key == "$not":
            parts.append(Not(_parse(value, at, depth + 1)))
        elif key.startswith("$"):
            raise InvalidFilterError(
                f"{at}: unknown logical operator {key!r} (use $and, $or, $not, or a field name)", path=at
            )
        else:
            parts.extend(_parse_field(key, value, at))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _parse_field(field: str, raw: Any, where: str) -> list[Filter]:
    if not isinstance(raw, Mapping):
        return [Cmp(field, "$eq", _scalar(raw, where))]
    if not raw:
        raise InvalidFilterError(f"{where}: empty operator object", path=where)
    out: list[Filter] = []
    for op, value in raw.items():
        at = f"{where}.{op}"
        if not isinstance(op, str) or op not in COMPARISON_OPS:
            hint = "" if isinstance(op, str) and op.startswith("$") else " (nested objects cannot be matched)"
            raise InvalidFilterError(f"{at}: unknown operator {op!r}{hint}", path=at)
        if op == "$exists":
            if not isinstance(value, bool):
                raise InvalidFilterError(f"{at}: expects true or false, got {_type(value)}", path=at)
            out.append(Cmp(field, op, value))
        elif op in ("$in", "$nin"):
            if not isinstance(value, list | tuple):
                raise InvalidFilterError(f"{at}: expects a list of values, got {_type(value)}", path=at)
            if len(value) > MAX_IN_VALUES:
                raise InvalidFilterError(f"{at}: more than {MAX_IN_VALUES} values", path=at)
            out.append(Cmp(field, op, tuple(_scalar(v, f"{at}[{i}]") for i, v in enumerate(value))))
        elif op in RANGE_OPS:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise InvalidFilterError(f"{at}: expects a number or a string, got {_type(value)}", path=at)
            out.append(Cmp(field, op, _scalar(value, at)))
        else:
            out.append(Cmp(field, op, _scalar(value, at)))
    return out


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidFilterError(f"{where}: {value} is not a finite number", path=where)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise InvalidFilterError(
        f"{where}: expects a string, number, boolean or null, got {_type(value)}", path=where
    )


def _type(value: Any) -> str:
    names: dict[type, str] = {dict: "an object", list: "a list", tuple: "a list"}
    return names.get(type(value), type(value).__name__)
