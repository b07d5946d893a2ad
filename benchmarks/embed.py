"""Built-in embedding benchmark: the torch and ONNX backends, each in a real ``vecdb serve`` process, in
ONE run (the machine is shared: compare the backends' ratios within a run, not across runs).

Run from the repository root::

    .venv/bin/python benchmarks/embed.py            # full run (~8 min on 2 busy cores)
    .venv/bin/python benchmarks/embed.py --quick    # smoke run: fewer sentences and queries, results in /tmp

Data: WikiQA (``/work/shared/data/wikiqa`` or ``--wikiqa DIR``). The corpus is the candidate sentences of
the test split's first questions (in file order, as many as fit in ``--sentences``: 2,400, all); the queries
are those of them with an answer sentence, so each backend's MRR@10 is measured on the very collection its
ingest built. REST ingest writes ``--rest-sentences`` (384) train sentences into a second collection.

For each backend (``torch``, ``onnx``, ``onnx-int8``), a server ``python -m vecdb serve --embedding.backend
B`` (other settings default) on a fresh data directory:

1. ready, first ``embedding={}`` collection (loads the model; the packaged model's ONNX files were made
   at install), RSS, whether torch's libraries are mapped into the server;
2. text ingest, one sequential client, batches of 64 texts without vectors: gRPC (``missing_vectors``)
   then REST; sentences/s;
3. text queries (one text per call, k=10, ids only), gRPC then REST: latency, and MRR@10 of the answer
   sentences (gRPC results);
4. the same gRPC text queries under a concurrent CPU-bound load: one ``python -c "while True: pass"``
   process per core, started 1 s before and killed after;
5. SIGTERM.

Then, in this process, the ONNX model at 1 thread and at all cores, quiet and under the same load: one
text (p50) and batches of 64 (sentences/s): the measurement behind ``embedding.threads``'s default.
Load averages are recorded at start and end; the server's CPU time is reported next to wall time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere: import this checkout's vecdb
    sys.path.insert(0, str(REPO))

from _common import cpu_seconds, free_port, pct  # noqa: E402

from vecdb.server._generated import vecdb_pb2 as pb  # noqa: E402
from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc  # noqa: E402

BATCH = 64
K = 10
MODEL = "all-MiniLM-L6-v2"
WIKIQA = Path("/work/shared/data/wikiqa")
GRPC_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]

BACKENDS = ("torch", "onnx", "onnx-int8")
#: The default backend (embedding.backend): the targets are checked on it.
DEFAULT_BACKEND = "onnx"
#: Text ingest measured before issue 23 (benchmarks/results/embed.md of 2026-11-29, torch, batch 64).
BASELINE_INGEST = 141.0


# ---- data ---------------------------------------------------------------------------------------------


@dataclass
class Corpus:
    sentences: list[str]  # test split's distinct sentences first, then train sentences
    questions: list[str]  # test questions with at least one answer sentence
    answers: list[set[int]]  # per question: indices into sentences
    rest_sentences: list[str]  # further train sentences (REST ingest)


def load_wikiqa(folder: Path, n_sentences: int, n_rest: int) -> Corpus:
    """The test split's questions in file order, as many as have all their candidate sentences within
    ``n_sentences``; the corpus is those candidates. REST gets ``n_rest`` train sentences."""

    def rows(name: str) -> list[list[str]]:
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        return [
            p for p in (line.split("\t") for line in lines) if len(p) == 3 and p[0].strip() and p[1].strip()
        ]

    by_question: dict[str, list[tuple[str, bool]]] = {}
    for question, sentence, label in rows("WikiQA-test.tsv"):
        by_question.setdefault(question.strip(), []).append((sentence.strip(), label.strip() == "1"))
    index: dict[str, int] = {}
    questions: list[str] = []
    answers: list[set[int]] = []
    for question, candidates in by_question.items():
        new = {s for s, _ in candidates if s not in index}
        if len(index) + len(new) > n_sentences:
            break
        for s, _ in candidates:
            index.setdefault(s, len(index))
        good = {index[s] for s, ok in candidates if ok}
        if good:
            questions.append(question)
            answers.append(good)
    train = [s for s in dict.fromkeys(r[1].strip() for r in rows("WikiQA-train.tsv")) if s not in index]
    return Corpus(sentences=list(index), questions=questions, answers=answers, rest_sentences=train[:n_rest])


# ---- the server process --------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Server:
    def __init__(self, data_dir: Path, log_path: Path, *extra: str) -> None:
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("VECDB_")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        cmd = [sys.executable, "-m", "vecdb", "serve", "--data-dir", str(data_dir)]
        cmd += ["--rest-port", str(self.rest_port), "--grpc-port", str(self.grpc_port), *extra]
        started = time.perf_counter()
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{log_path.read_text()}")
            try:
                with httpx.Client(timeout=1) as c:
                    if c.get(f"http://127.0.0.1:{self.rest_port}/readyz").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in 60 s:\n{log_path.read_text()}")
            time.sleep(0.05)
        self.ready_s = time.perf_counter() - started
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}", options=GRPC_OPTIONS)
        self.stub = pb_grpc.VecDBStub(self.channel)  # type: ignore[no-untyped-call]
        self.conn = http.client.HTTPConnection("127.0.0.1", self.rest_port, timeout=600)

    def post(self, path: str, body: Any, expect: int = 200) -> Any:
        """A JSON POST over the keep-alive connection (reopened once if the server closed it while idle:
        uvicorn drops keep-alive connections after 5 s)."""
        payload = orjson.dumps(body)
        for attempt in (0, 1):
            try:
                self.conn.request("POST", path, payload, {"content-type": "application/json"})
                resp = self.conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                if attempt:
                    raise
        data = resp.read()
        if resp.status != expect:
            raise RuntimeError(f"POST {path}: {resp.status} {data[:500]!r}")
        return orjson.loads(data)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def handler_stats(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(transport, operation) -> (sum seconds, count) from the server's own latency histogram."""
        text = httpx.get(f"http://127.0.0.1:{self.rest_port}/metrics", timeout=10).text
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

    def stop(self) -> tuple[int, float]:
        self.conn.close()
        self.channel.close()
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        return rc, time.perf_counter() - started


# ---- measurement helpers -----------------------------------------------------------------------------


def lat_stats(lat_ms: list[float], total_s: float) -> dict[str, float]:
    return {
        "p50_ms": pct(lat_ms, 50),
        "p90_ms": pct(lat_ms, 90),
        "p99_ms": pct(lat_ms, 99),
        "max_ms": max(lat_ms),
        "mean_ms": statistics.fmean(lat_ms),
        "qps": len(lat_ms) / total_s,
        "n": len(lat_ms),
    }


class Phase:
    """Wall time, server CPU and the server's own handler time for one (transport, operation)."""

    def __init__(self, server: Server, key: tuple[str, str]) -> None:
        self.server, self.key = server, key

    def __enter__(self) -> Phase:
        self.stats0 = self.server.handler_stats()
        self.cpu0 = self.server.cpu()
        self.client_cpu0 = time.process_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.client_cpu_s = time.process_time() - self.client_cpu0
        self.server_cpu_s = self.server.cpu() - self.cpu0
        s0, c0 = self.stats0.get(self.key, (0.0, 0.0))
        s1, c1 = self.server.handler_stats().get(self.key, (0.0, 0.0))
        self.handler_ms = (s1 - s0) / (c1 - c0) * 1000 if c1 > c0 else float("nan")


def timed_calls(fn: Callable[[int], Any], n: int) -> tuple[list[float], float]:
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        s = time.perf_counter()
        fn(i)
        lat.append((time.perf_counter() - s) * 1000)
    return lat, time.perf_counter() - t0


def batches(items: list[str], size: int = BATCH) -> Iterator[tuple[int, list[str]]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def ingest(server: Server, transport: str, name: str, sentences: list[str]) -> dict[str, Any]:
    def send(start: int, chunk: list[str]) -> None:
        ids = [f"s{start + j}" for j in range(len(chunk))]
        if transport == "rest":
            reply = server.post(f"/v1/collections/{name}/upsert", {"ids": ids, "texts": chunk})
            count = reply["count"]
        else:
            request = pb.UpsertRequest(
                collection=name,
                records=[pb.RecordData(id=i, text=t) for i, t in zip(ids, chunk, strict=True)],
                missing_vectors=range(len(chunk)),
            )
            count = server.stub.Upsert(request, timeout=600).count
        assert count == len(chunk), (count, len(chunk))

    lat = []
    with Phase(server, (transport, "upsert")) as phase:
        for start, chunk in batches(sentences):
            s = time.perf_counter()
            send(start, chunk)
            lat.append((time.perf_counter() - s) * 1000)
    n = len(sentences)
    return {
        "sentences": n,
        "batches": len(lat),
        "seconds": phase.seconds,
        "sentences_per_s": n / phase.seconds,
        "batch_p50_ms": pct(lat, 50),
        "batch_p99_ms": pct(lat, 99),
        "server_cpu_s": phase.server_cpu_s,
        "server_cpu_ms_per_sentence": phase.server_cpu_s / n * 1000,
        "client_cpu_s": phase.client_cpu_s,
        "server_handler_ms_per_batch": phase.handler_ms,
    }


def versions() -> dict[str, str]:
    out = {}
    for dist in (
        "vecdb",
        "onnxruntime",
        "torch",
        "sentence-transformers",
        "transformers",
        "tokenizers",
        "faiss-cpu",
        "numpy",
        "grpcio",
        "fastapi",
        "uvicorn",
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


# ---- CPU load, MRR -----------------------------------------------------------------------------------

BUSY_LOOP = "while True: pass"


class CpuLoad:
    """One ``python -c 'while True: pass'`` process per core: a CPU-bound neighbour on every core."""

    def __enter__(self) -> CpuLoad:
        n = os.cpu_count() or 1
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(n)]
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def torch_mapped(pid: int) -> bool:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtorch" in maps or "/torch/lib/" in maps


def mrr_at_10(ranked: list[list[int]], answers: list[set[int]]) -> float:
    total = 0.0
    for ids, good in zip(ranked, answers, strict=True):
        for rank, i in enumerate(ids[:K], 1):
            if i in good:
                total += 1 / rank
                break
    return total / len(answers)


# ---- one backend in a server -------------------------------------------------------------------------


def run_backend(backend: str, corpus: Corpus, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"backend": backend}
    server = Server(work / f"data-{backend}", work / f"server-{backend}.log", "--embedding.backend", backend)
    try:
        res["server_ready_s"] = server.ready_s
        res["rss_mib_ready"] = rss_mib(server.proc.pid)
        t0 = time.perf_counter()
        server.post("/v1/collections", {"name": "wiki", "embedding": {}}, expect=201)
        res["first_collection_s"] = time.perf_counter() - t0
        info = server.post("/v1/collections", {"name": "rest", "embedding": {}}, expect=201)
        res["embedding_info"] = info["embedding"]
        res["rss_mib_model_loaded"] = rss_mib(server.proc.pid)
        res["torch_mapped"] = torch_mapped(server.proc.pid)
        for q in corpus.questions[:8]:  # warm-up
            server.stub.Embed(pb.EmbedRequest(texts=[q]))
        server.stub.Embed(pb.EmbedRequest(texts=corpus.sentences[:64]))
        print(f"  {backend}: ingest ...", flush=True)
        res["grpc_ingest"] = ingest(server, "grpc", "wiki", corpus.sentences)
        res["rest_ingest"] = ingest(server, "rest", "rest", corpus.rest_sentences)
        queries = corpus.questions[: args.queries]
        ranked: list[list[int]] = []

        def grpc_text(i: int) -> None:
            request = pb.SearchRequest(
                collection="wiki", texts=[queries[i % len(queries)]], k=K, include=pb.Include()
            )
            hits = server.stub.Search(request).results[0].hits
            if i < len(queries):
                ranked.append([int(h.id[1:]) for h in hits])

        def rest_text(i: int) -> None:
            body = {"texts": [queries[i % len(queries)]], "k": K, "include": []}
            assert server.post("/v1/collections/wiki/search", body)["results"][0]

        print(f"  {backend}: queries ...", flush=True)
        with Phase(server, ("grpc", "search")) as phase:
            lat, total = timed_calls(grpc_text, len(queries))
        res["grpc_text_query"] = {**lat_stats(lat, total), "server_handler_ms": phase.handler_ms}
        res["mrr_at_10"] = mrr_at_10(ranked, corpus.answers[: len(queries)])
        lat, total = timed_calls(rest_text, len(queries))
        res["rest_text_query"] = lat_stats(lat, total)
        print(f"  {backend}: queries under CPU load ...", flush=True)
        with CpuLoad():
            lat, total = timed_calls(grpc_text, args.loaded_queries)
        res["grpc_text_query_loaded"] = lat_stats(lat, total)
        res["rss_mib_end"] = rss_mib(server.proc.pid)
    finally:
        rc, seconds = server.stop()
    res["shutdown"] = {"exit_code": rc, "seconds": seconds}
    return res


# ---- threads, in this process ------------------------------------------------------------------------


def thread_probe(corpus: Corpus, work: Path) -> dict[str, Any]:
    """The ONNX model in this process at 1 thread and at all cores, quiet and under load."""
    from vecdb.embed import resolve_model
    from vecdb.embed.backends import cores, load_embedder

    path = resolve_model("all-MiniLM-L6-v2", allow_download=False)
    out: dict[str, Any] = {"cores": cores()}
    bulk = corpus.sentences[:256]
    for threads in sorted({1, cores()}):
        emb = load_embedder(
            "all-MiniLM-L6-v2",
            path,
            backend="onnx",
            batch_size=16,
            device="cpu",
            threads=threads,
            models_dir=work / "models",
            allow_download=False,
        )
        emb.encode(corpus.questions[:8])
        for state in ("quiet", "loaded"):
            load = CpuLoad() if state == "loaded" else None
            if load is not None:
                load.__enter__()
            try:
                lat, _ = timed_calls(
                    lambda i, e=emb: e.encode([corpus.questions[i % len(corpus.questions)]]),  # type: ignore[misc]
                    60,
                )
                t0 = time.perf_counter()
                for start in range(0, len(bulk), BATCH):
                    emb.encode(bulk[start : start + BATCH])
                rate = len(bulk) / (time.perf_counter() - t0)
            finally:
                if load is not None:
                    load.__exit__()
            out[f"threads_{threads}_{state}"] = {
                "one_text_p50_ms": pct(lat, 50),
                "batch64_sentences_per_s": rate,
            }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    corpus = load_wikiqa(args.wikiqa, args.sentences, args.rest_sentences)
    res: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": list(os.getloadavg()),
            "note": "shared with other developers' test runs: wall times are noisy; compare backends "
            "within this run",
        },
        "versions": versions(),
        "data": {
            "sentences_grpc": len(corpus.sentences),
            "sentences_rest": len(corpus.rest_sentences),
            "queries": min(args.queries, len(corpus.questions)),
            "loaded_queries": args.loaded_queries,
            "mean_words": statistics.fmean(len(s.split()) for s in corpus.sentences),
        },
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="vecdb-bench-embed-") as tmp:
        work = Path(tmp)
        for backend in BACKENDS:
            print(f"backend {backend} ...", flush=True)
            res["backends"][backend] = run_backend(backend, corpus, args, work)
        print("threads ...", flush=True)
        res["threads"] = thread_probe(corpus, work)
    res["machine"]["loadavg_end"] = list(os.getloadavg())
    res["targets"] = targets(res)
    return res


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, for each ONNX backend (the default's rows first)."""
    b = res["backends"]
    torch = b["torch"]
    rows = []

    def row(name: str, value: float, op: str, target: float) -> None:
        ok = value >= target if op == ">=" else value <= target
        rows.append({"metric": name, "value": value, "op": op, "target": target, "pass": ok})

    for name in sorted(("onnx", "onnx-int8"), key=lambda n: n != DEFAULT_BACKEND):
        fast = b[name]
        for t in ("grpc", "rest"):
            rate = fast[f"{t}_ingest"]["sentences_per_s"]
            row(
                f"{name}: text ingest over {t} (sentences/s), >= 3x {BASELINE_INGEST:.0f}",
                rate,
                ">=",
                3 * BASELINE_INGEST,
            )
            ratio = rate / torch[f"{t}_ingest"]["sentences_per_s"]
            row(f"{name} / torch text ingest over {t}, same run", ratio, ">=", 3.0)
        row(f"{name}: gRPC text query p50 (ms)", fast["grpc_text_query"]["p50_ms"], "<=", 8.0)
        row(f"WikiQA MRR@10: torch - {name}", torch["mrr_at_10"] - fast["mrr_at_10"], "<=", 0.005)
        quiet, loaded = fast["grpc_text_query"]["p50_ms"], fast["grpc_text_query_loaded"]["p50_ms"]
        row(f"{name}: gRPC text query p50 under CPU load / quiet", loaded / quiet, "<=", 3.0)
    return rows


# ---- report ------------------------------------------------------------------------------------------


def lat(d: dict[str, Any]) -> str:
    return f"p50 {d['p50_ms']:.2f} / p90 {d['p90_ms']:.2f} / p99 {d['p99_ms']:.2f} ms"


def markdown(res: dict[str, Any]) -> str:
    m, v, d = res["machine"], res["versions"], res["data"]
    b = res["backends"]
    lines = [
        "## vecdb built-in embedding benchmark: torch vs ONNX backends",
        "",
        f"all-MiniLM-L6-v2 (packaged); one `python -m vecdb serve --embedding.backend B` per backend (other "
        f"settings default) and one sequential client on the same machine, all in one run. Data: WikiQA, "
        f"{d['sentences_grpc']:,} sentences over gRPC (the test split's {d['queries']} answered questions "
        f"are the queries; mean {d['mean_words']:.1f} words per sentence), {d['sentences_rest']:,} more over "
        "REST. "
        f"{m['cpus']} CPUs ({m['cpu']}), {m['platform']}, Python {m['python']}, "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + f". {res['when']}. Load average (1, 5, 15 min) at start: "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_start'])}; at end: "
        f"{', '.join(f'{x:.2f}' for x in m['loadavg_end'])}. **The machine is shared with other developers' "
        "test runs**: absolute numbers move between runs; the ratios between backends are measured in this "
        "one run.",
        "",
        "### Targets (issue 23)",
        "",
        "| Metric | Value | Target | Result |",
        "|---|---|---|---|",
    ]
    for t in res["targets"]:
        lines.append(
            f"| {t['metric']} | {t['value']:.4g} | {t['op']} {t['target']:g} | "
            f"{'PASS' if t['pass'] else 'FAIL'} |"
        )
    lines.append("")
    lines.append(f"Targets met: {sum(t['pass'] for t in res['targets'])}/{len(res['targets'])}.")
    lines += [
        "",
        "### Per backend",
        "",
        "| Measurement | " + " | ".join(BACKENDS) + " |",
        "|---|" + "---|" * len(BACKENDS),
    ]

    def add(label: str, fn: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(b[name]) for name in BACKENDS) + " |")

    add(
        "text ingest, gRPC, batches of 64 (sentences/s)",
        lambda r: f"{r['grpc_ingest']['sentences_per_s']:.1f}",
    )
    add("  server CPU per sentence (ms)", lambda r: f"{r['grpc_ingest']['server_cpu_ms_per_sentence']:.2f}")
    add(
        "text ingest, REST, batches of 64 (sentences/s)",
        lambda r: f"{r['rest_ingest']['sentences_per_s']:.1f}",
    )
    add("gRPC text query (k=10, ids)", lambda r: lat(r["grpc_text_query"]))
    add("  server handler (mean, ms)", lambda r: f"{r['grpc_text_query']['server_handler_ms']:.2f}")
    add("REST text query", lambda r: lat(r["rest_text_query"]))
    add(
        f"gRPC text query under CPU load ({m['cpus']} busy loops)",
        lambda r: lat(r["grpc_text_query_loaded"]),
    )
    add(
        "  loaded p50 / quiet p50",
        lambda r: f"{r['grpc_text_query_loaded']['p50_ms'] / r['grpc_text_query']['p50_ms']:.2f}",
    )
    add("WikiQA MRR@10 (gRPC text queries)", lambda r: f"{r['mrr_at_10']:.4f}")
    add(
        "server RSS: ready / model loaded / end (MiB)",
        lambda r: f"{r['rss_mib_ready']:.0f} / {r['rss_mib_model_loaded']:.0f} / {r['rss_mib_end']:.0f}",
    )
    add("torch mapped into the server", lambda r: "yes" if r["torch_mapped"] else "no")
    add("first embedding collection (model load, s)", lambda r: f"{r['first_collection_s']:.2f}")
    add("server ready after spawn (s)", lambda r: f"{r['server_ready_s']:.2f}")
    add(
        "SIGTERM to exit (s, exit code)",
        lambda r: f"{r['shutdown']['seconds']:.2f}, {r['shutdown']['exit_code']}",
    )
    th = res["threads"]
    lines += [
        "",
        "### Threads (`embedding.threads`), ONNX in this process",
        "",
        f"Quiet, and under one busy loop per core ({m['cpus']}).",
        "",
        "| Threads | one text p50, quiet (ms) | one text p50, loaded (ms) | batches of 64, quiet "
        "(sentences/s) | batches of 64, loaded (sentences/s) |",
        "|---|---|---|---|---|",
    ]
    for n in sorted({1, th["cores"]}):
        q, lo = th[f"threads_{n}_quiet"], th[f"threads_{n}_loaded"]
        lines.append(
            f"| {n} | {q['one_text_p50_ms']:.2f} | {lo['one_text_p50_ms']:.2f} | "
            f"{q['batch64_sentences_per_s']:.1f} | {lo['batch64_sentences_per_s']:.1f} |"
        )
    lines += ["", *res.get("analysis", [])]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 256 sentences, 60 queries")
    parser.add_argument(
        "--sentences",
        type=int,
        default=None,
        help="sentences over gRPC (default 2,400: the whole test split)",
    )
    parser.add_argument(
        "--rest-sentences", type=int, default=None, help="sentences over REST (default 2,048)"
    )
    parser.add_argument("--queries", type=int, default=None, help="query texts (default: all 243)")
    parser.add_argument(
        "--loaded-queries", type=int, default=None, help="queries under CPU load (default 100)"
    )
    parser.add_argument("--wikiqa", type=Path, default=WIKIQA, help="folder with WikiQA-{train,test}.tsv")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--analysis", type=Path, default=None, help="markdown lines appended as the analysis")
    args = parser.parse_args()
    if not (args.wikiqa / "WikiQA-test.tsv").is_file():
        print(f"WikiQA not found in {args.wikiqa}: nothing to measure (give --wikiqa)")
        return 0
    args.sentences = args.sentences or (256 if args.quick else 2400)
    args.rest_sentences = args.rest_sentences or (128 if args.quick else 384)
    args.queries = args.queries or (60 if args.quick else 10_000)
    args.loaded_queries = args.loaded_queries or (30 if args.quick else 100)
    out = args.out or (Path(tempfile.gettempdir()) if args.quick else REPO / "benchmarks" / "results")
    stem = "embed-quick" if args.quick else "embed"
    res = run(args)
    if args.analysis is not None:
        res["analysis"] = args.analysis.read_text().splitlines()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    (out / f"{stem}.md").write_text(md)
    print(md)
    print(f"results: {out / stem}.json, {out / stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
