"""REST: a ``Call`` as an HTTP request under /v1, the JSON reply as the client's types, errors rebuilt."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np

from vecdb_client._calls import Call, json_text
from vecdb_client.errors import InvalidArgumentError, UnavailableError, VecDBError, error_class_for_code
from vecdb_client.types import CollectionInfo, Hit, Record, SnapshotInfo, SourceInfo

__all__ = ["HttpRequest", "decode", "encode", "error_from_response"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    content: bytes | None = None
    params: dict[str, str] | None = None


def _col(name: str, rest: str = "") -> str:
    return f"/v1/collections/{quote(name, safe='')}{rest}"


def _body(method: str, path: str, body: dict[str, Any]) -> HttpRequest:
    body = {k: v for k, v in body.items() if v is not None}
    return HttpRequest(method, path, json_text(body, "request", InvalidArgumentError).encode())


def _vector_lists(rows: Any) -> list[Any]:
    if isinstance(rows, np.ndarray):
        return rows.tolist()  # type: ignore[no-any-return]
    return [None if r is None else r.tolist() for r in rows]


def _packed(rows: np.ndarray) -> dict[str, Any]:
    """Vectors packed for REST: base64 of little-endian float32 values, row after row, with their dim.
    The server reads them with ``np.frombuffer``: no float text to write or parse (a 384-d vector is
    ~8 KB of JSON numbers, 2 KB packed)."""
    arr = np.ascontiguousarray(rows, dtype="<f4")
    return {"dim": int(arr.shape[1]) if arr.size else 0, "data": base64.b64encode(arr.tobytes()).decode()}


def _upsert_vectors(rows: Any) -> Any:
    # Packed when every record has a vector; a list with nulls (texts to embed) stays JSON.
    return _packed(rows) if isinstance(rows, np.ndarray) else _vector_lists(rows)


def encode(call: Call) -> HttpRequest:  # noqa: PLR0911 (one case per operation)
    a = call.args
    match call.op:
        case "create_collection":
            return _body("POST", "/v1/collections", a)
        case "list_collections":
            return HttpRequest("GET", "/v1/collections")
        case "get_collection":
            return HttpRequest("GET", _col(a["name"]))
        case "drop_collection":
            return HttpRequest("DELETE", _col(a["name"]))
        case "upsert":
            vectors = None if a["vectors"] is None else _upsert_vectors(a["vectors"])
            body = {k: a[k] for k in ("ids", "texts", "metadatas", "sources", "ttl", "expires_at")}
            return _body("POST", _col(a["name"], "/upsert"), {**body, "vectors": vectors})
        case "update":
            body = {k: a[k] for k in ("ids", "metadatas", "texts", "sources")}
            return _body("POST", _col(a["name"], "/update"), body)
        case "replace_source":
            vectors = None if a["vectors"] is None else _vector_lists(a["vectors"])
            body = {k: a[k] for k in ("ids", "texts", "metadatas")}
            path = _col(a["name"], f"/sources/{quote(a['source'], safe='')}")
            return _body("PUT", path, {**body, "vectors": vectors})
        case "get":
            return _body("POST", _col(a["name"], "/get"), {"ids": a["ids"], "include": a["include"]})
        case "set_text_index":  # the spec, or null to drop the index
            spec = json_text(a["spec"], "text_index", InvalidArgumentError).encode()
            return HttpRequest("PUT", _col(a["name"], "/text_index"), spec)
        case "delete":
            body = {k: a[k] for k in ("ids", "filter", "source", "text_filter")}
            return _body("POST", _col(a["name"], "/delete"), body)
        case "search":
            vectors = None if a["vectors"] is None else _packed(a["vectors"])
            keys = ("texts", "k", "filter", "include", "params", "score_threshold", "text_filter", "fusion")
            body = {k: a[k] for k in keys}
            # mode only when not the default, so that a server from before it takes vector searches
            mode = None if a["mode"] == "vector" else a["mode"]
            return _body("POST", _col(a["name"], "/search"), {**body, "vectors": vectors, "mode": mode})
        case "count":
            params = {
                key: json_text(a[key], key, InvalidArgumentError)
                for key in ("filter", "text_filter")
                if a[key] is not None
            }
            return HttpRequest("GET", _col(a["name"], "/count"), params=params or None)
        case "list_sources":
            return HttpRequest("GET", _col(a["name"], "/sources"))
        case "embed":
            return _body("POST", "/v1/embed", a)
        case "scroll":
            body = {k: a[k] for k in ("cursor", "limit", "filter", "include", "text_filter")}
            return _body("POST", _col(a["name"], "/scroll"), body)
        case "create_snapshot":
            return _body("POST", _col(a["name"], "/snapshots"), {"name": a["snapshot"]})
        case "list_snapshots":
            return HttpRequest("GET", _col(a["name"], "/snapshots"))
        case "delete_snapshot":
            return HttpRequest("DELETE", _col(a["name"], f"/snapshots/{a['snapshot']}"))
        case "restore_snapshot":
            path = _col(a["name"], f"/snapshots/{a['snapshot']}/restore")
            return _body("POST", path, {"target": a["target"]})
    raise AssertionError(f"unknown operation {call.op}")


def decode(call: Call, body: Any) -> Any:  # noqa: PLR0911 (one case per operation)
    match call.op:
        case "create_collection" | "get_collection":
            return info_from_dict(body)
        case "list_collections":
            return list(body["collections"])
        case "drop_collection":
            return None
        case "upsert" | "delete" | "count" | "replace_source" | "update":
            return int(body["count"])
        case "get":
            return [Record(**_fields(r)) for r in body["records"]]
        case "search":
            return [[Hit(**_fields(h)) for h in hits] for hits in body["results"]]
        case "list_sources":
            return [SourceInfo(s["source"], int(s["count"])) for s in body["sources"]]
        case "embed":
            return np.asarray(body["vectors"], dtype=np.float32).reshape(-1, body["dim"]), body["model"]
        case "scroll":
            return [Record(**_fields(r)) for r in body["records"]], body.get("next_cursor")
        case "create_snapshot":
            return snapshot_from_dict(body)
        case "list_snapshots":
            return [snapshot_from_dict(s) for s in body["snapshots"]]
        case "delete_snapshot":
            return None
        case "restore_snapshot":
            return info_from_dict(body)
        case "set_text_index":
            return body["text_index"]
    raise AssertionError(f"unknown operation {call.op}")


_RECORD_FIELDS = ("id", "text", "metadata", "source", "score", "explain")


def _fields(d: dict[str, Any]) -> dict[str, Any]:
    # Known fields only: a newer server may add some.
    out = {k: d[k] for k in _RECORD_FIELDS if k in d}
    if out.get("metadata") is None:
        out["metadata"] = {}
    if d.get("vector") is not None:
        out["vector"] = np.asarray(d["vector"], dtype=np.float32)
    return out


def info_from_dict(d: dict[str, Any]) -> CollectionInfo:
    return CollectionInfo(
        name=d["name"],
        dim=int(d["dim"]),
        metric=d["metric"],
        index=d["index"],
        count=int(d["count"]),
        sources=int(d["sources"]),
        index_state=d["index_state"],
        seq=int(d["seq"]),
        checkpoint_seq=int(d["checkpoint_seq"]),
        embedding=d.get("embedding"),
        capacity=d.get("capacity"),
        text_index=d.get("text_index"),
    )


def snapshot_from_dict(d: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(
        collection=d["collection"],
        name=d["name"],
        created_at=d["created_at"],
        seq=int(d["seq"]),
        records=int(d["records"]),
        dim=int(d["dim"]),
        metric=d["metric"],
        bytes=int(d["bytes"]),
    )


def error_from_response(status: int, body: Any, text: str) -> VecDBError:
    """The error a non-2xx reply stands for: the class the server named, else one chosen by status."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("code"), str):
        cls = error_class_for_code(err["code"])
        details = err.get("details")
        exc = cls(str(err.get("message", "")))
        exc.details = dict(details) if isinstance(details, dict) else {}
        return exc
    # Not a vecdb reply (a proxy, a server still starting): keep the status and the start of the body.
    if status == 503:
        return UnavailableError(f"HTTP 503: {text[:200]}", http_status=status)
    return VecDBError(f"HTTP {status}: {text[:200]}", http_status=status)
