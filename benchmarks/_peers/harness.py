"""The measuring harness: the same steps, clocks and checks for every system (numpy only).

A system is an object with the methods of ``System`` below. ``run(job, system)`` loads the prepared data,
ingests it, searches with the system's defaults and with its tuned setting, filters, deletes a source,
reopens the store and reports memory, and returns one JSON-able dict.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["DELETE_SOURCE", "FILTER_SOURCE", "System", "proc_memory", "run", "source_of"]

FILTER_SOURCE = "file7.txt"  # 1% of the records: record i has source file{i % 100}.txt
DELETE_SOURCE = "file3.txt"
DELETE_PROBES = 20  # deleted records whose own vectors are used as queries after the delete
WARMUP = 20
BATCH_REPEATS = 3  # the batch of all queries is timed up to 3 times (median), while it stays short
BATCH_REPEAT_BUDGET_S = 10.0


def source_of(i: int) -> str:
    return f"file{i % 100}.txt"


class System(Protocol):
    """What a worker module provides for one system (record ids are ``str(record number)``)."""

    exact: bool  # exact search: no recall knob, so no tuned setting

    def describe(self) -> dict[str, Any]: ...  # index/build parameters, what a hit returns, notes
    def default_params(self) -> dict[str, Any]: ...  # search parameters of the "default" row
    def sweep(self) -> list[dict[str, Any]]: ...  # candidate tuned settings, cheapest first
    def create(self, work: Path, dim: int, n: int) -> None: ...
    def insert(self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> None: ...
    def finish_ingest(self) -> dict[str, Any]: ...  # until fully indexed
    def search(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[int]: ...
    def search_batch(self, q: np.ndarray, k: int, params: dict[str, Any]) -> list[list[int]] | None: ...
    def search_filtered(self, q: np.ndarray, k: int, source: str, params: dict[str, Any]) -> list[int]: ...
    def delete_source(self, source: str) -> dict[str, Any]: ...  # how it deleted
    def check_deleted(self, source: str, ids: list[str]) -> dict[str, int]: ...  # each must be 0
    def close(self) -> dict[str, Any]: ...
    def reopen(self) -> None: ...
    def peaks(self) -> dict[str, int]: ...  # peak RSS (bytes) of helper processes, e.g. a server
    def shutdown(self) -> None: ...


def proc_memory(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, bytes; {} when it is gone."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def recall_at_k(hits: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    """Share of the exact top-k (rows of ``truth``) found in ``hits``, averaged over queries."""
    if truth.size == 0:
        return 1.0
    total = 0.0
    for got, exact in zip(hits, truth, strict=False):
        total += len(set(exact.tolist()).intersection(got)) / len(exact)
    return total / len(truth)


def _batch(system: System, q: np.ndarray, k: int, params: dict[str, Any]) -> tuple[list[list[int]], bool]:
    res = system.search_batch(q, k, params)
    if res is not None:
        return res, True
    return [system.search(v, k, params) for v in q], False


def _measure(
    system: System,
    setting: str,
    params: dict[str, Any],
    q: np.ndarray,
    gt: np.ndarray,
    fgt: np.ndarray,
    job: dict[str, Any],
) -> dict[str, Any]:
    k = job["k"]
    for i in range(min(WARMUP, len(q))):
        system.search(q[i], k, params)
    _batch(system, q[:WARMUP], k, params)
    times: list[float] = []
    while len(times) < BATCH_REPEATS and sum(times) < BATCH_REPEAT_BUDGET_S:
        t = time.perf_counter()
        hits, native = _batch(system, q, k, params)
        times.append(time.perf_counter() - t)
    batch_s = float(np.median(times))
    lat: list[float] = []
    single_hits: list[list[int]] = []
    ns = min(job["single"], len(q))
    for i in range(ns):
        t = time.perf_counter()
        single_hits.append(system.search(q[i], k, params))
        lat.append(time.perf_counter() - t)
    nf = min(job["filtered"], len(q), len(fgt))
    for i in range(min(5, nf)):
        system.search_filtered(q[i], k, FILTER_SOURCE, params)
    flat: list[float] = []
    fhits: list[list[int]] = []
    for i in range(nf):
        t = time.perf_counter()
        fhits.append(system.search_filtered(q[i], k, FILTER_SOURCE, params))
        flat.append(time.perf_counter() - t)
    wrong_source = sum(1 for row in fhits for h in row if source_of(h) != FILTER_SOURCE)
    return {
        "setting": setting,
        "params": params,
        "recall_at_10": recall_at_k(hits, gt),
        "batch_queries": len(q),
        "batch_native": native,
        "batch_s": batch_s,
        "batch_repeats": len(times),
        "batch_qps": len(q) / batch_s,
        "single_queries": ns,
        "single_qps": ns / sum(lat),
        "single_p50_ms": pct(lat, 50) * 1e3,
        "single_p99_ms": pct(lat, 99) * 1e3,
        "single_recall_at_10": recall_at_k(single_hits, gt[:ns]),
        "filtered_queries": nf,
        "filtered_p50_ms": pct(flat, 50) * 1e3,
        "filtered_p99_ms": pct(flat, 99) * 1e3,
        "filtered_recall_at_10": recall_at_k(fhits, fgt[:nf]),
        "filtered_mean_hits": float(np.mean([len(r) for r in fhits])),
        "filtered_wrong_source_hits": wrong_source,
    }


def _tune(system: System, q: np.ndarray, gt: np.ndarray, job: dict[str, Any]) -> dict[str, Any]:
    """Walk the system's sweep (cheapest first) until recall@10 >= the target; the batch of all queries."""
    tried = []
    best: dict[str, Any] | None = None
    for params in system.sweep():
        hits, _ = _batch(system, q, job["k"], params)
        r = recall_at_k(hits, gt)
        tried.append({"params": params, "recall_at_10": r})
        if best is None or r > best["recall_at_10"]:
            best = tried[-1]
        if r >= job["target_recall"]:
            return {"params": params, "reached": True, "sweep": tried}
    return {"params": best["params"] if best else {}, "reached": False, "sweep": tried}


def run(job: dict[str, Any], system: System) -> dict[str, Any]:
    data = Path(job["data"])
    x = np.load(data / "vectors.npy")
    q = np.load(data / "queries.npy")
    gt = np.load(data / "gt.npy")
    fgt = np.load(data / "gt_filter.npy")
    n, dim = x.shape
    k = job["k"]
    ids = [str(i) for i in range(n)]
    metas = [{"source": source_of(i), "n": i} for i in range(n)]
    gc.collect()
    base = proc_memory()
    out: dict[str, Any] = {"system": job["system"], "records": n, "dim": dim, "queries": len(q)}
    out["describe"] = system.describe()
    work = Path(job["work"])
    work.mkdir(parents=True, exist_ok=True)
    try:
        system.create(work, dim, n)
        t0 = time.perf_counter()
        for s in range(0, n, job["batch"]):
            system.insert(ids[s : s + job["batch"]], x[s : s + job["batch"]], metas[s : s + job["batch"]])
        t_insert = time.perf_counter() - t0
        build = system.finish_ingest()
        first = system.search(q[0], k, system.default_params())
        t_ingest = time.perf_counter() - t0
        out["ingest"] = {
            "batch": job["batch"],
            "insert_s": t_insert,
            "to_searchable_s": t_ingest,
            "records_per_s": n / t_ingest,
            "first_query_hits": len(first),
            "build": build,
        }

        rows = [_measure(system, "default", system.default_params(), q, gt, fgt, job)]
        if not system.exact:
            tuned = _tune(system, q, gt, job)
            out["tuning"] = tuned
            row = _measure(system, "tuned", tuned["params"], q, gt, fgt, job)
            row["reached_target"] = tuned["reached"]
            rows.append(row)
        out["settings"] = rows
        after_params = rows[-1]["params"]

        # delete-by-source: time it, then look for the deleted records every way the system allows
        deleted = [i for i in range(n) if source_of(i) == DELETE_SOURCE]
        t = time.perf_counter()
        how = system.delete_source(DELETE_SOURCE)
        delete_s = time.perf_counter() - t
        probes = np.ascontiguousarray(x[deleted[:DELETE_PROBES]])
        dead = set(deleted)
        leaked = sum(1 for row in _batch(system, probes, k, after_params)[0] for h in row if h in dead)
        checks = system.check_deleted(DELETE_SOURCE, [ids[i] for i in deleted])
        out["delete"] = {
            "source": DELETE_SOURCE,
            "records": len(deleted),
            "delete_s": delete_s,
            "method": how,
            "search_probes": len(probes),
            "deleted_in_search_hits": leaked,
            "checks": checks,
            "deleted_gone": leaked == 0 and all(v == 0 for v in checks.values()),
        }

        # reopen: close the persisted store (or save the index file), then time until a query answers
        peaks_before = system.peaks()
        t = time.perf_counter()
        closing = system.close()
        close_s = time.perf_counter() - t
        gc.collect()
        t = time.perf_counter()
        system.reopen()
        answer = system.search(q[0], k, system.default_params())
        reopen_s = time.perf_counter() - t
        leaked_after = sum(1 for row in _batch(system, probes, k, after_params)[0] for h in row if h in dead)
        out["reopen"] = {
            "close_s": close_s,
            "close": closing,
            "reopen_to_first_answer_s": reopen_s,
            "first_answer_hits": len(answer),
            "deleted_in_search_hits_after_reopen": leaked_after,
        }
        out["delete"]["deleted_gone_after_reopen"] = leaked_after == 0
        # Steady memory once reopened and answering: the worker's RSS now, and its helpers' (a server
        # restarted by reopen: a fresh process, so its RSS is what a reopened collection holds).
        gc.collect()
        current = getattr(system, "current", None)
        after: dict[str, Any] = {"worker_rss_bytes": proc_memory().get("VmRSS", 0)}
        after["helper_rss_bytes"] = current() if current is not None else {}
        peaks_after = system.peaks()
        out["describe"] = system.describe()  # again: some systems know their settings only once built
        extra = getattr(system, "extra", None)
        if extra is not None:
            out["extra"] = extra()
    finally:
        mem = proc_memory()
        system.shutdown()
    helpers = {name: max(peaks_before.get(name, 0), peaks_after.get(name, 0)) for name in peaks_before}
    worker_peak = mem.get("VmHWM", 0)
    out["memory"] = {
        "worker_peak_bytes": worker_peak,
        "worker_baseline_bytes": base.get("VmRSS", 0),  # data and ids loaded, before the system starts
        "worker_peak_above_baseline_bytes": worker_peak - base.get("VmRSS", 0),
        "helper_peak_bytes": helpers,  # e.g. the vecdb server process
        "total_peak_bytes": worker_peak + sum(helpers.values()),
        "total_peak_above_baseline_bytes": worker_peak - base.get("VmRSS", 0) + sum(helpers.values()),
    }
    if "reopen" in out:
        steady = after["worker_rss_bytes"] + sum(after["helper_rss_bytes"].values())
        out["memory"]["after_reopen"] = {
            **after,
            "total_rss_bytes": steady,
            "total_rss_above_baseline_bytes": steady - base.get("VmRSS", 0),
        }
    out["pid"] = os.getpid()
    return out
