"""gRPC: a ``Call`` as a ``vecdb.v1.VecDB`` request, the reply as the client's types, errors rebuilt."""

from __future__ import annotations

import json
from typing import Any

import grpc
import numpy as np

from vecdb_client._calls import Call, json_text
from vecdb_client._generated import vecdb_pb2 as pb
from vecdb_client.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidMetadataError,
    UnavailableError,
    VecDBError,
    error_class_for_code,
)
from vecdb_client.types import CollectionInfo, Hit, Record, SnapshotInfo, SourceInfo

__all__ = ["CHANNEL_OPTIONS", "decode", "encode", "error_from_rpc"]

#: The server enforces its own message limit (and answers RESOURCE_EXHAUSTED); the client adds none,
#: so that a large get or search reply is never cut at gRPC's default 4 MiB.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]

_RPC = {
    "create_collection": "CreateCollection",
    "list_collections": "ListCollections",
    "get_collection": "GetCollection",
    "drop_collection": "DropCollection",
    "upsert": "Upsert",
    "get": "Get",
    "delete": "Delete",
    "replace_source": "ReplaceSource",
    "update": "Update",
    "search": "Search",
    "count": "Count",
    "list_sources": "ListSources",
    "embed": "Embed",
    "scroll": "Scroll",
    "create_snapshot": "CreateSnapshot",
    "list_snapshots": "ListSnapshots",
    "delete_snapshot": "DeleteSnapshot",
    "restore_snapshot": "RestoreSnapshot",
    "set_text_index": "SetTextIndex",
}

#: Server-streaming RPCs: the client reads every message of the reply (one page for scroll).
STREAMING = frozenset({"scroll"})


def _text(value: Any, what: str, error: type[InvalidArgumentError] = InvalidArgumentError) -> str:
    return "" if value is None else json_text(value, what, error)


def _vectors(arr: np.ndarray) -> pb.Vectors:
    arr = np.ascontiguousarray(arr, dtype="<f4")
    return pb.Vectors(dim=arr.shape[1] if arr.size else 0, data=arr.tobytes())


def _include(fields: list[str] | None) -> dict[str, Any]:
    return {} if fields is None else {"include": pb.Include(fields=fields)}


def encode(call: Call) -> tuple[str, Any]:
    """The RPC method name and its request message."""
    a = call.args
    match call.op:
        case "create_collection":
            req: Any = pb.CreateCollectionRequest(
                name=a["name"],
                dim=a["dim"] or 0,
                metric=a["metric"] or "",
                index_json=_text(a["index"], "index"),
                embedding_json=_text(a["embedding"], "embedding"),
                eviction=a["eviction"] or "",
            )
            if a["max_records"] is not None:
                req.max_records = a["max_records"]
            for key in ("shards", "replicas", "get_or_create"):
                if a.get(key) is not None:
                    setattr(req, key, a[key])
            if a.get("text_index") is not None:
                req.text_index_json = _text(a["text_index"], "text_index")
        case "set_text_index":
            req = pb.SetTextIndexRequest(collection=a["name"], text_index_json=_text(a["spec"], "text_index"))
        case "list_collections":
            req = pb.ListCollectionsRequest()
        case "get_collection" | "drop_collection" | "list_sources":
            req = pb.CollectionRequest(name=a["name"])
        case "upsert":
            req = _upsert(a)
        case "replace_source":
            up = _upsert({**a, "sources": None, "ttl": None, "expires_at": None})
            req = pb.ReplaceSourceRequest(
                collection=a["name"],
                source=a["source"],
                records=up.records,
                vectors=up.vectors,
                missing_vectors=up.missing_vectors,
            )
        case "update":
            patches = []
            for i, rid in enumerate(a["ids"]):
                meta = a["metadatas"][i] if a["metadatas"] is not None else None
                patch = pb.RecordPatch(id=rid, metadata_json=_text(meta, f"metadata of record {i}"))
                for key in ("texts", "sources"):
                    value = a[key][i] if a[key] is not None else None
                    if value is not None:
                        setattr(patch, key[:-1], value)
                patches.append(patch)
            req = pb.UpdateRequest(collection=a["name"], records=patches)
        case "get":
            req = pb.GetRequest(collection=a["name"], ids=a["ids"], **_include(a["include"]))
        case "delete":
            req = pb.DeleteRequest(collection=a["name"])
            if a["ids"] is not None:
                req.ids.ids.extend(a["ids"])
            elif a["filter"] is not None:
                req.filter_json = _text(a["filter"], "filter", InvalidFilterError)
            elif a["source"] is not None:
                req.source = a["source"]
            req.text_filter_json = _text(a["text_filter"], "text_filter", InvalidFilterError)
        case "search":
            req = _search(a)
        case "count":
            req = pb.CountRequest(
                collection=a["name"],
                filter_json=_text(a["filter"], "filter", InvalidFilterError),
                text_filter_json=_text(a["text_filter"], "text_filter", InvalidFilterError),
            )
        case "embed":
            req = pb.EmbedRequest(texts=a["texts"], model=a["model"] or "", collection=a["collection"] or "")
        case "scroll":
            req = pb.ScrollRequest(
                collection=a["name"],
                limit=a["limit"],
                filter_json=_text(a["filter"], "filter", InvalidFilterError),
                text_filter_json=_text(a["text_filter"], "text_filter", InvalidFilterError),
                max_pages=1,
                **_include(a["include"]),
            )
            if a["cursor"] is not None:
                req.cursor = a["cursor"]
        case "create_snapshot" | "delete_snapshot":
            req = pb.SnapshotRequest(collection=a["name"], name=a["snapshot"] or "")
        case "list_snapshots":
            req = pb.CollectionRequest(name=a["name"])
        case "restore_snapshot":
            req = pb.RestoreSnapshotRequest(
                collection=a["name"], name=a["snapshot"], target=a["target"] or ""
            )
        case _:
            raise AssertionError(f"unknown operation {call.op}")
    return _RPC[call.op], req


def _upsert(a: dict[str, Any]) -> pb.UpsertRequest:
    records = []
    texts, metas, sources, expiry = a["texts"], a["metadatas"], a["sources"], a["expires_at"]
    for i, rid in enumerate(a["ids"]):
        rec = pb.RecordData(id=rid)
        if texts is not None and texts[i] is not None:
            rec.text = texts[i]
        if metas is not None and metas[i] is not None:
            rec.metadata_json = json_text(metas[i], f"metadata of record {i}", InvalidMetadataError)
        if sources is not None and sources[i] is not None:
            rec.source = sources[i]
        if expiry is not None and expiry[i] is not None:
            rec.expires_at = expiry[i]
        records.append(rec)
    req = pb.UpsertRequest(collection=a["name"], records=records)
    if a["ttl"] is not None:
        req.ttl = a["ttl"]
    rows = a["vectors"]
    if isinstance(rows, np.ndarray):
        req.vectors.CopyFrom(_vectors(rows))
    elif rows is None:
        req.missing_vectors.extend(range(len(records)))
    else:
        present = [r for r in rows if r is not None]
        if present:
            req.vectors.CopyFrom(_vectors(np.stack(present)))
        req.missing_vectors.extend(i for i, r in enumerate(rows) if r is None)
    return req


def _search(a: dict[str, Any]) -> pb.SearchRequest:
    req = pb.SearchRequest(
        collection=a["name"],
        # uint32 on the wire: a larger k is sent as the largest, which is past every server's max_k.
        k=min(a["k"], 2**32 - 1),
        filter_json=_text(a["filter"], "filter", InvalidFilterError),
        **_include(a["include"]),
    )
    if a["vectors"] is not None:
        req.queries.CopyFrom(_vectors(a["vectors"]))
    if a["texts"] is not None:
        req.texts.extend(a["texts"])
    req.mode = "" if a["mode"] == "vector" else a["mode"]
    req.text_filter_json = _text(a["text_filter"], "text_filter", InvalidFilterError)
    req.fusion_json = _text(a["fusion"], "fusion")
    for key, value in (a["params"] or {}).items():
        setattr(req.params, key, value)
    if a["score_threshold"] is not None:
        req.score_threshold = a["score_threshold"]
    return req


def decode(call: Call, msg: Any) -> Any:  # noqa: PLR0911 (one case per operation)
    match call.op:
        case "create_collection" | "get_collection":
            return _info(msg)
        case "list_collections":
            return list(msg.names)
        case "drop_collection":
            return None
        case "upsert" | "delete" | "count" | "replace_source" | "update":
            return int(msg.count)
        case "get":
            return [Record(**_fields(r)) for r in msg.records]
        case "search":
            return [
                [
                    Hit(
                        score=h.score,
                        explain=json.loads(h.explain_json) if h.explain_json else None,
                        **_fields(h),
                    )
                    for h in res.hits
                ]
                for res in msg.results
            ]
        case "list_sources":
            return [SourceInfo(s.source, int(s.count)) for s in msg.sources]
        case "embed":
            v = msg.vectors
            return np.frombuffer(v.data, dtype="<f4").reshape(-1, v.dim).astype(np.float32), msg.model
        case "scroll":  # the pages of a stream; one for the client's scroll
            records = [Record(**_fields(r)) for page in msg for r in page.records]
            last = msg[-1] if msg else None
            return records, last.next_cursor if last is not None and last.HasField("next_cursor") else None
        case "create_snapshot":
            return _snapshot(msg)
        case "list_snapshots":
            return [_snapshot(s) for s in msg.snapshots]
        case "delete_snapshot":
            return None
        case "restore_snapshot":
            return _info(msg)
        case "set_text_index":
            return json.loads(msg.text_index_json) if msg.text_index_json else None
    raise AssertionError(f"unknown operation {call.op}")


def _fields(msg: Any) -> dict[str, Any]:
    return {
        "id": msg.id,
        "text": msg.text if msg.HasField("text") else None,
        "metadata": json.loads(msg.metadata_json) if msg.metadata_json else {},
        "source": msg.source if msg.HasField("source") else None,
        "vector": np.asarray(msg.vector, dtype=np.float32) if len(msg.vector) else None,
    }


def _snapshot(msg: pb.SnapshotInfo) -> SnapshotInfo:
    return SnapshotInfo(
        collection=msg.collection,
        name=msg.name,
        created_at=msg.created_at,
        seq=msg.seq,
        records=msg.records,
        dim=msg.dim,
        metric=msg.metric,
        bytes=msg.bytes,
    )


def _info(msg: pb.CollectionInfo) -> CollectionInfo:
    return CollectionInfo(
        name=msg.name,
        dim=msg.dim,
        metric=msg.metric,  # type: ignore[arg-type]
        index=json.loads(msg.index_json) if msg.index_json else {},
        count=msg.count,
        sources=msg.sources,
        index_state=json.loads(msg.index_state_json) if msg.index_state_json else {},
        seq=msg.seq,
        checkpoint_seq=msg.checkpoint_seq,
        embedding=json.loads(msg.embedding_json) if msg.embedding_json else None,
        capacity=json.loads(msg.capacity_json) if msg.capacity_json else None,
        text_index=json.loads(msg.text_index_json) if msg.text_index_json else None,
    )


def error_from_rpc(code: grpc.StatusCode | None, details: str | None, trailers: Any) -> VecDBError:
    """The error a failed RPC stands for: the class the server named in ``vecdb-error-code``, else one
    chosen by the status (UNAVAILABLE, DEADLINE_EXCEEDED, or the class whose gRPC code it is)."""
    md = {k: v for k, v in (trailers or ()) if isinstance(v, str)}
    message = details or ""
    name = md.get("vecdb-error-code")
    if name is not None:
        try:
            extra = json.loads(md.get("vecdb-error-details", "{}"))
        except ValueError:
            extra = {}
        exc = error_class_for_code(name)(message)
        exc.details = extra if isinstance(extra, dict) else {}
        return exc
    status = code.name if code is not None else "UNKNOWN"
    if status == "UNAVAILABLE":
        return UnavailableError(message or "the server is unavailable", grpc_code=status)
    if status == "DEADLINE_EXCEEDED":
        return DeadlineExceededError(message or "the call ran past its timeout", grpc_code=status)
    if status == "RESOURCE_EXHAUSTED":  # gRPC's own message-size limit, before vecdb saw the call
        return error_class_for_code("limit_exceeded")(message, grpc_code=status)
    if status == "UNAUTHENTICATED":
        return error_class_for_code("unauthenticated")(message, grpc_code=status)
    return VecDBError(f"gRPC {status}: {message}", grpc_code=status)
