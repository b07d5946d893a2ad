"""ANN indexes (HNSW, IVF) as immutable snapshots: built off-line, then only searched.

An ``AnnIndex`` is never mutated once it serves searches: deletes are tombstones kept by
``TieredIndex``, new vectors wait in its exact delta buffer, and a background job builds the next
``AnnIndex`` (a copy plus the delta, or a rebuild from the store) that is swapped in atomically. So
searches never race with FAISS mutations, and a copy needs no lock.

- HNSW: ``IDMap2,HNSW<m>`` over full float32 vectors, or ``IDMap2,HNSW<m>_SQ8`` / ``_SQfp16`` (1 or 2
  bytes a dimension; scores re-ranked exactly from the store). IDMap2 over HNSW is safe: HNSW never has
  ``remove_ids`` called on it.
- IVF: ``IVF<nlist>,Flat|SQ8|PQ<m>`` with native ids and a hashtable direct map (never IDMap2 over IVF:
  its remove_ids corrupts ids and can abort the process, see FACTS.md).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from vecdb.index.device import Device, FrozenMirror
from vecdb.index.flat import faiss_metric, write_index_to
from vecdb.index.selectors import LabelSelector
from vecdb.index.spec import AutoSpec, HnswSpec, IvfSpec, SearchParams

__all__ = [
    "FALLBACK_EF",
    "FALLBACK_NPROBE",
    "ID_MAP_ENTRY_BYTES",
    "AnnIndex",
    "BuildCancelledError",
    "Fetch",
    "build_ann",
    "ivf_nlist",
    "new_ann",
]

log = logging.getLogger("vecdb.index.ann")
ADD_CHUNK = 8192
MAX_EF = 32768
#: Knobs used before an index is calibrated (an index checkpointed by a version without calibration).
FALLBACK_EF = 64
FALLBACK_NPROBE = 32
#: Estimated bytes of one entry of FAISS's id hash maps (IDMap2's rev_map, IVF's hashtable direct map):
#: a std::unordered_map node (key, value, next pointer, allocator header) plus its bucket pointer.
ID_MAP_ENTRY_BYTES = 40
_HNSW_STORAGE = {"flat": "", "sq8": "_SQ8", "fp16": "_SQfp16"}


class BuildCancelledError(Exception):
    """A background build was stopped (the collection is closing)."""


def ivf_nlist(spec: IvfSpec, n: int) -> int:
    """Lists for an IVF trained on ``n`` vectors: the spec's, or about sqrt(n) for ``auto``."""
    if isinstance(spec.nlist, int):
        return spec.nlist
    return max(1, min(65536, round(math.sqrt(n))))


class AnnIndex:
    """A built HNSW or IVF index over prepared vectors, addressed by labels."""

    def __init__(self, kind: str, index: faiss.Index, dim: int, trained_n: int) -> None:
        self.kind = kind
        self._index = index
        self.dim = dim
        self.trained_n = trained_n  # vectors the IVF was trained on (0 for HNSW)
        self._mirror: FrozenMirror | None = None

    def attach(self, device: Device) -> None:
        """Mirror an IVF index on ``device`` (once built: the index is never mutated afterwards).
        HNSW stays on the CPU. A failed copy leaves the index CPU-only, with a warning."""
        if self.kind != "ivf":
            return
        try:
            self._mirror = FrozenMirror(device, self._index, int(self._index.metric_type))
        except RuntimeError as exc:
            log.warning("IVF index not copied to the %s (%s): it searches on the CPU", device.name, exc)

    @property
    def on_device(self) -> bool:
        return self._mirror is not None and self._mirror.usable

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @functools.cached_property
    def lossy(self) -> bool:
        """True when stored vectors are compressed (IVF with sq8/pq storage, HNSW with sq8/fp16). Cached:
        the storage kind of an index never changes, and every search asks (a downcast costs ~12 us)."""
        if self.kind == "hnsw":
            return not isinstance(faiss.downcast_index(self._index.index), faiss.IndexHNSWFlat)  # type: ignore[attr-defined]
        # extract_index_ivf returns the IndexIVF base class: downcast to see the storage kind.
        return not isinstance(faiss.downcast_index(faiss.extract_index_ivf(self._index)), faiss.IndexIVFFlat)

    def memory(self) -> dict[str, int]:
        """Bytes held, by part: ``vectors`` (the stored codes: float32, or compressed), ``graph`` (HNSW's
        links) or ``lists`` (IVF's ids and centroids), ``ids`` (label maps). Computed from the index's
        sizes; hash-map entries are estimated (``ID_MAP_ENTRY_BYTES``)."""
        if self.kind == "hnsw":
            hnsw_index = faiss.downcast_index(self._index.index)  # type: ignore[attr-defined]
            g = hnsw_index.hnsw  # type: ignore[attr-defined]
            n = int(hnsw_index.ntotal)
            graph = 4 * int(g.neighbors.size()) + 4 * int(g.levels.size()) + 8 * int(g.offsets.size())
            ids = int(self._index.id_map.size()) * (8 + ID_MAP_ENTRY_BYTES)  # type: ignore[attr-defined]
            return {"vectors": n * int(hnsw_index.storage.sa_code_size()), "graph": graph, "ids": ids}  # type: ignore[attr-defined]
        ivf = faiss.extract_index_ivf(self._index)
        n = int(ivf.ntotal)
        lists = 8 * n + 4 * self.dim * int(ivf.nlist)
        return {"vectors": n * int(ivf.code_size), "lists": lists, "ids": n * ID_MAP_ENTRY_BYTES}

    @property
    def nlist(self) -> int:
        return int(faiss.extract_index_ivf(self._index).nlist) if self.kind == "ivf" else 0

    def labels(self) -> np.ndarray:
        if self.kind == "hnsw":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)  # type: ignore[attr-defined]
        ivf = faiss.extract_index_ivf(self._index)
        invlists: Any = ivf.invlists
        parts = [
            faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
            for i in range(ivf.nlist)
            if invlists.list_size(i)
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)

    def add(self, labels: np.ndarray, vectors: np.ndarray, cancel: threading.Event | None = None) -> None:
        """Add in chunks (only while building, before the index serves searches)."""
        for start in range(0, len(labels), ADD_CHUNK):
            if cancel is not None and cancel.is_set():
                raise BuildCancelledError
            end = start + ADD_CHUNK
            self._index.add_with_ids(
                np.ascontiguousarray(vectors[start:end], dtype=np.float32),
                np.ascontiguousarray(labels[start:end], dtype=np.int64),
            )

    def stored_blocks(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """(labels, vectors) views of the index's own float32 storage, no copy (the HNSW graph's flat
        storage; one block per IVF list); None for compressed (sq8/pq) storage. The views point into
        this index's memory: keep a reference to it while they are used (it is never mutated)."""
        if self.kind == "hnsw":
            storage: Any = faiss.downcast_index(faiss.downcast_index(self._index.index).storage)  # type: ignore[attr-defined]
            n = int(storage.ntotal)
            if n == 0:
                return []
            xb = faiss.rev_swig_ptr(storage.get_xb(), n * self.dim).reshape(n, self.dim)
            return [(self.labels(), xb)]
        if self.lossy:
            return None
        ivf = faiss.extract_index_ivf(self._index)
        invlists: Any = ivf.invlists
        out = []
        for i in range(ivf.nlist):
            size = int(invlists.list_size(i))
            if size:
                codes = faiss.rev_swig_ptr(invlists.get_codes(i), size * int(ivf.code_size))
                ids = faiss.rev_swig_ptr(invlists.get_ids(i), size).astype(np.int64, copy=False)
                out.append((ids, codes.view(np.float32).reshape(size, self.dim)))
        return out

    def reconstruct(self, labels: np.ndarray) -> np.ndarray:
        """Stored (prepared) vectors of labels in the index; approximate for sq8/pq storage."""
        out: np.ndarray = self._index.reconstruct_batch(np.ascontiguousarray(labels, dtype=np.int64))
        return out

    def search(
        self,
        queries: np.ndarray,
        k: int,
        selector: LabelSelector | None,
        spec: HnswSpec | IvfSpec,
        params: SearchParams,
        widen: float,
        exclude: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k among labels the selector admits. ``widen`` >= 1 scales ef / nprobe up for filters.

        The knob is ``params``' (the caller resolves calibration into it), else the spec's, else a fallback.

        ``exclude``, when given, is the selector's meaning as the labels it rejects (the tombstones): a
        device mirror, which takes no selector, can then answer by dropping them.
        """
        mirror = self._mirror
        if mirror is not None and isinstance(spec, IvfSpec) and (selector is None or exclude is not None):
            nprobe = min(self.nlist, math.ceil((params.nprobe or spec.nprobe or FALLBACK_NPROBE) * widen))
            empty = np.empty(0, np.int64)
            found = mirror.search(queries, k, empty if exclude is None else exclude, nprobe)
            if found is not None:
                return found
        sel = None if selector is None else selector.selector
        if isinstance(spec, HnswSpec):
            ef = params.ef_search or spec.ef_search or FALLBACK_EF
            ef = min(MAX_EF, max(k, math.ceil(ef * widen)))
            p: Any = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)  # type: ignore[attr-defined]
        else:
            nprobe = params.nprobe or spec.nprobe or FALLBACK_NPROBE
            p = faiss.SearchParametersIVF(sel=sel, nprobe=min(self.nlist, math.ceil(nprobe * widen)))  # type: ignore[call-arg]
        return self._index.search(queries, k, params=p)

    def copy(self) -> AnnIndex:
        return AnnIndex(self.kind, faiss.clone_index(self._index), self.dim, self.trained_n)

    def serialize(self) -> np.ndarray:
        return faiss.serialize_index(self._index)

    def write_to(self, sink: Callable[[bytes], None]) -> None:
        """Serialize chunk by chunk into ``sink`` (no in-memory copy of the whole index)."""
        write_index_to(self._index, sink)

    @classmethod
    def read_from(cls, kind: str, dim: int, trained_n: int, read: Callable[[int], bytes]) -> AnnIndex:
        """Load from a stream of ``read(n)`` calls (``write_to``'s output): no copy of the whole payload."""
        return cls._checked(kind, dim, trained_n, faiss.read_index(faiss.PyCallbackIOReader(read, 1 << 20)))  # type: ignore[attr-defined]

    @classmethod
    def deserialize(cls, kind: str, dim: int, trained_n: int, payload: np.ndarray) -> AnnIndex:
        return cls._checked(kind, dim, trained_n, faiss.deserialize_index(payload))

    @classmethod
    def _checked(cls, kind: str, dim: int, trained_n: int, index: faiss.Index) -> AnnIndex:
        if index.d != dim:
            raise ValueError(f"ANN payload has dimension {index.d}, expected {dim}")
        if kind == "hnsw" and not isinstance(index, faiss.IndexIDMap2):
            raise ValueError("HNSW payload is not an IDMap2 index")
        if kind == "ivf":
            faiss.extract_index_ivf(index)  # raises when it is not an IVF
        return cls(kind, index, dim, trained_n)


Fetch = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def new_ann(spec: HnswSpec | IvfSpec | AutoSpec, dim: int, metric: str, n: int) -> AnnIndex:
    """An empty index for ``n`` vectors (IVF still untrained)."""
    fm = faiss_metric(metric)
    if isinstance(spec, IvfSpec):
        storage = {"flat": "Flat", "sq8": "SQ8"}.get(spec.storage, spec.storage.upper())
        return AnnIndex("ivf", faiss.index_factory(dim, f"IVF{ivf_nlist(spec, n)},{storage}", fm), dim, n)
    hs = spec if isinstance(spec, HnswSpec) else HnswSpec()
    index = faiss.index_factory(dim, f"IDMap2,HNSW{hs.m}{_HNSW_STORAGE[hs.storage]}", fm)
    faiss.downcast_index(index.index).hnsw.efConstruction = hs.ef_construction  # type: ignore[attr-defined]
    return AnnIndex("hnsw", index, dim, 0)


def build_ann(
    base: AnnIndex,
    labels: np.ndarray,
    fetch: Fetch,
    cancel: threading.Event,
) -> tuple[AnnIndex, np.ndarray]:
    """Add the vectors of ``labels`` to ``base``; return it and the labels actually added.

    ``fetch`` returns (labels found, prepared vectors) and may skip labels deleted meanwhile; it is
    called ADD_CHUNK labels at a time, so a build from the store holds one chunk of raw vectors besides
    the index it builds. An untrained index (IVF; HNSW over sq8) is trained first, on a sample of at
    most max(64 * nlist, 10,000) vectors (fixed seed). ``base`` must not be serving searches. Raises
    BuildCancelledError when ``cancel`` is set.
    """
    if not base._index.is_trained:
        nlist = base.nlist if base.kind == "ivf" else 1
        want = min(len(labels), max(64 * nlist, 10_000))
        pick = np.random.default_rng(1234).choice(len(labels), size=want, replace=False)
        _, sample = fetch(np.sort(labels[pick]))
        if cancel.is_set() or len(sample) < nlist or not len(sample):
            # Cancelled, or the vectors were deleted meanwhile: the planner starts a new job.
            raise BuildCancelledError
        base._index.train(np.ascontiguousarray(sample, dtype=np.float32))
        del sample
        if base.kind == "ivf":
            faiss.extract_index_ivf(base._index).set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        base.trained_n = len(labels) if base.kind == "ivf" else 0
    added = []
    for start in range(0, len(labels), ADD_CHUNK):
        found, vectors = fetch(labels[start : start + ADD_CHUNK])
        base.add(found, vectors, cancel)
        added.append(found)
        del vectors  # one chunk of inputs alive at a time
    return base, np.concatenate(added) if added else np.empty(0, np.int64)
