"""What the online recall audit costs the served path (issue 20's audit, issue 26's follow-up).

In one run, per size (20,000 and 100,000 x 384, HNSW, cosine, k=10), on one collection:

After the build, 1% of the records are deleted (tombstones in main: the audit masks them).

1. The exact re-run of sampled queries, measured directly with the collection idle (process CPU, all
   threads, and wall):
   - before: the audit as it was, one query at a time over a view rebuilt for each query (main's
     vectors reconstructed through FAISS), reproduced here from the old code (``_old_audit``);
   - after: ``TieredIndex.audit_view()`` (cached) + ``AuditView.top`` on a batch of ``audit.BATCH``.
   Reported per audited query and per 1,000 served queries at the default ``index.audit_fraction``.
2. Served in-process: sequential single-query searches in interleaved rounds with the audit on (the
   default fraction) and off (fraction 0, set on the same collection), p50/p99 latency and process CPU
   per 1,000 queries (the audit's background work included: each round waits for the audit to drain).

The machine is shared and noisy: compare the ratios within one run, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, pct

from vecdb import Database
from vecdb.config import IndexSettings, Settings
from vecdb.index.audit import BATCH, MAX_WAIT, SHARE
from vecdb.index.calibrate import ExactScan

DIM, K = 384, 10
FRACTION = IndexSettings().audit_fraction


def _old_audit(index: Any, q: np.ndarray, k: int) -> None:
    """The audit before this change, for one prepared query: the view (TieredIndex.audit_view as it was:
    main's live labels, vectors reconstructed chunk by chunk) rebuilt, then an exact scan of one query."""
    delta_labels, delta_x = index.delta.vectors()
    main = index.main
    live_main = np.frombuffer((index.main_labels - index.tombstones).to_array(), dtype=np.uint64).view(
        np.int64
    )
    order = np.argsort(delta_labels)

    def vectors_of(want: np.ndarray) -> np.ndarray:
        in_delta = np.isin(want, delta_labels)
        out = np.empty((len(want), index.dim), np.float32)
        if in_delta.any():
            out[in_delta] = delta_x[order[np.searchsorted(delta_labels[order], want[in_delta])]]
        rest = want[~in_delta]
        if len(rest):
            out[~in_delta] = main.reconstruct(rest)
        return out

    ExactScan(np.concatenate([live_main, delta_labels]), vectors_of, index.metric).top(q, k)


def _timed(fn: Any) -> tuple[float, float]:
    c, w = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - w


def _data(n: int, nq: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((200, DIM)).astype(np.float32)
    x = centers[rng.integers(0, 200, n)] + rng.standard_normal((n, DIM)).astype(np.float32)
    q = x[rng.integers(0, n, nq)] + 0.5 * rng.standard_normal((nq, DIM)).astype(np.float32)
    return x.astype(np.float32), q.astype(np.float32)


def run_size(n: int, work: Path, rounds: int, per_round: int, passes: int) -> dict[str, Any]:
    x, q = _data(n, per_round)
    out: dict[str, Any] = {"n": n}
    with Database(work, settings=Settings(index=IndexSettings(audit_fraction=0))) as db:
        col = db.create_collection("c", dim=DIM, metric="cosine", index={"type": "hnsw"})
        t0 = time.perf_counter()
        for s in range(0, n, 5000):
            col.upsert([str(i) for i in range(s, min(n, s + 5000))], x[s : s + 5000])
        assert col.wait_for_index(timeout=3600)
        while not col.info()["index_state"]["recall"]["calibrated"]:
            time.sleep(0.2)
        out["build_s"] = round(time.perf_counter() - t0, 1)
        col.delete([str(i) for i in range(0, n, 100)])  # 1% deleted: main has dead rows to mask
        log(f"n={n}: built in {out['build_s']} s")
        index, audit = col._index, col._audit  # the benchmark measures internals

        # 1. the exact re-run itself
        prepared = index.prepare(q[:BATCH])
        old_cpu, old_wall = [], []
        for _ in range(passes):
            for i in range(BATCH):
                c, w = _timed(lambda i=i: _old_audit(index, prepared[i : i + 1], K))
                old_cpu.append(c)
                old_wall.append(w)
        new_cpu, new_wall = [], []
        index.audit_view()  # the first view fills the cache (main's blocks: once per index)

        def after_write() -> None:  # what a delete invalidates: the dead-row masks
            index._audit_main = None
            index.audit_view()

        first_cpu = float(np.median([_timed(after_write)[0] for _ in range(passes)]))
        for _ in range(passes):
            c, w = _timed(lambda: index.audit_view().top(prepared, K))
            new_cpu.append(c / BATCH)
            new_wall.append(w / BATCH)
        per_1000 = 1000 * FRACTION
        out["exact_rerun"] = {
            "before_cpu_ms_per_audited_query": 1e3 * float(np.median(old_cpu)),
            "before_wall_ms_per_audited_query": 1e3 * float(np.median(old_wall)),
            "after_cpu_ms_per_audited_query": 1e3 * float(np.median(new_cpu)),
            "after_wall_ms_per_audited_query": 1e3 * float(np.median(new_wall)),
            "before_cpu_s_per_1000_served": per_1000 * float(np.median(old_cpu)),
            "after_cpu_s_per_1000_served": per_1000 * float(np.median(new_cpu)),
            "cached_view_rebuild_cpu_ms": 1e3 * first_cpu,
        }
        log(f"n={n}: exact re-run {out['exact_rerun']}")

        # 2. served in-process, audit on vs off, interleaved
        for qi in q[:50]:
            col.search(qi, k=K, include=[])
        lat: dict[str, list[float]] = {"on": [], "off": []}
        cpu: dict[str, float] = {"on": 0.0, "off": 0.0}
        busy0 = audit.busy
        for r in range(rounds):
            for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
                audit.fraction = FRACTION if mode == "on" else 0.0
                c0 = time.process_time()
                for qi in q:
                    t = time.perf_counter()
                    col.search(qi, k=K, include=[])
                    lat[mode].append(time.perf_counter() - t)
                time.sleep(MAX_WAIT + 0.5)  # the audit drains a small batch after MAX_WAIT
                cpu[mode] += time.process_time() - c0
        served = rounds * len(q)
        summary = audit.summary()
        out["served"] = {
            "queries_per_mode": served,
            "p50_ms_on": 1e3 * pct(lat["on"], 50),
            "p50_ms_off": 1e3 * pct(lat["off"], 50),
            "p99_ms_on": 1e3 * pct(lat["on"], 99),
            "p99_ms_off": 1e3 * pct(lat["off"], 99),
            "mean_ms_on": 1e3 * float(np.mean(lat["on"])),
            "mean_ms_off": 1e3 * float(np.mean(lat["off"])),
            "cpu_s_per_1000_on": 1000 * cpu["on"] / served,
            "cpu_s_per_1000_off": 1000 * cpu["off"] / served,
            "audit_busy_s_per_1000": 1000 * (audit.busy - busy0) / served,
            "audited": summary["samples"],
            "dropped": summary["dropped"],
            "estimated_recall": summary["estimated_recall"],
        }
        log(f"n={n}: served {out['served']}")
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Recall audit cost (benchmarks/audit.py)",
        "",
        f"{report['machine']}; {report['date']}. HNSW, cosine, {DIM}-d, k={K}, single queries in-process, "
        f"audit fraction {FRACTION} (the default), batch {BATCH}, budget {SHARE:.0%} of wall time. Shared, "
        "noisy machine: compare within the run.",
        "",
        "## The exact re-run of audited queries (collection idle, process CPU incl. BLAS threads)",
        "",
        "| n | before: CPU ms / audited query | after | before: CPU s / 1,000 served | after | "
        "view after a delete (CPU ms: dead-row masks) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        e = r["exact_rerun"]
        lines.append(
            f"| {r['n']:,} | {e['before_cpu_ms_per_audited_query']:.2f} "
            f"| {e['after_cpu_ms_per_audited_query']:.3f} "
            f"| {e['before_cpu_s_per_1000_served']:.3f} | {e['after_cpu_s_per_1000_served']:.4f} "
            f"| {e['cached_view_rebuild_cpu_ms']:.2f} |"
        )
    lines += [
        "",
        "## Served in-process, audit on vs off (interleaved rounds on one collection)",
        "",
        "| n | p50 on / off (ms) | p99 on / off (ms) | mean on / off (ms) "
        "| process CPU s / 1,000 queries on / off | audit busy s / 1,000 | audited, dropped |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        s = r["served"]
        lines.append(
            f"| {r['n']:,} | {s['p50_ms_on']:.3f} / {s['p50_ms_off']:.3f} | {s['p99_ms_on']:.3f} / "
            f"{s['p99_ms_off']:.3f} | {s['mean_ms_on']:.3f} / {s['mean_ms_off']:.3f} | "
            f"{s['cpu_s_per_1000_on']:.3f} / {s['cpu_s_per_1000_off']:.3f} | "
            f"{s['audit_busy_s_per_1000']:.4f} | "
            f"{s['audited']}, {s['dropped']} |"
        )
    lines += [
        "",
        "Before = the audit as it was (each audited query re-run alone over a view whose main vectors are "
        "reconstructed every time), reproduced in the script; after = one batched pass over the index's own "
        "storage through the cached view. Process CPU per 1,000 queries includes sleeping rounds' idle time "
        "(none) and the audit draining after each round.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000,100000")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=2000)
    ap.add_argument("--passes", type=int, default=5, help="repetitions of the direct re-run measurement")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        work = Path(tempfile.mkdtemp(prefix="vecdb-bench-audit-"))
        try:
            results.append(run_size(n, work, args.rounds, args.per_round, args.passes))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "benchmark": "audit",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "fraction": FRACTION,
        "batch": BATCH,
        "share": SHARE,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (args.out / "audit.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
