"""Input validation: a whole batch is checked before anything is written.

Every check raises a typed ``VecDBError`` whose message and ``details`` name the offending item
(its position in the batch and, where known, its id).

This module is public: the engine and every variant composed from it (``vecdb.cluster``) validate
requests with these functions, so a request is accepted or refused with the same error everywhere.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vecdb.config import Limits, Settings
from vecdb.embed import EMBEDDING_KEYS, PACKAGED_MODELS, EmbeddingSpec, read_folder, resolve_model
from vecdb.engine.capacity import parse_capacity
from vecdb.errors import (
    CollectionExistsError,
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidIdError,
    InvalidMetadataError,
    InvalidNameError,
    InvalidSourceError,
    InvalidVectorError,
    LimitExceededError,
)
from vecdb.index.fulltext import TextFilter, TextIndexSpec, parse_text_filter, parse_text_index_spec
from vecdb.index.fusion import Fusion, parse_fusion
from vecdb.index.spec import parse_index_spec
from vecdb.storage import NewRecord
from vecdb.types import INCLUDE_FIELDS, METRICS, SEARCH_INCLUDE_FIELDS, SEARCH_MODES, Metric

__all__ = [
    "CURSOR_PREFIX",
    "MAX_PROMPT_CHARS",
    "MAX_VECTOR_NORM",
    "NAME_RE",
    "Fusion",
    "TextFilter",
    "TextIndexSpec",
    "check_embedded_dim",
    "check_same_config",
    "collection_dim",
    "decode_cursor",
    "encode_cursor",
    "expiry_times",
    "merge_metadata",
    "split_missing_vectors",
    "validate_dim",
    "validate_embedding",
    "validate_fusion",
    "validate_hits",
    "validate_id_list",
    "validate_include",
    "validate_k",
    "validate_limit",
    "validate_metric",
    "validate_mode",
    "validate_name",
    "validate_queries",
    "validate_records",
    "validate_source",
    "validate_text_filter",
    "validate_text_index",
    "validate_texts",
    "validate_update",
    "validate_vector_bytes",
]

#: The longest query_prompt / document_prompt a collection may declare.
MAX_PROMPT_CHARS = 1000

#: Collection and snapshot names: they become directory names (and parts of REST paths).
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Every scroll cursor starts with it (the cursor format's version).
CURSOR_PREFIX = "v1."


def validate_name(name: Any, what: str = "collection") -> str:
    """``name`` when it is a valid collection (or ``what``) name; InvalidNameError otherwise."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"invalid {what} name {name!r}: use 1-64 letters, digits, '_' or '-'", name=str(name)[:100]
        )
    return name


def encode_cursor(last_id: bytes) -> str:
    """An opaque scroll cursor: the last id returned."""
    return CURSOR_PREFIX + base64.urlsafe_b64encode(last_id).decode("ascii").rstrip("=")


def decode_cursor(cursor: Any) -> bytes | None:
    """The last id a scroll cursor stands for (None for None: the first page). InvalidArgumentError
    for anything that is not a cursor ``encode_cursor`` made."""
    if cursor is None:
        return None
    if not isinstance(cursor, str) or not cursor.startswith(CURSOR_PREFIX):
        raise InvalidArgumentError(f"invalid scroll cursor {cursor!r:.80}: pass the next_cursor of a page")
    body = cursor[len(CURSOR_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgumentError(f"invalid scroll cursor {cursor!r:.80}: {exc}") from exc
    if not raw:
        raise InvalidArgumentError(f"invalid scroll cursor {cursor!r:.80}")
    return raw


def validate_embedding(embedding: Any, settings: Settings) -> EmbeddingSpec | None:
    """A collection's ``embedding`` option: ``{"model": NAME}`` (``{}``: the default model), optionally
    with ``query_prompt`` / ``document_prompt`` (strings prepended to query / record texts) and
    ``max_seq_length`` (tokens, 1 to the model's position limit). The model is resolved locally
    (ModelUnavailableError otherwise) and a model given as a local folder is stored as its absolute
    path, so the collection reopens from any working directory. None without one; InvalidConfigError
    for anything else."""
    if embedding is None:
        return None
    if not isinstance(embedding, dict) or set(embedding) - EMBEDDING_KEYS:
        raise InvalidConfigError(
            f'embedding must be an object like {{"model": "all-MiniLM-L6-v2"}} (keys: '
            f"{', '.join(sorted(EMBEDDING_KEYS))}), got {embedding!r:.300}",
            field="embedding",
        )
    model = embedding.get("model") or settings.embedding.default_model
    if not isinstance(model, str):
        raise InvalidConfigError(f"embedding.model must be a string, got {model!r}", field="embedding.model")
    prompts = {}
    for key in ("query_prompt", "document_prompt"):
        value = embedding.get(key) or ""
        if not isinstance(value, str) or len(value) > MAX_PROMPT_CHARS:
            raise InvalidConfigError(
                f"embedding.{key} must be a string of at most {MAX_PROMPT_CHARS} characters, "
                f"got {value!r:.80}",
                field=f"embedding.{key}",
            )
        prompts[key] = value
    path = resolve_model(model, allow_download=settings.embedding.allow_download)
    local = Path(model).expanduser()
    if model not in PACKAGED_MODELS and local.is_dir() and not Path(model).is_absolute():
        model = os.path.abspath(local)  # absolute, symlinks kept: the folder the operator named
    folder = read_folder(path)
    window = embedding.get("max_seq_length")
    if window is None:
        window = folder.max_seq_length  # stored: info() reports it without loading the model
    else:
        limit = folder.positions
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= limit:
            raise InvalidConfigError(
                f"embedding.max_seq_length must be an integer from 1 to {limit} (the model's positions), "
                f"got {window!r}",
                field="embedding.max_seq_length",
            )
    return EmbeddingSpec(model=model, max_seq_length=window, **prompts)


def collection_dim(dim: Any, model: str | None, model_dim: int | None, limits: Limits) -> int:
    """A new collection's dimension: ``dim``, or the model's when omitted; with a model they must agree.
    ``model_dim`` is None while embedding is turned off (``dim`` is then required)."""
    if model is not None:
        if dim is None:
            if model_dim is None:
                raise InvalidConfigError("dim is required while embedding is turned off", field="dim")
            dim = model_dim
        elif model_dim is not None and dim != model_dim:
            raise InvalidConfigError(f"dim {dim} does not match model {model!r} ({model_dim})", field="dim")
    if dim is None:
        raise InvalidConfigError("dim is required for a collection without an embedding model", field="dim")
    return validate_dim(dim, limits)


def check_same_config(
    info: Mapping[str, Any],
    settings: Settings,
    *,
    dim: Any = None,
    metric: Any = None,
    index: Any = None,
    embedding: Any = None,
    max_records: Any = None,
    eviction: Any = None,
    shards: Any = None,
    replicas: Any = None,
    text_index: Any = None,
) -> None:
    """``get_or_create_collection``'s check: raise CollectionExistsError (``details["differences"]``:
    ``{field: {"existing": ..., "requested": ...}}``) unless the existing collection (its ``info()``)
    has every setting the request names. A setting left out (None) matches whatever the collection has;
    ``embedding={}`` names the default model; the capacity is compared when ``max_records`` or
    ``eviction`` is given; a collection without a cluster counts as 1 shard, 1 replica."""
    cluster = info.get("cluster") or {"shards": 1, "replicas": 1}
    pairs: dict[str, tuple[Any, Any]] = {}
    if dim is not None:
        pairs["dim"] = (info["dim"], dim)
    if metric is not None:
        pairs["metric"] = (info["metric"], validate_metric(metric))
    if index is not None:
        pairs["index"] = (info["index"], parse_index_spec(index, int(info["dim"])).model_dump())
    if embedding is not None:
        # the declaration (model, prompts, window), not what info() adds to it (dim, backend)
        have = info["embedding"]
        if have is not None:
            have = {k: v for k, v in have.items() if k not in ("dim", "backend")}
        spec = validate_embedding(embedding, settings)
        pairs["embedding"] = (have, None if spec is None else spec.to_dict())
    if text_index is not None:
        have = info.get("text_index")
        if have is not None:
            have = {k: v for k, v in have.items() if k != "documents"}
        wanted = validate_text_index(text_index)
        pairs["text_index"] = (have, None if wanted is None else wanted.model_dump())
    if max_records is not None or eviction is not None:
        capacity = parse_capacity(max_records, eviction)
        pairs["capacity"] = (info.get("capacity"), None if capacity is None else capacity.to_dict())
    if shards is not None:
        pairs["shards"] = (cluster["shards"], shards)
    if replicas is not None:
        pairs["replicas"] = (cluster["replicas"], replicas)
    differences = {
        field: {"existing": have, "requested": want} for field, (have, want) in pairs.items() if have != want
    }
    if differences:
        shown = "; ".join(
            f"{f} {d['existing']!r} (requested {d['requested']!r})" for f, d in differences.items()
        )
        raise CollectionExistsError(
            f"collection {info['name']!r} exists with another configuration: {shown}",
            name=info["name"],
            differences=differences,
        )


def validate_dim(dim: Any, limits: Limits) -> int:
    """A collection's dimension: an integer from 1 to ``max_dim``."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= limits.max_dim:
        raise InvalidConfigError(
            f"dim must be an integer from 1 to {limits.max_dim}, got {dim!r}", field="dim"
        )
    return dim


def validate_metric(metric: Any) -> Metric:
    if metric not in METRICS:
        raise InvalidConfigError(f"metric must be one of {list(METRICS)}, got {metric!r}", field="metric")
    return metric  # type: ignore[no-any-return]


def check_embedded_dim(vectors: np.ndarray, model: str, dim: int) -> np.ndarray:
    """``vectors`` from ``model`` when they have the collection's ``dim``; InvalidConfigError otherwise
    (a model replaced under the same name, or a collection created while embedding was off)."""
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        got = vectors.shape[1] if vectors.ndim == 2 else vectors.shape
        raise InvalidConfigError(f"model {model!r} gives {got}-d vectors, the collection has {dim}")
    return vectors


def expiry_times(ttl: Any, expires_at: Any, n: int) -> list[float | None] | None:
    """The expiry time (unix seconds, None: never) of each of ``n`` records written now with ``ttl``
    (seconds from now, for all) or ``expires_at`` (one time for all, or one per record); None when
    neither is given. InvalidArgumentError for both given, a list of the wrong length (``details``:
    field, expected, got), or a time that is not a positive, finite number."""
    if ttl is None and expires_at is None:
        return None
    if ttl is not None and expires_at is not None:
        raise InvalidArgumentError("give ttl or expires_at, not both")
    if ttl is not None:
        return [time.time() + _seconds(ttl, "ttl")] * n
    if isinstance(expires_at, list | tuple | np.ndarray):
        if len(expires_at) != n:
            raise InvalidArgumentError(
                f"{len(expires_at)} expires_at for {n} ids",
                field="expires_at",
                expected=n,
                got=len(expires_at),
            )
        return [
            None if t is None else _seconds(t, f"expires_at[{i}]", "a unix time")
            for i, t in enumerate(expires_at)
        ]
    return [_seconds(expires_at, "expires_at", "a unix time")] * n


def _seconds(value: Any, what: str, kind: str = "a number of seconds") -> float:
    """A positive, finite float from an int or float (numpy's included); InvalidArgumentError otherwise."""
    number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )
    shown = None
    try:
        seconds = float(value) if number else math.nan
    except OverflowError:
        seconds, shown = math.inf, "an integer beyond float range"
    if not math.isfinite(seconds) or seconds <= 0:
        shown = shown or repr(value)[:100]
        raise InvalidArgumentError(f"{what} must be {kind}, positive and finite, got {shown}", field=what)
    return seconds


def split_missing_vectors(ids: Any, vectors: Any, texts: Any, dim: int) -> tuple[Any, list[int]]:
    """For a collection with an embedding model: the vectors with a placeholder row wherever a record
    has none (``vectors`` None, or None entries), and the positions of those records.

    Each such record must have a text to embed. The placeholder (all ones) passes validation and is
    replaced by the embedding before anything is written.
    """
    if isinstance(vectors, np.ndarray) or (vectors is not None and not isinstance(vectors, list | tuple)):
        return vectors, []
    if isinstance(ids, str) or not isinstance(ids, Sequence | np.ndarray):
        return vectors, []  # validate_records reports it
    n = len(ids)
    rows = [None] * n if vectors is None else list(vectors)
    if len(rows) != n:
        raise InvalidArgumentError(f"{len(rows)} vectors for {n} ids", expected=n, got=len(rows))
    missing = [i for i, v in enumerate(rows) if v is None]
    if not missing:
        return vectors, []
    if texts is None or isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) != n:
        raise InvalidArgumentError(
            f"record {missing[0]} has no vector: give a text for every record without one (texts must "
            f"have {n} entries)",
            index=missing[0],
        )
    for i in missing:
        if not isinstance(texts[i], str) or not texts[i]:
            raise InvalidArgumentError(
                f"record {i} (id {ids[i]!r:.80}) has neither a vector nor a text to embed", index=i
            )
    placeholder = [1.0] * dim
    return [placeholder if v is None else v for v in rows], missing


_F32_MAX = float(np.finfo(np.float32).max)
#: The largest L2 norm a vector may have under the l2 and ip metrics. FAISS scores in float32: two
#: vectors of norm up to 1e18 have an inner product within 1e36 and a squared distance within 4e36, far
#: from float32's 3.4e38; beyond it, scores overflow to inf or NaN (and l2 hits are lost). Cosine
#: normalizes in float64 first and needs no bound.
MAX_VECTOR_NORM = 1e18


def _utf8_len(value: str) -> int | None:
    try:
        return len(value.encode())
    except UnicodeEncodeError:
        return None


def _check_count(n: int, limit: int, what: str) -> None:
    if n > limit:
        raise LimitExceededError(f"{n} {what} in one call; the limit is {limit}", count=n, limit=limit)


def validate_id_list(ids: Any, limits: Limits, *, allow_duplicates: bool = False) -> list[str]:
    """A non-empty list of valid ids, without duplicates unless allowed."""
    if isinstance(ids, str) or not isinstance(ids, Sequence | np.ndarray):
        raise InvalidIdError(f"ids must be a list of strings, got {type(ids).__name__}")
    if len(ids) == 0:
        raise InvalidArgumentError("ids is empty: give at least one id")
    _check_count(len(ids), limits.max_batch, "ids")
    out = [validate_id(x, i, limits) for i, x in enumerate(ids)]
    if not allow_duplicates and len(set(out)) != len(out):
        seen: set[str] = set()
        for i, x in enumerate(out):
            if x in seen:
                raise DuplicateIdError(
                    f"id {x!r} appears more than once in the batch (again at {i})", index=i, id=x
                )
            seen.add(x)
    return out


def validate_id(value: Any, index: int, limits: Limits) -> str:
    if not isinstance(value, str):
        raise InvalidIdError(f"id at {index} must be a string, got {type(value).__name__}", index=index)
    if not value:
        raise InvalidIdError(f"id at {index} is empty", index=index)
    size = _utf8_len(value)
    if size is None:
        raise InvalidIdError(f"id at {index} is not valid Unicode (lone surrogate)", index=index)
    if size > limits.max_id_bytes:
        raise InvalidIdError(
            f"id at {index} is {size} bytes; the limit is {limits.max_id_bytes}",
            index=index,
            limit=limits.max_id_bytes,
        )
    return value


def validate_source(value: Any, limits: Limits, where: str = "source") -> str:
    if not isinstance(value, str) or not value:
        raise InvalidSourceError(f"{where} must be a non-empty string, got {value!r}")
    size = _utf8_len(value)
    if size is None:
        raise InvalidSourceError(f"{where} is not valid Unicode (lone surrogate)")
    if size > limits.max_source_bytes:
        raise InvalidSourceError(
            f"{where} is {size} bytes; the limit is {limits.max_source_bytes}", limit=limits.max_source_bytes
        )
    return value


def _as_matrix(vectors: Any, dim: int, what: str) -> np.ndarray:
    """A (n, dim) float32 matrix of finite values, or a typed error naming the row."""
    if isinstance(vectors, np.ndarray):
        if vectors.ndim == 2 and vectors.shape[0] == 0:
            return np.empty((0, dim), dtype=np.float32)
        if vectors.ndim == 1 and vectors.size == dim and what == "query":
            vectors = vectors.reshape(1, dim)
        if vectors.ndim != 2:
            raise DimensionMismatchError(f"{what} vectors must be a 2-d array, got {vectors.ndim}-d")
        if vectors.dtype.kind not in "fiu":
            raise InvalidVectorError(f"{what} vectors must be numbers, got dtype {vectors.dtype}")
        # A signaling NaN makes the cast warn ("invalid value"); the check below rejects it anyway.
        with np.errstate(invalid="ignore"):
            arr = vectors.astype(np.float64, copy=False)
    else:
        if isinstance(vectors, str | bytes) or not isinstance(vectors, Iterable):
            raise InvalidVectorError(f"{what} vectors must be a list of lists of floats")
        rows = list(vectors)
        if what == "query" and rows and all(isinstance(v, int | float) for v in rows):
            rows = [rows]  # one query given as a flat list
        for i, row in enumerate(rows):
            if isinstance(row, str | bytes) or not hasattr(row, "__len__"):
                raise InvalidVectorError(f"{what} vector {i} is not a list of numbers", index=i)
            if len(row) != dim:
                raise DimensionMismatchError(
                    f"{what} vector {i} has dimension {len(row)}, the collection has {dim}",
                    index=i,
                    expected=dim,
                    got=len(row),
                )
        try:
            arr = np.asarray(rows, dtype=np.float64).reshape(len(rows), dim)
        except (ValueError, TypeError) as exc:
            raise InvalidVectorError(f"{what} vectors must hold only numbers: {exc}") from exc
    if arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"{what} vectors have dimension {arr.shape[1]}, the collection has {dim}",
            index=0,
            expected=dim,
            got=int(arr.shape[1]),
        )
    bad = ~np.isfinite(arr).all(axis=1) | (np.abs(arr) > _F32_MAX).any(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidVectorError(f"{what} vector {i} holds NaN, inf or a value beyond float32 range", index=i)
    return np.asarray(arr, dtype=np.float32)


def _check_norms(arr: np.ndarray, metric: Metric, what: str, ids: Sequence[str] | None = None) -> None:
    if not len(arr):
        return
    norms = np.linalg.norm(arr.astype(np.float64), axis=1)

    def name(i: int) -> str:
        return f" (id {ids[i]!r:.80})" if ids is not None else ""

    if metric == "cosine":
        zero = norms == 0
        if zero.any():
            i = int(np.argmax(zero))
            raise InvalidVectorError(
                f"{what} vector {i}{name(i)} is all zeros: it has no direction under the cosine metric",
                index=i,
            )
        return
    huge = norms > MAX_VECTOR_NORM
    if huge.any():
        i = int(np.argmax(huge))
        raise InvalidVectorError(
            f"{what} vector {i}{name(i)} has L2 norm {norms[i]:.3g}; under the {metric} metric the limit "
            f"is {MAX_VECTOR_NORM:g} (scores would overflow float32)",
            index=i,
            norm=float(norms[i]),
            limit=MAX_VECTOR_NORM,
        )


def validate_queries(vectors: Any, dim: int, metric: Metric, limits: Limits) -> np.ndarray:
    arr = _as_matrix(vectors, dim, "query")
    if len(arr) == 0:
        raise InvalidArgumentError("no query vectors given")
    _check_count(len(arr), limits.max_queries, "queries")
    _check_norms(arr, metric, "query")
    return arr


def validate_texts(texts: Any, limits: Limits, what: str = "texts") -> list[str]:
    """A non-empty list of non-empty strings within the text size limit (a single string is one text)."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Sequence) or isinstance(texts, bytes):
        raise InvalidArgumentError(f"{what} must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise InvalidArgumentError(f"{what} is empty: give at least one text")
    _check_count(len(texts), limits.max_queries, what)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            raise InvalidArgumentError(f"{what}[{i}] must be a non-empty string, got {text!r:.80}", index=i)
        size = _utf8_len(text)
        if size is None:
            raise InvalidArgumentError(f"{what}[{i}] is not valid Unicode", index=i)
        if size > limits.max_text_bytes:
            raise LimitExceededError(
                f"{what}[{i}] is {size} bytes; the limit is {limits.max_text_bytes}",
                index=i,
                limit=limits.max_text_bytes,
            )
    return list(texts)


def validate_k(k: Any, limits: Limits) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidArgumentError(f"k must be an integer, got {k!r}")
    if k < 1:
        raise InvalidArgumentError(f"k must be at least 1, got {k}")
    if k > limits.max_k:
        raise LimitExceededError(f"k={k} exceeds the limit of {limits.max_k}", limit=limits.max_k)
    return int(k)


def validate_hits(queries: int, k: int, dim: int, include: Iterable[str], limits: Limits) -> None:
    """Refuse a search whose answer may hold more than ``max_hits`` hits (queries x k) or, with vectors
    included, more than ``max_response_bytes`` of them (hits x dim x 4): checked before any search work,
    since the answer is built in memory whole. Never a silent cap."""
    hits = queries * k
    if hits > limits.max_hits:
        raise LimitExceededError(
            f"{queries} queries x k={k} = {hits} hits exceeds the limit of {limits.max_hits} hits per "
            "search: send fewer queries per call or a smaller k",
            queries=queries,
            k=k,
            hits=hits,
            limit=limits.max_hits,
        )
    if "vector" in include:
        size = hits * dim * 4
        if size > limits.max_response_bytes:
            raise LimitExceededError(
                f"{queries} queries x k={k} with vectors of dim {dim} is up to {size} bytes of vectors, "
                f"over the limit of {limits.max_response_bytes} bytes per response: leave 'vector' out "
                "of include, or send fewer queries or a smaller k",
                queries=queries,
                k=k,
                dim=dim,
                bytes=size,
                limit=limits.max_response_bytes,
            )


def validate_vector_bytes(rows: int, dim: int, include: Iterable[str], limits: Limits, what: str) -> None:
    """Refuse a get or scroll page of ``rows`` records whose vectors (with ``vector`` in include) would
    exceed ``max_response_bytes``: checked before reading, never truncated."""
    size = rows * dim * 4
    if "vector" in include and size > limits.max_response_bytes:
        raise LimitExceededError(
            f"{what} of {rows} records with vectors of dim {dim} is up to {size} bytes of vectors, over the "
            f"limit of {limits.max_response_bytes} bytes per response: leave 'vector' out of include or "
            "ask for fewer records",
            rows=rows,
            dim=dim,
            bytes=size,
            limit=limits.max_response_bytes,
        )


def validate_limit(limit: Any, limits: Limits) -> int:
    """A page size: an integer from 1 to ``max_batch``."""
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer):
        raise InvalidArgumentError(f"limit must be an integer, got {limit!r}")
    if limit < 1:
        raise InvalidArgumentError(f"limit must be at least 1, got {limit}")
    if limit > limits.max_batch:
        raise LimitExceededError(
            f"limit={limit} exceeds the limit of {limits.max_batch}", limit=limits.max_batch
        )
    return int(limit)


def validate_include(include: Any, *, search: bool = False) -> frozenset[str]:
    """The fields a read returns; a search may also ask for ``explain``."""
    if isinstance(include, str) or not isinstance(include, Iterable):
        raise InvalidArgumentError(f"include must be a list of field names, got {include!r}")
    fields = frozenset(include)
    known = SEARCH_INCLUDE_FIELDS if search else INCLUDE_FIELDS
    unknown = fields - known
    if unknown:
        raise InvalidArgumentError(
            f"unknown include field(s) {sorted(map(str, unknown))}; choose from {sorted(known)}"
        )
    return fields


def validate_mode(mode: Any) -> str:
    """A search mode (``SEARCH_MODES``)."""
    if mode not in SEARCH_MODES:
        raise InvalidArgumentError(f"mode must be one of {list(SEARCH_MODES)}, got {mode!r}", field="mode")
    return str(mode)


def validate_fusion(fusion: Any, mode: str, k: int, limits: Limits) -> Fusion:
    """The fusion options of a search (only a hybrid search takes them; InvalidArgumentError otherwise)."""
    if fusion is not None and mode != "hybrid":
        raise InvalidArgumentError(f"fusion applies to mode 'hybrid' only, not {mode!r}", field="fusion")
    return parse_fusion(fusion, k, limits.max_k)


def validate_text_filter(text_filter: Any) -> TextFilter | None:
    """The parsed full-text filter (None: none). Raises InvalidFilterError."""
    return parse_text_filter(text_filter)


def validate_text_index(spec: Any) -> TextIndexSpec | None:
    """A collection's ``text_index`` option (None: none). Raises InvalidConfigError."""
    return parse_text_index_spec(spec)


def validate_update(
    ids: Any, metadatas: Any, texts: Any, sources: Any, limits: Limits
) -> tuple[list[str], list[Any], list[Any], list[Any]]:
    """An ``update``'s ids (unique) and its columns, one entry per id, None meaning "unchanged": metadata
    patches (objects), texts (strings) and sources (valid source names). At least one entry must be
    given. The merged records are checked again in full (``validate_records``) before they are written."""
    id_list = validate_id_list(ids, limits)
    n = len(id_list)
    meta_col, text_col, src_col = (
        _column(metadatas, n, "metadatas"),
        _column(texts, n, "texts"),
        _column(sources, n, "sources"),
    )
    if all(v is None for col in (meta_col, text_col, src_col) for v in col):
        raise InvalidArgumentError("update changes nothing: give metadatas, texts or sources")
    for i, rid in enumerate(id_list):
        if meta_col[i] is not None and not isinstance(meta_col[i], dict):
            raise InvalidMetadataError(
                f"metadata of record {i} (id {rid!r}) must be an object or null", index=i, id=rid
            )
        if text_col[i] is not None and not isinstance(text_col[i], str):
            raise InvalidArgumentError(f"text of record {i} (id {rid!r}) must be a string", index=i, id=rid)
        if src_col[i] is not None:
            validate_source(src_col[i], limits, f"source of record {i} (id {rid!r})")
    return id_list, meta_col, text_col, src_col


def merge_metadata(stored: Mapping[str, Any], patch: Mapping[str, Any] | None) -> dict[str, Any]:
    """``update``'s metadata: the stored keys, those of ``patch`` replacing them; a key set to None in
    ``patch`` is removed. No patch: the stored metadata unchanged."""
    merged = dict(stored)
    for key, value in (patch or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _column(values: Any, n: int, name: str) -> list[Any]:
    if values is None:
        return [None] * n
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Sequence):
        raise InvalidArgumentError(f"{name} must be a list with one entry per record")
    if len(values) != n:
        raise InvalidArgumentError(
            f"{name} has {len(values)} entries for {n} records", expected=n, got=len(values)
        )
    return list(values)


def _check_json(value: Any, depth: int, limits: Limits, where: str) -> None:
    if depth > limits.max_metadata_depth:
        raise InvalidMetadataError(f"{where}: nested deeper than {limits.max_metadata_depth} levels")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadataError(f"{where}: {value} is not a finite number (JSON has no NaN or inf)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMetadataError(f"{where}: keys must be strings, got {key!r}")
            _check_json(item, depth + 1, limits, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, depth + 1, limits, f"{where}[{i}]")
    elif value is not None and not isinstance(value, str | int):
        raise InvalidMetadataError(f"{where}: {type(value).__name__} is not a JSON value")


def _metadata(value: Any, i: int, rid: str, limits: Limits) -> tuple[dict[str, Any], bytes]:
    where = f"metadata of record {i} (id {rid!r})"
    if value is None:
        return {}, b"{}"
    if not isinstance(value, dict):
        raise InvalidMetadataError(
            f"{where} must be a JSON object, got {type(value).__name__}", index=i, id=rid
        )
    try:
        _check_json(value, 1, limits, where)
        blob = orjson.dumps(value)
    except InvalidMetadataError as exc:
        raise InvalidMetadataError(exc.message, index=i, id=rid) from None
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise InvalidMetadataError(f"{where} is not JSON-serializable: {exc}", index=i, id=rid) from exc
    if len(blob) > limits.max_metadata_bytes:
        raise LimitExceededError(
            f"{where} is {len(blob)} bytes as JSON; the limit is {limits.max_metadata_bytes}",
            index=i,
            id=rid,
            limit=limits.max_metadata_bytes,
        )
    # Round-trip so the stored and the in-memory metadata are the same JSON (tuples become lists).
    return orjson.loads(blob), blob


def validate_records(
    ids: Any,
    vectors: Any,
    texts: Any,
    metadatas: Any,
    sources: Any,
    *,
    dim: int,
    metric: Metric,
    limits: Limits,
    allow_empty: bool = False,
) -> tuple[list[NewRecord], np.ndarray]:
    """Check a whole upsert batch; return the records and their (n, dim) float32 vectors."""
    if allow_empty and ids is not None and not isinstance(ids, str) and len(ids) == 0:
        return [], np.empty((0, dim), dtype=np.float32)
    id_list = validate_id_list(ids, limits)
    n = len(id_list)
    if vectors is None:
        raise InvalidArgumentError("vectors are required (this collection has no embedding model)")
    vecs = _as_matrix(vectors, dim, "record")
    if len(vecs) != n:
        raise InvalidArgumentError(f"{len(vecs)} vectors for {n} ids", expected=n, got=len(vecs))
    _check_norms(vecs, metric, "record", id_list)
    text_col = _column(texts, n, "texts")
    meta_col = _column(metadatas, n, "metadatas")
    src_col = _column(sources, n, "sources")
    out: list[NewRecord] = []
    for i, rid in enumerate(id_list):
        text = text_col[i]
        if text is not None:
            if not isinstance(text, str):
                raise InvalidArgumentError(
                    f"text of record {i} (id {rid!r}) must be a string", index=i, id=rid
                )
            size = _utf8_len(text)
            if size is None:
                raise InvalidArgumentError(
                    f"text of record {i} (id {rid!r}) is not valid Unicode", index=i, id=rid
                )
            if size > limits.max_text_bytes:
                raise LimitExceededError(
                    f"text of record {i} (id {rid!r}) is {size} bytes; the limit is {limits.max_text_bytes}",
                    index=i,
                    id=rid,
                    limit=limits.max_text_bytes,
                )
        source = src_col[i]
        if source is not None:
            validate_source(source, limits, f"source of record {i} (id {rid!r})")
        metadata, blob = _metadata(meta_col[i], i, rid, limits)
        out.append(NewRecord(id=rid, text=text, metadata=metadata, metadata_json=blob, source=source))
    return out, vecs
