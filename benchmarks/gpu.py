"""GPU versus CPU: flat and IVF search throughput, build time and recall@10 at 1M x 384.

Run from the repository root::

    .venv/bin/python benchmarks/gpu.py                 # both devices when FAISS sees a GPU, else the CPU
    .venv/bin/python benchmarks/gpu.py --device cpu    # the CPU half only
    .venv/bin/python benchmarks/gpu.py --n 200000      # a smaller collection

It measures vecdb's index layer as the engine uses it (``vecdb.index``: ``FlatIndex`` and an IVF
``AnnIndex``, with the device mirror of ``vecdb.index.device`` attached on the GPU), not the storage: the
question is what the device changes. Per device and index:

- build: flat = adding every vector (on the GPU: into the CPU index and its device mirror); IVF = train
  (on ``max(64 * nlist, 10,000)`` sampled vectors) + add on the CPU, as the engine builds it, plus, on the
  GPU, copying it to the device;
- single queries: ``--single`` queries one at a time: QPS and p50/p99 latency;
- a batch of ``--batch`` (10,000) queries in one call: QPS;
- recall@10 of the batch's first 1,000 queries against exact search (numpy-free: the CPU flat index).

Data: clustered synthetic vectors (1,000 Gaussian centers, N(0, 1) components plus N(0, 0.6^2) noise,
fixed seed), queries = stored vectors plus N(0, 0.3^2) noise, inner product on normalized vectors (the
engine's cosine). Results: ``benchmarks/results/gpu.json`` and ``gpu.md`` (``--out`` elsewhere); with
one device only, the file names get ``-cpu`` or ``-gpu``. The whole run is sized to finish in under 8
minutes on one GPU machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from _common import log, pct

from vecdb.index import FlatIndex, IvfSpec, SearchParams, resolve_device, set_search_threads
from vecdb.index.ann import build_ann, new_ann
from vecdb.index.device import Device, gpu_count

RESULTS = Path(__file__).resolve().parent / "results"
DIM = 384


def dataset(n: int, n_queries: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((1000, DIM), dtype=np.float32)
    x = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):
        end = min(n, start + 100_000)
        x[start:end] = centers[rng.integers(0, 1000, end - start)]
        x[start:end] += rng.standard_normal((end - start, DIM), dtype=np.float32) * 0.6
    q = (
        x[rng.choice(n, n_queries, replace=False)]
        + rng.standard_normal((n_queries, DIM), dtype=np.float32) * 0.3
    )
    faiss.normalize_L2(x)
    faiss.normalize_L2(q)
    return x, q.astype(np.float32)


def recall_at_10(labels: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(a[:10]) & set(b[:10])) for a, b in zip(labels, truth, strict=True))
    return hits / (10 * len(truth))


def measure(search: Any, queries: np.ndarray, single: int, truth: np.ndarray) -> dict[str, float]:
    """Single-query latency/QPS, batched QPS and recall@10 of ``search(queries, k) -> (scores, labels)``."""
    for i in range(5):  # warm-up (and the GPU's first-call costs)
        search(queries[i : i + 1], 10)
    lat = []
    start = time.perf_counter()
    for i in range(single):
        t = time.perf_counter()
        search(queries[i : i + 1], 10)
        lat.append((time.perf_counter() - t) * 1000)
    single_qps = single / (time.perf_counter() - start)
    t = time.perf_counter()
    _, labels = search(queries, 10)
    batch_s = time.perf_counter() - t
    return {
        "single_qps": round(single_qps, 1),
        "single_p50_ms": round(pct(lat, 50), 3),
        "single_p99_ms": round(pct(lat, 99), 3),
        "batch_qps": round(len(queries) / batch_s, 1),
        "batch_s": round(batch_s, 2),
        "recall_at_10": round(recall_at_10(labels[: len(truth)], truth), 4),
    }


def search_fn(index: Any, single_thread_max: int = 8) -> Any:
    def run(q: np.ndarray, k: int) -> Any:
        set_search_threads(len(q), single_thread_max)  # as the engine does
        return index(q, k)

    return run


def bench_flat(
    x: np.ndarray, q: np.ndarray, device: Device | None, single: int, truth: np.ndarray
) -> dict[str, Any]:
    labels = np.arange(len(x), dtype=np.int64)
    t = time.perf_counter()
    index = FlatIndex(DIM, "cosine")
    if device is not None:
        index.attach(device)
    index.add(labels, x)
    build_s = time.perf_counter() - t
    assert device is None or index.on_device, "the flat mirror did not take"
    out = {"build_s": round(build_s, 2), **measure(search_fn(index.search), q, single, truth)}
    out["on_device_after"] = index.on_device  # False: the mirror failed mid-run and the CPU answered
    return out


def bench_ivf(
    x: np.ndarray,
    q: np.ndarray,
    device: Device | None,
    single: int,
    truth: np.ndarray,
    nlist: int,
    nprobe: int,
) -> dict[str, Any]:
    spec = IvfSpec(nlist=nlist, nprobe=nprobe)
    labels = np.arange(len(x), dtype=np.int64)
    cancel = threading.Event()
    t = time.perf_counter()
    base = new_ann(spec, DIM, "cosine", len(x))
    ann, _ = build_ann(base, labels, lambda want: (want, x[want]), cancel)
    cpu_build_s = time.perf_counter() - t
    t = time.perf_counter()
    if device is not None:
        ann.attach(device)
        assert ann.on_device, "the IVF mirror did not take"
    copy_s = time.perf_counter() - t
    params = SearchParams()
    out = {
        "build_s": round(cpu_build_s + copy_s, 2),
        "train_add_cpu_s": round(cpu_build_s, 2),
        "copy_to_device_s": round(copy_s, 2),
        "nlist": nlist,
        "nprobe": nprobe,
        **measure(search_fn(lambda qq, k: ann.search(qq, k, None, spec, params, 1.0)), q, single, truth),
        "on_device_after": ann.on_device,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors (default 1M)")
    parser.add_argument("--batch", type=int, default=10_000, help="queries in the batched search")
    parser.add_argument("--single", type=int, default=200, help="single queries timed one by one")
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--device", choices=["both", "cpu", "gpu"], default="both")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    devices: list[tuple[str, Device | None]] = []
    if args.device in ("both", "cpu"):
        devices.append(("cpu", None))
    if args.device in ("both", "gpu"):
        if gpu_count() == 0:
            if args.device == "gpu":
                raise SystemExit("no GPU visible to FAISS (the faiss-gpu build is needed, see docs/gpu.md)")
            log("no GPU visible to FAISS: the CPU half only")
        else:
            devices.append(("gpu", resolve_device("gpu")))
    started = time.perf_counter()
    log(f"data: {args.n} x {DIM}, {args.batch} queries")
    x, q = dataset(args.n, args.batch)
    n_truth = min(1000, len(q))
    exact = faiss.IndexFlatIP(DIM)
    exact.add(x)
    faiss.omp_set_num_threads(faiss.omp_get_max_threads())
    t = time.perf_counter()
    _, truth = exact.search(q[:n_truth], 10)
    log(f"ground truth for {n_truth} queries in {time.perf_counter() - t:.1f} s")
    del exact
    results: dict[str, Any] = {}
    for name, device in devices:
        log(f"{name}: flat")
        results[f"{name}/flat"] = bench_flat(x, q, device, args.single, truth)
        log(f"{name}/flat: {results[f'{name}/flat']}")
        log(f"{name}: ivf")
        results[f"{name}/ivf"] = bench_ivf(x, q, device, args.single, truth, args.nlist, args.nprobe)
        log(f"{name}/ivf: {results[f'{name}/ivf']}")
    report = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "cpu_threads": faiss.omp_get_max_threads(),
            "gpus": gpu_count(),
        },
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
        "total_s": round(time.perf_counter() - started, 1),
    }
    ran = [name for name, _ in devices]
    suffix = "" if len(ran) == 2 else f"-{ran[0]}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"gpu{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# GPU vs CPU: {args.n} x {DIM}, batch {args.batch} queries, k=10",
        "",
        f"Machine: {report['machine']}. Total {report['total_s']} s.",
        "",
        "| device/index | build s | single QPS | single p50 ms | single p99 ms | batch QPS | recall@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        lines.append(
            f"| {key} | {r['build_s']} | {r['single_qps']} | {r['single_p50_ms']} | {r['single_p99_ms']} | "
            f"{r['batch_qps']} | {r['recall_at_10']} |"
        )
    (args.out / f"gpu{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
