"""Index specs: frozen value objects parsed from the JSON a user gives.

- ``{"type": "flat"}``: exact search.
- ``{"type": "ivf", "nlist": "auto" | int, "nprobe": None | int, "storage": "flat" | "sq8" | "pq<m>"}``
- ``{"type": "hnsw", "m": 32, "ef_construction": 100, "ef_search": None | int, "storage": "flat" | "sq8" |
  "fp16"}``
- ``{"type": "auto"}`` (the default): exact while the collection is small, HNSW from ``threshold`` records.

The ANN kinds carry ``target_recall`` (default 0.95): each built index calibrates ``ef_search`` /
``nprobe`` to reach it (``vecdb.index.calibrate``). A spec's explicit ``ef_search`` / ``nprobe`` pins the
knob instead. Search-time overrides (``params={"ef_search": ..., "nprobe": ..., "target_recall": ...}``)
are parsed by ``parse_search_params``; an explicit knob wins over a target.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from vecdb.errors import InvalidArgumentError, InvalidConfigError

__all__ = [
    "AnySpec",
    "AutoSpec",
    "FlatSpec",
    "HnswSpec",
    "IndexSpec",
    "IvfSpec",
    "SearchParams",
    "parse_index_spec",
    "parse_search_params",
    "target_of",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class FlatSpec(BaseModel):
    """Exact search over every vector: recall 1.0, cost linear in the collection."""

    model_config = _FROZEN
    type: Literal["flat"] = "flat"


class HnswSpec(BaseModel):
    """Graph index (FAISS IndexHNSWFlat). Deletes are tombstoned until the next rebuild."""

    model_config = _FROZEN
    type: Literal["hnsw"] = "hnsw"
    m: int = Field(32, ge=4, le=128, description="Neighbours per node.")
    ef_construction: int = Field(100, ge=8, le=2048, description="Candidate list size while building.")
    ef_search: int | None = Field(
        None, ge=1, le=32768, description="Candidate list size while searching; None: calibrated."
    )
    target_recall: float = Field(0.95, gt=0, le=1, description="Recall@k the calibration aims for.")
    storage: Literal["flat", "sq8", "fp16"] = Field(
        "flat",
        description="How the graph stores vectors: float32 ('flat'), 1 byte ('sq8') or 2 bytes ('fp16') "
        "a dimension; compressed storage re-ranks candidates exactly from the store.",
    )


class IvfSpec(BaseModel):
    """Inverted-file index (FAISS IndexIVF*, native ids with a hashtable direct map).

    Trained once ``train_min`` vectors exist (exact search before); ``nlist="auto"`` picks about
    sqrt(n) lists at each (re)training.
    """

    model_config = _FROZEN
    type: Literal["ivf"] = "ivf"
    nlist: int | Literal["auto"] = "auto"
    nprobe: int | None = Field(
        None, ge=1, le=65536, description="Lists searched per query; None: calibrated."
    )
    storage: str = "flat"
    target_recall: float = Field(0.95, gt=0, le=1, description="Recall@k the calibration aims for.")

    @field_validator("nlist")
    @classmethod
    def _nlist(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 65536:
            raise ValueError("nlist must be 'auto' or an integer from 1 to 65536")
        return v

    @field_validator("storage")
    @classmethod
    def _storage(cls, v: str) -> str:
        if v not in ("flat", "sq8") and not re.fullmatch(r"pq([1-9][0-9]{0,2})", v):
            raise ValueError("storage must be 'flat', 'sq8' or 'pq<m>' (m sub-quantizers dividing dim)")
        return v


class AutoSpec(BaseModel):
    """Exact search while small; an HNSW index (built in the background) from ``threshold`` records."""

    model_config = _FROZEN
    type: Literal["auto"] = "auto"
    threshold: int = Field(20_000, ge=1, description="Records from which the HNSW index is built.")
    target_recall: float = Field(0.95, gt=0, le=1, description="Recall@k the calibration aims for.")


AnySpec = FlatSpec | IvfSpec | HnswSpec | AutoSpec
IndexSpec = Annotated[AnySpec, Field(discriminator="type")]
_ADAPTER: TypeAdapter[AnySpec] = TypeAdapter(IndexSpec)
_KINDS = ("auto", "flat", "hnsw", "ivf")


def parse_index_spec(raw: Any, dim: int | None = None) -> AnySpec:
    """Parse ``{"type": ..., ...}`` (None means ``auto``). Raises InvalidConfigError."""
    if raw is None:
        return AutoSpec()
    if isinstance(raw, FlatSpec | IvfSpec | HnswSpec | AutoSpec):
        spec = raw
    else:
        if not isinstance(raw, dict):
            raise InvalidConfigError(f"index spec must be an object like {{'type': 'hnsw'}}, got {raw!r}")
        if raw.get("type") not in _KINDS:
            raise InvalidConfigError(
                f"unknown index type {raw.get('type')!r}; supported: {list(_KINDS)}", field="index.type"
            )
        try:
            spec = _ADAPTER.validate_python(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"][1:]) or "index"
            raise InvalidConfigError(
                f"invalid index spec {raw!r}: {where}: {err['msg']}", field=where
            ) from exc
    if dim is not None and isinstance(spec, IvfSpec) and spec.storage.startswith("pq"):
        m = int(spec.storage[2:])
        if dim % m:
            raise InvalidConfigError(f"storage {spec.storage}: {m} must divide the dimension {dim}")
    return spec


class SearchParams(BaseModel):
    """Per-query overrides. A knob the collection's current index lacks is ignored (auto may be exact).
    ``ef_search`` / ``nprobe`` win over ``target_recall`` (a recall@k target, looked up in the index's
    calibration)."""

    model_config = _FROZEN
    ef_search: int | None = Field(None, ge=1, le=32768)
    nprobe: int | None = Field(None, ge=1, le=65536)
    target_recall: float | None = Field(None, gt=0, le=1)


def target_of(spec: AnySpec) -> float | None:
    """The spec's recall target (None for flat: exact)."""
    return None if isinstance(spec, FlatSpec) else spec.target_recall


def parse_search_params(raw: Any) -> SearchParams:
    if raw is None:
        return SearchParams()
    if isinstance(raw, SearchParams):
        return raw
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"params must be an object like {{'ef_search': 128}}, got {raw!r}")
    try:
        return SearchParams.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "params"
        raise InvalidArgumentError(f"invalid search params: {where}: {err['msg']}", field=where) from exc
