"""Embedding: local model resolution, lazily loaded models on onnxruntime or torch. Imports only leaves."""

from vecdb.embed.backends import BACKENDS, Embedder
from vecdb.embed.folder import ModelFolder, read_folder
from vecdb.embed.models import DEFAULT_MODEL, PACKAGED_MODELS, EmbedderRegistry, resolve_model
from vecdb.embed.spec import EMBEDDING_KEYS, EmbeddingSpec

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "EMBEDDING_KEYS",
    "PACKAGED_MODELS",
    "Embedder",
    "EmbedderRegistry",
    "EmbeddingSpec",
    "ModelFolder",
    "read_folder",
    "resolve_model",
]
