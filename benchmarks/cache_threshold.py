"""Choose the semantic cache's default similarity threshold on real paraphrase data (MRPC).

    python benchmarks/cache_threshold.py [--mrpc ../shared/data/mrpc/msr_paraphrase_train.tsv]

Every MRPC pair is a (cached prompt, new prompt) lookup: a paraphrase pair should hit, a non-paraphrase
pair should miss (a cached answer to a different question is worse than a miss). Both sentences are
embedded with the packaged all-MiniLM-L6-v2 (what the server uses) and compared by cosine similarity.
For each threshold: precision of hits (share of pairs at or above it that are paraphrases), recall (share
of paraphrase pairs that hit) and hit rate (share of all pairs that hit). The default is the lowest
threshold whose precision reaches the target (0.9). MRPC's non-paraphrases are hard negatives (same
topic, heavy word overlap), so the estimate is conservative for everyday prompts.

Writes benchmarks/results/cache_threshold.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from pathlib import Path

import numpy as np

from vecdb.embed import EmbedderRegistry

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MRPC = ROOT.parent / "shared" / "data" / "mrpc" / "msr_paraphrase_train.tsv"
TARGET_PRECISION = 0.9
MODEL = "all-MiniLM-L6-v2"


def load_pairs(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    a, b, labels = [], [], []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)  # header
        for row in reader:
            if len(row) == 5:
                labels.append(int(row[0]))
                a.append(row[3])
                b.append(row[4])
    return a, b, np.asarray(labels, dtype=bool)


def curve(sims: np.ndarray, labels: np.ndarray) -> list[dict[str, float]]:
    rows = []
    for t in np.round(np.arange(0.50, 1.00, 0.01), 2):
        hit = sims >= t
        n_hit = int(hit.sum())
        rows.append(
            {
                "threshold": float(t),
                "precision": float(labels[hit].mean()) if n_hit else 1.0,
                "recall": float((hit & labels).sum() / labels.sum()),
                "hit_rate": n_hit / len(sims),
                "hits": n_hit,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mrpc", type=Path, default=DEFAULT_MRPC)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    a, b, labels = load_pairs(args.mrpc)
    embedder = EmbedderRegistry(enabled=True, allow_download=False, batch_size=16, device="cpu").get(MODEL)
    started = time.perf_counter()
    va, vb = embedder.encode(a), embedder.encode(b)
    seconds = time.perf_counter() - started
    sims = np.einsum("ij,ij->i", va, vb)  # unit vectors: the dot product is the cosine
    rows = curve(sims, labels)
    chosen = next(r for r in rows if r["precision"] >= TARGET_PRECISION)
    result = {
        "benchmark": "cache_threshold",
        "dataset": str(args.mrpc.name),
        "pairs": len(labels),
        "paraphrases": int(labels.sum()),
        "model": MODEL,
        "target_precision": TARGET_PRECISION,
        "chosen": chosen,
        "similarity_quartiles": {
            "paraphrase": [float(q) for q in np.percentile(sims[labels], [25, 50, 75])],
            "non_paraphrase": [float(q) for q in np.percentile(sims[~labels], [25, 50, 75])],
        },
        "curve": rows,
        "embed_seconds": round(seconds, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cache_threshold.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Semantic cache threshold (MRPC)",
        "",
        f"{len(labels)} MRPC training pairs ({int(labels.sum())} paraphrases), {MODEL} cosine similarity.",
        "A pair at or above the threshold is a cache hit; a hit on a non-paraphrase is a wrong answer.",
        f"Chosen default: **{chosen['threshold']:.2f}**, the lowest threshold with hit precision >= "
        f"{TARGET_PRECISION} (precision {chosen['precision']:.3f}, recall {chosen['recall']:.3f}, "
        f"hit rate {chosen['hit_rate']:.3f}).",
        "",
        "| threshold | precision | recall | hit rate |",
        "|---|---|---|---|",
    ]
    for r in rows:
        if round(r["threshold"] * 100) % 5 == 0 or r is chosen:
            mark = " (default)" if r is chosen else ""
            cells = f"{r['precision']:.3f} | {r['recall']:.3f} | {r['hit_rate']:.3f}"
            lines.append(f"| {r['threshold']:.2f}{mark} | {cells} |")
    (args.out / "cache_threshold.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
