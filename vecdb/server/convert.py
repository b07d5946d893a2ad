"""Wire mapping in one place: protobuf messages <-> engine values, and JSON text fields.

Pure functions, each ``from_proto_*`` / ``to_proto_*`` pair round-trips (tests/server/test_convert.py).
"""

from __future__ import annotations

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
    "from_proto_expiry",
    "from_proto_include",
    "from_proto_params",
    "from_proto_records",
    "from_proto_vectors",
    "json_or_none",
    "to_json_text",
    "to_proto_collection_info",
    "to_proto_hit",
    "to_proto_include",
    "to_proto_record",
    "to_proto_records",
    "to_proto_source",
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
    out = []
    for i, rid in enumerate(ids):
        msg = pb.RecordPatch(id=rid, metadata_json=to_json_text(metadatas[i] if metadatas else None))
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
    out = []
    for i, rid in enumerate(ids):
        msg = pb.RecordData(id=rid, metadata_json=to_json_text(metadatas[i] if metadatas else None))
        text = texts[i] if texts is not None else None
        source = sources[i] if sources is not None else None
        if text is not None:
            msg.text = text
        if source is not None:
            msg.source = source
        out.append(msg)
    return out


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


def to_proto_hit(hit: Hit) -> pb.Hit:
    return _fill(pb.Hit(id=hit.id, score=hit.score), hit)  # type: ignore[no-any-return]


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
    }


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
