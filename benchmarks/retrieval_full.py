"""Hybrid retrieval on WikiQA's whole corpus (issue 22, a check of benchmarks/retrieval.py's finding).

benchmarks/retrieval.py uses the test split's 2,309 sentences as the corpus, where every question's
candidates come from one article. This run uses every distinct sentence of both files (20,778: the
end-to-end retrieval set shared/data's README describes), queried with the test split's 243 answered
questions, and reports MRR@10 for vector, text and hybrid at the defaults, and for the text index's
documented analyzer options and the weighted fusion, to show whether any default choice would reach the
vector branch. It does NOT choose defaults: the options are reported, not tuned.

    .venv/bin/python benchmarks/retrieval_full.py      # ~3-6 minutes (embedding 20,778 sentences)

Results: ``<out>/retrieval-full.{json,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log

from vecdb.engine import Database

ROOT = Path(__file__).resolve().parent.parent
OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("standard (default)", {}),
    ("standard + English stop words", {"stopwords": "english"}),
    ("standard + stemming + stop words", {"stemming": True, "stopwords": "english"}),
]


def mrr10(got: list[list[str]], relevant: list[set[str]]) -> float:
    rr = []
    for ids, rel in zip(got, relevant, strict=True):
        rank = next((i for i, x in enumerate(ids[:10], 1) if x in rel), None)
        rr.append(0.0 if rank is None else 1.0 / rank)
    return round(float(np.mean(rr)), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wikiqa", type=Path, default=Path("/work/shared/data/wikiqa"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    files = ("WikiQA-train.tsv", "WikiQA-test.tsv")
    if not all((args.wikiqa / f).exists() for f in files):
        sys.exit(f"WikiQA not found in {args.wikiqa}: pass --wikiqa DIR")
    rows = [
        (f, *r) for f in files for r in csv.reader((args.wikiqa / f).open(encoding="utf-8"), delimiter="\t")
    ]
    sentences = list(dict.fromkeys(r[2] for r in rows))
    sid = {s: f"s{i}" for i, s in enumerate(sentences)}
    rel: dict[str, set[str]] = defaultdict(set)
    for f, q, s, label in rows:
        if label == "1" and f == "WikiQA-test.tsv":
            rel[q].add(sid[s])
    questions = sorted(rel)
    relevant = [rel[q] for q in questions]
    log(f"{len(sentences)} sentences, {len(questions)} questions")
    load = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, Database(tmp) as db:
        col = db.create_collection("w", embedding={}, text_index={})
        t0 = time.perf_counter()
        ids = list(sid.values())
        for i in range(0, len(ids), 512):
            col.upsert(ids[i : i + 512], texts=sentences[i : i + 512])
        ingest_s = time.perf_counter() - t0

        def run(mode: str, **kw: Any) -> float:
            got: list[list[str]] = []
            for i in range(0, len(questions), 64):
                rows_ = col.search(texts=questions[i : i + 64], k=10, include=[], mode=mode, **kw)
                got += [[h.id for h in row] for row in rows_]
            return mrr10(got, relevant)

        results["vector"] = run("vector")
        for name, spec in OPTIONS:
            col.set_text_index(spec)
            results[name] = {
                "text": run("text"),
                "hybrid (rrf, default)": run("hybrid"),
                "hybrid (weighted 0.5)": run("hybrid", fusion={"method": "weighted"}),
            }
            log(f"{name}: {results[name]}")
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_at_start": load,
        "sentences": len(sentences),
        "questions": len(questions),
        "ingest_s": round(ingest_s, 1),
        "mrr@10": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrieval-full.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Hybrid retrieval on WikiQA's whole corpus (benchmarks/retrieval_full.py)",
        "",
        f"{out['machine']}; {out['when']}; load average at start {load}. {len(sentences):,} distinct "
        f"sentences (train + test), {len(questions)} test questions with an answer; the packaged model; "
        "MRR@10. Options are reported, not tuned: the defaults are the first row and RRF.",
        "",
        f"Vector: **{results['vector']}**",
        "",
        "| text index | text | hybrid (RRF k=60, default) | hybrid (weighted, alpha 0.5) |",
        "|---|---|---|---|",
    ]
    for name, _ in OPTIONS:
        r = results[name]
        lines.append(
            f"| {name} | {r['text']} | {r['hybrid (rrf, default)']} | {r['hybrid (weighted 0.5)']} |"
        )
    (args.out / "retrieval-full.md").write_text("\n".join(lines) + "\n")
    log("\n".join(lines))


if __name__ == "__main__":
    main()
