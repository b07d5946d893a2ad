"""How vecdb's cost grows with the collection: memory, ingest, queries, delete and reopen from 100k to 1M.

Run from the repository root (the peers' Python only for Chroma: ``make bench-peers`` installs it into
``.venv-peers``)::

    .venv/bin/python benchmarks/scale.py                                    # 100k/250k/500k/1M, ~hours
    .venv/bin/python benchmarks/scale.py --sizes 100000 --systems vecdb-embedded,vecdb-grpc,chroma

Each (size, system) runs in its own process through benchmarks/peers.py's workers and measuring harness
(``benchmarks/_peers/``: the same data generator, steps, clocks and checks as the peers comparison), so
memory is measured per system: ingest until searchable, peak RSS (worker + server for gRPC) and the
steady RSS once reopened and answering, recall@10 at the default recall target, single-query QPS and p50,
batch QPS, filtered search at 1% (latency, recall against the exact filtered top-10), delete of a 1%
source, reopen to the first answer. Chroma runs with ``--peers-python`` in its own process.

Resumable: each finished (size, system) is kept in ``--state`` (JSON, one file each) and skipped when the
script runs again, so a long run cut short (the 1M sizes take an hour or more on 2 cores) continues where
it stopped. Every run rewrites ``<out>/scale.json`` and ``<out>/scale.md`` from all finished entries.
Each worker has ``--timeout`` seconds (default 3600: "within 60 minutes"); one that runs past it is
recorded as not completed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import log

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MIB = 1 << 20
SIZES = (100_000, 250_000, 500_000, 1_000_000)
#: Compressed storage options (vecdb embedded with this index spec), measured beside the default.
VARIANTS: dict[str, dict[str, Any]] = {
    "vecdb-hnsw-sq8": {"type": "hnsw", "storage": "sq8"},
    "vecdb-hnsw-fp16": {"type": "hnsw", "storage": "fp16"},
    "vecdb-ivf-pq48": {"type": "ivf", "storage": "pq48"},
}
SYSTEMS = ("vecdb-embedded", "vecdb-grpc", "chroma", *VARIANTS)
# What runs at each size unless --plan says otherwise: the curve is vecdb embedded at every size;
# gRPC and Chroma at the sizes the issue compares (100k beside the peers' numbers, 1M).
DEFAULT_PLAN = {
    100_000: ("vecdb-embedded", "vecdb-grpc", "chroma"),
    250_000: ("vecdb-embedded",),
    500_000: ("vecdb-embedded",),
    1_000_000: ("vecdb-embedded", "vecdb-grpc", "chroma"),
}


def _peers() -> Any:
    import peers

    return peers


def dataset(n: int, nq: int, nf: int, folder: Path) -> dict[str, Any]:
    """The peers' synthetic set at ``n`` (same generator and seed), prepared once per size."""
    meta_path = folder / "dataset.json"
    if meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if meta.get("records") == n and meta.get("queries") == nq:
            return meta
    peers = _peers()
    ann = peers._ann()
    x, q = ann.synthetic(n, nq)
    desc = (
        f"{ann.CLUSTERS} Gaussian clusters (centers N(0,1), noise sd {ann.NOISE}), seed 1234 "
        f"(benchmarks/ann.py's generator, as benchmarks/peers.py); queries: {len(q):,} stored records + "
        f"N(0, {ann.QUERY_NOISE}^2) noise."
    )
    meta = peers.prepare(f"synthetic-{n}", x, q, desc, folder, nf)
    meta_path.write_text(json.dumps(meta))
    return meta


def run_one(system: str, n: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    peers = _peers()
    ds = dataset(n, args.queries, args.filtered, tmp / f"data-{n}")
    python = args.peers_python if system == "chroma" else sys.executable
    params = {
        "batch": args.batch,
        "single": args.single,
        "filtered": args.filtered,
        "timeout_s": args.timeout,
    }
    # A run killed before its end leaves its work folder (the store): start clean.
    shutil.rmtree(tmp / "work" / f"{ds['name']}-{system}", ignore_errors=True)
    load_start = os.getloadavg()
    if system in VARIANTS:
        extra = {"vecdb_index": VARIANTS[system]}
        res: dict[str, Any] = peers.run_worker("vecdb-embedded", ds, params, python, tmp, extra, system)
        res["system"] = system
    else:
        res = peers.run_worker(system, ds, params, python, tmp)
    res["loadavg_start"] = load_start
    res["loadavg_end"] = os.getloadavg()
    res["size"] = n
    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        check=False,
        capture_output=True,
        text=True,
    )
    res["commit"] = git.stdout.strip() or None
    if res.get("exit_code") is None and "error" in res:
        res["not_completed"] = f"did not complete within {args.timeout / 60:.0f} minutes"
    return res


def _row(res: dict[str, Any]) -> dict[str, Any] | None:
    rows = [r for r in res.get("settings", []) if r["setting"] == "default"]
    return rows[0] if rows else None


def _code(res: dict[str, Any]) -> str:
    """Which code measured an entry (entries from before scale.py recorded it: an earlier commit)."""
    if res.get("commit"):
        return str(res["commit"])
    if res.get("from_peers") and not str(res.get("system", "")).startswith("vecdb"):
        return f"{res['from_peers']} (a peer: no vecdb code)"
    if res.get("from_peers"):
        when = (
            f"re-measured {res['updated']} at 65bc8f4" if res.get("updated") else "first run, before 65bc8f4"
        )
        return f"{res['from_peers']} ({when})"
    return "before 65bc8f4 (merges still copied the delta; reopen kept the closed index)"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "## vecdb at scale: 100k to 1M x 384",
        "",
        f"Updated {report['timestamp']}. {m['cpu_count']} CPUs, "
        f"{(m['memory_bytes'] or 0) / (1 << 30):.0f} GiB, {m['platform']}, Python {m['python']}. "
        "**Shared machine**: other jobs ran beside these "
        "(load average per entry below, often 4-13 on 2 cores), so times are noisy and slower than on a "
        "quiet machine; memory is not affected. Data: benchmarks/peers.py's synthetic set (256 Gaussian "
        "clusters, seed 1234) at each size, unit vectors, cosine; ingest in batches of "
        f"{report['parameters']['batch']:,} with ids and metadata `{{source, n}}` (100 sources of 1% each). "
        "vecdb runs with its defaults: index `auto` (HNSW from 20,000 records) at the default recall target "
        "0.95 (calibrated ef_search). Recall@10 over all queries as one batch; single-query QPS/p50 over "
        f"{report['parameters']['single']:,} queries one at a time; filter = one source (1%), "
        f"{report['parameters']['filtered']:,} queries, recall against the exact filtered top-10. Peak "
        "RSS: VmHWM of the worker (plus the server's for gRPC); steady: RSS after close, reopen and the "
        "first answers (gRPC: a freshly started server). 'above data' subtracts the worker's RSS with the "
        "data set loaded, before the system starts.",
        "",
        "| Size | System | Ingest to searchable | Peak RSS | Peak above data | Steady after reopen "
        "| Steady above data | Recall@10 | 1-query QPS | p50 ms | Batch QPS | Filter 1% p50 ms | "
        "Filter 1% recall | Delete 1% source | Reopen to first answer | Load avg | Code |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(report["results"], key=lambda k: (int(k.split(":")[0]), k)):
        res = report["results"][key]
        n, system = res["size"], res["system"]
        if "error" in res:
            why = res.get("not_completed") or res["error"][:160]
            lines.append(f"| {n:,} | {system} | not completed: {why} |" + " |" * 14)
            continue
        row = _row(res)
        mem = res["memory"]
        steady = mem.get("after_reopen", {})
        vec_mib = n * res["dim"] * 4 / MIB
        lines.append(
            f"| {n:,} | {system} | {res['ingest']['to_searchable_s']:.0f} s | "
            f"{mem['total_peak_bytes'] / MIB:,.0f} MiB | {mem['total_peak_above_baseline_bytes'] / MIB:,.0f} "
            f"MiB ({mem['total_peak_above_baseline_bytes'] / MIB / vec_mib:.1f}x vectors) | "
            f"{steady.get('total_rss_bytes', 0) / MIB:,.0f} MiB | "
            f"{steady.get('total_rss_above_baseline_bytes', 0) / MIB:,.0f} MiB | "
            f"{row['recall_at_10']:.4f} | {row['single_qps']:,.0f} | {row['single_p50_ms']:.3f} | "
            f"{row['batch_qps']:,.0f} | {row['filtered_p50_ms']:.3f} | {row['filtered_recall_at_10']:.4f} | "
            f"{res['delete']['delete_s'] * 1e3:.1f} ms | {res['reopen']['reopen_to_first_answer_s']:.2f} s | "
            f"{res['loadavg_start'][0]:.1f}-{res['loadavg_end'][0]:.1f} | {_code(res)} |"
            if row
            else f"| {n:,} | {system} | no default row |" + " |" * 14
        )
    curve = [
        r
        for r in report["results"].values()
        if r["system"] == "vecdb-embedded" and "error" not in r and _row(r) is not None
    ]
    if curve:
        lines += [
            "",
            "### Curve (vecdb embedded)",
            "",
            "| Size | Raw vectors | Peak RSS above data | Steady RSS above data | Index memory (info) | "
            "Query p50 ms |",
            "|---|---|---|---|---|---|",
        ]
        for r in sorted(curve, key=lambda r: r["size"]):
            memory = (r["ingest"].get("build") or {}).get("memory") or {}
            row = _row(r)
            assert row is not None
            lines.append(
                f"| {r['size']:,} | {r['size'] * r['dim'] * 4 / MIB:,.0f} MiB | "
                f"{r['memory']['total_peak_above_baseline_bytes'] / MIB:,.0f} MiB | "
                f"{r['memory'].get('after_reopen', {}).get('total_rss_above_baseline_bytes', 0) / MIB:,.0f} "
                f"MiB | {memory.get('total', 0) / MIB:,.0f} MiB | {row['single_p50_ms']:.3f} |"
            )
    missing = report.get("not_run", [])
    if missing:
        lines += ["", "Not run (yet): " + ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    ap.add_argument(
        "--systems", default=None, help=f"comma-separated, of {list(SYSTEMS)} (default: per size)"
    )
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--state", type=Path, default=REPO / ".bench-scale", help="finished entries (resume)")
    ap.add_argument("--peers-python", default=str(REPO / ".venv-peers" / "bin" / "python"))
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, default=500)
    ap.add_argument("--filtered", type=int, default=200)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker")
    ap.add_argument(
        "--from-peers",
        type=Path,
        default=None,
        help="take the synthetic-set entries of a benchmarks/peers.py report (same harness and data at "
        "its size) as finished entries, then report",
    )
    ap.add_argument("--peers-commit", default=None, help="the commit the --from-peers report measured")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    chosen = None if args.systems is None else [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in chosen or [] if s not in SYSTEMS]
    if unknown:
        ap.error(f"unknown systems {unknown}; choose from {list(SYSTEMS)}")
    args.state.mkdir(parents=True, exist_ok=True)
    if args.from_peers is not None:
        report = json.loads(args.from_peers.read_text())
        synthetic = report["results"]["synthetic"]
        for system, measured in synthetic["systems"].items():
            if system in SYSTEMS:
                entry = {**measured, "size": synthetic["records"], "from_peers": args.from_peers.name}
                if args.peers_commit and system.startswith("vecdb"):
                    entry["commit"] = args.peers_commit
                entry.setdefault("loadavg_start", report["machine"]["loadavg_start"])
                entry.setdefault("loadavg_end", report["machine"].get("loadavg_end", entry["loadavg_start"]))
                path = args.state / f"{synthetic['records']}-{system}.json"
                path.write_text(json.dumps(entry, indent=1))
        write_report(args)
        return 0
    tmp = args.state / "tmp"
    plan = [(n, s) for n in sizes for s in (chosen or DEFAULT_PLAN.get(n, ("vecdb-embedded",)))]
    peers = _peers()
    for n, system in plan:
        done = args.state / f"{n}-{system}.json"
        if done.exists():
            before = json.loads(done.read_text())
            if "error" not in before or before.get("not_completed"):  # a failure other than time: again
                log(f"{n:,} / {system}: done before, kept")
                continue
        log(f"{n:,} / {system}")
        res = run_one(system, n, args, tmp)
        done.write_text(json.dumps(res, indent=1, default=float) + "\n")
        log(f"{n:,} / {system}: {peers.summary_line(res)}")
        write_report(args)
    write_report(args)
    return 0


def write_report(args: argparse.Namespace) -> None:
    peers = _peers()
    results = {}
    for path in sorted(args.state.glob("*.json")):
        res = json.loads(path.read_text())
        results[f"{res['size']}:{res['system']}"] = res
    planned = [f"{n:,} {s}" for n, systems in DEFAULT_PLAN.items() for s in systems]
    report = {
        "benchmark": "scale",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**peers.machine_info(), "shared": "yes: ~6 other jobs ran tests beside it"},
        "versions": {"product": peers.product_versions()},
        "parameters": {
            "queries": args.queries,
            "single": args.single,
            "filtered": args.filtered,
            "batch": args.batch,
            "timeout_s": args.timeout,
        },
        "results": results,
        "not_run": [p for p in planned if f"{p.split()[0].replace(',', '')}:{p.split()[1]}" not in results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (args.out / "scale.md").write_text(markdown(report))


if __name__ == "__main__":
    sys.exit(main())
