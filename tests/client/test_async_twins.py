"""``AsyncClient`` / ``AsyncCollection`` are the async twins of ``Client`` / ``Collection``: the same
public methods, parameters (names, kinds, order) and defaults. Return annotations differ only where a
twin returns the other twin's class."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from vecdb_client import aio, client

PAIRS = [(client.Client, aio.AsyncClient), (client.Collection, aio.AsyncCollection)]
#: Methods a single twin has on purpose: building one from the other's settings.
ONLY_ASYNC = {"like"}


def _public(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if callable(member) and (not name.startswith("_") or name == "__init__")
    }


def _params(fn: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=lambda c: c.__name__)
def test_same_methods_parameters_and_defaults(sync: type, async_: type) -> None:
    s, a = _public(sync), _public(async_)
    assert set(s) == set(a) - ONLY_ASYNC
    for name in s:
        assert _params(s[name]) == _params(a[name]), (
            f"{sync.__name__}.{name} and {async_.__name__}.{name} differ"
        )


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=lambda c: c.__name__)
def test_async_twin_methods_are_coroutines_or_iterators(sync: type, async_: type) -> None:
    for name, member in _public(async_).items():
        if name in ("__init__", "collection", "like"):  # no I/O
            continue
        assert inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member), name
