"""Helpers shared by the client tests (``tests/client``): clients of a real server over either transport,
server start/stop with a clean-exit check, and transcripts of a script for comparing transports.

A transcript is a list of ``(label, "ok", value)`` or ``(label, "error", class name, details)`` entries,
with every client value normalized to plain Python (records and hits as dicts, arrays as lists) and the
script's collection name replaced by ``"<col>"``, so that runs under different names compare equal.
``assert_congruent`` compares two transcripts, floats to a tolerance.

``conftest.py`` puts ``tests/e2e`` on ``sys.path`` before this module is imported (for ``serverproc``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from serverproc import ServerProcess, launch

from vecdb_client import AsyncClient, AsyncCollection, Client, Collection, VecDBError
from vecdb_client.types import CollectionInfo, Hit, Record, SourceInfo

__all__ = [
    "TRANSPORTS",
    "StartServer",
    "Step",
    "assert_congruent",
    "async_client_for",
    "client_for",
    "run_script",
    "run_script_async",
    "script_steps",
    "start_server",
    "stop_checked",
]

#: The two transports every client test runs over.
TRANSPORTS = ("rest", "grpc")

#: ``server_factory``'s type (conftest): ``start(*args, wait=True, rest_port=None, grpc_port=None)``.
StartServer = Callable[..., ServerProcess]

#: One step of a script: called with a Client or an AsyncClient (awaited when it returns an awaitable).
Step = tuple[str, Callable[[Any], Any]]


# ---- clients and servers ------------------------------------------------------------------------------


def client_for(transport: str, rest_url: str, grpc_target: str, **kwargs: Any) -> Client:
    """A ``Client`` over ``transport``: REST to ``rest_url``, or gRPC (``prefer_grpc``) to ``grpc_target``."""
    if transport == "grpc":
        return Client(rest_url, grpc_url=grpc_target, prefer_grpc=True, **kwargs)
    assert transport == "rest", transport
    return Client(rest_url, **kwargs)


def async_client_for(transport: str, rest_url: str, grpc_target: str, **kwargs: Any) -> AsyncClient:
    """``client_for`` for ``AsyncClient``."""
    if transport == "grpc":
        return AsyncClient(rest_url, grpc_url=grpc_target, prefer_grpc=True, **kwargs)
    assert transport == "rest", transport
    return AsyncClient(rest_url, **kwargs)


def start_server(
    base: Path,
    *args: str,
    rest_port: int | None = None,
    grpc_port: int | None = None,
    wait: bool = True,
) -> ServerProcess:
    """``vecdb serve`` over ``base/data`` (log under ``base/logs``); waits for /readyz unless ``wait`` is
    False."""
    sp = launch(base / "data", base / "logs", *args, rest_port=rest_port, grpc_port=grpc_port)
    if wait:
        sp.wait_ready()
    return sp


def stop_checked(servers: Sequence[ServerProcess]) -> None:
    """SIGTERM every server a test did not stop itself; fail unless each exits 0 (and none exited alone)."""
    failures = []
    for sp in servers:
        if sp.exit_checked:
            continue
        if sp.proc.poll() is not None:
            failures.append(f"server {sp.rest_url} exited by itself with {sp.proc.returncode}:\n{sp.log()}")
            continue
        rc = sp.stop()
        if rc != 0:
            failures.append(f"server {sp.rest_url} exited {rc} after SIGTERM:\n{sp.log()}")
    assert not failures, "\n".join(failures)


# ---- transcripts --------------------------------------------------------------------------------------


def normalize(value: Any, name: str) -> Any:  # noqa: PLR0911 (one case per kind of value)
    """``value`` as plain Python: client types as dicts, arrays as lists, ``name`` as ``"<col>"``."""
    if isinstance(value, Record | Hit | CollectionInfo):
        return normalize(value.to_dict(), name)
    if isinstance(value, SourceInfo):
        return {"source": value.source, "count": value.count}
    if isinstance(value, Collection | AsyncCollection):
        return {"collection": normalize(value.name, name)}
    if isinstance(value, np.ndarray):
        return {"ndarray": str(value.dtype), "shape": list(value.shape), "data": value.tolist()}
    if isinstance(value, dict):
        return {normalize(k, name): normalize(v, name) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v, name) for v in value]
    if isinstance(value, str):
        return "<col>" if value == name else value
    return value


def _error(label: str, exc: VecDBError, name: str) -> tuple[Any, ...]:
    return (label, "error", type(exc).__name__, normalize(exc.details, name))


def run_script(client: Client, name: str, steps: Sequence[Step]) -> list[tuple[Any, ...]]:
    """The transcript of ``steps`` through ``client``."""
    out: list[tuple[Any, ...]] = []
    for label, step in steps:
        try:
            out.append((label, "ok", normalize(step(client), name)))
        except VecDBError as exc:
            out.append(_error(label, exc, name))
    return out


async def run_script_async(client: AsyncClient, name: str, steps: Sequence[Step]) -> list[tuple[Any, ...]]:
    """The transcript of ``steps`` through ``client`` (each step's coroutine awaited)."""
    out: list[tuple[Any, ...]] = []
    for label, step in steps:
        try:
            result = step(client)
            if inspect.isawaitable(result):
                result = await result
            out.append((label, "ok", normalize(result, name)))
        except VecDBError as exc:
            out.append(_error(label, exc, name))
    return out


def _diff(a: Any, b: Any, tol: float, path: str) -> str | None:  # noqa: PLR0911 (one case per kind)
    """Where ``a`` and ``b`` differ (floats to ``tol``, absolute), or None."""
    if type(a) is float and type(b) is float:
        if math.isclose(a, b, rel_tol=0.0, abs_tol=tol):
            return None
        return f"{path}: {a!r} != {b!r} (tolerance {tol})"
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            found = _diff(a[k], b[k], tol, f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(a, list | tuple):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}:\n  {a!r}\n  {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _diff(x, y, tol, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def assert_congruent(a: Any, b: Any, tol: float = 1e-6, what: str = "transcripts") -> None:
    """``a`` equals ``b``, floats to ``tol``; the message names the first difference."""
    found = _diff(a, b, tol, "$")
    assert found is None, f"{what} differ at {found}"


# ---- the script ---------------------------------------------------------------------------------------

DIM = 4
_IDS = ["a", "b", "c", "d", "e", "f"]
_VECTORS = np.array(
    [[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 1, 0, 0], [0, 0.8, 0.6, 0], [0, 0, 1, 0], [0.1, 0.2, 0.3, 0.4]],
    dtype=np.float32,
)
_METAS: list[dict[str, Any] | None] = [
    {"lang": "en", "year": 2019},
    {"lang": "en", "year": 2021, "tags": ["x", "y"]},
    {"lang": "fr", "year": 2022},
    None,
    {"lang": "de", "year": 2024, "nested": {"k": [1, 2.5, None, True]}},
    {"lang": "en", "year": 2023, "big": 2**53 + 1},
]
_TEXTS: list[str | None] = ["alpha", "beta", None, "délta ✓", "epsilon", ""]
_SOURCES: list[str | None] = ["s/1", "s/1", "s/2", None, "s/2", "s/3"]


def script_steps(name: str) -> list[Step]:
    """A small script over collection ``name`` touching every method, with a few errors on purpose."""
    q = np.array([1, 0.05, 0, 0], dtype=np.float64)  # 1-d float64 query
    return [
        ("create", lambda c: c.create_collection(name, dim=DIM, metric="cosine", index={"type": "flat"})),
        ("in list", lambda c: _in_list(c, name)),
        ("upsert array", lambda c: c.collection(name).upsert(_IDS, _VECTORS, _TEXTS, _METAS, _SOURCES)),
        ("upsert lists", lambda c: c.collection(name).upsert(["a"], [[1, 0, 0, 0.5]], texts=["alpha 2"])),
        ("get default", lambda c: c.collection(name).get(["a", "missing", "d", "e"])),
        ("get vector", lambda c: c.collection(name).get(["b", "f"], include=["vector", "source"])),
        ("get ids only", lambda c: c.collection(name).get(["c"], include=[])),
        ("search 1-d", lambda c: c.collection(name).search(q, k=3)),
        (
            "search batch",
            lambda c: c.collection(name).search(
                _VECTORS[:2], k=2, filter={"year": {"$gte": 2020}}, include=["metadata", "vector"]
            ),
        ),
        ("search params", lambda c: c.collection(name).search([0, 1, 0, 0], k=10, params={"ef_search": 16})),
        ("count", lambda c: c.collection(name).count()),
        ("count filter", lambda c: c.collection(name).count(filter={"lang": {"$in": ["en", "fr"]}})),
        ("sources", lambda c: c.collection(name).list_sources()),
        ("info", lambda c: c.collection(name).info()),
        ("wrong dim", lambda c: c.collection(name).upsert(["z"], [[1, 2, 3]])),
        ("k zero", lambda c: c.collection(name).search(q, k=0)),
        ("bad filter", lambda c: c.collection(name).count(filter={"year": {"$near": 1}})),
        ("delete ids", lambda c: c.collection(name).delete(["a", "missing"])),
        ("delete filter", lambda c: c.collection(name).delete(filter={"lang": "fr"})),
        ("delete source", lambda c: c.collection(name).delete(source="s/2")),
        ("count after", lambda c: c.collection(name).count()),
        ("sources after", lambda c: c.collection(name).list_sources()),
        ("search after", lambda c: c.collection(name).search(q, k=10, include=["text", "source"])),
        ("embed", lambda c: c.embed(["hello world", "vector databases"])),
        ("drop", lambda c: c.drop_collection(name)),
        ("gone", lambda c: c.get_collection(name)),
    ]


async def _in_list_async(c: AsyncClient, name: str) -> bool:
    return name in await c.list_collections()


def _in_list(c: Client | AsyncClient, name: str) -> Any:
    if isinstance(c, AsyncClient):
        return _in_list_async(c, name)
    return name in c.list_collections()
