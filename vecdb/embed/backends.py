"""The two ways a loaded model turns texts into vectors: onnxruntime (``onnx``, ``onnx-int8``) and
sentence-transformers on torch (``torch``).

Both give unit-norm (when the model normalizes) float32 rows in input order, apply a prompt (prepended to
each text, as sentence-transformers does) and a per-call window (``max_seq_length``), and size their
intra-op threads from ``embedding.threads`` when set. By default (0), onnxruntime uses all the cores this
process may use for every call (its idle workers sleep rather than spin), and torch 1 thread for calls of at
most ``SMALL_CALL_TEXTS`` texts (a query: its spinning OpenMP workers lose badly to a busy host, FACTS.md)
and all the cores for larger calls (bulk ingest).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from vecdb.embed.folder import ModelFolder, read_folder
from vecdb.errors import InvalidConfigError, ModelUnavailableError

__all__ = ["BACKENDS", "SMALL_CALL_TEXTS", "Embedder", "OnnxEmbedder", "TorchEmbedder", "load_embedder"]

log = logging.getLogger(__name__)

BACKENDS = ("onnx", "onnx-int8", "torch")
#: Calls with at most this many texts run on one intra-op thread when ``embedding.threads`` is 0.
SMALL_CALL_TEXTS = 4
#: How long a first-use ONNX export may take before it is given up (seconds).
EXPORT_TIMEOUT = 600


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Embedder:
    """A loaded model. ``encode`` is thread-safe."""

    backend: str = ""

    def __init__(
        self, name: str, path: Path, folder: ModelFolder, dim: int, batch_size: int, threads: int
    ) -> None:
        self.name = name
        self.path = path
        self.folder = folder
        self.dim = dim
        self.batch_size = batch_size
        self.threads = threads
        #: The model's own window in tokens (special tokens included).
        self.max_seq_length = folder.max_seq_length

    def threads_for(self, n_texts: int) -> int:
        """Intra-op threads for a call with ``n_texts`` texts."""
        if self.threads:
            return self.threads
        return 1 if n_texts <= SMALL_CALL_TEXTS else cores()

    def window(self, max_seq_length: int | None) -> int:
        """The window of a call: ``max_seq_length`` (checked against the model's) or the model's."""
        if max_seq_length is None:
            return self.max_seq_length
        return max_seq_length

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text as this model counts them, special tokens included, untruncated."""
        return self.folder.count_tokens(texts)

    def encode(self, texts: list[str], *, prompt: str = "", max_seq_length: int | None = None) -> np.ndarray:
        """(len(texts), dim) float32 in input order; ``prompt`` is prepended to every text, and each is
        truncated to ``max_seq_length`` tokens (default: the model's window)."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        if prompt:
            texts = [prompt + t for t in texts]
        return np.ascontiguousarray(self._encode(texts, self.window(max_seq_length)), dtype=np.float32)

    def _encode(self, texts: list[str], window: int) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "dim": self.dim,
            "max_seq_length": self.max_seq_length,
            "backend": self.backend,
        }


class OnnxEmbedder(Embedder):
    """The folder's transformer in onnxruntime: tokenize (``tokenizers``), length-bucketed batches, run,
    pool, normalize, all in numpy. One session per thread count, created on first need (one, unless a
    subclass varies the count); onnxruntime's ``run`` is thread-safe."""

    def __init__(self, *args: Any, model_file: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend = "onnx-int8" if model_file.name.endswith("-int8.onnx") else "onnx"
        self.model_file = model_file
        self._lock = threading.Lock()
        self._sessions: dict[int, Any] = {}
        self._inputs: set[str] = set()
        self.session(self.threads_for(1))  # load now: a broken file fails at load, not at the first request

    def session(self, threads: int) -> Any:
        with self._lock:
            session = self._sessions.get(threads)
            if session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                # Waiting threads sleep instead of spinning: spinning workers fight a busy host's
                # other processes (and this one's other requests) for the cores.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.log_severity_level = 3
                session = ort.InferenceSession(
                    str(self.model_file), options, providers=["CPUExecutionProvider"]
                )
                self._inputs = {i.name for i in session.get_inputs()}
                self._sessions[threads] = session
            return session

    def threads_for(self, n_texts: int) -> int:
        """``threads``, else all cores for every call: onnxruntime's workers sleep instead of spinning, so
        extra threads cost a single query nothing and help it even on a busy host (measured:
        benchmarks/results/embed.md, "Threads"), unlike torch's."""
        return self.threads or cores()

    def _encode(self, texts: list[str], window: int) -> np.ndarray:
        session = self.session(self.threads_for(len(texts)))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for batch in self.folder.batches(texts, window, self.batch_size):
            feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
            hidden = session.run(None, feeds)[0]
            out[batch.rows] = self.folder.pool(hidden, batch.attention_mask)
        return out


class TorchEmbedder(Embedder):
    """sentence-transformers on torch (any sentence-transformers folder: Dense layers, custom modules).
    Its ``encode`` sorts a call's texts by length before batching. torch's thread count is per process:
    set before each call, so concurrent calls of different sizes may run with either count."""

    backend = "torch"

    def __init__(self, *args: Any, model: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self.max_seq_length = int(model.max_seq_length or self.max_seq_length)
        self._window_lock = threading.Lock()

    def _encode(self, texts: list[str], window: int) -> np.ndarray:
        import torch

        torch.set_num_threads(self.threads_for(len(texts)))
        if window == self.max_seq_length:
            return self._run(texts)
        with self._window_lock:  # the window is the model's attribute: one other-window call at a time
            self.model.max_seq_length = window
            try:
                return self._run(texts)
            finally:
                self.model.max_seq_length = self.max_seq_length

    def _run(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        )


def _offline(allow_download: bool) -> None:
    if not allow_download:
        # Never let a library reach for the hub while loading a local folder.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def export_key(path: Path) -> str:
    """The folder name of the ONNX files of the model folder ``path``: its name and a digest of its
    absolute path and its weights' and configs' sizes and times, so a replaced model gets a fresh export."""
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode())
    for f in sorted(resolved.glob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json"):
            st = f.stat()
            digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", resolved.name)[:60] or "model"
    return f"{slug}-{digest.hexdigest()[:16]}"


def install_dir() -> Path:
    """Exports made at install (``make install`` runs ``python -m vecdb.embed.export --packaged``):
    inside the virtualenv, read-only at run time, shared by every data directory."""
    return Path(sys.prefix) / "share" / "vecdb" / "onnx"


def _export(name: str, path: Path, dest: Path, int8: bool) -> None:
    """Run ``python -m vecdb.embed.export`` in a child process (torch is imported there, not here)."""
    import vecdb.embed

    package_root = str(Path(vecdb.embed.__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    command = [
        sys.executable,
        "-m",
        "vecdb.embed.export",
        str(path),
        str(dest),
        *(["--int8"] if int8 else []),
    ]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=EXPORT_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelUnavailableError(
            f"embedding model {name!r}: the ONNX export took over {EXPORT_TIMEOUT} s; set "
            "embedding.backend=torch to run it without ONNX",
            model=name,
        ) from exc
    if proc.returncode != 0:
        log.warning("ONNX export of %s (%s) failed:\n%s", name, path, proc.stderr[-4000:])
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        raise ModelUnavailableError(
            f"embedding model {name!r} could not be exported to ONNX ({last}); set "
            "embedding.backend=torch to run it without ONNX (the server log has the details)",
            model=name,
        )
    log.info("embedding model %s exported to ONNX in %.1f s: %s", name, time.perf_counter() - started, dest)


def load_embedder(
    name: str,
    path: Path,
    *,
    backend: str,
    batch_size: int,
    device: str,
    threads: int,
    models_dir: Path | None,
    allow_download: bool,
) -> Embedder:
    """Load the model folder ``path`` on ``backend``. Raises ModelUnavailableError (not a loadable folder,
    or one the ONNX pipeline cannot run)."""
    _offline(allow_download)
    started = time.perf_counter()
    folder = read_folder(path)
    if backend == "torch":
        embedder: Embedder = _load_torch(name, path, folder, batch_size, device, threads)
    else:
        embedder = _load_onnx(name, path, folder, backend, batch_size, threads, models_dir)
    log.info(
        "embedding model %s loaded from %s on %s in %.1f s (dim %d, window %d tokens)",
        name,
        path,
        embedder.backend,
        time.perf_counter() - started,
        embedder.dim,
        embedder.max_seq_length,
    )
    return embedder


def _not_loadable(name: str, path: Path, exc: BaseException) -> ModelUnavailableError:
    log.warning("embedding model %s: %s is not a loadable folder: %s", name, path, exc)
    return ModelUnavailableError(
        f"embedding model {name!r} is not a loadable sentence-transformers folder "
        f"({type(exc).__name__}; the server log has the details)",
        model=name,
    )


def _load_onnx(
    name: str,
    path: Path,
    folder: ModelFolder,
    backend: str,
    batch_size: int,
    threads: int,
    models_dir: Path | None,
) -> Embedder:
    if models_dir is None:
        raise InvalidConfigError("the ONNX embedding backend needs a data directory for its exports")
    if not (path / "config.json").is_file():
        raise _not_loadable(name, path, FileNotFoundError("config.json"))
    why = folder.onnx_unsupported()
    if why is not None:
        raise ModelUnavailableError(
            f"embedding model {name!r} cannot run on the ONNX backend: {why}; set embedding.backend=torch",
            model=name,
        )
    key = export_key(path)
    filename = "model-int8.onnx" if backend == "onnx-int8" else "model.onnx"
    dest = models_dir / key
    file = install_dir() / key / filename
    if not file.is_file():
        file = dest / filename
        if not file.is_file():
            _export(name, path, dest, int8=backend == "onnx-int8")
    dim = folder.dim
    if not dim:
        raise _not_loadable(name, path, ValueError("no embedding dimension in its config"))
    try:
        return OnnxEmbedder(name, path, folder, dim, batch_size, threads, model_file=file)
    except Exception as exc:  # onnxruntime's own errors (a damaged export): reported as the model's
        raise ModelUnavailableError(
            f"embedding model {name!r}: its ONNX export {file.name} does not load "
            f"({type(exc).__name__}); delete {dest.name} under the data directory's models/ to export again",
            model=name,
        ) from exc


def _load_torch(
    name: str, path: Path, folder: ModelFolder, batch_size: int, device: str, threads: int
) -> Embedder:
    import torch
    from sentence_transformers import SentenceTransformer

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    except ImportError:
        pass
    try:
        model = SentenceTransformer(str(path), device=device)
    except (ValueError, OSError, KeyError) as exc:
        raise _not_loadable(name, path, exc) from exc
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = int(get_dim() or 0)
    return TorchEmbedder(name, path, folder, dim, batch_size, threads, model=model)
