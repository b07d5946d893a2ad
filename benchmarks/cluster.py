"""Sharding benchmark: one embedded collection against the same collection sharded over 1, 2 and 4 Ray
actors on this machine (docs/scaling.md).

Run from the repository root (needs the ``vecdb[cluster]`` extra)::

    .venv/bin/python benchmarks/cluster.py            # 50k x 128, flat index (a few minutes)
    .venv/bin/python benchmarks/cluster.py --quick    # smoke run: 5k records

Results go to ``<out>/cluster.json`` and ``<out>/cluster.md`` (``cluster-quick.*`` with ``--quick``).

Method: a local Ray cluster is started by the script (``num_cpus`` = the machine's CPUs, each shard actor
asks for ``1 / shards`` of them so every layout fits). Data (random float32, cosine, metadata with a
group, 100 records per source) is generated before any clock starts and ingested in batches of 1,000 ids
with the default durability (fsync per write batch, on every shard). Searches run after warm-up: single
queries one after another (median latency over the repeats) and batches of 100 queries; k=10, flat
index, so every layout must return the embedded collection's ids (checked). The fan-out overhead of a
search is the sharded median single-query latency minus the embedded one: Ray's call to each shard, the
result's pickling, and the merge. On a small machine the shards share its cores, so more shards do not
add compute; the point of the numbers is the cost per fan-out, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import log

from vecdb import Database
from vecdb.engine.collection import Collection

DIM = 128
BATCH = 1000
K = 10


def machine_info() -> dict[str, Any]:
    versions = {}
    for dist in ("numpy", "faiss-cpu", "rocksdict", "ray", "vecdb"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "loadavg_end": os.getloadavg(),
    }


def make_data(n: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "ids": [f"rec-{i:08d}" for i in range(n)],
        "vectors": rng.standard_normal((n, DIM)).astype(np.float32),
        "texts": [f"record {i}" for i in range(n)],
        "metadatas": [{"group": i % 10} for i in range(n)],
        "sources": [f"src-{i // 100}" for i in range(n)],
    }


def ingest(col: Collection, data: dict[str, Any]) -> float:
    """Records per second over the whole ingest."""
    n = len(data["ids"])
    start = time.perf_counter()
    for lo in range(0, n, BATCH):
        hi = min(lo + BATCH, n)
        col.upsert(**{key: value[lo:hi] for key, value in data.items()})
    return n / (time.perf_counter() - start)


def search_single(col: Collection, queries: np.ndarray, repeats: int) -> tuple[float, list[list[str]]]:
    """Median (over repeats) of the per-query median latency, in ms; and the ids of the last repeat."""
    for q in queries[:10]:
        col.search(q, k=K)
    medians, ids = [], []
    for _ in range(repeats):
        times, ids = [], []
        for q in queries:
            t0 = time.perf_counter()
            hits = col.search(q, k=K)
            times.append(time.perf_counter() - t0)
            ids.append([h.id for h in hits[0]])
        medians.append(statistics.median(times) * 1000)
    return statistics.median(medians), ids


def search_batches(col: Collection, queries: np.ndarray, repeats: int, size: int = 100) -> float:
    """Queries per second in batches of ``size`` (median of repeats)."""
    col.search(queries[:size], k=K)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for lo in range(0, len(queries), size):
            col.search(queries[lo : lo + size], k=K)
        rates.append(len(queries) / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5k records, few repeats")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    n = args.records or (5_000 if args.quick else 50_000)
    repeats = 2 if args.quick else 3
    n_single, n_batch = (100, 500) if args.quick else (300, 2000)

    import ray

    from vecdb.cluster import ClusterDatabase

    data = make_data(n)
    rng = np.random.default_rng(1)
    single_q = rng.standard_normal((n_single, DIM)).astype(np.float32)
    batch_q = rng.standard_normal((n_batch, DIM)).astype(np.float32)
    cpus = os.cpu_count() or 2
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, namespace="vecdb-bench")
    root = Path(tempfile.mkdtemp(prefix="vecdb-cluster-bench-"))
    rows: list[dict[str, Any]] = []
    try:
        log(f"{n} x {DIM}: embedded")
        with Database(root / "embedded") as db:
            col = db.create_collection("bench", dim=DIM, metric="cosine", index={"type": "flat"})
            row: dict[str, Any] = {"layout": "embedded", "shards": 0, "ingest_rps": ingest(col, data)}
            row["single_ms"], reference = search_single(col, single_q, repeats)
            row["batch_qps"] = search_batches(col, batch_q, repeats)
            row["same_ids"] = True
            rows.append(row)
        base_ms = rows[0]["single_ms"]
        for shards in args.shards:
            log(f"{n} x {DIM}: {shards} shard(s)")
            opts = {"num_cpus": cpus / shards}
            with ClusterDatabase(root / f"sharded-{shards}", actor_options=opts) as db:
                col = db.create_collection(
                    "bench", dim=DIM, metric="cosine", index={"type": "flat"}, shards=shards, replicas=1
                )
                row = {"layout": f"{shards} shard(s)", "shards": shards, "ingest_rps": ingest(col, data)}
                row["single_ms"], ids = search_single(col, single_q, repeats)
                row["batch_qps"] = search_batches(col, batch_q, repeats)
                row["same_ids"] = ids == reference
                row["fanout_overhead_ms"] = row["single_ms"] - base_ms
                rows.append(row)
                db.drop_collection("bench")
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    for row in rows:
        row["single_qps"] = 1000 / row["single_ms"]
    report = {
        "benchmark": "cluster",
        "date": datetime.now(UTC).isoformat(),
        "params": {"records": n, "dim": DIM, "metric": "cosine", "index": "flat", "k": K, "batch": BATCH,
                   "single_queries": n_single, "batch_queries": n_batch, "repeats": repeats},
        "machine": machine_info(),
        "results": rows,
    }  # fmt: skip
    md = [
        f"# Sharding over Ray: {n:,} x {DIM}, flat, cosine, k={K} ({report['date'][:10]})",
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {report['machine']['python']}, "
        f"ray {report['machine']['versions']['ray']}. All shards on this one machine. "
        "Medians after warm-up; `benchmarks/cluster.py`.",
        "",
        "| layout | ingest (records/s) | single query (ms) | single-query QPS | batch-100 QPS "
        "| fan-out overhead (ms/search) | same ids as embedded |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        over = row.get("fanout_overhead_ms")
        md.append(
            f"| {row['layout']} | {row['ingest_rps']:,.0f} | {row['single_ms']:.2f} "
            f"| {row['single_qps']:,.0f} "
            f"| {row['batch_qps']:,.0f} | {'-' if over is None else f'{over:+.2f}'} | {row['same_ids']} |"
        )
    text = "\n".join(md) + "\n"
    stem = "cluster-quick" if args.quick else "cluster"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
