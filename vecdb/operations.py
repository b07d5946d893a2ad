"""Every operation vecdb serves, declared once.

An operation is named as the engine method that serves it (on ``DatabaseAPI`` or ``CollectionAPI``,
``target``) and as the metrics' ``operation`` label. Derived from this table: the server's
``OPERATIONS`` / ``WRITE_OPERATIONS`` (auth: a read-only key may call what does not write), the methods a
shard actor serves (``vecdb.cluster``). Checked against it by tests: the REST routes and gRPC methods the
server has, and the client's retry set (``vecdb_client._calls.IDEMPOTENT``, which cannot import vecdb).

A leaf module: it imports nothing from vecdb.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BY_NAME", "OPERATIONS", "Operation", "Route", "Target"]

#: Which engine object has the method: the database, or one collection (the request names it).
Target = Literal["database", "collection"]


@dataclass(frozen=True, slots=True)
class Route:
    """A REST route: method and path (FastAPI's syntax)."""

    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation. ``writes``: changes state (needs an admin key). ``idempotent``: sending it again
    after an ``unavailable`` error leaves the same state and answer (the client retries it).
    ``streams``: one of its gRPC methods streams (requests or responses)."""

    name: str
    target: Target
    writes: bool
    idempotent: bool
    routes: tuple[Route, ...]
    rpcs: tuple[str, ...]
    streams: bool = False


_COL = "/v1/collections/{name}"


def _op(
    name: str,
    target: Target,
    *routes: tuple[Literal["GET", "POST", "PUT", "DELETE"], str],
    writes: bool,
    idempotent: bool,
    rpcs: tuple[str, ...] = (),
    streams: bool = False,
) -> Operation:
    rpc = "".join(part.title() for part in name.split("_"))
    return Operation(
        name, target, writes, idempotent, tuple(Route(m, p) for m, p in routes), rpcs or (rpc,), streams
    )


#: In the order the server lists them.
OPERATIONS: tuple[Operation, ...] = (
    _op("create_collection", "database", ("POST", "/v1/collections"), writes=True, idempotent=False),
    _op("list_collections", "database", ("GET", "/v1/collections"), writes=False, idempotent=True),
    _op("get_collection", "database", ("GET", _COL), writes=False, idempotent=True),
    _op("drop_collection", "database", ("DELETE", _COL), writes=True, idempotent=False),
    _op("set_text_index", "collection", ("PUT", f"{_COL}/text_index"), writes=True, idempotent=True),
    _op(
        "upsert",
        "collection",
        ("POST", f"{_COL}/upsert"),
        writes=True,
        idempotent=True,
        rpcs=("Upsert", "UpsertStream"),
        streams=True,
    ),
    _op("get", "collection", ("POST", f"{_COL}/get"), writes=False, idempotent=True),
    _op(
        "delete",
        "collection",
        ("POST", f"{_COL}/delete"),
        ("DELETE", f"{_COL}/sources/{{source:path}}"),
        writes=True,
        idempotent=False,
    ),
    _op("update", "collection", ("POST", f"{_COL}/update"), writes=True, idempotent=True),
    _op(
        "replace_source",
        "collection",
        ("PUT", f"{_COL}/sources/{{source:path}}"),
        writes=True,
        idempotent=True,
    ),
    _op("search", "collection", ("POST", f"{_COL}/search"), writes=False, idempotent=True),
    _op("count", "collection", ("GET", f"{_COL}/count"), writes=False, idempotent=True),
    _op("list_sources", "collection", ("GET", f"{_COL}/sources"), writes=False, idempotent=True),
    _op("embed", "database", ("POST", "/v1/embed"), writes=False, idempotent=True),
    _op("scroll", "collection", ("POST", f"{_COL}/scroll"), writes=False, idempotent=True, streams=True),
    _op("create_snapshot", "database", ("POST", f"{_COL}/snapshots"), writes=True, idempotent=False),
    _op("list_snapshots", "database", ("GET", f"{_COL}/snapshots"), writes=False, idempotent=True),
    _op(
        "delete_snapshot",
        "database",
        ("DELETE", f"{_COL}/snapshots/{{snapshot}}"),
        writes=True,
        idempotent=False,
    ),
    _op(
        "restore_snapshot",
        "database",
        ("POST", f"{_COL}/snapshots/{{snapshot}}/restore"),
        writes=True,
        idempotent=False,
    ),
)

BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}
