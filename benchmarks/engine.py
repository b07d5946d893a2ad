"""Embedded-engine benchmark: upsert throughput, reopen time, flat search latency/recall, delete-by-source.

Run from the repository root::

    .venv/bin/python benchmarks/engine.py            # full run: 100k x 384 (a few minutes)
    .venv/bin/python benchmarks/engine.py --quick    # smoke run: 5k records, few repeats
    make bench

Everything happens in a temporary data directory under the system temp dir, removed at the end.
Results go to ``<out>/engine.json`` and ``<out>/engine.md`` (``engine-quick.*`` with ``--quick``, so a
smoke run never overwrites the full results); the markdown table is printed too.

Method: data is generated before any clock starts (clustered random float32 vectors, ~200-char texts,
metadata ``{"lang", "n", "tag", "grp"}``, 100 records per source). Every latency is taken after warm-up
calls; repeated measurements report the median, with process CPU time next to wall time (the machine may
be shared). Search recall@k is checked against numpy brute force over the same normalized vectors
(float32 candidates, float64 ordering), filtered or not; "tie-aware" recall also accepts swaps of scores
within 1e-5 of the k-th best, which float32 arithmetic cannot order.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
from _common import log, pct

from vecdb.config import Settings, StorageSettings
from vecdb.engine.database import Database
from vecdb.engine.vector_state import CHECKPOINT_FILE

COLLECTION = "bench"
BATCH = 1000
PER_SOURCE = 100
K = 10
CLUSTERS = 256
NOISE = 0.6  # per-dimension noise around a cluster center (center components are N(0, 1))
OTHER_LANGS = ("de", "fr", "es", "it", "nl")
DELETE_SOURCE = "bench-delete-source"


def filters(n: int) -> list[tuple[str, dict[str, Any], Callable[[np.ndarray], np.ndarray]]]:
    """(label, filter, numpy mask over record numbers) at selectivities ~50%, ~10%, ~1%."""
    return [
        ("50% (lang eq)", {"lang": "en"}, lambda i: i % 2 == 0),
        ("10% (tag eq)", {"tag": "t3"}, lambda i: i % 10 == 3),
        ("1% (grp eq)", {"grp": 42}, lambda i: i % 100 == 42),
        ("1% (n range)", {"n": {"$lt": n // 100}}, lambda i: i < n // 100),
    ]


TARGETS = {
    "upsert_sync_records_per_s": (">=", 20_000.0),
    "upsert_nosync_records_per_s": (">=", 20_000.0),
    "reopen_checkpoint_s": ("<=", 2.0),
    "delete_source_1000_ms": ("<=", 50.0),
    "recall_at_10_tie_aware_min": (">=", 1.0),
    "filter_violations": ("<=", 0.0),
}


# ---- data ------------------------------------------------------------------------------------------


class Data:
    """Records 0..n-1 (ids ``r<i>``) plus query vectors, all built before timing starts."""

    def __init__(self, n: int, dim: int, n_queries: int, seed: int = 1234) -> None:
        rng = np.random.default_rng(seed)
        self.n, self.dim = n, dim
        self.centers = rng.standard_normal((CLUSTERS, dim), dtype=np.float32)
        self.vectors = self._clustered(rng, n)
        self.queries = self._clustered(rng, n_queries)
        self.delete_vectors = self._clustered(rng, BATCH)
        words = [
            "".join(chr(97 + c) for c in rng.integers(0, 26, int(length)))
            for length in rng.integers(2, 10, 2000)
        ]
        corpus = " ".join(words[j] for j in rng.integers(0, len(words), 60_000))
        offsets = rng.integers(0, len(corpus) - 300, n + BATCH)
        self._corpus, self._offsets = corpus, offsets
        self.ids = [f"r{i}" for i in range(n)]
        self.texts = [self.text(i) for i in range(n)]
        self.metadatas = [self.metadata(i) for i in range(n)]
        self.sources = [f"src-{i // PER_SOURCE:06d}" for i in range(n)]
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.normalized = self.vectors / norms
        self.queries_normalized = self.queries / np.linalg.norm(self.queries, axis=1, keepdims=True)
        self.numbers = np.arange(n)

    def _clustered(self, rng: np.random.Generator, n: int) -> np.ndarray:
        assign = rng.integers(0, CLUSTERS, n)
        out = rng.standard_normal((n, self.dim), dtype=np.float32)
        out *= NOISE
        out += self.centers[assign]
        return out

    def text(self, i: int) -> str:
        off = int(self._offsets[i])
        return f"record {i}: {self._corpus[off : off + 185]}"

    @staticmethod
    def metadata(i: int) -> dict[str, Any]:
        lang = "en" if i % 2 == 0 else OTHER_LANGS[(i // 2) % len(OTHER_LANGS)]
        return {"lang": lang, "n": i, "tag": f"t{i % 10}", "grp": i % 100}

    def batches(self) -> list[tuple[list[str], np.ndarray, list[str], list[dict[str, Any]], list[str]]]:
        out = []
        for start in range(0, self.n, BATCH):
            end = min(start + BATCH, self.n)
            out.append(
                (
                    self.ids[start:end],
                    self.vectors[start:end],
                    self.texts[start:end],
                    self.metadatas[start:end],
                    self.sources[start:end],
                )
            )
        return out

    def delete_batch(self) -> tuple[list[str], np.ndarray, list[str], list[dict[str, Any]], list[str]]:
        ids = [f"del-{j}" for j in range(BATCH)]
        texts = [self.text(self.n + j) for j in range(BATCH)]
        metas = [self.metadata(self.n + j) for j in range(BATCH)]
        return ids, self.delete_vectors, texts, metas, [DELETE_SOURCE] * BATCH


TIE_TOLERANCE = 1e-5  # float32 dot products of unit vectors differ by up to ~1e-6 with summation order


def brute_force(data: Data, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Exact top-k record numbers per query (cosine), numpy only.

    float32 GEMM picks k + 32 candidates, float64 rescoring orders them (chunked to bound memory).
    """
    rows = data.numbers if mask is None else data.numbers[mask]
    base = data.normalized if mask is None else data.normalized[mask]
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    kk = min(k, len(rows))
    cand = min(k + 32, len(rows))
    out = np.empty((len(q), kk), dtype=np.int64)
    for start in range(0, len(q), 200):
        qc = q[start : start + 200]
        top = np.argpartition(-(qc @ base.T), cand - 1, axis=1)[:, :cand]
        exact = np.einsum("qcd,qd->qc", base[top].astype(np.float64), qc.astype(np.float64))
        order = np.argsort(-exact, axis=1, kind="stable")[:, :kk]
        out[start : start + 200] = rows[np.take_along_axis(top, order, axis=1)]
    return out


def recall(
    data: Data,
    queries: np.ndarray,
    hits: Sequence[Sequence[Any]],
    truth: np.ndarray,
    mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """Recall@k of search results (lists of Hit) against the exact top-k.

    ``strict``: share of the exact top-k ids returned. ``tie_aware``: share of returned hits whose exact
    (float64) score is within TIE_TOLERANCE of the k-th best, i.e. the strict misses are only swaps of
    near-equal scores that float32 arithmetic cannot order. ``filter_violations``: hits outside the filter.
    """
    q = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float64)
    strict = tie = 0.0
    violations = 0
    ties: list[float] = []
    for qi, (row, exact) in enumerate(zip(hits, truth, strict=True)):
        got = list(dict.fromkeys(int(h.id[1:]) for h in row))
        if mask is not None:
            violations += sum(1 for g in got if not mask[g])
        exact_set = set(exact.tolist())
        strict += len(exact_set.intersection(got)) / len(exact)
        kth = float(data.normalized[exact[-1]].astype(np.float64) @ q[qi])
        scores = data.normalized[got].astype(np.float64) @ q[qi] if got else np.empty(0)
        tie += int((scores >= kth - TIE_TOLERANCE).sum()) / len(exact)
        ties += [kth - float(s) for g, s in zip(got, scores, strict=True) if g not in exact_set]
    n = len(truth)
    return {
        "strict": strict / n,
        "tie_aware": tie / n,
        "filter_violations": violations,
        "max_tie_gap": max(ties, default=0.0),  # how far below the k-th best a non-exact hit scored
    }


# ---- helpers ---------------------------------------------------------------------------------------


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def machine_info() -> dict[str, Any]:
    versions = {}
    for dist in ("numpy", "faiss-cpu", "rocksdict", "pyroaring", "orjson", "vecdb"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
        "versions": versions,
        "temp_dir": tempfile.gettempdir(),
        "loadavg_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


# ---- phases ----------------------------------------------------------------------------------------


def bench_upsert(path: Path, data: Data, *, sync: bool, keep_open: bool) -> tuple[dict[str, Any], Database]:
    """Load all records in batches of 1,000 into a fresh flat cosine collection."""
    settings = Settings(storage=StorageSettings(sync_writes=sync))  # type: ignore[call-arg]
    db = Database(path, settings=settings)
    # Warm-up in a throwaway collection: first-call costs (imports, allocators, RocksDB column families).
    warm = db.create_collection("warmup", dim=data.dim, metric="cosine", index={"type": "flat"})
    for j in range(3):
        ids = [f"w{j}-{x}" for x in range(BATCH)]
        rows = slice(j * BATCH % data.n, j * BATCH % data.n + BATCH)
        warm.upsert(ids, data.vectors[rows], data.texts[rows], data.metadatas[rows], data.sources[rows])
    db.drop_collection("warmup")

    col = db.create_collection(COLLECTION, dim=data.dim, metric="cosine", index={"type": "flat"})
    batches = data.batches()
    gc.collect()
    batch_s: list[float] = []
    c0 = time.process_time()
    t0 = time.perf_counter()
    for ids, vecs, texts, metas, sources in batches:
        tb = time.perf_counter()
        written = col.upsert(ids, vecs, texts, metas, sources)
        batch_s.append(time.perf_counter() - tb)
        assert written == len(ids)
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    assert col.count() == data.n
    batch_rates = [len(b[0]) / s for b, s in zip(batches, batch_s, strict=True)]
    result = {
        "sync_writes": sync,
        "records": data.n,
        "batch_size": BATCH,
        "total_s": total,
        "records_per_s": data.n / total,
        "cpu_s": cpu,  # all threads of this process (RocksDB's background ones too)
        "batch_records_per_s_median": statistics.median(batch_rates),
        "batch_ms_p50": pct(batch_s, 50) * 1e3,
        "batch_ms_p99": pct(batch_s, 99) * 1e3,
        "batch_ms_max": max(batch_s) * 1e3,
    }
    if not keep_open:
        db.close()
    return result, db


def time_open(path: Path, expected: int) -> tuple[float, float, Database]:
    """(wall s, process CPU s, the open Database) for Database() + get_collection() + count()."""
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    db = Database(path)
    col = db.get_collection(COLLECTION)
    n = col.count()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    assert n == expected, (n, expected)
    return elapsed, cpu, db


def bench_reopen(path: Path, data: Data, repeats: int) -> dict[str, Any]:
    """Open time, checkpointed path (first open after the load separately: it replays the RocksDB WAL),
    then the rebuild path (checkpoint file deleted)."""
    ckpt = path / "collections" / COLLECTION / CHECKPOINT_FILE
    assert ckpt.exists(), "close() should have written the index checkpoint"
    first, first_cpu, db = time_open(path, data.n)
    db.close()
    ckpt_times, ckpt_cpu = [], []
    for _ in range(repeats):
        t, c, db = time_open(path, data.n)
        db.close()
        ckpt_times.append(t)
        ckpt_cpu.append(c)
    rebuild_times, rebuild_cpu = [], []
    quiet = logging.getLogger("vecdb.engine.collection")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "no index checkpoint, rebuilding" is what this phase is about
    for _ in range(repeats):
        ckpt.unlink()
        t, c, db = time_open(path, data.n)
        db.close()  # waits for the background checkpoint that the rebuild scheduled (not timed)
        rebuild_times.append(t)
        rebuild_cpu.append(c)
    quiet.setLevel(level)
    assert ckpt.exists()
    return {
        "first_open_after_load_s": first,
        "first_open_after_load_cpu_s": first_cpu,
        "checkpoint_s_median": statistics.median(ckpt_times),
        "checkpoint_s_all": ckpt_times,
        "checkpoint_cpu_s_median": statistics.median(ckpt_cpu),
        "rebuild_s_median": statistics.median(rebuild_times),
        "rebuild_s_all": rebuild_times,
        "rebuild_cpu_s_median": statistics.median(rebuild_cpu),
        "checkpoint_file_bytes": ckpt.stat().st_size,
        "data_dir_bytes": dir_size(path),
    }


def bench_search(col: Any, data: Data, params: dict[str, Any]) -> dict[str, Any]:
    n_single, n_batch = params["single_queries"], params["batch_queries"]
    n_filtered, repeats = params["filtered_queries"], params["repeats"]
    queries = data.queries
    out: dict[str, Any] = {"k": K}
    include = ["text", "metadata", "source"]  # the default: hits come back with their records

    # single query, unfiltered
    for i in range(20):
        col.search(queries[i], k=K, include=include)
    lat, hits = [], []
    for i in range(n_single):
        t0 = time.perf_counter()
        res = col.search(queries[i], k=K, include=include)
        lat.append(time.perf_counter() - t0)
        hits.append(res[0])
    truth = brute_force(data, queries[:n_single], K)
    out["single"] = {
        "queries": n_single,
        "p50_ms": pct(lat, 50) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
        "mean_ms": statistics.fmean(lat) * 1e3,
        "recall_at_10": recall(data, queries[:n_single], hits, truth),
    }
    # the same with ids only (no record materialization) to separate index time from record reads
    lat_ids = []
    for i in range(n_single):
        t0 = time.perf_counter()
        col.search(queries[i], k=K, include=[])
        lat_ids.append(time.perf_counter() - t0)
    out["single_ids_only"] = {"p50_ms": pct(lat_ids, 50) * 1e3, "p99_ms": pct(lat_ids, 99) * 1e3}

    # batch of queries
    batch_q = queries[:n_batch]
    col.search(batch_q, k=K, include=include)  # warm-up (OpenMP pool, BLAS)
    times, res = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = col.search(batch_q, k=K, include=include)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    out["batch"] = {
        "queries": n_batch,
        "median_s": med,
        "qps": n_batch / med,
        "recall_at_10": recall(data, batch_q, res, brute_force(data, batch_q, K)),
    }

    # filtered single queries
    filtered = []
    for label, flt, mask_fn in filters(data.n):
        mask = mask_fn(data.numbers)
        expected = int(mask.sum())
        assert col.count(flt) == expected, (label, col.count(flt), expected)
        for i in range(10):
            col.search(queries[i], k=K, filter=flt, include=include)
        lat, hits = [], []
        for i in range(n_filtered):
            t0 = time.perf_counter()
            res = col.search(queries[i], k=K, filter=flt, include=include)
            lat.append(time.perf_counter() - t0)
            hits.append(res[0])
        truth = brute_force(data, queries[:n_filtered], K, mask)
        filtered.append(
            {
                "filter": label,
                "expr": flt,
                "matching": expected,
                "selectivity": expected / data.n,
                "queries": n_filtered,
                "p50_ms": pct(lat, 50) * 1e3,
                "p99_ms": pct(lat, 99) * 1e3,
                "recall_at_10": recall(data, queries[:n_filtered], hits, truth, mask),
            }
        )
    out["filtered"] = filtered
    return out


def bench_delete(col: Any, data: Data, repeats: int) -> dict[str, Any]:
    """Delete a dedicated 1,000-record source out of n; re-insert (untimed) between repeats."""
    batch = data.delete_batch()
    col.upsert(*batch)
    assert col.delete(source=DELETE_SOURCE) == BATCH  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        col.upsert(*batch)
        assert col.count() == data.n + BATCH
        gc.collect()
        c0 = time.process_time()
        t0 = time.perf_counter()
        deleted = col.delete(source=DELETE_SOURCE)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert deleted == BATCH
        assert col.count() == data.n
    return {
        "records_deleted": BATCH,
        "collection_records": data.n + BATCH,
        "median_ms": statistics.median(times) * 1e3,
        "all_ms": [t * 1e3 for t in times],
        "cpu_ms_median": statistics.median(cpu) * 1e3,
    }


# ---- report ----------------------------------------------------------------------------------------


def all_recalls(search: dict[str, Any]) -> list[dict[str, Any]]:
    out = [search["single"]["recall_at_10"], search["batch"]["recall_at_10"]]
    return out + [f["recall_at_10"] for f in search["filtered"]]


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    recalls = all_recalls(results["search"])
    values = {
        "upsert_sync_records_per_s": results["upsert_sync"]["records_per_s"],
        "upsert_nosync_records_per_s": results["upsert_nosync"]["records_per_s"],
        "reopen_checkpoint_s": results["reopen"]["checkpoint_s_median"],
        "delete_source_1000_ms": results["delete"]["median_ms"],
        "recall_at_10_tie_aware_min": min(r["tie_aware"] for r in recalls),
        "filter_violations": float(sum(r["filter_violations"] for r in recalls)),
    }
    out = []
    for name, (op, target) in TARGETS.items():
        value = values[name]
        ok = value >= target if op == ">=" else value <= target
        out.append({"name": name, "value": value, "op": op, "target": target, "pass": ok})
    return out


def load(avg: Sequence[float] | None) -> str:
    return "n/a" if avg is None else f"{avg[0]:.1f}"


def markdown(report: dict[str, Any]) -> str:
    r = report["results"]
    p = report["parameters"]
    m = report["machine"]
    tgt = {t["name"]: t for t in report["targets"]}

    def verdict(name: str) -> str:
        t = tgt[name]
        return f"{t['op']} {t['target']:g} | {'PASS' if t['pass'] else 'FAIL'}"

    s = r["search"]
    ro = r["reopen"]
    rows = [
        (
            "upsert, sync_writes=True",
            f"{r['upsert_sync']['records_per_s']:,.0f} rec/s "
            f"(batch median {r['upsert_sync']['batch_records_per_s_median']:,.0f})",
            verdict("upsert_sync_records_per_s"),
        ),
        (
            "upsert, sync_writes=False",
            f"{r['upsert_nosync']['records_per_s']:,.0f} rec/s "
            f"(batch median {r['upsert_nosync']['batch_records_per_s_median']:,.0f})",
            verdict("upsert_nosync_records_per_s"),
        ),
        ("close after load (writes checkpoint)", f"{r['close_after_load_s']:.2f} s", "— | —"),
        (
            "reopen, first after load (WAL replay)",
            f"{ro['first_open_after_load_s']:.2f} s (CPU {ro['first_open_after_load_cpu_s']:.2f} s)",
            "— | —",
        ),
        (
            "reopen, checkpointed (median)",
            f"{ro['checkpoint_s_median']:.2f} s (CPU {ro['checkpoint_cpu_s_median']:.2f} s)",
            verdict("reopen_checkpoint_s"),
        ),
        (
            "reopen, no checkpoint (rebuild, median)",
            f"{ro['rebuild_s_median']:.2f} s (CPU {ro['rebuild_cpu_s_median']:.2f} s)",
            "— | —",
        ),
        (
            f"search single k={K}, p50 / p99",
            f"{s['single']['p50_ms']:.2f} / {s['single']['p99_ms']:.2f} ms",
            "— | —",
        ),
        (
            "search single, ids only, p50 / p99",
            f"{s['single_ids_only']['p50_ms']:.2f} / {s['single_ids_only']['p99_ms']:.2f} ms",
            "— | —",
        ),
        (
            f"search batch of {s['batch']['queries']}",
            f"{s['batch']['qps']:,.0f} QPS ({s['batch']['median_s']:.2f} s)",
            "— | —",
        ),
    ]
    for f in s["filtered"]:
        rows.append(
            (
                f"search filtered {f['filter']}, p50 / p99",
                f"{f['p50_ms']:.2f} / {f['p99_ms']:.2f} ms ({f['matching']:,} match)",
                "— | —",
            )
        )
    names = ["single", "batch"] + [f["filter"].split()[0] for f in s["filtered"]]
    recalls = all_recalls(s)
    rows.append(
        (
            "recall@10 vs numpy, strict",
            ", ".join(f"{name} {r['strict']:.4f}" for name, r in zip(names, recalls, strict=True)),
            "— | —",
        )
    )
    gap = max(r["max_tie_gap"] for r in recalls)
    rows.append(
        (
            f"recall@10, ties within {TIE_TOLERANCE:g} count (min)",
            f"{min(r['tie_aware'] for r in recalls):.4f} (largest tie gap {gap:.1e})",
            verdict("recall_at_10_tie_aware_min"),
        )
    )
    rows.append(
        (
            "filtered hits outside the filter",
            f"{sum(r['filter_violations'] for r in recalls):g}",
            verdict("filter_violations"),
        )
    )
    rows.append(
        (
            f"delete by source ({BATCH:,} of {r['delete']['collection_records']:,}), median",
            f"{r['delete']['median_ms']:.1f} ms (CPU {r['delete']['cpu_ms_median']:.1f} ms)",
            verdict("delete_source_1000_ms"),
        )
    )
    head = (
        f"## vecdb engine benchmark{' (quick)' if p['quick'] else ''}\n\n"
        f"{p['n']:,} x {p['dim']} float32, flat cosine, batches of {BATCH:,}, "
        f"{PER_SOURCE} records/source; {m['cpu_count']} CPUs, {m['platform']}, Python {m['python']}, "
        f"faiss {m['versions']['faiss-cpu']}, rocksdict {m['versions']['rocksdict']}, "
        f"numpy {m['versions']['numpy']}. {report['timestamp']}. Load average at start / end: "
        f"{load(m['loadavg_start'])} / {load(m['loadavg_end'])} (wall times on a shared machine are noisy; "
        "CPU = process CPU time, all threads).\n\n"
        "| Metric | Value | Target | Result |\n|---|---|---|---|\n"
    )
    body = "\n".join(f"| {name} | {value} | {target} |" for name, value, target in rows)
    passed = sum(t["pass"] for t in report["targets"])
    return f"{head}{body}\n\nTargets met: {passed}/{len(report['targets'])}.\n"


# ---- main ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="records to load (default 100000; 5000 with --quick)")
    ap.add_argument("--dim", type=int, default=384, help="vector dimension (default 384)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (5k records, few repeats)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)

    quick = args.quick
    n = args.n if args.n is not None else (5_000 if quick else 100_000)
    if n < 1000:
        ap.error("--n must be at least 1000 (the 1% filter needs >= k matches)")
    params = {
        "n": n,
        "dim": args.dim,
        "quick": quick,
        "batch": BATCH,
        "records_per_source": PER_SOURCE,
        "k": K,
        "metric": "cosine",
        "index": "flat",
        "clusters": CLUSTERS,
        "noise": NOISE,
        "single_queries": 50 if quick else 300,
        "batch_queries": 200 if quick else 1000,
        "filtered_queries": 30 if quick else 200,
        "repeats": 2 if quick else 3,
        "delete_repeats": 3 if quick else 5,
    }
    started = time.perf_counter()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    log(f"generating data: {n:,} x {args.dim}")
    data = Data(n, args.dim, n_queries=max(params["single_queries"], params["batch_queries"]))
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="vecdb-bench-"))
    try:
        main_dir, nosync_dir = tmp / "sync", tmp / "nosync"
        log("upsert, sync_writes=True")
        results["upsert_sync"], db = bench_upsert(main_dir, data, sync=True, keep_open=True)
        log(f"  {results['upsert_sync']['records_per_s']:,.0f} rec/s")
        t0 = time.perf_counter()
        db.close()
        results["close_after_load_s"] = time.perf_counter() - t0

        log("upsert, sync_writes=False")
        results["upsert_nosync"], _ = bench_upsert(nosync_dir, data, sync=False, keep_open=False)
        log(f"  {results['upsert_nosync']['records_per_s']:,.0f} rec/s")
        shutil.rmtree(nosync_dir)

        log("reopen")
        results["reopen"] = bench_reopen(main_dir, data, params["repeats"])
        log(
            f"  first {results['reopen']['first_open_after_load_s']:.2f} s, checkpointed "
            f"{results['reopen']['checkpoint_s_median']:.2f} s, "
            f"rebuild {results['reopen']['rebuild_s_median']:.2f} s"
        )

        with Database(main_dir) as db:
            col = db.get_collection(COLLECTION)
            log("search")
            results["search"] = bench_search(col, data, params)
            log("delete by source")
            results["delete"] = bench_delete(col, data, params["delete_repeats"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    report = {
        "benchmark": "vecdb engine",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "parameters": params,
        "results": results,
        "targets": [],
        "wall_s": 0.0,
    }
    report["machine"]["loadavg_start"] = load_start
    report["targets"] = evaluate_targets(results)
    report["all_targets_met"] = all(t["pass"] for t in report["targets"])
    report["wall_s"] = time.perf_counter() - started
    md = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "engine-quick" if quick else "engine"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(md)
    print()
    print(md)
    log(f"wrote {args.out / stem}.json and .md ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
