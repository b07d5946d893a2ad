"""Where searches run: on the CPU only, or also on a GPU through FAISS's GPU indexes.

The CPU index is always the index of record: writes, reconstruction, selectors (filters) and checkpoints
use it, so a collection built on a GPU machine reopens on one without. A ``Device`` keeps a *mirror* of a
flat or IVF index in device memory and serves the searches a mirror can answer exactly as the CPU index
would; everything else falls back to the CPU index:

- FAISS's GPU indexes take no ``IDSelector``: a filtered search runs on the CPU. Deleted labels that the
  mirror still holds are excluded by asking the GPU for ``k + excluded`` results and dropping them, as
  long as that stays within ``max_k`` (FAISS GPU's top-k limit); past it, the CPU answers.
- HNSW has no GPU index here: HNSW collections search on the CPU.
- A mirror that fails (out of device memory, an index type the GPU build lacks) is dropped with a
  warning and the CPU answers; it is never a failed search.

``Device`` is a protocol so that the mirror logic can be tested on a CPU-only machine with a device whose
"device copy" is a CPU clone (tests do this); production uses ``GpuDevice``.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Literal, Protocol

import faiss
import numpy as np
from pyroaring import BitMap64

from vecdb.errors import InvalidConfigError

__all__ = [
    "Device",
    "DeviceName",
    "FlatMirror",
    "FrozenMirror",
    "GpuDevice",
    "faiss_distributions",
    "gpu_count",
    "resolve_device",
]

log = logging.getLogger("vecdb.index.device")

DeviceName = Literal["cpu", "gpu", "auto"]

#: FAISS GPU's largest k (and nprobe) for flat and IVF searches is 2048; we stay under it with margin.
GPU_MAX_K = 1024


class Device(Protocol):
    """Somewhere other than the CPU index that can search. Calls that touch the device hold ``lock``
    (FAISS GPU resources and indexes are not safe to use from several threads at once)."""

    name: str
    max_k: int
    lock: threading.Lock

    def copy(self, index: faiss.Index) -> faiss.Index:
        """A device copy of a CPU flat or IVF index (raises when the index cannot live there)."""
        ...

    def new_flat(self, dim: int, metric_type: int) -> faiss.Index:
        """An empty exact index on the device (positions as ids)."""
        ...


def gpu_count() -> int:
    """GPUs FAISS can use: 0 with the faiss-cpu build or without a GPU."""
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


def faiss_distributions() -> list[str]:
    """The installed FAISS distributions (``faiss-cpu``, ``faiss-gpu``...). Two at once share one
    ``faiss`` module: whichever was installed last overwrote the other's files.

    Read from the names of the ``*.dist-info`` / ``*.egg-info`` folders on ``sys.path``, not from
    ``importlib.metadata.distributions()``: that parses every installed package's metadata (~0.2 s
    with this project's ~150 packages), and it ran at every database open."""
    names: set[str] = set()
    for entry in sys.path:
        folder = Path(entry or ".")
        try:
            found = [*folder.glob("faiss*.dist-info"), *folder.glob("faiss*.egg-info")]
        except OSError:
            continue
        names.update(info.name.split("-")[0].replace("_", "-").lower() for info in found)
    return sorted(names)


class GpuDevice:
    """GPU ``gpu_id`` through FAISS's GPU indexes (one ``StandardGpuResources`` for the process)."""

    name = "gpu"
    max_k = GPU_MAX_K

    def __init__(self, gpu_id: int = 0) -> None:
        self.gpu_id = gpu_id
        self.lock = threading.Lock()
        self._resources = faiss.StandardGpuResources()

    def copy(self, index: faiss.Index) -> faiss.Index:
        return faiss.index_cpu_to_gpu(self._resources, self.gpu_id, index)

    def new_flat(self, dim: int, metric_type: int) -> faiss.Index:
        config = faiss.GpuIndexFlatConfig()
        config.device = self.gpu_id
        return faiss.GpuIndexFlat(self._resources, dim, metric_type, config)


def resolve_device(name: DeviceName) -> Device | None:
    """The device for the ``index.device`` setting: None for the CPU only.

    ``auto`` picks the GPU when FAISS sees one; ``gpu`` without one is an ``InvalidConfigError`` (with
    the installed FAISS build named), never a silent fallback.
    """
    if name == "cpu":
        return None
    builds = faiss_distributions()
    if len(builds) > 1:
        log.warning("several FAISS builds are installed (%s): keep exactly one", ", ".join(builds))
    if gpu_count() == 0:
        if name == "gpu":
            why = (
                "no GPU is visible to it (driver, CUDA_VISIBLE_DEVICES?)"
                if hasattr(faiss, "StandardGpuResources")
                else "this FAISS build has no GPU support: `make install-gpu` (docs/gpu.md)"
            )
            raise InvalidConfigError(
                f"index.device is 'gpu' but FAISS sees no GPU: {why}; installed: "
                f"{', '.join(builds) or 'no FAISS distribution'}",
                device=name,
                faiss=builds,
            )
        return None
    return GpuDevice(0)


def _bitmap(labels: np.ndarray) -> BitMap64:
    return BitMap64(np.ascontiguousarray(labels, dtype=np.int64).view(np.uint64))


def _worst(metric_type: int) -> float:
    return float(np.inf) if metric_type == faiss.METRIC_L2 else float(-np.inf)


def _keep_first(
    scores: np.ndarray, labels: np.ndarray, drop: np.ndarray, k: int, metric_type: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first ``k`` results whose label is valid and not in ``drop`` (sorted int64)."""
    keep = labels >= 0
    if len(drop):
        keep &= ~np.isin(labels, drop, assume_unique=False)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(keep, order, axis=1)
    out_scores = np.where(kept, np.take_along_axis(scores, order, axis=1), _worst(metric_type))
    out_labels = np.where(kept, np.take_along_axis(labels, order, axis=1), -1)
    return out_scores.astype(np.float32, copy=False), out_labels.astype(np.int64, copy=False)


class FrozenMirror:
    """A device copy of an immutable index (an IVF that serves searches, never mutated), ids native."""

    def __init__(self, device: Device, index: faiss.Index, metric_type: int) -> None:
        self._device = device
        self._metric_type = metric_type
        with device.lock:
            self._index: faiss.Index | None = device.copy(index)

    @property
    def usable(self) -> bool:
        return self._index is not None

    def search(
        self, queries: np.ndarray, k: int, exclude: np.ndarray, nprobe: int | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Top-k of the mirror without the ``exclude`` labels, or None when the device cannot answer
        exactly as the CPU index would (the caller searches the CPU index)."""
        index = self._index
        want = k + len(exclude)
        if index is None or want > self._device.max_k or (nprobe or 0) > self._device.max_k:
            return None
        want = min(want, int(index.ntotal)) or 1
        params = None if nprobe is None else faiss.SearchParametersIVF(nprobe=nprobe)  # type: ignore[call-arg]
        try:
            with self._device.lock:
                scores, labels = index.search(np.ascontiguousarray(queries, np.float32), want, params=params)
        except RuntimeError as exc:
            log.warning("%s search failed (%s); searching on the CPU from now on", self._device.name, exc)
            self._index = None
            return None
        return _keep_first(scores, labels, exclude, k, self._metric_type)


class FlatMirror:
    """A device copy of a mutable exact index. The device index has no ids and no removal: the mirror
    keeps the label of each device row, and removed labels as ``dead`` rows, excluded at search time.
    Once dead rows pass ``max_k / 2`` the device copy is rebuilt from the live rows (at the next write).
    """

    def __init__(self, device: Device, dim: int, metric_type: int) -> None:
        self._device = device
        self._dim = dim
        self._metric_type = metric_type
        self._rows = np.empty(0, np.int64)  # label of each device row
        self._dead = BitMap64()
        self._broken = False
        self._stale = False  # must be reloaded before it may answer again
        with device.lock:
            self._index = device.new_flat(dim, metric_type)

    @property
    def usable(self) -> bool:
        return not self._broken

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        if self._broken or not len(labels):
            return
        if self._dead and self._dead.intersection_cardinality(_bitmap(labels)):
            # A dead row holds this label: exclusion by label could no longer tell the two apart.
            self._stale = True
        try:
            with self._device.lock:
                self._index.add(np.ascontiguousarray(vectors, np.float32))
        except RuntimeError as exc:
            self._fail(exc)
            return
        self._rows = np.concatenate([self._rows, np.asarray(labels, np.int64)])

    def remove(self, labels: np.ndarray) -> None:
        if not self._broken and len(labels):
            self._dead |= _bitmap(labels)

    def needs_reload(self) -> bool:
        return not self._broken and (self._stale or len(self._dead) > self._device.max_k // 2)

    def reload(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the device copy with exactly these rows (the CPU index's live content)."""
        if self._broken:
            return
        try:
            with self._device.lock:
                self._index.reset()
                if len(labels):
                    self._index.add(np.ascontiguousarray(vectors, np.float32))
        except RuntimeError as exc:
            self._fail(exc)
            return
        self._rows = np.asarray(labels, np.int64).copy()
        self._dead = BitMap64()
        self._stale = False

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Exact top-k over the live rows, or None when the device cannot answer (the caller searches
        the CPU index)."""
        live = len(self._rows) - len(self._dead)
        if self._broken or self._stale or live <= 0 or k + len(self._dead) > self._device.max_k:
            return None
        want = min(k + len(self._dead), len(self._rows))
        try:
            with self._device.lock:
                scores, pos = self._index.search(np.ascontiguousarray(queries, np.float32), want)
        except RuntimeError as exc:
            self._fail(exc)
            return None
        labels = np.where(pos >= 0, self._rows[np.maximum(pos, 0)], -1)
        dead = np.frombuffer(self._dead.to_array(), dtype=np.uint64).view(np.int64)
        return _keep_first(scores, labels, dead, k, self._metric_type)

    def _fail(self, exc: Exception) -> None:
        log.warning("%s flat index failed (%s); searching on the CPU from now on", self._device.name, exc)
        self._broken = True
        self._rows = np.empty(0, np.int64)
        self._dead = BitMap64()
