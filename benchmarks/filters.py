"""Range filters on a unique-per-record numeric field (issue 20): before and after the range index.

Run from the repository root::

    .venv/bin/python benchmarks/filters.py            # full run: 100k x 384 (~5-8 minutes on 2 cores)
    .venv/bin/python benchmarks/filters.py --quick    # smoke run: 5k records, few repeats

Everything happens in a temporary data directory, removed at the end. Results go to
``<out>/filters.json`` and ``<out>/filters.md`` (``filters-quick.*`` with ``--quick``).

Method: the records of benchmarks/engine.py (clustered float32 vectors, metadata ``lang``, ``n`` (the record
number), ``tag`` (10 values), ``grp`` (100 numbers)), plus ``bucket`` (1,000 numbers, 100 records each:
the range index's side of ``index.range_max_repeat``) and ``created_at``: ``T0`` + a random permutation of
the record numbers, a distinct number per record that is NOT in write order (the harder case: a range's
labels are scattered). One collection with the default index (``auto``: HNSW from 20k records) is loaded,
its HNSW graph built and checkpointed, and the directory copied; the two copies are then open side by side
in this process: "before" with the range index off (``RecordIndex.range_index = False`` while it opens:
every range is the union of one bitmap per distinct value in it, as before issue 20) and "after" with it,
and every measurement alternates between them, so both see the same machine noise. Per filter:
``count(filter)`` latency (median over repeats, after warm-up), single-query filtered search (k=10, the
default ``include``) p50 / p99 after warm-up, and recall@10 against exact filtered search (numpy brute
force over the admitted records; benchmarks/engine.py's ``recall``). Open time (the open scan rebuilds
the filter state) is reported for both.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _common import log, pct
from engine import Data, K, brute_force, machine_info, recall

from vecdb.config import Settings, StorageSettings
from vecdb.engine.database import Database
from vecdb.engine.record_index import RecordIndex

COLLECTION = "bench"
BATCH = 1000
T0 = 1_700_000_000  # created_at = T0 + a permutation of 0..n-1

TARGETS = {  # issue 20, "after" only
    "search_p50_ms_max": ("<=", 2.0),
    "recall_at_10_min": (">=", 0.99),
    "count_ms_max": ("<=", 1.0),
}
Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


def filters(n: int) -> list[tuple[str, dict[str, Any], Mask, bool]]:
    """(label, filter, mask over (record numbers, created_at offsets), counts toward the targets)."""
    p1, p10 = n // 100, n // 10
    lo = n // 3
    values = [T0 + v for v in range(n - 2 * p1, n, 2)]  # 1% of the records, by value
    return [
        ("created_at >= x (1%)", {"created_at": {"$gte": T0 + n - p1}}, lambda i, c: c >= n - p1, True),
        (
            "created_at in [a, b) (10%)",
            {"created_at": {"$gte": T0 + lo, "$lt": T0 + lo + p10}},
            lambda i, c: (c >= lo) & (c < lo + p10),
            True,
        ),
        ("created_at < x (50%)", {"created_at": {"$lt": T0 + n // 2}}, lambda i, c: c < n // 2, False),
        (
            f"created_at $in {len(values):,} values (1%)",
            {"created_at": {"$in": values}},
            lambda i, c: (c >= n - 2 * p1) & (c % 2 == (n - 2 * p1) % 2),
            False,
        ),
        ("n < x (1%, write order)", {"n": {"$lt": p1}}, lambda i, c: i < p1, False),
        ("bucket < 10 (1%, 1,000 values)", {"bucket": {"$lt": 10}}, lambda i, c: i % 1000 < 10, False),
        ("bucket < 100 (10%, 1,000 values)", {"bucket": {"$lt": 100}}, lambda i, c: i % 1000 < 100, False),
        ("grp < 1 (1%, 100 values)", {"grp": {"$lt": 1}}, lambda i, c: i % 100 < 1, False),
        ("grp < 10 (10%, 100 values)", {"grp": {"$lt": 10}}, lambda i, c: i % 100 < 10, False),
        ("tag eq (10%, 10 values)", {"tag": "t3"}, lambda i, c: i % 10 == 3, False),
    ]


def load(path: Path, data: Data, created: np.ndarray) -> dict[str, Any]:
    settings = Settings(storage=StorageSettings(sync_writes=False))  # type: ignore[call-arg]
    t0 = time.perf_counter()
    with Database(path, settings=settings) as db:
        col = db.create_collection(COLLECTION, dim=data.dim, metric="cosine")
        for start in range(0, data.n, BATCH):
            end = min(start + BATCH, data.n)
            metas = [
                {**m, "created_at": int(T0 + c), "bucket": i % 1000}
                for i, m, c in zip(
                    range(start, end), data.metadatas[start:end], created[start:end], strict=True
                )
            ]
            col.upsert(
                data.ids[start:end],
                data.vectors[start:end],
                data.texts[start:end],
                metas,
                data.sources[start:end],
            )
        loaded = time.perf_counter() - t0
        assert col.wait_for_index(timeout=1800)
        built = time.perf_counter() - t0
        info = col.info()
    return {"load_s": loaded, "load_and_index_s": built, "index_state": info.get("index_state")}


def open_collection(path: Path, *, range_index: bool) -> tuple[Database, Any, float]:
    """Open ``path`` with the range index on or off (it is built, or not, by the open scan)."""
    RecordIndex.range_index = range_index
    try:
        gc.collect()
        t0 = time.perf_counter()
        db = Database(path)
        col = db.get_collection(COLLECTION)
        opened = time.perf_counter() - t0
    finally:
        RecordIndex.range_index = True
    assert col.wait_for_index(timeout=600)
    return db, col, opened


def measure(
    before_path: Path, after_path: Path, data: Data, created: np.ndarray, params: dict[str, Any]
) -> dict[str, Any]:
    """Both copies open side by side; every measurement alternates between them (same machine noise)."""
    db_b, col_b, open_b = open_collection(before_path, range_index=False)
    db_a, col_a, open_a = open_collection(after_path, range_index=True)
    out: dict[str, Any] = {
        "before": {"range_index": False, "open_s": open_b, "filters": []},
        "after": {"range_index": True, "open_s": open_a, "filters": []},
    }
    try:
        queries = data.queries
        for label, flt, mask_fn, _ in filters(data.n):
            mask = mask_fn(data.numbers, created)
            expected = int(mask.sum())
            slow = label.startswith("created_at")  # before: seconds per filter, so fewer repeats
            reps = {
                "after": params["count_repeats"],
                "before": params["count_repeats"] // (10 if slow else 1),
            }
            nq = {
                "after": params["filtered_queries"],
                "before": params["filtered_queries"] // (4 if slow else 1),
            }
            cols = {"before": col_b, "after": col_a}
            times: dict[str, list[float]] = {"before": [], "after": []}
            lat: dict[str, list[float]] = {"before": [], "after": []}
            hits: dict[str, list[Any]] = {"before": [], "after": []}
            for which, col in cols.items():
                assert col.count(flt) == expected, (which, label, col.count(flt), expected)
                for i in range(5):
                    col.search(queries[i], k=K, filter=flt)
            for r in range(reps["after"]):
                for which, col in cols.items():
                    if r < max(3, reps[which]):
                        t = time.perf_counter()
                        col.count(flt)
                        times[which].append(time.perf_counter() - t)
            for i in range(nq["after"]):
                for which, col in cols.items():
                    if i < max(10, nq[which]):
                        t = time.perf_counter()
                        res = col.search(queries[i], k=K, filter=flt)
                        lat[which].append(time.perf_counter() - t)
                        hits[which].append(res[0])
            for which in cols:
                n_q = len(hits[which])
                truth = brute_force(data, queries[:n_q], K, mask)
                r = recall(data, queries[:n_q], hits[which], truth, mask)
                out[which]["filters"].append(
                    {
                        "filter": label,
                        "expr": flt if len(json.dumps(flt)) < 200 else f"{json.dumps(flt)[:120]}...",
                        "matching": expected,
                        "count_ms_median": statistics.median(times[which]) * 1e3,
                        "count_repeats": len(times[which]),
                        "search_queries": n_q,
                        "search_p50_ms": pct(lat[which], 50) * 1e3,
                        "search_p99_ms": pct(lat[which], 99) * 1e3,
                        "recall_at_10": r,
                    }
                )
            fb, fa = out["before"]["filters"][-1], out["after"]["filters"][-1]
            log(
                f"  {label}: count {fb['count_ms_median']:.3f} -> {fa['count_ms_median']:.3f} ms, search p50 "
                f"{fb['search_p50_ms']:.2f} -> {fa['search_p50_ms']:.2f} ms, recall "
                f"{fb['recall_at_10']['strict']:.4f} -> {fa['recall_at_10']['strict']:.4f}"
            )
    finally:
        db_a.close()
        db_b.close()
    return out


def evaluate_targets(after: dict[str, Any], n: int) -> list[dict[str, Any]]:
    counted = [f for f, (_, _, _, t) in zip(after["filters"], filters(n), strict=True) if t]
    values = {
        "search_p50_ms_max": max(f["search_p50_ms"] for f in counted),
        "recall_at_10_min": min(f["recall_at_10"]["strict"] for f in counted),
        "count_ms_max": max(f["count_ms_median"] for f in counted),
    }
    out = []
    for name, (op, target) in TARGETS.items():
        value = values[name]
        ok = value >= target if op == ">=" else value <= target
        out.append({"name": name, "value": value, "op": op, "target": target, "pass": ok})
    return out


def markdown(report: dict[str, Any]) -> str:
    p, m, r = report["parameters"], report["machine"], report["results"]
    before, after = r["before"], r["after"]
    head = (
        f"## vecdb filter benchmark: range index (issue 20){' (quick)' if p['quick'] else ''}\n\n"
        f"{p['n']:,} x {p['dim']} float32, cosine, default index ({p['index']}), k={K}, "
        f"`created_at` distinct per record and not in write order; {m['cpu_count']} CPUs, {m['platform']}, "
        f"Python {m['python']}, numpy {m['versions']['numpy']}, pyroaring {m['versions']['pyroaring']}. "
        f"{report['timestamp']}. Load average at start / end: {_avg(m['loadavg_start'])} / "
        f"{_avg(m['loadavg_end'])} (a shared machine: wall times are noisy). Before = the range index off "
        "(a union of one bitmap per distinct value), after = on; two copies of one data directory, open side "
        "by side, measured alternately.\n\n"
        f"Load {r['load']['load_s']:.1f} s, HNSW built by {r['load']['load_and_index_s']:.1f} s. "
        f"Open (the scan rebuilds the filter state): before {before['open_s']:.2f} s, "
        f"after {after['open_s']:.2f} s.\n\n"
        "| filter | matching | count before | count after | search p50 before | search p50 after "
        "| p99 after | recall@10 before | recall@10 after |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for b, a in zip(before["filters"], after["filters"], strict=True):
        rows.append(
            f"| {a['filter']} | {a['matching']:,} "
            f"| {b['count_ms_median']:.3f} ms | {a['count_ms_median']:.3f} ms "
            f"| {b['search_p50_ms']:.2f} ms | {a['search_p50_ms']:.2f} ms | {a['search_p99_ms']:.2f} ms "
            f"| {b['recall_at_10']['strict']:.4f} | {a['recall_at_10']['strict']:.4f} |"
        )
    tgt = "\n".join(
        f"- {t['name']}: {t['value']:.4g} (target {t['op']} {t['target']:g}): "
        f"{'PASS' if t['pass'] else 'FAIL'}"
        for t in report["targets"]
    )
    return (
        f"{head}{chr(10).join(rows)}\n\nTargets (after; the 1% and 10% created_at filters):\n{tgt}\n\n"
        f"Targets met: {sum(t['pass'] for t in report['targets'])}/{len(report['targets'])}.\n"
    )


def _avg(avg: Sequence[float] | None) -> str:
    return "n/a" if avg is None else f"{avg[0]:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="records (default 100000; 5000 with --quick)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--quick", action="store_true", help="smoke run (5k records, few repeats)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    quick = args.quick
    n = args.n if args.n is not None else (5_000 if quick else 100_000)
    params = {
        "n": n,
        "dim": args.dim,
        "quick": quick,
        "index": "auto (HNSW from 20,000 records)",
        "k": K,
        "filtered_queries": 30 if quick else 200,
        "count_repeats": 20 if quick else 100,
    }
    started = time.perf_counter()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    log(f"generating data: {n:,} x {args.dim}")
    data = Data(n, args.dim, n_queries=params["filtered_queries"])
    created = np.random.default_rng(20).permutation(n)
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="vecdb-bench-filters-"))
    try:
        path = tmp / "data"
        log("load + build the index")
        results["load"] = load(path, data, created)
        log(f"  {results['load']['load_s']:.1f} s, index by {results['load']['load_and_index_s']:.1f} s")
        copy = tmp / "copy"
        shutil.copytree(path, copy)
        log("before (range index off) and after (on), alternating")
        results.update(measure(copy, path, data, created, params))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report: dict[str, Any] = {
        "benchmark": "vecdb filters (range index, issue 20)",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "parameters": params,
        "results": results,
    }
    report["machine"]["loadavg_start"] = load_start
    report["targets"] = evaluate_targets(results["after"], n)
    report["all_targets_met"] = all(t["pass"] for t in report["targets"])
    report["wall_s"] = time.perf_counter() - started
    md = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "filters-quick" if quick else "filters"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / f"{stem}.md").write_text(md)
    print()
    print(md)
    log(f"wrote {args.out / stem}.json and .md ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
