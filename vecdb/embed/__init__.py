"""Embedding: local model resolution and lazily loaded sentence-transformers models. Imports only leaves."""

from vecdb.embed.models import DEFAULT_MODEL, PACKAGED_MODELS, Embedder, EmbedderRegistry, resolve_model

__all__ = ["DEFAULT_MODEL", "PACKAGED_MODELS", "Embedder", "EmbedderRegistry", "resolve_model"]
