"""Hybrid retrieval (issue 22): vector, text (BM25) and hybrid search quality, and the text index's cost.

Run from the repository root::

    .venv/bin/python benchmarks/retrieval.py            # full run (~5-10 minutes on 2 busy cores)
    .venv/bin/python benchmarks/retrieval.py --quick    # smoke run: 20k records for the cost part

Everything happens in a temporary data directory, removed at the end. Results go to
``<out>/retrieval.json`` and ``<out>/retrieval.md`` (``retrieval-quick.*`` with ``--quick``).

Quality, at DEFAULT settings (no tuning to the data set): the packaged model (all-MiniLM-L6-v2) and the
default text index / fusion (RRF, k = 60, 50 candidates per branch).

- WikiQA (``/work/shared/data/wikiqa``, or ``--wikiqa DIR``): the distinct sentences of the test split are
  the corpus; every test question with at least one correct sentence is a query. MRR@10 and recall@10
  (the share of a question's correct sentences in its top 10), for vector, text and hybrid.
- CMRC 2018 subset (``benchmarks/data/cmrc2018``: 300 Chinese passages, 597 questions, each with the one
  passage it was asked about): the same metrics with a ``jieba`` text index (and the ``standard`` one,
  for reference) against vector search with the packaged (English-only) model.

Cost: ``--records`` (default 100,000) records whose texts are the WikiQA sentences repeated (ids
varied; vectors: the sentence's embedding plus small noise, so no two are equal), default (``auto``)
index, built and waited for. Ingest records/s with and without a text index (batches of 1,000, vectors
given, alternating rounds); single-query p50 / p99 of vector and hybrid search (vectors given for
both: the embedding is not part of either); the text index's build time, RSS growth, and size on disk.
The machine is shared and noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, pct

from vecdb.engine import Database

ROOT = Path(__file__).resolve().parent.parent
CMRC = ROOT / "benchmarks" / "data" / "cmrc2018"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def metrics(results: list[list[str]], relevant: list[set[str]]) -> dict[str, float]:
    rr, rec = [], []
    for got, rel in zip(results, relevant, strict=True):
        rank = next((i for i, x in enumerate(got[:10], 1) if x in rel), None)
        rr.append(0.0 if rank is None else 1.0 / rank)
        rec.append(len(rel & set(got[:10])) / len(rel))
    return {"mrr@10": round(float(np.mean(rr)), 4), "recall@10": round(float(np.mean(rec)), 4)}


def run_modes(col: Any, questions: list[str], relevant: list[set[str]]) -> dict[str, dict[str, float]]:
    out = {}
    for mode in ("vector", "text", "hybrid"):
        got: list[list[str]] = []
        for i in range(0, len(questions), 64):
            rows = col.search(texts=questions[i : i + 64], k=10, include=[], mode=mode)
            got += [[h.id for h in row] for row in rows]
        out[mode] = metrics(got, relevant)
        log(f"  {mode}: {out[mode]}")
    return out


def wikiqa_texts(data: Path) -> tuple[list[str], list[str]]:
    """The test split's distinct sentences (in file order) and its questions with an answer (sorted)."""
    rows = list(csv.reader((data / "WikiQA-test.tsv").open(encoding="utf-8"), delimiter="\t"))
    return list(dict.fromkeys(r[1] for r in rows)), sorted({r[0] for r in rows if r[2] == "1"})


def wikiqa(db: Database, data: Path) -> tuple[dict[str, Any], list[str]]:
    rows = list(csv.reader((data / "WikiQA-test.tsv").open(encoding="utf-8"), delimiter="\t"))
    sentences = list(dict.fromkeys(r[1] for r in rows))
    sid = {s: f"s{i}" for i, s in enumerate(sentences)}
    rel: dict[str, set[str]] = defaultdict(set)
    for q, s, label in rows:
        if label == "1":
            rel[q].add(sid[s])
    questions = sorted(rel)
    log(f"WikiQA test: {len(sentences)} sentences, {len(questions)} questions with an answer")
    col = db.create_collection("wikiqa", embedding={}, text_index={})
    ids = list(sid.values())
    for i in range(0, len(ids), 512):
        col.upsert(ids[i : i + 512], texts=sentences[i : i + 512])
    res = run_modes(col, questions, [rel[q] for q in questions])
    return {"sentences": len(sentences), "questions": len(questions), "modes": res}, sentences


def cmrc(db: Database) -> dict[str, Any]:
    passages = [json.loads(x) for x in (CMRC / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    qs = [json.loads(x) for x in (CMRC / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    out: dict[str, Any] = {"passages": len(passages), "questions": len(qs)}
    col = db.create_collection("cmrc", embedding={}, text_index={"tokenizer": "jieba"})
    col.upsert([p["id"] for p in passages], texts=[p["text"] for p in passages])
    questions = [q["question"] for q in qs]
    relevant = [{q["passage_id"]} for q in qs]
    log("CMRC 2018 subset, jieba:")
    out["jieba"] = run_modes(col, questions, relevant)
    col.set_text_index({"tokenizer": "standard"})
    log("CMRC 2018 subset, standard tokenizer (reference):")
    out["standard"] = run_modes(col, questions, relevant)
    return out


def cost(db: Database, sentences: list[str], questions: list[str], n: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    log(f"cost: embedding {len(sentences)} sentences")
    base, _ = db.embed(sentences)
    texts = [sentences[i % len(sentences)] for i in range(n)]
    vecs = base[np.arange(n) % len(sentences)] + rng.normal(0, 0.02, (n, base.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"r{i}" for i in range(n)]
    plain = db.create_collection("plain", dim=base.shape[1])
    text = db.create_collection("text", dim=base.shape[1], text_index={})
    secs = {"plain": 0.0, "text": 0.0}
    for i in range(0, n, 1000):  # alternate, so both see the same noise
        for name, col in (("plain", plain), ("text", text)):
            t = time.perf_counter()
            col.upsert(ids[i : i + 1000], vecs[i : i + 1000], texts=texts[i : i + 1000])
            secs[name] += time.perf_counter() - t
    ingest = {k: round(n / v) for k, v in secs.items()}
    log(f"cost: ingest records/s {ingest}")
    t = time.perf_counter()
    plain.wait_for_index()
    text.wait_for_index()
    log(f"cost: indexes built in {time.perf_counter() - t:.1f} s: {text.info()['index_state']['building']}")
    queries = vecs[rng.choice(n, 300, replace=False)]
    qtexts = [texts[int(i)] for i in rng.choice(n, 300, replace=False)]
    qquest = [questions[int(i)] for i in rng.choice(len(questions), 300)]
    # Query texts: corpus sentences (~20 terms) and WikiQA questions (what the quality part asks).
    modes = ("vector", "text", "hybrid", "text_questions", "hybrid_questions")
    lat: dict[str, list[float]] = {m: [] for m in modes}
    for rnd in range(2):  # round 0 warms up
        for q, qt, qq in zip(queries, qtexts, qquest, strict=True):
            for mode in modes:
                t = time.perf_counter()
                if mode == "vector":
                    text.search(q, k=10)
                elif mode == "text":
                    text.search(texts=[qt], k=10, mode="text")
                elif mode == "hybrid":
                    text.search(q[None, :], texts=[qt], k=10, mode="hybrid")
                elif mode == "text_questions":
                    text.search(texts=[qq], k=10, mode="text")
                else:
                    text.search(q[None, :], texts=[qq], k=10, mode="hybrid")
                if rnd:
                    lat[mode].append((time.perf_counter() - t) * 1000)
    p = {m: {"p50_ms": round(pct(v, 50), 3), "p99_ms": round(pct(v, 99), 3)} for m, v in lat.items()}
    log(f"cost: latency {p}")
    before = rss_mib()
    plain.set_text_index(None)
    t = time.perf_counter()
    plain.set_text_index({})
    build = time.perf_counter() - t
    grown = rss_mib() - before
    text.checkpoint()
    return {
        "records": n,
        "ingest_records_per_s": ingest,
        "ingest_ratio_text_vs_plain": round(ingest["text"] / ingest["plain"], 3),
        "latency": p,
        "hybrid_vs_vector_p50": round(p["hybrid"]["p50_ms"] / p["vector"]["p50_ms"], 2),
        "hybrid_questions_vs_vector_p50": round(p["hybrid_questions"]["p50_ms"] / p["vector"]["p50_ms"], 2),
        "text_index_build_s": round(build, 2),
        "text_index_rss_growth_mib": round(grown, 1),
        "collection_bytes_on_disk": {
            "plain": du(db.path / "collections" / "plain"),
            "text": du(db.path / "collections" / "text"),
        },
        "index_kind": text.info()["index"],
        "process_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def markdown(r: dict[str, Any]) -> str:
    w = r["wikiqa"]
    lines = [
        "# Hybrid retrieval (benchmarks/retrieval.py)",
        "",
        f"{r['machine']}; {r['date']}. Default settings: packaged all-MiniLM-L6-v2, text index `{{}}` "
        "(standard tokenizer), RRF k = 60, 50 candidates per branch. Shared, noisy machine: compare "
        "ratios within one run.",
        "",
        f"## WikiQA test ({w['sentences']} sentences, {w['questions']} questions with an answer)",
        "",
        "| mode | MRR@10 | recall@10 |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {v['mrr@10']} | {v['recall@10']} |" for m, v in w["modes"].items()]
    best = max(w["modes"]["vector"]["mrr@10"], w["modes"]["text"]["mrr@10"])
    lines += [
        "",
        f"Target hybrid >= max(vector, text) + 0.02 = {best + 0.02:.4f}: "
        f"{'met' if w['modes']['hybrid']['mrr@10'] >= best + 0.02 else 'NOT met'} "
        f"(hybrid {w['modes']['hybrid']['mrr@10']}).",
        "",
    ]
    c = r["cmrc2018"]
    lines += [
        f"## CMRC 2018 subset ({c['passages']} Chinese passages, {c['questions']} questions)",
        "",
        "| tokenizer | mode | MRR@10 | recall@10 |",
        "|---|---|---|---|",
    ]
    for tok in ("jieba", "standard"):
        lines += [f"| {tok} | {m} | {v['mrr@10']} | {v['recall@10']} |" for m, v in c[tok].items()]
    k = r["cost"]
    lines += [
        "",
        f"## Cost at {k['records']:,} records (index {k['index_kind']['type']})",
        "",
        f"- ingest records/s: without text index {k['ingest_records_per_s']['plain']:,}, with "
        f"{k['ingest_records_per_s']['text']:,} (ratio {k['ingest_ratio_text_vs_plain']}, target >= 0.5)",
        "- single query p50 / p99 (ms): "
        + ", ".join(f"{m} {v['p50_ms']} / {v['p99_ms']}" for m, v in k["latency"].items())
        + f"; hybrid / vector p50 = {k['hybrid_vs_vector_p50']} with corpus sentences as query texts, "
        f"{k.get('hybrid_questions_vs_vector_p50')} with WikiQA questions (target <= 2.5)",
        f"- text index build (set_text_index over {k['records']:,} records): {k['text_index_build_s']} s, "
        f"RSS growth {k['text_index_rss_growth_mib']} MiB (tantivy in RAM; the standard tokenizer writes "
        "no file)",
        f"- collection on disk: without {k['collection_bytes_on_disk']['plain']:,} B, with "
        f"{k['collection_bytes_on_disk']['text']:,} B; process max RSS {k['process_max_rss_mib']} MiB",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--wikiqa", type=Path, default=Path("/work/shared/data/wikiqa"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--only-cost", action="store_true", help="rerun the cost part, keep the rest of the JSON")
    args = ap.parse_args()
    n = args.records or (20_000 if args.quick else 100_000)
    if not (args.wikiqa / "WikiQA-test.tsv").exists():
        sys.exit(f"WikiQA not found in {args.wikiqa}: pass --wikiqa DIR (the folder of WikiQA-test.tsv)")
    stem = "retrieval-quick" if args.quick else "retrieval"
    tmp = Path(tempfile.mkdtemp(prefix="vecdb-retrieval-"))
    try:
        with Database(tmp) as db:
            if args.only_cost:
                old = json.loads((args.out / f"{stem}.json").read_text())
                w, c = old["wikiqa"], old["cmrc2018"]
                sentences, questions = wikiqa_texts(args.wikiqa)
            else:
                w, sentences = wikiqa(db, args.wikiqa)
                c = cmrc(db)
                questions = wikiqa_texts(args.wikiqa)[1]
            k = cost(db, sentences, questions, n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    from importlib.metadata import version

    import tantivy  # noqa: F401  (its version is recorded)

    r = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"tantivy {version('tantivy')}, jieba {version('jieba')}",
        "wikiqa": w,
        "cmrc2018": c,
        "cost": k,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(r, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(r))
    print(markdown(r))


if __name__ == "__main__":
    main()
