"""Wire mapping in one place: protobuf messages <-> engine values, and JSON text fields.

Pure functions, each ``from_proto_*`` / ``to_proto_*`` pair round-trips (tests/server/test_convert.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from vecdb.errors import InvalidArgumentError, InvalidMetadataError, VecDBError
from vecdb.server._generated import vecdb_pb2 as pb
from vecdb.types import DEFAULT_INCLUDE, Hit, Record, SnapshotInfo, SourceInfo

__all__ = [
    "from_base64_vectors",
    "from_proto_expiry",
    "from_proto_include",
    "from_proto_params",
    "from_proto_records",
    "from_proto_text_index",
    "from_proto_vectors",
    "json_or_none",
    "parse_json_body",
    "to_base64_vectors",
    "to_json_text",
    "to_proto_collection_info",
    "to_proto_hit",
    "to_proto_include",
    "to_proto_record",
    "to_proto_records",
    "to_proto_source",
    "to_proto_text_index",
    "to_proto_vectors",
]


def to_proto_vectors(vectors: Any) -> pb.Vectors:
    arr = np.ascontiguousarray(vectors, dtype="<f4")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    return pb.Vectors(dim=arr.shape[1] if arr.size else 0, data=arr.tobytes())


def from_proto_vectors(msg: pb.Vectors, what: str = "vectors") -> np.ndarray:
    """(n, dim) float32 from packed bytes; a malformed payload is an InvalidArgumentError."""
    if msg.dim == 0:
        if msg.data:
            raise InvalidArgumentError(f"{what}: dim is 0 but data is not empty")
        return np.empty((0, 0), dtype=np.float32)
    if len(msg.data) % (4 * msg.dim):
        raise InvalidArgumentError(
            f"{what}: {len(msg.data)} bytes is not a whole number of {msg.dim}-d float32 vectors"
        )
    return np.frombuffer(msg.data, dtype="<f4").reshape(-1, msg.dim)


def json_or_none(text: str, what: str, error: type[VecDBError] = InvalidArgumentError) -> Any:
    """Parse a JSON text field; the empty string means None.

    The standard library parser, as REST's: it keeps integers beyond 64 bits exact (orjson would turn
    them into floats), so the engine rejects them the same way whichever transport brought them.
    """
    if not text:
        return None
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except ValueError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # nesting deeper than the parser's stack: no JSON we keep is that deep
        raise error(f"{what} is nested too deeply to parse") from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a float")
    return value


# orjson turns an integer beyond 64 bits into a float (the standard library keeps it exact): such a float
# is at least 2**63 in magnitude, and a parsed body holding one is parsed again by the standard library.
_BIG = float(2**63)


def _holds_big_float(value: Any) -> bool:
    """Whether a parsed body holds a float of magnitude >= 2**63 (a walk over its containers; lists of
    numbers, such as vectors, compared in C: ~0.3 ms for a 500-record upsert)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is list:
            try:  # a list of numbers (vectors): compared in C
                if v and (max(v) >= _BIG or min(v) <= -_BIG):
                    return True
                continue
            except TypeError:
                stack.extend(v)
        elif type(v) is dict:
            stack.extend(v.values())
        elif type(v) is float and abs(v) >= _BIG:
            return True
    return False


def parse_json_body(body: bytes) -> Any:
    """A REST request body, exactly as the standard library's ``json.loads`` parses it, only faster.

    orjson parses the body; where its answer could differ from the standard library's, the body goes to
    ``json.loads``, which then gives the same value or the same ``JSONDecodeError`` as before: a body
    orjson refuses (NaN, Infinity and 1e400, which the standard library accepts; lone surrogates; a
    byte-order mark or UTF-16; nesting past orjson's depth) and integers beyond 64 bits. Floats round-trip
    the same in both; duplicate keys keep the last in both.
    """
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)
    if _holds_big_float(value):  # perhaps an integer beyond 64 bits (or a float that large: same value)
        return json.loads(body)
    return value


def to_base64_vectors(vectors: Any) -> dict[str, Any]:
    """Vectors in REST's binary form, ``{"dim": d, "data": base64}``: the bytes of little-endian
    float32 values, row after row (gRPC's ``Vectors`` as JSON)."""
    arr = np.ascontiguousarray(vectors, dtype="<f4")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    return {"dim": int(arr.shape[1]) if arr.size else 0, "data": base64.b64encode(arr.tobytes()).decode()}


def from_base64_vectors(dim: int, data: str, what: str = "vectors") -> np.ndarray:
    """(n, dim) float32 from REST's binary form (``to_base64_vectors``); a malformed payload is an
    InvalidArgumentError, as a malformed gRPC ``Vectors`` is (``from_proto_vectors``)."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgumentError(f"{what}: data is not valid base64 ({exc})") from None
    if dim < 0:
        raise InvalidArgumentError(f"{what}: dim must not be negative, got {dim}")
    if dim == 0:
        if raw:
            raise InvalidArgumentError(f"{what}: dim is 0 but data is not empty")
        return np.empty((0, 0), dtype=np.float32)
    if len(raw) % (4 * dim):
        raise InvalidArgumentError(
            f"{what}: {len(raw)} bytes is not a whole number of {dim}-d float32 vectors"
        )
    return np.frombuffer(raw, dtype="<f4").reshape(-1, dim)


def to_json_text(value: Any) -> str:
    return "" if value is None else orjson.dumps(value).decode()


def from_proto_records(
    records: Sequence[pb.RecordData],
) -> tuple[list[str], list[str | None], list[Any], list[str | None]]:
    """ids, texts, metadatas, sources (columns, as the engine takes them)."""
    ids = [r.id for r in records]
    texts = [r.text if r.HasField("text") else None for r in records]
    metas = [
        json_or_none(r.metadata_json, f"metadata of record {i}", InvalidMetadataError)
        for i, r in enumerate(records)
    ]
    sources = [r.source if r.HasField("source") else None for r in records]
    return ids, texts, metas, sources


def from_proto_patches(
    records: Sequence[pb.RecordPatch],
) -> tuple[list[str], list[Any], list[str | None], list[str | None]]:
    """An Update's ids, metadata patches, texts and sources (None: unchanged), as the engine takes them."""
    ids = [r.id for r in records]
    metas = [
        json_or_none(r.metadata_json, f"metadata of record {i}", InvalidMetadataError)
        for i, r in enumerate(records)
    ]
    texts = [r.text if r.HasField("text") else None for r in records]
    sources = [r.source if r.HasField("source") else None for r in records]
    return ids, metas, texts, sources


def to_proto_patches(
    ids: Sequence[str],
    metadatas: Sequence[Any] | None = None,
    texts: Sequence[str | None] | None = None,
    sources: Sequence[str | None] | None = None,
) -> list[pb.RecordPatch]:
    return _record_messages(pb.RecordPatch, ids, texts, metadatas, sources)


def _record_messages(
    cls: Any,
    ids: Sequence[str],
    texts: Sequence[str | None] | None,
    metadatas: Sequence[Any] | None,
    sources: Sequence[str | None] | None,
) -> list[Any]:
    """``cls`` messages (RecordData, RecordPatch: the same id/metadata_json/text/source fields), one per
    id; text and source set only where given."""
    out = []
    for i, rid in enumerate(ids):
        msg = cls(id=rid, metadata_json=to_json_text(metadatas[i] if metadatas else None))
        text = texts[i] if texts is not None else None
        source = sources[i] if sources is not None else None
        if text is not None:
            msg.text = text
        if source is not None:
            msg.source = source
        out.append(msg)
    return out


def from_proto_expiry(records: Sequence[pb.RecordData]) -> list[float | None] | None:
    """Per-record expiry times; None when no record has one."""
    if not any(r.HasField("expires_at") for r in records):
        return None
    return [r.expires_at if r.HasField("expires_at") else None for r in records]


def to_proto_records(
    ids: Sequence[str],
    texts: Sequence[str | None] | None = None,
    metadatas: Sequence[Any] | None = None,
    sources: Sequence[str | None] | None = None,
) -> list[pb.RecordData]:
    return _record_messages(pb.RecordData, ids, texts, metadatas, sources)


def from_proto_upsert_vectors(msg: pb.UpsertRequest) -> Any:
    """The rows of an upsert: an array when every record has a vector, else a list with None where a
    record's text is to be embedded (``missing_vectors``)."""
    n = len(msg.records)
    vectors = from_proto_vectors(msg.vectors)
    if not msg.missing_vectors:
        return vectors
    missing = set(msg.missing_vectors)
    if len(missing) != len(msg.missing_vectors) or max(missing) >= n:
        raise InvalidArgumentError(f"missing_vectors must name distinct records among the {n} sent")
    if len(vectors) != n - len(missing):
        raise InvalidArgumentError(
            f"{len(vectors)} vectors for {n - len(missing)} records that have one", expected=n - len(missing)
        )
    rows = iter(vectors)
    return [None if i in missing else next(rows) for i in range(n)]


def from_proto_include(msg: Any, has: bool) -> tuple[str, ...]:
    return tuple(msg.fields) if has else DEFAULT_INCLUDE


def to_proto_include(include: Sequence[str] | None) -> pb.Include | None:
    return None if include is None else pb.Include(fields=list(include))


def from_proto_params(msg: pb.SearchParams) -> dict[str, float] | None:
    params = {
        name: getattr(msg, name) for name in ("ef_search", "nprobe", "target_recall") if msg.HasField(name)
    }
    return params or None


def _fill(msg: Any, rec: Record | Hit) -> Any:
    if rec.text is not None:
        msg.text = rec.text
    if rec.source is not None:
        msg.source = rec.source
    if rec.metadata:
        msg.metadata_json = orjson.dumps(rec.metadata).decode()
    if rec.vector is not None:
        msg.vector.extend(rec.vector.tolist())
    return msg


def to_proto_record(rec: Record) -> pb.Record:
    return _fill(pb.Record(id=rec.id), rec)  # type: ignore[no-any-return]


def to_proto_hit(hit: Hit, msg: pb.Hit | None = None) -> pb.Hit:
    """The hit as a ``pb.Hit``; filled into ``msg`` when given (``results.add().hits.add()``: building a
    message in place saves constructing one and copying it into the response, ~3 us a hit)."""
    if msg is None:
        msg = pb.Hit()
    msg.id = hit.id
    msg.score = hit.score
    if hit.explain is not None:
        msg.explain_json = orjson.dumps(hit.explain).decode()
    return _fill(msg, hit)  # type: ignore[no-any-return]


def from_proto_record(msg: pb.Record | pb.Hit) -> dict[str, Any]:
    """A record or hit as the dict the REST API returns (clients build their types from it)."""
    out: dict[str, Any] = {
        "id": msg.id,
        "text": msg.text if msg.HasField("text") else None,
        "metadata": orjson.loads(msg.metadata_json) if msg.metadata_json else {},
        "source": msg.source if msg.HasField("source") else None,
    }
    if isinstance(msg, pb.Hit):
        out["score"] = msg.score
        if msg.explain_json:
            out["explain"] = orjson.loads(msg.explain_json)
    if len(msg.vector):
        out["vector"] = list(msg.vector)
    return out


def to_proto_source(info: SourceInfo) -> pb.SourceCount:
    return pb.SourceCount(source=info.source, count=info.count)


def to_proto_collection_info(info: dict[str, Any]) -> pb.CollectionInfo:
    return pb.CollectionInfo(
        name=info["name"],
        dim=info["dim"],
        metric=info["metric"],
        index_json=to_json_text(info["index"]),
        count=info["count"],
        sources=info["sources"],
        index_state_json=to_json_text(info["index_state"]),
        seq=info["seq"],
        checkpoint_seq=info["checkpoint_seq"],
        embedding_json=to_json_text(info["embedding"]),
        capacity_json=to_json_text(info["capacity"]),
        text_index_json=to_json_text(info.get("text_index")),
    )


def from_proto_collection_info(msg: pb.CollectionInfo) -> dict[str, Any]:
    return {
        "name": msg.name,
        "dim": msg.dim,
        "metric": msg.metric,
        "index": orjson.loads(msg.index_json),
        "count": msg.count,
        "sources": msg.sources,
        "index_state": orjson.loads(msg.index_state_json),
        "seq": msg.seq,
        "checkpoint_seq": msg.checkpoint_seq,
        "embedding": orjson.loads(msg.embedding_json) if msg.embedding_json else None,
        "capacity": orjson.loads(msg.capacity_json) if msg.capacity_json else None,
        "text_index": orjson.loads(msg.text_index_json) if msg.text_index_json else None,
    }


def to_proto_text_index(text_index: dict[str, Any] | None) -> pb.SetTextIndexResponse:
    """set_text_index's answer (the index's description; None when dropped)."""
    return pb.SetTextIndexResponse(text_index_json=to_json_text(text_index))


def from_proto_text_index(msg: pb.SetTextIndexResponse) -> dict[str, Any] | None:
    return orjson.loads(msg.text_index_json) if msg.text_index_json else None


def to_proto_snapshot(info: SnapshotInfo) -> pb.SnapshotInfo:
    return pb.SnapshotInfo(
        collection=info.collection,
        name=info.name,
        created_at=info.created_at,
        seq=info.seq,
        records=info.records,
        dim=info.dim,
        metric=info.metric,
        bytes=info.bytes,
    )


def from_proto_snapshot(msg: pb.SnapshotInfo) -> dict[str, Any]:
    """A snapshot as the dict the REST API returns."""
    return {
        "collection": msg.collection,
        "name": msg.name,
        "created_at": msg.created_at,
        "seq": msg.seq,
        "records": msg.records,
        "dim": msg.dim,
        "metric": msg.metric,
        "bytes": msg.bytes,
    }
