"""Index specs: frozen value objects parsed from the JSON a user gives."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from vecdb.errors import InvalidConfigError

__all__ = ["FlatSpec", "IndexSpec", "parse_index_spec"]


class FlatSpec(BaseModel):
    """Exact search over every vector: recall 1.0, cost linear in the collection."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["flat"] = "flat"


IndexSpec = FlatSpec
_KINDS: dict[str, type[BaseModel]] = {"flat": FlatSpec}


def parse_index_spec(raw: Any) -> IndexSpec:
    """Parse ``{"type": "flat", ...}`` (None means the default). Raises InvalidConfigError."""
    if raw is None:
        return FlatSpec()
    if isinstance(raw, FlatSpec):
        return raw
    if not isinstance(raw, dict):
        raise InvalidConfigError(f"index spec must be an object like {{'type': 'flat'}}, got {raw!r}")
    kind = raw.get("type")
    if kind not in _KINDS:
        raise InvalidConfigError(
            f"unknown index type {kind!r}; supported: {sorted(_KINDS)}", field="index.type"
        )
    try:
        return FlatSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidConfigError(f"invalid index spec {raw!r}: {exc.errors()[0]['msg']}") from exc
