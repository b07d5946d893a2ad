"""Calls as data: each client method builds a ``Call`` (operation, checked arguments, idempotence).

Transports (``_rest``, ``_grpc``) turn a ``Call`` into a request and the reply into the client's types;
the sync and async clients only send. Arguments are checked here, before any transport sees them, so that
a bad one raises the same error class whichever transport is in use (the server checks everything again).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecdb_client.errors import (
    DimensionMismatchError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidFilterError,
    InvalidIdError,
    InvalidMetadataError,
    InvalidNameError,
    InvalidSourceError,
    InvalidVectorError,
)

__all__ = ["IDEMPOTENT", "MODES", "Call", "Rows", "json_text"]

#: Operations that may be sent again after UNAVAILABLE / 503: reads, and upserts (writing the same records
#: by id twice leaves the same state). create/drop/delete are not retried: a retry could report a
#: different outcome than the first attempt had.
IDEMPOTENT = frozenset(
    {
        "list_collections",
        "get_collection",
        "upsert",
        "update",
        "replace_source",
        "get",
        "search",
        "count",
        "list_sources",
        "embed",
        "scroll",
        "list_snapshots",
        "set_text_index",
    }
)

#: Search modes: the vector index, the full-text index (BM25), or both fused.
MODES = ("vector", "text", "hybrid")

#: The server's rule for collection names; checked here too, since a name becomes part of a REST path.
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: Rows of an upsert: an (n, dim) array, or a list with None where a record's text is to be embedded.
Rows = np.ndarray | list[np.ndarray | None]


@dataclass(frozen=True, slots=True)
class Call:
    """One operation with checked arguments. ``op`` is the client method's name."""

    op: str
    args: dict[str, Any]

    @property
    def idempotent(self) -> bool:
        # create_collection with get_or_create: sending it again leaves the same collection.
        return self.op in IDEMPOTENT or bool(self.args.get("get_or_create"))

    # ---- builders ----------------------------------------------------------------------------------

    @classmethod
    def create_collection(
        cls,
        name: str,
        dim: int | None,
        metric: str | None,
        index: Mapping[str, Any] | None,
        embedding: Mapping[str, Any] | None,
        max_records: int | None = None,
        eviction: str | None = None,
        shards: int | None = None,
        replicas: int | None = None,
        text_index: Mapping[str, Any] | None = None,
        get_or_create: bool = False,
    ) -> Call:
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim < 2**32):
            raise InvalidConfigError(f"dim must be a positive integer, got {dim!r}", field="dim")
        args = {
            "name": _name(name),
            "dim": dim,
            "metric": metric,
            "index": _object(index, "index", InvalidArgumentError),
            "embedding": _object(embedding, "embedding", InvalidArgumentError),
            "max_records": _max_records(max_records),
            "eviction": eviction,
        }
        # Only when given: a server without sharding support keeps accepting the request.
        for key, value in (("shards", shards), ("replicas", replicas)):
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**32:
                    raise InvalidConfigError(f"{key} must be a positive integer, got {value!r}", field=key)
                args[key] = value
        if text_index is not None:  # only when given, like shards: older servers keep accepting the rest
            args["text_index"] = _object(text_index, "text_index", InvalidConfigError)
        if get_or_create:  # only when set, like shards: older servers keep accepting plain creates
            args["get_or_create"] = True
        return cls("create_collection", args)

    @classmethod
    def set_text_index(cls, name: str, spec: Mapping[str, Any] | None) -> Call:
        return cls(
            "set_text_index", {"name": _name(name), "spec": _object(spec, "text_index", InvalidConfigError)}
        )

    @classmethod
    def named(cls, op: str, name: str) -> Call:
        """get_collection, drop_collection, list_sources: one collection name."""
        return cls(op, {"name": _name(name)})

    @classmethod
    def upsert(
        cls,
        name: str,
        ids: Sequence[str],
        vectors: Any,
        texts: Sequence[str | None] | None,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        sources: Sequence[str | None] | None,
        ttl: float | None = None,
        expires_at: float | Sequence[float | None] | None = None,
    ) -> Call:
        id_list = _ids(ids)
        n = len(id_list)
        return cls(
            "upsert",
            {
                "name": _name(name),
                "ids": id_list,
                "vectors": _upsert_rows(vectors, n),
                "texts": _column(texts, n, "texts", str, InvalidArgumentError),
                "metadatas": _metadatas(metadatas, n),
                "sources": _column(sources, n, "sources", str, InvalidSourceError),
                **_expiry(ttl, expires_at, n),
            },
        )

    @classmethod
    def replace_source(
        cls,
        name: str,
        source: str,
        ids: Sequence[str],
        vectors: Any,
        texts: Sequence[str | None] | None,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
    ) -> Call:
        if not isinstance(source, str):
            raise InvalidSourceError(f"source must be a string, got {type(source).__name__}")
        id_list = _ids(ids)
        n = len(id_list)
        return cls(
            "replace_source",
            {
                "name": _name(name),
                "source": source,
                "ids": id_list,
                "vectors": _upsert_rows(vectors, n),
                "texts": _column(texts, n, "texts", str, InvalidArgumentError),
                "metadatas": _metadatas(metadatas, n),
            },
        )

    @classmethod
    def update(
        cls,
        name: str,
        ids: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        texts: Sequence[str | None] | None,
        sources: Sequence[str | None] | None,
    ) -> Call:
        id_list = _ids(ids)
        n = len(id_list)
        return cls(
            "update",
            {
                "name": _name(name),
                "ids": id_list,
                "metadatas": _metadatas(metadatas, n),
                "texts": _column(texts, n, "texts", str, InvalidArgumentError),
                "sources": _column(sources, n, "sources", str, InvalidSourceError),
            },
        )

    @classmethod
    def get(cls, name: str, ids: Sequence[str], include: Sequence[str] | None) -> Call:
        return cls("get", {"name": _name(name), "ids": _ids(ids), "include": _include(include)})

    @classmethod
    def delete(
        cls,
        name: str,
        ids: Sequence[str] | None,
        filter: Mapping[str, Any] | None,
        source: str | None,
        text_filter: Mapping[str, Any] | None = None,
    ) -> Call:
        # filter and text_filter together are one selector: the records matching both.
        given = [k for k, v in (("ids", ids), ("filter", filter), ("source", source)) if v is not None]
        if text_filter is not None and "filter" not in given:
            given.append("text_filter")
        if len(given) != 1:
            raise InvalidArgumentError(
                "delete takes exactly one of ids, filter (alone or with text_filter), source, "
                f"text_filter; got {given or 'none'}"
            )
        if source is not None and not isinstance(source, str):
            raise InvalidSourceError(f"source must be a string, got {type(source).__name__}")
        return cls(
            "delete",
            {
                "name": _name(name),
                "ids": None if ids is None else _ids(ids),
                "filter": _object(filter, "filter", InvalidFilterError),
                "source": source,
                "text_filter": _object(text_filter, "text_filter", InvalidFilterError),
            },
        )

    @classmethod
    def search(
        cls,
        name: str,
        vectors: Any,
        texts: Sequence[str] | str | None,
        k: int,
        filter: Mapping[str, Any] | None,
        include: Sequence[str] | None,
        params: Mapping[str, float] | None,
        score_threshold: float | None = None,
        mode: str = "vector",
        text_filter: Mapping[str, Any] | None = None,
        fusion: Mapping[str, Any] | None = None,
    ) -> Call:
        if mode not in MODES:
            raise InvalidArgumentError(f"mode must be one of {', '.join(MODES)}; got {mode!r}", field="mode")
        if mode == "vector" and (vectors is None) == (texts is None):
            raise InvalidArgumentError("search takes query vectors or query texts (exactly one)")
        if mode != "vector" and texts is None:
            raise InvalidArgumentError(f"mode {mode!r} needs query texts", field="texts")
        if mode == "text" and vectors is not None:
            raise InvalidArgumentError("mode 'text' takes query texts only, not vectors", field="vectors")
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise InvalidArgumentError(f"k must be an integer, got {k!r}")
        if k < 1:
            raise InvalidArgumentError(f"k must be at least 1, got {k}")
        return cls(
            "search",
            {
                "name": _name(name),
                "vectors": None if vectors is None else _query_rows(vectors),
                "texts": None if texts is None else _texts(texts),
                "k": int(k),
                "filter": _object(filter, "filter", InvalidFilterError),
                "include": _include(include),
                "params": _params(params),
                "score_threshold": _threshold(score_threshold),
                "mode": mode,
                "text_filter": _object(text_filter, "text_filter", InvalidFilterError),
                "fusion": _object(fusion, "fusion", InvalidArgumentError),
            },
        )

    @classmethod
    def count(
        cls, name: str, filter: Mapping[str, Any] | None, text_filter: Mapping[str, Any] | None = None
    ) -> Call:
        return cls(
            "count",
            {
                "name": _name(name),
                "filter": _object(filter, "filter", InvalidFilterError),
                "text_filter": _object(text_filter, "text_filter", InvalidFilterError),
            },
        )

    @classmethod
    def scroll(
        cls,
        name: str,
        cursor: str | None,
        limit: int,
        filter: Mapping[str, Any] | None,
        include: Sequence[str] | None,
        text_filter: Mapping[str, Any] | None = None,
    ) -> Call:
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgumentError(f"cursor must be a string (a page's next_cursor), got {cursor!r}")
        if isinstance(limit, bool) or not isinstance(limit, int | np.integer):
            raise InvalidArgumentError(f"limit must be an integer, got {limit!r}")
        if not 1 <= limit < 2**32:
            raise InvalidArgumentError(f"limit must be at least 1, got {limit}")
        return cls(
            "scroll",
            {
                "name": _name(name),
                "cursor": cursor,
                "limit": int(limit),
                "filter": _object(filter, "filter", InvalidFilterError),
                "include": _include(include),
                "text_filter": _object(text_filter, "text_filter", InvalidFilterError),
            },
        )

    @classmethod
    def snapshot(cls, op: str, name: str, snapshot: str | None, target: str | None = None) -> Call:
        """create_snapshot, delete_snapshot, restore_snapshot (``target``), list_snapshots."""
        return cls(
            op,
            {
                "name": _name(name),
                "snapshot": None if snapshot is None else _name(snapshot, "snapshot"),
                "target": None if target is None else _name(target),
            },
        )

    @classmethod
    def embed(cls, texts: Sequence[str] | str, model: str | None, collection: str | None) -> Call:
        return cls(
            "embed",
            {
                "texts": _texts(texts),
                "model": model,
                "collection": None if collection is None else _name(collection),
            },
        )


# ---- argument checks -------------------------------------------------------------------------------------


def json_text(value: Any, what: str, error: type[InvalidArgumentError]) -> str:
    """Strict JSON (no NaN or infinity, which JSON cannot carry); ``error`` names the bad argument."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise error(f"{what} is not JSON-serializable: {exc}") from exc


def _name(name: Any, what: str = "collection") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"invalid {what} name {name!r}: use 1-64 letters, digits, '_' or '-'", name=str(name)[:100]
        )
    return name


def _object(value: Mapping[str, Any] | None, what: str, error: type[InvalidArgumentError]) -> Any:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise error(f"{what} must be a JSON object (a dict), got {type(value).__name__}")
    out = dict(value)
    json_text(out, what, error)
    return out


def _max_records(value: Any) -> int | None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63
    ):
        raise InvalidConfigError(
            f"max_records must be a positive integer, got {value!r}", field="max_records"
        )
    return value


def _expiry(ttl: Any, expires_at: Any, n: int) -> dict[str, Any]:
    """``ttl`` and ``expires_at`` checked as the server checks them (positive, finite seconds)."""
    if ttl is not None and expires_at is not None:
        raise InvalidArgumentError("give ttl or expires_at, not both")
    if ttl is not None:
        return {"ttl": _seconds(ttl, "ttl"), "expires_at": None}
    if expires_at is None:
        return {"ttl": None, "expires_at": None}
    if isinstance(expires_at, Sequence) and not isinstance(expires_at, str):
        if len(expires_at) != n:
            raise InvalidArgumentError(
                f"{len(expires_at)} expires_at for {n} ids", expected=n, got=len(expires_at)
            )
        times = [None if t is None else _seconds(t, f"expires_at[{i}]") for i, t in enumerate(expires_at)]
        return {"ttl": None, "expires_at": times}
    return {"ttl": None, "expires_at": [_seconds(expires_at, "expires_at")] * n}


def _threshold(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgumentError(
            f"score_threshold must be a finite number, got {value!r}", field="score_threshold"
        )
    return float(value)


def _seconds(value: Any, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidArgumentError(f"{what} must be a positive number of seconds, got {value!r}", field=what)
    return float(value)


def _ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence | np.ndarray):
        raise InvalidIdError(f"ids must be a list of strings, got {type(ids).__name__}")
    out = list(ids)
    for i, rid in enumerate(out):
        if not isinstance(rid, str):
            raise InvalidIdError(f"id {i} must be a string, got {type(rid).__name__}", index=i)
    return out


def _texts(texts: Sequence[str] | str) -> list[str]:
    items = [texts] if isinstance(texts, str) else texts
    if not isinstance(items, Sequence):
        raise InvalidArgumentError(f"texts must be a string or a list of strings, got {type(texts).__name__}")
    out = list(items)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidArgumentError(f"text {i} must be a string, got {type(t).__name__}", index=i)
    return out


def _column(
    values: Sequence[Any] | None, n: int, what: str, kind: type, error: type[InvalidArgumentError]
) -> list[Any] | None:
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise error(f"{what} must be a list with one item per record, got {type(values).__name__}")
    out = list(values)
    if len(out) != n:
        raise error(f"{len(out)} {what} for {n} ids", expected=n)
    for i, v in enumerate(out):
        if v is not None and not isinstance(v, kind):
            raise error(f"{what} item {i} must be a {kind.__name__} or None, got {type(v).__name__}", index=i)
    return out


def _metadatas(values: Sequence[Mapping[str, Any] | None] | None, n: int) -> list[Any] | None:
    out = _column(values, n, "metadatas", Mapping, InvalidMetadataError)
    if out is None:
        return None
    rows = [None if m is None else dict(m) for m in out]
    for i, m in enumerate(rows):
        if m is not None:
            json_text(m, f"metadata of record {i}", InvalidMetadataError)
    return rows


def _include(include: Sequence[str] | None) -> list[str] | None:
    if include is None:
        return None
    if isinstance(include, str):
        raise InvalidArgumentError("include must be a list of field names, not one string")
    return list(include)


def _params(params: Mapping[str, float] | None) -> dict[str, float] | None:
    if params is None:
        return None
    if not isinstance(params, Mapping):
        raise InvalidArgumentError(f"params must be an object like {{'ef_search': 128}}, got {params!r}")
    out = dict(params)
    for key, value in out.items():
        if key == "target_recall":
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not 0 < value <= 1:
                raise InvalidArgumentError(
                    f"invalid search params: {key}: must be a number in (0, 1], got {value!r}", field=key
                )
            out[key] = float(value)
            continue
        if key not in ("ef_search", "nprobe"):
            raise InvalidArgumentError(f"invalid search params: {key}: unknown parameter", field=key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"invalid search params: {key}: must be a positive integer", field=key)
    return out


def _matrix(rows: Any, what: str) -> np.ndarray:
    """A 2-d float32 array with finite values; ragged or non-numeric input is an error."""
    if isinstance(rows, np.ndarray):
        if rows.dtype.kind not in "fiu":
            raise InvalidVectorError(f"{what} vectors must be numbers, got dtype {rows.dtype}")
        arr = rows
    else:
        lengths = [len(r) if isinstance(r, Sequence | np.ndarray) else -1 for r in rows]
        for i, length in enumerate(lengths):
            if length < 0:
                raise InvalidVectorError(f"{what} vector {i} is not a list of numbers", index=i)
            if length != lengths[0]:
                raise DimensionMismatchError(
                    f"{what} vector {i} has dimension {length}, vector 0 has {lengths[0]}", index=i
                )
        try:
            arr = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidVectorError(f"{what} vectors must hold only numbers: {exc}") from exc
    if arr.ndim != 2:
        raise DimensionMismatchError(f"{what} vectors must be a 2-d array, got {arr.ndim}-d")
    if arr.shape[0] and not arr.shape[1]:
        raise DimensionMismatchError(f"{what} vector 0 is empty", index=0, got=0)
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidVectorError(f"{what} vector {i} holds NaN, inf or a value beyond float32 range", index=i)
    return out


def _query_rows(vectors: Any) -> np.ndarray:
    if isinstance(vectors, np.ndarray) and vectors.ndim == 1:
        vectors = vectors.reshape(1, -1)
    elif isinstance(vectors, Sequence) and vectors and all(_is_number(x) for x in vectors):
        vectors = [vectors]  # one query vector given as a flat list
    return _matrix(vectors, "query")


def _upsert_rows(vectors: Any, n: int) -> Rows | None:
    if vectors is None:
        return None
    rows: Rows
    if isinstance(vectors, np.ndarray):
        rows = _matrix(vectors, "record")
    elif isinstance(vectors, Sequence) and not isinstance(vectors, str | bytes):
        if any(v is None for v in vectors):
            present = [i for i, v in enumerate(vectors) if v is not None]
            mat = _matrix([vectors[i] for i in present], "record") if present else None
            out: list[np.ndarray | None] = [None] * len(vectors)
            for j, i in enumerate(present):
                assert mat is not None
                out[i] = mat[j]
            rows = out
        else:
            rows = _matrix(list(vectors), "record") if len(vectors) else np.empty((0, 0), np.float32)
    else:
        raise InvalidVectorError(f"vectors must be an array or a list of lists, got {type(vectors).__name__}")
    if len(rows) != n:
        raise InvalidArgumentError(f"{len(rows)} vectors for {n} ids", expected=n)
    return rows


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.number) and not isinstance(x, bool)
