"""Semantic cache benchmark: ``SemanticCache.lookup`` latency against a real ``vecdb serve`` process.

Run from the repository root::

    .venv/bin/python benchmarks/cache.py            # full run: 10k and 100k entries (~5-8 min)
    .venv/bin/python benchmarks/cache.py --quick    # smoke run: 1k and 5k entries, fewer lookups

What is measured: one sequential client calling ``SemanticCache.lookup`` (``vecdb_client.cache``, default
threshold, default guard, no scope) over gRPC and over REST, after warm-up, at two cache sizes. Per case the
latency p50 / p95 / mean (ms, wall time around ``lookup``), the outcome of every lookup (checked against
what the case expects) and the server's own handler time per operation (its ``vecdb_request_seconds``
histogram, scraped before and after each case):

- ``exact_hit``: the prompt was cached verbatim: the exact path's point read (``get`` of the entry id, a
  hash of the normalized prompt) finds it; no embedding, no search.
- ``semantic_hit``: a reworded cached prompt (its final " ." removed or added: the exact path misses) with
  its vector given (``lookup(text, vector=v)``): ``get`` (nothing) + ``search`` (k=3, scope and ctx filter).
- ``miss``: a WikiQA question no cached prompt is near (similarity below the threshold), vector given:
  ``get`` + ``search``, the same two round trips as a semantic hit.
- ``semantic_hit_embed`` / ``miss_embed``: the same texts without a vector: the server embeds the text
  in the ``search`` call (all-MiniLM-L6-v2 on CPU).

For context, the pieces alone over the same client: the point read (``get`` of an absent id), the
cache's search (k=3, ``{"scope": "", "ctx": ""}`` filter, text + metadata), the same search without the
filter, and ``client.embed`` of one text.

Entries: real WikiQA sentences (``WikiQA-train.tsv``, ``--wikiqa``) are embedded once through the
server (``client.embed``, batches of 64). The first of them are cached with ``SemanticCache.put(prompt,
response, vector=v)``, so they have real entry ids, texts and vectors (the collection is created by the
cache: ``embedding={}``, cosine, no capacity). The rest of each entry set is bulk-upserted (batches of
2,000, the cache's record layout: text, ``{"scope": "", "ctx": "", "response": ...}``) as copies of the
real vectors plus Gaussian noise (sigma 0.03 per component, norm ~0.6, then renormalized: cosine ~0.86 to the
original), because embedding 100k sentences would take ~12 minutes on this machine; lookup latency
depends on the collection's size and index, not on where its vectors came from. Responses are ~400
characters (three WikiQA sentences). The same collection is measured at the first size, grown to the
second, and measured again once the background index has settled (the auto index builds HNSW from
20,000 records: the wait is until no build is running and the delta is under the merge threshold).

Full results go to ``benchmarks/results/cache.{json,md}``; ``--quick`` writes ``cache-quick.*`` to a
temporary directory unless ``--out`` is given. The machine may be shared: load averages are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO, REPO / "clients" / "python"):  # run as a script from anywhere: this checkout's packages
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from _common import cpu_seconds, free_port, log, pct  # noqa: E402
from cache_adversarial import markdown as adversarial_markdown  # noqa: E402
from cache_adversarial import run_set as run_adversarial  # noqa: E402

from vecdb_client import Client  # noqa: E402
from vecdb_client.cache import DEFAULT_THRESHOLD, CacheHit, SemanticCache, entry_id, normalize  # noqa: E402
from vecdb_client.cache_key import token_counter  # noqa: E402
from vecdb_client.cache_verify import guard  # noqa: E402

COLLECTION = "llm_cache"
MODEL = "all-MiniLM-L6-v2"
WIKIQA = Path("/work/shared/data/wikiqa")
EMBED_BATCH = 64
UPSERT_BATCH = 2_000
NOISE_SIGMA = 0.03
SEED = 20241129
INCLUDE = ("text", "metadata")
TRANSPORTS = ("grpc", "rest")
AUTO_THRESHOLD = 20_000  # AutoSpec.threshold: records from which HNSW is built
TARGET_NO_EMBED_MS = 2.0
TARGET_EMBED_MS = 15.0

# case -> (expected outcome, embedding included, description)
CASES: dict[str, tuple[str, bool, str]] = {
    "exact_hit": ("exact", False, "exact hit (prompt cached verbatim: point read only)"),
    "semantic_hit": ("semantic", False, "semantic hit, vector given (one search)"),
    "miss": ("miss", False, "miss, vector given (one search)"),
    "semantic_hit_embed": ("semantic", True, "semantic hit, text only (get + embed + search)"),
    "miss_embed": ("miss", True, "miss, text only (get + embed + search)"),
}
# piece -> description (no cache logic: the calls a lookup is made of)
PIECES: dict[str, str] = {
    "get": "point read of an absent id (the exact path of a miss)",
    "search": "search k=3, scope+ctx filter, text+metadata (the semantic path)",
    "search_nofilter": "the same search without the scope filter",
    "embed": "client.embed of one question",
}


# ---- data ---------------------------------------------------------------------------------------------


def load_wikiqa(path: Path) -> tuple[list[str], list[str]]:
    """Distinct answer sentences and distinct questions of one WikiQA TSV (question, sentence, label)."""
    sentences: dict[str, None] = {}
    questions: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0].strip() and parts[1].strip():
            questions.setdefault(parts[0].strip())
            sentences.setdefault(parts[1].strip())
    return list(sentences), list(questions)


def reword(sentence: str) -> str:
    """The same sentence with its final punctuation changed: another entry id, nearly the same meaning."""
    stripped = sentence.rstrip(" .")
    return stripped if stripped != sentence else sentence + " ."


def unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def embed_all(client: Client, texts: list[str]) -> np.ndarray:
    parts = [client.embed(texts[s : s + EMBED_BATCH])[0] for s in range(0, len(texts), EMBED_BATCH)]
    return unit(np.concatenate(parts))


class Workload:
    """The real texts and vectors: cached prompts, reworded prompts (hits) and far questions (misses)."""

    def __init__(self, client: Client, args: argparse.Namespace) -> None:
        rng = random.Random(SEED)
        sentences, questions = load_wikiqa(args.wikiqa / "WikiQA-train.tsv")
        self.distinct_sentences, self.distinct_questions = len(sentences), len(questions)
        pool = rng.sample(sentences, args.real + 3)
        self.texts = pool[: args.real]
        self.extra = pool[args.real :]
        # ~400-character responses: three real sentences.
        self.responses = [" ".join(pool[(i + j) % len(pool)] for j in range(3)) for i in range(args.real)]
        started = time.perf_counter()
        self.vectors = embed_all(client, self.texts)
        self.embed_s = time.perf_counter() - started
        log(f"embedded {len(self.texts):,} sentences in {self.embed_s:.1f} s")

        # Hits: reworded cached prompts whose similarity to the cached one clears the threshold by a margin.
        n_put = args.put
        candidates = [reword(t) for t in self.texts[:n_put]]
        cand_vectors = embed_all(client, candidates)
        sims = np.einsum("ij,ij->i", cand_vectors, self.vectors[:n_put])
        keep = [
            i
            for i in range(n_put)
            if sims[i] >= DEFAULT_THRESHOLD + 0.02 and normalize(candidates[i]) != normalize(self.texts[i])
        ]
        self.hit_texts = [candidates[i] for i in keep]
        self.hit_vectors = cand_vectors[keep]
        self.hit_similarity = [float(sims[i]) for i in keep]
        self.reworded_kept = (len(keep), n_put)

        # Misses: questions whose best similarity to any real cached vector is below the threshold.
        qs = rng.sample(questions, min(len(questions), 2 * args.lookups + 100))
        q_vectors = embed_all(client, qs)
        best = (q_vectors @ self.vectors.T).max(axis=1)
        far = [i for i in range(len(qs)) if best[i] < DEFAULT_THRESHOLD - 0.05]
        self.miss_texts = [qs[i] for i in far]
        self.miss_vectors = q_vectors[far]
        self.miss_best_similarity = [float(best[i]) for i in far]
        log(
            f"{len(self.hit_texts)}/{n_put} reworded prompts kept (similarity >= "
            f"{DEFAULT_THRESHOLD + 0.02:.2f}), {len(self.miss_texts)}/{len(qs)} far questions kept"
        )

    def bulk(self, start: int, stop: int) -> tuple[list[str], np.ndarray, list[str], list[dict[str, str]]]:
        """Bulk entries start..stop: noisy copies of the real vectors, the cache's record layout."""
        rng = np.random.default_rng(SEED + start)
        idx = np.arange(start, stop) % len(self.texts)
        vectors = unit(self.vectors[idx] + rng.normal(0.0, NOISE_SIGMA, (len(idx), self.vectors.shape[1])))
        ids = [f"bulk-{j}" for j in range(start, stop)]
        texts = [self.texts[i] for i in idx.tolist()]
        metas = [{"scope": "", "ctx": "", "response": self.responses[i]} for i in idx.tolist()]
        return ids, vectors, texts, metas


# ---- the server process --------------------------------------------------------------------------------


class Server:
    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("VECDB_")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        cmd = [sys.executable, "-m", "vecdb", "serve", "--data-dir", str(data_dir)]
        cmd += ["--rest-port", str(self.rest_port), "--grpc-port", str(self.grpc_port)]
        started = time.perf_counter()
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{log_path.read_text()}")
            try:
                with httpx.Client(timeout=1) as c:
                    if c.get(f"{self.url}/readyz").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in 60 s:\n{log_path.read_text()}")
            time.sleep(0.05)
        self.ready_s = time.perf_counter() - started
        self.http = httpx.Client(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def client(self, transport: str) -> Client:
        if transport == "grpc":
            return Client(self.url, grpc_url=f"127.0.0.1:{self.grpc_port}", prefer_grpc=True, timeout=600)
        return Client(self.url, timeout=600)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def handler_stats(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(transport, operation) -> (sum seconds, count) from the server's own latency histogram."""
        text = self.http.get(f"{self.url}/metrics").text
        out: dict[tuple[str, str], list[float]] = {}
        for line in text.splitlines():
            for suffix, idx in (("_sum", 0), ("_count", 1)):
                head = f"vecdb_request_seconds{suffix}{{"
                if line.startswith(head):
                    labels = dict(
                        p.split("=", 1) for p in line[len(head) : line.index("}")].replace('"', "").split(",")
                    )
                    key = (labels["transport"], labels["operation"])
                    out.setdefault(key, [0.0, 0.0])[idx] += float(line.rsplit(" ", 1)[1])
        return {k: (v[0], v[1]) for k, v in out.items()}

    def stop(self) -> int:
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


# ---- measurement ----------------------------------------------------------------------------------------


def outcome(hit: CacheHit | None) -> str:
    return "miss" if hit is None else "exact" if hit.exact else "semantic"


def measure(
    server: Server, transport: str, fn: Callable[[int], Any], n: int, warmup: int, items: int
) -> dict[str, Any]:
    """Call fn(i) for i in 0..n-1 (items distinct inputs, cycled) after ``warmup`` calls: latency (ms),
    outcomes (for lookups), and the server's mean handler time per operation during the loop."""
    for i in range(warmup):
        fn(i % items)
    before = server.handler_stats()
    cpu0, client_cpu0 = server.cpu(), time.process_time()
    lat: list[float] = []
    outcomes: dict[str, int] = {}
    for i in range(n):
        s = time.perf_counter()
        result = fn(i % items)
        lat.append((time.perf_counter() - s) * 1000)
        if isinstance(result, CacheHit) or result is None:
            key = outcome(result)
            outcomes[key] = outcomes.get(key, 0) + 1
    server_cpu, client_cpu = server.cpu() - cpu0, time.process_time() - client_cpu0
    after = server.handler_stats()
    handler = {}
    for (tr, op), (s1, c1) in after.items():
        s0, c0 = before.get((tr, op), (0.0, 0.0))
        if tr == transport and c1 > c0 and op in ("get", "search", "embed"):
            handler[op] = {"calls_per_lookup": (c1 - c0) / n, "mean_ms": (s1 - s0) / (c1 - c0) * 1000}
    return {
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "p99_ms": pct(lat, 99),
        "mean_ms": statistics.fmean(lat),
        "n": n,
        "distinct_inputs": min(items, n),
        "outcomes": outcomes,
        "server_handler": handler,
        "server_cpu_ms_per_call": server_cpu / n * 1000,
        "client_cpu_ms_per_call": client_cpu / n * 1000,
    }


def measure_size(server: Server, work: Workload, args: argparse.Namespace, size: int) -> dict[str, Any]:
    """Every case and piece over both transports at the collection's current size."""
    out: dict[str, Any] = {"cases": {}, "pieces": {}}
    for transport in TRANSPORTS:
        with server.client(transport) as client:
            measure_transport(server, client, transport, work, args, size, out)
    return out


def measure_transport(
    server: Server,
    client: Client,
    transport: str,
    work: Workload,
    args: argparse.Namespace,
    size: int,
    out: dict[str, Any],
) -> None:
    n, warm = args.lookups, args.warmup
    hits_t, hits_v = work.hit_texts, work.hit_vectors
    miss_t, miss_v = work.miss_texts, work.miss_vectors
    exact_t = work.texts[: args.put]
    flt = {"scope": "", "ctx": ""}
    cache = SemanticCache(client, COLLECTION)
    col = client.collection(COLLECTION)
    absent = entry_id("a prompt nobody cached", None)
    fns: dict[str, tuple[Callable[[int], Any], int]] = {
        "exact_hit": (lambda i: cache.lookup(exact_t[i]), len(exact_t)),
        "semantic_hit": (lambda i: cache.lookup(hits_t[i], vector=hits_v[i]), len(hits_t)),
        "miss": (lambda i: cache.lookup(miss_t[i], vector=miss_v[i]), len(miss_t)),
        "semantic_hit_embed": (lambda i: cache.lookup(hits_t[i]), len(hits_t)),
        "miss_embed": (lambda i: cache.lookup(miss_t[i]), len(miss_t)),
    }
    for case, (fn, items) in fns.items():
        r = measure(server, transport, fn, n, warm, items)
        expected = CASES[case][0]
        r["expected"] = expected
        r["as_expected"] = r["outcomes"].get(expected, 0) / n
        out["cases"].setdefault(case, {})[transport] = r
        log(
            f"  {size:>7,} {transport:4} {case:19} p50 {r['p50_ms']:6.2f} p95 {r['p95_ms']:6.2f} ms; "
            f"outcomes {r['outcomes']}"
        )
    pieces: dict[str, tuple[Callable[[int], Any], int]] = {
        "get": (lambda i: col.get([absent], include=INCLUDE), 1),
        "search": (lambda i: col.search(miss_v[i], k=3, filter=flt, include=INCLUDE), len(miss_t)),
        "search_nofilter": (lambda i: col.search(miss_v[i], k=3, include=INCLUDE), len(miss_t)),
        "embed": (lambda i: client.embed(miss_t[i]), len(miss_t)),
    }
    for piece, (fn, items) in pieces.items():
        r = measure(server, transport, fn, n, warm, items)
        out["pieces"].setdefault(piece, {})[transport] = r
        log(f"  {size:>7,} {transport:4} {piece:19} p50 {r['p50_ms']:6.2f} p95 {r['p95_ms']:6.2f} ms")


def wait_settled(server: Server, timeout: float) -> tuple[dict[str, Any], float]:
    """Poll the collection until no index build runs and the delta is under the merge threshold."""
    started = time.perf_counter()
    with server.client("rest") as client:
        col = client.collection(COLLECTION)
        while True:
            info = col.info()
            state = info.index_state
            # IndexSettings defaults: merge_min_records, merge_ratio
            threshold = max(2000, 0.05 * state["ann_vectors"])
            exact = info.count < AUTO_THRESHOLD and state["ann_vectors"] == 0  # auto: still exact search
            ann_due = info.count >= AUTO_THRESHOLD and state["ann_vectors"] == 0
            small_delta = state["delta_vectors"] < threshold
            if state["building"] is None and not ann_due and (exact or small_delta):
                return state, time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"index not settled after {timeout} s: {state}")
            time.sleep(0.5)


def grow(server: Server, work: Workload, start: int, stop: int) -> float:
    """Bulk-upsert entries start..stop over gRPC; seconds taken."""
    started = time.perf_counter()
    with server.client("grpc") as client:
        col = client.collection(COLLECTION)
        for s in range(start, stop, UPSERT_BATCH):
            ids, vectors, texts, metas = work.bulk(s, min(s + UPSERT_BATCH, stop))
            col.upsert(ids, vectors, texts, metas)
    return time.perf_counter() - started


# ---- the run ---------------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    out = {}
    for dist in (
        "vecdb",
        "vecdb-client",
        "faiss-cpu",
        "numpy",
        "grpcio",
        "fastapi",
        "uvicorn",
        "httpx",
        "torch",
    ):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def run(args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {
        "benchmark": "cache",
        "config": {
            "sizes": args.sizes,
            "lookups_per_case": args.lookups,
            "warmup": args.warmup,
            "threshold": DEFAULT_THRESHOLD,
            "real_sentences": args.real,
            "cached_with_put": args.put,
            "noise_sigma": NOISE_SIGMA,
            "upsert_batch": UPSERT_BATCH,
            "embed_batch": EMBED_BATCH,
            "model": MODEL,
            "data": str(args.wikiqa / "WikiQA-train.tsv"),
            "quick": args.quick,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": os.getloadavg(),
        },
        "versions": versions(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": {},
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vecdb-cache-bench-") as tmp:
        server = Server(Path(tmp) / "data", Path(tmp) / "server.log")
        try:
            res["server_ready_s"] = server.ready_s
            log(f"server ready in {server.ready_s:.2f} s (REST {server.rest_port}, gRPC {server.grpc_port})")
            with server.client("grpc") as client:
                res["adversarial"] = run_adversarial(client, "adversarial", {"guard": guard, "none": None})
                res["adversarial"]["token_counting"] = token_counter()[1]
                for mode, summary in res["adversarial"]["summary"].items():
                    log(
                        f"adversarial set, verifier {mode}: {summary['false_hits']} false hits of "
                        f"{summary['must_miss_pairs']}, "
                        f"paraphrase hit rate {summary['paraphrase_hit_rate']:.2f}"
                    )
                work = Workload(client, args)
                # The cache creates the collection (embedding={}, cosine, no capacity) with its first put.
                cache = SemanticCache(client, COLLECTION)
                t0 = time.perf_counter()
                for i in range(args.put):
                    cache.put(work.texts[i], work.responses[i], vector=work.vectors[i])
                put_ms = (time.perf_counter() - t0) / args.put * 1000
                info = client.collection(COLLECTION).info()
            res["data"] = {
                "distinct_sentences": work.distinct_sentences,
                "distinct_questions": work.distinct_questions,
                "embed_seconds": work.embed_s,
                "reworded_hits_kept": list(work.reworded_kept),
                "hit_similarity_p50": statistics.median(work.hit_similarity),
                "hit_similarity_min": min(work.hit_similarity),
                "miss_questions": len(work.miss_texts),
                "miss_best_similarity_p50": statistics.median(work.miss_best_similarity),
                "miss_best_similarity_max": max(work.miss_best_similarity),
                "mean_response_chars": statistics.fmean(len(r) for r in work.responses),
                "mean_prompt_chars": statistics.fmean(len(t) for t in work.texts),
            }
            res["collection"] = {"embedding": info.embedding, "metric": info.metric, "index": info.index}
            res["put_ms_mean"] = put_ms
            log(f"{args.put} entries cached with SemanticCache.put ({put_ms:.1f} ms each)")
            have = args.put
            for size in args.sizes:
                seconds = grow(server, work, have, size)
                log(f"grew to {size:,} entries in {seconds:.1f} s ({(size - have) / seconds:,.0f} rec/s)")
                state, wait_s = wait_settled(server, args.index_timeout)
                log(f"index settled {wait_s:.1f} s after the last upsert: {state}")
                with server.client("rest") as client:
                    count = client.collection(COLLECTION).count()
                assert count == size, (count, size)
                entry: dict[str, Any] = {
                    "entries": size,
                    "grow_s": seconds,
                    "index_wait_s": wait_s,
                    "index_state": state,
                }
                entry["loadavg_before"] = os.getloadavg()
                entry.update(measure_size(server, work, args, size))
                entry["loadavg_after"] = os.getloadavg()
                res["sizes"][str(size)] = entry
                have = size
        finally:
            res["server_exit_code"] = server.stop()
    res["machine"]["loadavg_end"] = os.getloadavg()
    res["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    res["wall_s"] = time.perf_counter() - started
    res["targets"] = targets(res)
    res["targets"].append(
        {
            "case": "adversarial false hits (default guard)",
            "value": res["adversarial"]["summary"]["guard"]["false_hits"],
            "target": 0,
            "pass": res["adversarial"]["summary"]["guard"]["false_hits"] == 0,
        }
    )
    res["all_targets_met"] = all(t["pass"] for t in res["targets"])
    return res


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for size, entry in res["sizes"].items():
        for case, (_, embedded, _) in CASES.items():
            limit = TARGET_EMBED_MS if embedded else TARGET_NO_EMBED_MS
            for transport in TRANSPORTS:
                value = entry["cases"][case][transport]["p50_ms"]
                rows.append(
                    {
                        "entries": int(size),
                        "case": case,
                        "transport": transport,
                        "p50_ms": value,
                        "target_ms": limit,
                        "pass": value <= limit,
                    }
                )
    return rows


# ---- report ----------------------------------------------------------------------------------------------


def markdown(res: dict[str, Any]) -> str:
    c, m, v, d = res["config"], res["machine"], res["versions"], res["data"]
    sizes = list(res["sizes"])
    la0 = ", ".join(f"{x:.2f}" for x in m["loadavg_start"])
    la1 = ", ".join(f"{x:.2f}" for x in m["loadavg_end"])
    lines = [
        f"## vecdb semantic cache benchmark{' (quick)' if c['quick'] else ''}",
        "",
        f"`SemanticCache.lookup` (threshold {c['threshold']}) from one sequential client against "
        f"`python -m vecdb serve` (default settings) on the same machine; {c['lookups_per_case']} lookups "
        f"per case after {c['warmup']} warm-up calls. {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{m['platform']}, Python {m['python']}, "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + f". {res['started']}. "
        f"Load average (1, 5, 15 min) at start: {la0}; at end: {la1} (shared machine: wall times are noisy).",
        "",
        f"Entries: {c['real_sentences']:,} WikiQA sentences embedded by the server ({MODEL}); the first "
        f"{c['cached_with_put']} cached with `SemanticCache.put(prompt, response, vector=v)`, the rest of "
        f"each size bulk-upserted as noisy copies of the real vectors (sigma {c['noise_sigma']} per "
        "component, renormalized), same record layout; responses ~"
        f"{d['mean_response_chars']:.0f} chars. Hits: reworded cached prompts (final ' .' removed or added; "
        f"similarity to the cached prompt median {d['hit_similarity_p50']:.3f}, min "
        f"{d['hit_similarity_min']:.3f}). Misses: WikiQA questions (best similarity to a real cached prompt "
        f"median {d['miss_best_similarity_p50']:.3f}, max {d['miss_best_similarity_max']:.3f}).",
        "",
        *adversarial_markdown(res["adversarial"]),
        f"Token counting for the model window: {res['adversarial']['token_counting']}.",
        "",
        "### Lookup latency, p50 / p95 ms",
        "",
    ]
    head = "| Case | Target p50 |"
    rule = "|---|---|"
    for size in sizes:
        for tr in TRANSPORTS:
            head += f" {int(size):,} {'gRPC' if tr == 'grpc' else 'REST'} |"
            rule += "---|"
    lines += [head, rule]
    for case, (_, embedded, desc) in CASES.items():
        limit = TARGET_EMBED_MS if embedded else TARGET_NO_EMBED_MS
        row = f"| {desc} | <= {limit:g} ms |"
        for size in sizes:
            for tr in TRANSPORTS:
                r = res["sizes"][size]["cases"][case][tr]
                mark = "" if r["p50_ms"] <= limit else " **FAIL**"
                odd = "" if r["as_expected"] == 1.0 else f" ({r['as_expected']:.2%} {r['expected']})"
                row += f" {r['p50_ms']:.2f} / {r['p95_ms']:.2f}{mark}{odd} |"
        lines.append(row)
    passed = sum(t["pass"] for t in res["targets"])
    lines += [
        "",
        f"Targets (p50 <= {TARGET_NO_EMBED_MS:g} ms without embedding, <= {TARGET_EMBED_MS:g} ms with; "
        f"0 adversarial false hits): {passed}/{len(res['targets'])} met. Every lookup's outcome matched "
        "its case unless a percentage is shown.",
        "",
        "### The pieces, p50 / p95 ms",
        "",
        head.replace("| Case | Target p50 |", "| Call | |"),
        rule,
    ]
    for piece, desc in PIECES.items():
        row = f"| {desc} | |"
        for size in sizes:
            for tr in TRANSPORTS:
                r = res["sizes"][size]["pieces"][piece][tr]
                row += f" {r['p50_ms']:.2f} / {r['p95_ms']:.2f} |"
        lines.append(row)
    lines += [
        "",
        "### Server handler time per lookup (mean ms per call, from its histogram)",
        "",
        head.replace("| Case | Target p50 |", "| Case | |"),
        rule,
    ]
    for case, (_, _, desc) in CASES.items():
        row = f"| {desc} | |"
        for size in sizes:
            for tr in TRANSPORTS:
                h = res["sizes"][size]["cases"][case][tr]["server_handler"]
                row += " " + ", ".join(f"{op} {x['mean_ms']:.2f}" for op, x in sorted(h.items())) + " |"
        lines.append(row)
    lines += [
        "",
        "### Collection",
        "",
        "| Entries | Grow | Index settled after | Index state | Load average (1 min) before / after |",
        "|---|---|---|---|---|",
    ]
    for size in sizes:
        e = res["sizes"][size]
        st = e["index_state"]
        lines.append(
            f"| {int(size):,} | {e['grow_s']:.1f} s | {e['index_wait_s']:.1f} s | {st['kind']}: ann "
            f"{st['ann_vectors']:,}, delta {st['delta_vectors']:,} | {e['loadavg_before'][0]:.2f} / "
            f"{e['loadavg_after'][0]:.2f} |"
        )
    lines += [
        "",
        f"Server ready in {res['server_ready_s']:.2f} s; embedding the real sentences took "
        f"{d['embed_seconds']:.1f} s; `SemanticCache.put` {res['put_ms_mean']:.1f} ms each; whole run "
        f"{res['wall_s']:.0f} s; server exit code {res['server_exit_code']}.",
    ]
    if res.get("analysis"):
        lines += ["", "### Where the time goes", "", *res["analysis"]]
    return "\n".join(lines) + "\n"


def analysis(res: dict[str, Any]) -> list[str]:
    """Where a lookup's time goes, from the measured pieces (p50s) and the server's handler means."""
    nan = {"mean_ms": float("nan")}
    lines = [
        "| Entries, transport | Miss (vector) | Point read: wall / handler | Search: wall / handler | "
        "Scope filter (search - unfiltered) | Miss (text) | Model, in the search handler |",
        "|---|---|---|---|---|---|---|",
    ]
    floors: dict[str, list[float]] = {tr: [] for tr in TRANSPORTS}
    models: list[float] = []
    for size, e in res["sizes"].items():
        cs, ps = e["cases"], e["pieces"]
        for tr in TRANSPORTS:
            get, search = ps["get"][tr], ps["search"][tr]
            get_h = get["server_handler"].get("get", nan)["mean_ms"]
            search_h = search["server_handler"].get("search", nan)["mean_ms"]
            nofilter = ps["search_nofilter"][tr]["p50_ms"]
            with_model = cs["miss_embed"][tr]["server_handler"].get("search", nan)["mean_ms"]
            model = with_model - cs["miss"][tr]["server_handler"].get("search", nan)["mean_ms"]
            floors[tr].append(get["p50_ms"] - get_h)
            models.append(model)
            lines.append(
                f"| {int(size):,} {'gRPC' if tr == 'grpc' else 'REST'} | {cs['miss'][tr]['p50_ms']:.2f} | "
                f"{get['p50_ms']:.2f} / {get_h:.2f} | {search['p50_ms']:.2f} / {search_h:.2f} | "
                f"{search['p50_ms'] - nofilter:+.2f} | {cs['miss_embed'][tr]['p50_ms']:.2f} | {model:.1f} |"
            )
    sizes = list(res["sizes"])
    small, large = res["sizes"][sizes[0]], res["sizes"][sizes[-1]]
    h_small = small["pieces"]["search"]["grpc"]["server_handler"].get("search", nan)["mean_ms"]
    h_large = large["pieces"]["search"]["grpc"]["server_handler"].get("search", nan)["mean_ms"]
    lines += [
        "",
        "(ms, p50 wall time from the client; handler = the server's mean time inside the operation.)",
        "",
        "- Without a vector, a miss and a semantic hit are two sequential round trips (with a vector, "
        "one search): the exact path's point read (the entry id), then the k=3 search. The server's "
        "work in both is small (point read < 0.1 ms, search "
        "~1 ms); most of the wall time is transport and client: a point read costs "
        f"~{statistics.median(floors['grpc']):.2f} ms more than its handler over gRPC (grpcio's Python "
        f"floor) and ~{statistics.median(floors['rest']):.2f} ms over REST (httpx + uvicorn/FastAPI + "
        "JSON), and the search more again over REST (larger JSON bodies: 384 floats in, text and "
        "metadata out). An exact hit is one round trip.",
        f"- With the text instead of a vector the server embeds it inside the search: the model adds "
        f"~{statistics.median(models):.0f} ms (median over sizes and transports) for one short question "
        "on this machine, which by itself is about the whole 15 ms budget; sentences (the hit cases) "
        "are longer and take more.",
    ]
    if int(sizes[0]) < AUTO_THRESHOLD <= int(sizes[-1]):
        lines.append(
            f"- {int(sizes[0]):,} entries are below the auto index's HNSW threshold ({AUTO_THRESHOLD:,}), "
            f"so the search there is an exact scan (gRPC search handler {h_small:.2f} ms), slower than "
            f"HNSW at {int(sizes[-1]):,} entries ({h_large:.2f} ms)."
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1k and 5k entries, 100 lookups")
    parser.add_argument("--wikiqa", type=Path, default=WIKIQA, help="folder with WikiQA-train.tsv")
    parser.add_argument("--lookups", type=int, default=None, help="lookups per case (default 400; 100 quick)")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--index-timeout", type=float, default=600.0, help="seconds to wait for the index")
    args = parser.parse_args()
    args.sizes = [1_000, 5_000] if args.quick else [10_000, 100_000]
    args.lookups = args.lookups or (100 if args.quick else 400)
    args.warmup = 20 if args.quick else 50
    args.real = 500 if args.quick else 2_000
    args.put = min(args.real, args.lookups + 100)
    out = args.out or (Path(tempfile.gettempdir()) if args.quick else REPO / "benchmarks" / "results")
    stem = "cache-quick" if args.quick else "cache"
    res = run(args)
    res["analysis"] = analysis(res)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    (out / f"{stem}.md").write_text(md)
    print(md)
    log(f"results: {out / stem}.json, {out / stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
