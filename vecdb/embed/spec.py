"""A collection's embedding declaration: ``embedding={"model", "query_prompt", "document_prompt",
"max_seq_length"}``, as stored in its manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EMBEDDING_KEYS", "EmbeddingSpec"]

EMBEDDING_KEYS = frozenset({"model", "query_prompt", "document_prompt", "max_seq_length"})


@dataclass(frozen=True)
class EmbeddingSpec:
    """``model``: a name or an absolute folder path (a relative folder is made absolute at creation).
    ``query_prompt`` is prepended to query texts (search), ``document_prompt`` to record texts (upsert,
    replace_source, embed with a collection); ``max_seq_length`` is the window in tokens each text is
    truncated to (None: the model's own)."""

    model: str
    query_prompt: str = ""
    document_prompt: str = ""
    max_seq_length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_manifest(cls, value: Any) -> EmbeddingSpec | None:
        """From a stored manifest (older ones hold ``{"model"}`` only)."""
        if not isinstance(value, dict) or not value.get("model"):
            return None
        return cls(
            model=str(value["model"]),
            query_prompt=str(value.get("query_prompt") or ""),
            document_prompt=str(value.get("document_prompt") or ""),
            max_seq_length=value.get("max_seq_length"),
        )
