"""A collection's index: an immutable ANN snapshot, an exact delta buffer, tombstones, a planner.

::

    main        AnnIndex (HNSW or IVF) or None; never mutated while it serves searches
    delta       FlatIndex holding every live vector that is not in main (exact, small)
    tombstones  labels in main that were deleted or replaced since main was built

Invariant: every live label is in exactly one of ``delta`` and ``main - tombstones``.

Writes only touch ``delta`` and ``tombstones`` (cheap). A background job (``start_job`` ->
``run_job`` -> ``finish_job``) builds the next main: a *merge* copies main and adds the delta's vectors
(or builds the first main from them); a *rebuild* builds a fresh index from every live vector (too many
tombstones, or an IVF that outgrew its training). Both read their vectors from the store, a chunk at a
time, so a job holds no copy of the delta. Removals during the job are recorded
and applied to the result before the atomic swap; additions during the job stay in the delta.

Search plans per query batch: with no filter, main (minus tombstones, ef/nprobe widened by the dead
share) and delta are searched and merged. A filter goes to the cheaper of two plans
(``vecdb.index.filtered``: estimated work of each, or a pinned ``exact_max``): *exact*, the admitted
vectors read in place from main's storage (``RowMap``) and from the delta and scored exactly; or *ann*,
main searched with a label selector and ef/nprobe widened by 1/selectivity, the delta exactly.

Not thread-safe by itself: the engine calls mutations and ``start_job``/``finish_job`` under its write
lock, searches under its read lock; ``run_job`` runs unlocked (it touches only the job).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import faiss
import numpy as np
from pyroaring import BitMap64

from vecdb.index.ann import (
    FALLBACK_EF,
    FALLBACK_NPROBE,
    ID_MAP_ENTRY_BYTES,
    MAX_EF,
    AnnIndex,
    BuildCancelledError,
    Fetch,
    build_ann,
    ivf_nlist,
    new_ann,
)
from vecdb.index.audit import AuditPart, AuditView
from vecdb.index.calibrate import Calibration, ExactScan, QueryReservoir, calibrate
from vecdb.index.device import Device
from vecdb.index.filtered import FilterPlan, GatherBuffers, RowMap, choose_plan, row_chunks
from vecdb.index.flat import FlatIndex, faiss_metric
from vecdb.index.selectors import LabelSelector
from vecdb.index.spec import AnySpec, AutoSpec, FlatSpec, HnswSpec, IvfSpec, SearchParams, target_of

__all__ = ["RERANK_FACTOR", "IndexPolicy", "Job", "TieredIndex"]

#: A compressed (sq8/pq) IVF returns k x this many candidates, re-scored exactly from the store.
RERANK_FACTOR = 4
#: Queries re-ranked together (their candidates' stored vectors are fetched at once).
RERANK_BLOCK = 64
#: Rows of a query batch offered to the reservoir of real queries (a batch is usually one kind of query).
RESERVOIR_ROWS = 4


@dataclass(frozen=True, slots=True)
class IndexPolicy:
    """When to build, merge and rebuild, and when a filter is searched exactly (see config.IndexSettings)."""

    merge_min: int = 2_000
    merge_ratio: float = 0.05
    tombstone_share: float = 0.2
    ivf_train_min: int = 10_000
    ivf_regrow: float = 4.0
    #: "auto": filtered searches take the plan of least estimated work (``vecdb.index.filtered``);
    #: a number pins the old rule: exact when the filter admits at most that many records, else ANN.
    exact_max: int | Literal["auto"] = "auto"


@dataclass
class Job:
    kind: Literal["merge", "rebuild"]
    labels: np.ndarray  # what the job adds to its base
    fetch: Fetch
    base: AnnIndex | None  # main to copy (merge), or None for a fresh index
    n: int  # vectors the result will hold (sizes nlist for IVF)
    removed: list[np.ndarray] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    calibration: Calibration | None = None  # of the new main, measured before it is swapped in
    building: AnnIndex | None = None  # the index being built (for memory accounting only)
    rows: RowMap | None = None  # the exact plan's map of the new main, made before it is swapped in


def _bitmap(labels: np.ndarray) -> BitMap64:
    return BitMap64(np.ascontiguousarray(labels, dtype=np.int64).view(np.uint64))


def _labels(bm: BitMap64) -> np.ndarray:
    return np.frombuffer(bm.to_array(), dtype=np.uint64).view(np.int64)


def _spent(want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raise RuntimeError("a finished job's inputs were freed")


class TieredIndex:
    def __init__(
        self,
        spec: AnySpec,
        dim: int,
        metric: str,
        policy: IndexPolicy,
        main: AnnIndex | None = None,
        delta: FlatIndex | None = None,
        main_id: str | None = None,
        raw_fetch: Fetch | None = None,
        device: Device | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.spec = spec
        self.device = device  # flat and IVF searches mirrored there (vecdb.index.device)
        self._raw_fetch = raw_fetch  # stored vectors by label: exact scores where main is lossy
        self.dim = dim
        self.metric = metric
        self.policy = policy
        self.delta = delta if delta is not None else FlatIndex(dim, metric)
        if device is not None:
            self.delta.attach(device)
            if main is not None:
                main.attach(device)
        self.delta_labels = _bitmap(self.delta.labels())
        self.main = main
        self.main_id = main_id  # names main's checkpoint file; changes at every swap
        self.main_labels = _bitmap(main.labels()) if main is not None else BitMap64()
        self.tombstones = BitMap64()
        self._tomb_selector: LabelSelector | None = None
        self._tomb_array: np.ndarray | None = None
        #: The audit's view of main, cached (``audit_view``): main's storage blocks (until a swap), and
        #: with their dead rows masked (until tombstones change).
        self._audit_blocks: tuple[AnnIndex, list[AuditPart]] | None = None
        self._audit_main: list[AuditPart] | None = None
        #: The exact plan's label -> row map of main's storage (``_row_map``), until a swap.
        self._rows: tuple[AnnIndex, RowMap] | None = None
        self._gather = GatherBuffers(dim)
        self.job: Job | None = None
        #: main's recall curves (None: no main, or a main checkpointed before calibration existed).
        self.calibration = calibration if main is not None else None
        #: Recent real queries (prepared): calibration samples them beside its synthetic queries.
        self.reservoir = QueryReservoir(dim)

    # ---- state -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.delta_labels) + len(self.main_labels) - len(self.tombstones)

    def prepare(self, vectors: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.metric == "cosine":
            # The norm in float64: a tiny float32 vector's norm underflows or loses precision.
            x64 = x.astype(np.float64)
            x = np.ascontiguousarray(x64 / np.linalg.norm(x64, axis=1, keepdims=True), dtype=np.float32)
        return x

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.main.kind if self.main is not None else "flat",
            "vectors": len(self),
            "ann_vectors": len(self.main_labels),
            "delta_vectors": len(self.delta_labels),
            "tombstones": len(self.tombstones),
            "nlist": self.main.nlist if self.main is not None else 0,
            "building": self.job.kind if self.job is not None else None,
            "device": self.device.name if self.device is not None else "cpu",
            "on_device": [
                part
                for part, index in (("ann", self.main), ("delta", self.delta))
                if index is not None and index.on_device
            ],
            "recall": self.recall_state(),
        }

    def memory(self) -> dict[str, int]:
        """Bytes held by each part (call under the read lock): ``ann_*`` (main's vectors, graph or lists,
        id maps), ``delta_vectors`` / ``delta_ids`` (the exact buffer), ``labels`` (the bitmaps of main's,
        the delta's and tombstoned labels, and the exact plan's label -> row map of main), ``build`` (the
        index a background job is building: a copy of main plus what it adds, or a fresh index), ``audit``
        (the recall audit's cached view of main: labels and, for l2, norms; the vectors are main's own)."""
        out = {f"ann_{part}": b for part, b in (self.main.memory() if self.main is not None else {}).items()}
        n = len(self.delta)
        out["delta_vectors"] = 4 * self.dim * n
        out["delta_ids"] = (8 + ID_MAP_ENTRY_BYTES) * n
        out["labels"] = sum(
            len(bm.serialize()) for bm in (self.main_labels, self.delta_labels, self.tombstones)
        )
        rows = self._rows
        if rows is not None and rows[0] is self.main:
            out["labels"] += rows[1].nbytes
        building = self.job.building if self.job is not None else None
        out["build"] = sum(building.memory().values()) if building is not None else 0
        out["audit"] = 0  # the recall audit's cached view of main: its labels and (l2) norms, no vectors
        blocks = self._audit_blocks
        if blocks is not None and blocks[0] is self.main:
            for part in blocks[1]:
                out["audit"] += (part.labels.nbytes if part.labels.base is None else 0) + (
                    0 if part.norms is None else part.norms.nbytes
                )
        return out

    def recall_state(self) -> dict[str, Any]:
        """The recall target and, for an ANN main, the calibrated knobs per k band."""
        target = target_of(self.spec)
        cal = self.calibration
        return {
            "target": target,
            "calibrated": cal is not None,
            "calibration": None if cal is None or target is None else cal.summary(target),
        }

    def settle(self, live: BitMap64) -> None:
        """After loading and replay: tombstones are main's labels that are no longer live."""
        self.tombstones = self.main_labels - live
        self._tomb_selector = self._tomb_array = self._audit_main = None

    # ---- writes (under the engine's write lock) ----------------------------------------------------

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add raw vectors under new labels (they go to the delta)."""
        if len(labels):
            self.delta.add(labels, self.prepare(vectors))
            self.delta_labels |= _bitmap(labels)

    def remove(self, labels: np.ndarray) -> None:
        """Remove labels: from the delta, or as tombstones in main. Unknown labels are ignored."""
        if not len(labels):
            return
        gone = _bitmap(labels)
        in_delta = gone & self.delta_labels
        if in_delta:
            self.delta.remove(_labels(in_delta))
            self.delta_labels -= in_delta
        in_main = (gone - in_delta) & self.main_labels
        if in_main:
            self.tombstones |= in_main
            self._tomb_selector = self._tomb_array = self._audit_main = None
        if self.job is not None:
            self.job.removed.append(np.array(labels, dtype=np.int64))

    # ---- search (under the engine's read lock) -----------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, allowed: BitMap64 | None, params: SearchParams
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, labels) per raw query, best first, label -1 past the end."""
        q = self.prepare(queries)
        main = self.main
        if main is not None:
            self.reservoir.offer(q[:RESERVOIR_ROWS])
        params = self.knobs(k, params)
        if allowed is not None and self._plan(k, allowed, params).plan == "exact":
            return self._exact(q, k, allowed)
        parts = []
        if main is not None and isinstance(self.spec, HnswSpec | IvfSpec | AutoSpec):
            spec = self.spec if isinstance(self.spec, HnswSpec | IvfSpec) else HnswSpec()
            main_live = len(self.main_labels) - len(self.tombstones)
            exclude = None
            if allowed is None:
                sel = self._tombstone_selector()
                exclude = self._tombstone_labels()
                admitted = main_live
            else:
                sel = LabelSelector(_labels(allowed))
                admitted = len(allowed) - allowed.intersection_cardinality(self.delta_labels)
            if admitted > 0:
                widen = len(self.main_labels) / admitted
                if main.lossy and self._raw_fetch is not None:
                    _, cand = main.search(q, k * RERANK_FACTOR, sel, spec, params, widen, exclude)
                    parts.append(self._rerank(q, k, cand))
                else:
                    parts.append(main.search(q, k, sel, spec, params, widen, exclude))
        if self.delta_labels:
            dsel = None if allowed is None else LabelSelector(_labels(allowed & self.delta_labels))
            if dsel is None or dsel.count:
                parts.append(self.delta.search(q, k, dsel))
        return self._merge(parts, len(q), k)

    def filter_plan(self, k: int, allowed: BitMap64, params: SearchParams) -> FilterPlan:
        """The plan a search of ``k`` hits among the ``allowed`` labels takes (call under the read lock)."""
        return self._plan(k, allowed, self.knobs(k, params))

    def plan_for(self, k: int, admitted: int, params: SearchParams, in_main: int | None = None) -> FilterPlan:
        """The plan for a filter admitting ``admitted`` records, ``in_main`` of them in main (default: all);
        for reports that know counts, not labels (call under the read lock)."""
        return self._planned(k, admitted, admitted if in_main is None else in_main, self.knobs(k, params))

    def _plan(self, k: int, allowed: BitMap64, params: SearchParams) -> FilterPlan:
        """``filter_plan`` with ``params`` already resolved by ``knobs``."""
        in_main = len(allowed) - allowed.intersection_cardinality(self.delta_labels)
        return self._planned(k, len(allowed), in_main, params)

    def _planned(self, k: int, admitted: int, in_main: int, params: SearchParams) -> FilterPlan:
        main = self.main
        if main is None or not isinstance(self.spec, HnswSpec | IvfSpec | AutoSpec):
            return FilterPlan("exact", in_main, float(in_main), math.inf, "no-main")
        pinned = self.policy.exact_max
        if pinned != "auto":
            plan: Literal["exact", "ann"] = "exact" if admitted <= pinned else "ann"
            return FilterPlan(plan, in_main, float(in_main), math.nan, "pinned")
        spec = self.spec
        if main.kind == "hnsw":
            knob = params.ef_search or (spec.ef_search if isinstance(spec, HnswSpec) else None) or FALLBACK_EF
        else:
            knob = params.nprobe or (spec.nprobe if isinstance(spec, IvfSpec) else None) or FALLBACK_NPROBE
        return choose_plan(
            kind=main.kind,
            admitted=in_main,
            n_main=len(self.main_labels),
            k=k,
            knob=knob,
            nlist=main.nlist,
            lossy=main.lossy and self._raw_fetch is not None,
            rerank=k * RERANK_FACTOR,
            max_ef=MAX_EF,
            m=spec.m if isinstance(spec, HnswSpec) else HnswSpec().m,
        )

    def knobs(self, k: int, params: SearchParams) -> SearchParams:
        """The ef_search / nprobe a query of ``k`` hits uses: the query's explicit knob, else the spec's,
        else the calibration's choice for the query's (or the collection's) recall target."""
        main, cal, spec = self.main, self.calibration, self.spec
        if main is None or cal is None or isinstance(spec, FlatSpec):
            return params
        if main.kind == "hnsw":
            pinned = params.ef_search or (spec.ef_search if isinstance(spec, HnswSpec) else None)
            if pinned:
                return params.model_copy(update={"ef_search": pinned})
            target = params.target_recall or spec.target_recall
            return params.model_copy(update={"ef_search": cal.choose(k, target)})
        pinned = params.nprobe or (spec.nprobe if isinstance(spec, IvfSpec) else None)
        if pinned:
            return params.model_copy(update={"nprobe": pinned})
        target = params.target_recall or spec.target_recall
        return params.model_copy(update={"nprobe": cal.choose(k, target)})

    def calibrate(self, main: AnnIndex, cancel: threading.Event | None = None) -> Calibration | None:
        """Measure ``main``'s recall curves (no lock needed: main is immutable; runs in the background)."""
        labels = np.sort(main.labels())
        lossy = main.lossy and self._raw_fetch is not None
        spec = self.spec if isinstance(self.spec, HnswSpec | IvfSpec) else HnswSpec()

        def vectors_of(want: np.ndarray) -> np.ndarray:
            if lossy:
                assert self._raw_fetch is not None
                found, raw = self._raw_fetch(want)
                if len(found) == len(want):
                    return self.prepare(raw)
            return main.reconstruct(want)

        def search(q: np.ndarray, k: int, value: int) -> tuple[np.ndarray, np.ndarray]:
            knob = SearchParams(ef_search=value) if main.kind == "hnsw" else SearchParams(nprobe=value)
            return main.search(q, k * RERANK_FACTOR if lossy else k, None, spec, knob, 1.0)

        return calibrate(
            "hnsw" if main.kind == "hnsw" else "ivf",
            ExactScan(labels, vectors_of, self.metric),
            search,
            self.prepare,
            self.metric,
            self.reservoir.sample(),
            main.nlist,
            cancel,
            exact_scores=not lossy,
        )

    def audit_view(self) -> AuditView:
        """An exact scan over every live vector as of now (call under the read lock; scan outside it).

        No vector is copied or reconstructed for main: the scan reads main's own storage (main is never
        mutated; the view keeps it alive), with its dead rows masked, cached until a swap or a delete.
        The delta (small, mutable) is copied for the pass (a cached copy would double its memory). A
        compressed (sq8/pq) main is read from the store chunk by chunk, as calibration does."""
        parts = [AuditPart(*self.delta.vectors())]
        main = self.main
        if main is not None and self.main_labels:
            if self._audit_main is None:
                self._audit_main = self._audit_main_parts(main)
            parts += self._audit_main
        return AuditView(parts, self.metric, keep=main)

    def _audit_main_parts(self, main: AnnIndex) -> list[AuditPart]:
        tomb = self._tombstone_labels()
        lossy = main.lossy and self._raw_fetch is not None
        if self._audit_blocks is not None and self._audit_blocks[0] is not main:
            self._audit_blocks = None
        if not lossy and self._audit_blocks is None:
            blocks = main.stored_blocks()
            if blocks is not None:
                l2 = self.metric == "l2"
                self._audit_blocks = (
                    main,
                    [AuditPart(lb, x, norms=np.einsum("ij,ij->i", x, x) if l2 else None) for lb, x in blocks],
                )
        if self._audit_blocks is not None:
            cached = self._audit_blocks[1]
            if not len(tomb) or not cached:
                return list(cached)
            dead = np.isin(np.concatenate([p.labels for p in cached]), tomb)
            ends = np.cumsum([len(p.labels) for p in cached])
            return [
                AuditPart(p.labels, p.vectors, dead=d if d.any() else None, norms=p.norms)
                for p, d in zip(cached, np.split(dead, ends[:-1]), strict=True)
            ]
        raw_fetch = self._raw_fetch
        prepare = self.prepare

        def vectors_of(want: np.ndarray) -> np.ndarray:
            if lossy and raw_fetch is not None:
                found, raw = raw_fetch(want)
                if len(found) == len(want):
                    return prepare(raw)
            return main.reconstruct(want)

        return [AuditPart(_labels(self.main_labels - self.tombstones).copy(), fetch=vectors_of)]

    def _tombstone_selector(self) -> LabelSelector | None:
        if not self.tombstones:
            return None
        if self._tomb_selector is None:
            self._tomb_selector = LabelSelector(_labels(self.tombstones), negate=True)
        return self._tomb_selector

    def _tombstone_labels(self) -> np.ndarray:
        if self._tomb_array is None:
            self._tomb_array = _labels(self.tombstones).copy()
        return self._tomb_array

    def _exact(self, q: np.ndarray, k: int, allowed: BitMap64) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among the allowed labels: main's rows read in place (``RowMap``), gathered in
        ``row_chunks`` into one buffer and scanned by ``faiss.knn``; compressed mains from the store."""
        if self.main is None:
            return self.delta.search(q, k, LabelSelector(_labels(allowed)))
        in_delta = allowed & self.delta_labels
        in_main = _labels(allowed - in_delta)
        parts = []
        rows = self._row_map()
        if rows is not None:
            pos = rows.rows(in_main)
            if len(pos) > 1 and bool(np.any(pos[1:] < pos[:-1])):
                order = np.argsort(pos)  # read the storage in its order
                pos, in_main = pos[order], in_main[order]
            buf = self._gather.get(len(pos))
            for chunk in row_chunks(len(pos), self.dim):
                parts.append(self._knn(q, k, in_main[chunk], rows.gather(pos[chunk], buf)))
        elif len(in_main):
            parts.append(self._knn(q, k, in_main, self._exact_vectors(in_main)))
        if in_delta:
            d_labels = _labels(in_delta)
            parts.append(self._knn(q, k, d_labels, self.delta.reconstruct(d_labels)))
        return self._merge(parts, len(q), k)

    def _knn(self, q: np.ndarray, k: int, labels: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of queries ``q`` among vectors ``x`` (rows named by ``labels``), best first."""
        kk = min(k, len(labels))
        if kk == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        scores, at = faiss.knn(q, x, kk, faiss_metric(self.metric))
        return scores.astype(np.float32, copy=False), labels[at]

    def _row_map(self) -> RowMap | None:
        """main's label -> row map (None for compressed storage: the exact plan reads the store)."""
        main = self.main
        if main is None:
            return None
        cached = self._rows
        if cached is None or cached[0] is not main:
            rows = self._make_rows(main)
            if rows is None:
                return None
            cached = self._rows = (main, rows)
        return cached[1]

    def _make_rows(self, main: AnnIndex) -> RowMap | None:
        if main.lossy:
            return None
        blocks = main.stored_blocks()
        return None if blocks is None else RowMap(blocks, self.dim)

    def _rerank(self, q: np.ndarray, k: int, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact scores for compressed-index candidates, from the stored vectors.

        ``RERANK_BLOCK`` queries at a time: a batch of 1,000 queries names up to 40,000 candidates, whose
        raw bytes, float32 and float64 (normalization) copies were ~370 MB at 384-d when fetched at once.
        """
        assert self._raw_fetch is not None
        scores = np.full((len(q), k), np.inf if self.metric == "l2" else -np.inf, dtype=np.float32)
        labels = np.full((len(q), k), -1, dtype=np.int64)
        for start in range(0, len(q), RERANK_BLOCK):
            block = cand[start : start + RERANK_BLOCK]
            want = np.unique(block[block >= 0])
            found, raw = self._raw_fetch(want)
            x = self.prepare(raw)
            del raw
            for i in range(start, start + len(block)):
                row = cand[i][cand[i] >= 0]
                pos = np.searchsorted(found, row)
                ok = (pos < len(found)) & (found[np.minimum(pos, len(found) - 1)] == row)
                if ok.any():
                    s_i, l_i = self._score(q[i : i + 1], k, row[ok], x[pos[ok]])
                    scores[i, : s_i.shape[1]], labels[i, : l_i.shape[1]] = s_i[0], l_i[0]
        return scores, labels

    def _exact_vectors(self, labels: np.ndarray) -> np.ndarray:
        """Exact prepared vectors of labels in main (from the store when main compresses them)."""
        assert self.main is not None
        if self.main.lossy and self._raw_fetch is not None:
            found, raw = self._raw_fetch(labels)
            if len(found) == len(labels):
                return self.prepare(raw)
        return self.main.reconstruct(labels)

    def _score(
        self, q: np.ndarray, k: int, labels: np.ndarray, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of queries ``q`` among vectors ``x`` (rows named by ``labels``)."""
        if self.metric == "l2":
            scores = (x * x).sum(axis=1)[None, :] - 2 * (q @ x.T) + (q * q).sum(axis=1)[:, None]
            scores = np.maximum(scores, 0)
        else:
            scores = q @ x.T
        kk = min(k, len(labels))
        key = scores if self.metric == "l2" else -scores
        top = (
            np.argpartition(key, kk - 1, axis=1)[:, :kk]
            if kk < len(labels)
            else np.tile(np.arange(len(labels)), (len(q), 1))
        )
        order = np.take_along_axis(key, top, axis=1).argsort(axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return np.take_along_axis(scores, top, axis=1).astype(np.float32), labels[top]

    def _merge(
        self, parts: list[tuple[np.ndarray, np.ndarray]], nq: int, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if not parts:
            return np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
        if len(parts) == 1:
            return parts[0]
        scores = np.concatenate([p[0] for p in parts], axis=1)
        labels = np.concatenate([p[1] for p in parts], axis=1)
        worst = np.inf if self.metric == "l2" else -np.inf
        key = np.where(labels < 0, worst, scores)
        order = (key if self.metric == "l2" else -key).argsort(axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(labels, order, axis=1)

    # ---- background jobs ---------------------------------------------------------------------------

    def plan(self, n_live: int) -> Literal["merge", "rebuild"] | None:
        """The job the index needs now, if any."""
        spec, p = self.spec, self.policy
        if isinstance(spec, FlatSpec) or self.job is not None:
            return None
        if self.main is None:
            if isinstance(spec, AutoSpec):
                start = spec.threshold
            elif isinstance(spec, IvfSpec):
                start = max(p.ivf_train_min, 39 * spec.nlist if isinstance(spec.nlist, int) else 0)
            else:
                start = p.merge_min
            return "merge" if len(self.delta_labels) >= start else None
        if len(self.tombstones) > p.tombstone_share * len(self.main_labels):
            return "rebuild"
        if (
            isinstance(spec, IvfSpec)
            and spec.nlist == "auto"
            and n_live >= p.ivf_regrow * self.main.trained_n
            and ivf_nlist(spec, n_live) != self.main.nlist
        ):
            return "rebuild"
        if len(self.delta_labels) >= max(p.merge_min, p.merge_ratio * len(self.main_labels)):
            return "merge"
        return None

    def start_job(self, kind: Literal["merge", "rebuild"], live: BitMap64, store_fetch: Fetch) -> Job:
        """Snapshot what the job needs (under the write lock: label arrays, nothing big).

        Both kinds read their vectors from the store (``store_fetch``), a chunk at a time, as they add
        them: a merge names the delta's labels instead of copying its vectors (at the end of a bulk load
        the delta can hold tens of thousands of vectors, and a copy of it, sorted, was two). Labels
        deleted meanwhile are skipped (``finish_job`` applies the removals made during the job)."""
        assert self.job is None and not isinstance(self.spec, FlatSpec)

        def fetch_prepared(want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            found, raw = store_fetch(want)
            return found, self.prepare(raw)

        if kind == "merge":
            labels = _labels(self.delta_labels).copy()  # sorted
            job = Job("merge", labels, fetch_prepared, self.main, len(self.main_labels) + len(labels))
        else:
            live_labels = _labels(live).copy()
            job = Job("rebuild", live_labels, fetch_prepared, None, len(live_labels))
        self.job = job
        return job

    def run_job(self, job: Job) -> tuple[AnnIndex | None, np.ndarray]:
        """Build the new main (no lock held; the current main is immutable, so copying it is safe).

        Returns the new main and the labels the job added to it.
        """
        assert not isinstance(self.spec, FlatSpec)
        if job.kind == "rebuild" and not len(job.labels):
            return None, np.empty(0, np.int64)  # everything was deleted: no ANN index until it grows again
        base = job.base.copy() if job.base is not None else new_ann(self.spec, self.dim, self.metric, job.n)
        job.building = base
        built, added = build_ann(base, job.labels, job.fetch, job.cancel)
        job.fetch = _spent  # nothing reads the job's inputs after this
        job.rows = self._make_rows(built)  # here, not at the first filtered search after the swap
        if self.device is not None:
            built.attach(self.device)  # the device copy is made here, outside the engine's locks
        job.calibration = self.calibrate(built, job.cancel)
        if job.cancel.is_set():
            raise BuildCancelledError
        return built, added

    def finish_job(self, job: Job, new_main: AnnIndex | None, added: np.ndarray, main_id: str | None) -> None:
        """Swap the new main in (under the write lock), applying removals made while it was built."""
        assert self.job is job
        added_bm = _bitmap(added)
        removed = _bitmap(np.concatenate(job.removed)) if job.removed else BitMap64()
        if job.kind == "merge":
            self.tombstones = self.tombstones | (removed & added_bm)
            self.main_labels = self.main_labels | added_bm
        else:
            self.tombstones = removed & added_bm
            self.main_labels = added_bm
        moved = self.delta_labels & added_bm
        if moved:
            self.delta.remove(_labels(moved))
            self.delta_labels -= moved
        self.main = new_main
        self.calibration = job.calibration if new_main is not None else None
        self.main_id = main_id if new_main is not None else None
        self._tomb_selector = self._tomb_array = self._audit_main = None
        self._audit_blocks = None  # it holds the old main: let it go
        self._rows = (new_main, job.rows) if new_main is not None and job.rows is not None else None
        job.rows = None
        self.job = None
        job.base = job.building = None  # the old main goes as soon as no search holds it

    def release(self) -> None:
        """Drop the index's memory (the collection is closed: nothing searches it any more)."""
        self.main = None
        self._rows = self._audit_blocks = None
        self.delta = FlatIndex(self.dim, self.metric)
        self.calibration = None

    def abandon_job(self, job: Job) -> None:
        if self.job is job:
            self.job = None
