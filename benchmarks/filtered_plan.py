"""Filtered search plans (issue 25): exact over the admitted vectors vs the ANN index with a selector.

Run from the repository root::

    .venv/bin/python benchmarks/filtered_plan.py --sizes 200000,1000000 \\
        --vectors .bench-scale/tmp/data-1000000/vectors.npy     # or no --vectors: ann.py's generator
    .venv/bin/python benchmarks/filtered_plan.py --quick        # smoke run: 20k, few queries

Index tier (no store, no server): the first ``n`` rows of the data (benchmarks/ann.py's clustered synthetic
set: 256 Gaussian clusters, 384-d, cosine) are built into vecdb's default HNSW (``IDMap2,HNSW32``,
ef_construction 100, vecdb's own ``build_ann``), calibrated by vecdb's calibration (the k=10 ef for the
default 0.95 target is pinned for every query), and wrapped in a ``TieredIndex``. Built indexes are cached
in ``--work`` (default ``.bench-filtered/``). For each selectivity (0.1%, 1%, 5%, 10%, 20%) a seeded random
subset of the records is admitted (uncorrelated with the clusters, like the scale benchmark's ``source``),
and single queries (k=10; the data's queries: stored records + N(0, 0.3^2) noise before normalization; one
OpenMP thread as the engine runs small batches) go through each plan, forced with
``index.exact_max_admitted`` (a huge number: exact; 0: ANN) and through ``"auto"`` (the cost-based choice).
Reported per cell: p50 / p90 latency after warm-up, recall@10 against numpy brute force over the admitted
vectors, the planner's estimates and choice, and the measured cost of one unit of ef in exactly scored rows
((ANN p50 / ef') / (exact p50 / admitted)): the constant ``vecdb.index.filtered.HNSW_VISIT_COST`` stands
for. ``exact-reconstruct`` is the same exact plan with main's vectors read by ``reconstruct`` per query (as
before issue 25's second round) instead of the in-place row map, scored the same way.

The machine is shared: compare plans within one run (they alternate per cell), and read the load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from _common import log, pct
from ann import synthetic
from engine import machine_info
from pyroaring import BitMap64

from vecdb.engine.malloc import bound_allocator
from vecdb.index.ann import AnnIndex, build_ann, new_ann
from vecdb.index.filtered import HNSW_VISIT_COST, STORE_ROW_COST
from vecdb.index.spec import HnswSpec, IvfSpec, SearchParams
from vecdb.index.tiered import IndexPolicy, TieredIndex

K = 10
SELECTIVITIES = (0.001, 0.01, 0.05, 0.1, 0.2)
PLANS = {"exact": 10**12, "ann": 0, "auto": "auto"}
WARMUP = 5


class ReconstructingIndex(TieredIndex):
    """The exact plan without the in-place row map: main's vectors come from ``reconstruct``."""

    def _row_map(self) -> None:
        return None


def load_rows(vectors: Path | None, n: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` rows and ``n_queries`` queries: the generator's, or ``vectors`` and the
    ``queries.npy`` beside it (benchmarks/scale.py's data folders: queries drawn from the raw vectors)."""
    if vectors is None:
        return synthetic(n, n_queries)
    x = np.load(vectors, mmap_mode="r")
    if len(x) < n:
        raise SystemExit(f"{vectors} holds {len(x):,} rows, fewer than {n:,}")
    q = np.load(vectors.parent / "queries.npy")
    return np.asarray(x[:n]), np.ascontiguousarray(q[:n_queries], dtype=np.float32)


def build(kind: str, x: np.ndarray, work: Path, tag: str) -> tuple[AnnIndex, int]:
    """vecdb's index over ``x`` (cached in ``work``) and its calibrated k=10 knob for the 0.95 target."""
    spec = HnswSpec() if kind == "hnsw" else IvfSpec()
    n = len(x)
    path, meta = work / f"{kind}-{tag}-{n}.faiss", work / f"{kind}-{tag}-{n}.json"
    tiered = TieredIndex(spec, x.shape[1], "cosine", IndexPolicy())
    if path.exists() and meta.exists():
        main = AnnIndex(kind, faiss.read_index(str(path)), x.shape[1], n if kind == "ivf" else 0)
        return main, int(json.loads(meta.read_text())["knob"])
    t0 = time.perf_counter()

    def fetch(want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return want, tiered.prepare(x[want])

    main, _ = build_ann(new_ann(spec, x.shape[1], "cosine", n), np.arange(n), fetch, threading.Event())
    built_s = time.perf_counter() - t0
    cal = tiered.calibrate(main)
    assert cal is not None
    knob = cal.choose(K, 0.95)
    work.mkdir(parents=True, exist_ok=True)
    faiss.write_index(main._index, str(path))
    meta.write_text(json.dumps({"knob": knob, "build_s": built_s, "calibration": cal.summary(0.95)}))
    log(f"built {kind} over {n:,} in {built_s:.0f} s, k=10 knob {knob}")
    return main, knob


def exact_truth(xp: np.ndarray, adm: np.ndarray, qp: np.ndarray) -> np.ndarray:
    scores = xp[adm] @ qp.T
    top = np.argpartition(-scores, K - 1, axis=0)[:K].T
    return adm[top]


def latencies(search: Callable[[np.ndarray], np.ndarray], q: np.ndarray) -> tuple[list[float], np.ndarray]:
    for i in range(min(WARMUP, len(q))):
        search(q[i : i + 1])
    times, hits = [], []
    for i in range(len(q)):
        t0 = time.perf_counter()
        hits.append(search(q[i : i + 1])[0])
        times.append((time.perf_counter() - t0) * 1000)
    return times, np.array(hits)


def recall(hits: np.ndarray, truth: np.ndarray) -> float:
    pairs = zip(hits, truth, strict=True)
    return float(np.mean([len(set(h[h >= 0].tolist()) & set(t.tolist())) / K for h, t in pairs]))


def run_size(kind: str, x: np.ndarray, q: np.ndarray, tag: str, work: Path) -> dict[str, Any]:
    n = len(x)
    main, knob = build(kind, x, work, tag)
    spec = HnswSpec() if kind == "hnsw" else IvfSpec()
    tiered = TieredIndex(spec, x.shape[1], "cosine", IndexPolicy(), main=main)
    params = SearchParams(ef_search=knob) if kind == "hnsw" else SearchParams(nprobe=knob)
    xp = np.empty_like(x)
    for start in range(0, n, 65536):  # prepare() works in float64: chunks, not 3 copies of 1M x 384
        xp[start : start + 65536] = tiered.prepare(x[start : start + 65536])
    rng = np.random.default_rng(7)
    n_queries = len(q)
    qp = tiered.prepare(q)
    pinned = {
        plan: TieredIndex(spec, x.shape[1], "cosine", IndexPolicy(exact_max=cutoff), main=main)  # type: ignore[arg-type]
        for plan, cutoff in PLANS.items()
    }
    # The exact plan as it read main before issue 25's second round: reconstruct per query (same scoring).
    old = ReconstructingIndex(spec, x.shape[1], "cosine", IndexPolicy(exact_max=10**12), main=main)
    cells = []
    for sel in SELECTIVITIES:
        adm = np.sort(rng.choice(n, size=max(K, round(sel * n)), replace=False)).astype(np.int64)
        allowed = BitMap64(adm.view(np.uint64))
        truth = exact_truth(xp, adm, qp)
        cell: dict[str, Any] = {"selectivity": sel, "admitted": len(adm), "plans": {}}
        searches: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            plan: lambda qq, t=t, a=allowed: t.search(qq, K, a, params)[1] for plan, t in pinned.items()
        }
        searches["exact-reconstruct"] = lambda qq, a=allowed: old.search(qq, K, a, params)[1]
        for plan, search in searches.items():
            times, hits = latencies(search, q)
            cell["plans"][plan] = {
                "p50_ms": pct(times, 50),
                "p90_ms": pct(times, 90),
                "recall": recall(hits, truth),
            }
        choice = tiered.filter_plan(K, allowed, params)
        cell["chosen"] = choice.plan
        cell["estimate"] = {"exact": choice.exact_cost, "ann": choice.ann_cost, "reason": choice.reason}
        p = cell["plans"]
        cell["faster"] = "exact" if p["exact"]["p50_ms"] <= p["ann"]["p50_ms"] else "ann"
        if kind == "hnsw":
            ef = max(K, math.ceil(knob * n / len(adm)))
            cell["ef_widened"] = ef
            cell["ef_capped"] = ef > 32768
            if not cell["ef_capped"]:
                cell["measured_visit_cost"] = (p["ann"]["p50_ms"] / ef) / (p["exact"]["p50_ms"] / len(adm))
        cells.append(cell)
        log(
            f"{kind} n={n:,} sel={sel:.1%}: "
            + ", ".join(f"{k} {v['p50_ms']:.2f} ms r={v['recall']:.3f}" for k, v in p.items())
            + f"; chosen {cell['chosen']}, faster {cell['faster']}"
        )
    return {"kind": kind, "n": n, "knob": knob, "queries": n_queries, "cells": cells}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Filtered search plans (issue 25)",
        "",
        f"Run {report['started']} .. {report['finished']}, load average {report['load_start']} at the start, "
        f"{[round(v, 2) for v in report['machine']['loadavg_end']]} at the end "
        "(shared 2-core machine: compare within a row). "
        f"Data: {report['data']}. {report['method']}",
        "",
        f"Planner constants: HNSW_VISIT_COST = {report['constants']['HNSW_VISIT_COST']}, "
        f"STORE_ROW_COST = {report['constants']['STORE_ROW_COST']}.",
        "",
        "| index | n | knob (k=10) | selectivity | admitted | exact p50 / recall | ANN p50 / recall (ef') "
        "| chosen (auto) p50 / recall | faster | exact via reconstruct p50 | measured ef cost |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        for c in run["cells"]:
            p = c["plans"]
            ef = ""
            if "ef_widened" in c:
                ef = f" ({c['ef_widened']:,}{', capped' if c['ef_capped'] else ''})"
            cost = f"{c['measured_visit_cost']:.1f}" if "measured_visit_cost" in c else "-"
            lines.append(
                f"| {run['kind']} | {run['n']:,} | {run['knob']} | {c['selectivity']:.1%} "
                f"| {c['admitted']:,} | {p['exact']['p50_ms']:.2f} ms / {p['exact']['recall']:.3f} "
                f"| {p['ann']['p50_ms']:.2f} ms / {p['ann']['recall']:.3f}{ef} "
                f"| **{c['chosen']}** {p['auto']['p50_ms']:.2f} ms / {p['auto']['recall']:.3f} "
                f"| {c['faster']} | {p['exact-reconstruct']['p50_ms']:.2f} ms | {cost} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--sizes", default="200000,1000000")
    ap.add_argument("--kinds", default="hnsw")
    ap.add_argument("--vectors", type=Path, help=".npy of float32 rows (default: ann.py's generator)")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--work", type=Path, default=Path(".bench-filtered"))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    sizes = [20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    n_queries = 20 if args.quick else args.queries
    faiss.omp_set_num_threads(1)  # single queries run on one OpenMP thread in the engine
    bound_allocator()  # glibc's mmap threshold as a collection sets it (big transient blocks are mmapped)
    started, load_start = datetime.now(UTC).isoformat(timespec="seconds"), os.getloadavg()
    tag = "npy" if args.vectors else "synthetic"
    x_all, q = load_rows(args.vectors, max(sizes), n_queries)
    runs = [
        run_size(kind, np.ascontiguousarray(x_all[:n], dtype=np.float32), q, tag, args.work)
        for kind in args.kinds.split(",")
        for n in sizes
    ]
    report = {
        "started": started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_start": [round(v, 2) for v in load_start],
        "machine": machine_info(),
        "data": (
            f"{args.vectors} (benchmarks/ann.py's generator, first n rows)"
            if args.vectors
            else "ann.py synthetic"
        ),
        "method": next(p for p in (__doc__ or "").split("\n\n") if p.startswith("Index tier")).replace(
            "\n", " "
        ),
        "constants": {"HNSW_VISIT_COST": HNSW_VISIT_COST, "STORE_ROW_COST": STORE_ROW_COST},
        "runs": runs,
    }
    name = "filtered_plan-quick" if args.quick else "filtered_plan"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / f"{name}.md").write_text(markdown(report))
    log(f"wrote {args.out / name}.json/.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
