"""Choose the semantic cache's default similarity threshold on real paraphrase data (MRPC).

    python benchmarks/cache_threshold.py [--mrpc ../shared/data/mrpc/msr_paraphrase_train.tsv]

Every MRPC pair is a (cached prompt, new prompt) lookup: a paraphrase pair should hit, a non-paraphrase
pair should miss (a cached answer to a different question is worse than a miss). Both sentences are
embedded with the packaged all-MiniLM-L6-v2 (what the server uses) and compared by cosine similarity.
For each threshold: precision of hits (share of pairs at or above it that are paraphrases), recall (share
of paraphrase pairs that hit) and hit rate (share of all pairs that hit), with the vector match alone and
with the default second stage (``vecdb_client.cache_verify.guard``: a pair it rejects is a miss).

The training split is cut in two by a seeded shuffle: a tuning part (75%) and a held-out part (25%). The
default is the lowest threshold from which guarded precision stays >= 0.95 on the tuning part at every
higher threshold too (the margin: not a lucky point of a noisy curve); the held-out part and the whole
split then report what that point gives, with a Wilson 95% lower bound on precision. MRPC's
non-paraphrases are hard negatives (same news story, heavy word overlap), so the estimate is
conservative for everyday prompts.

Writes benchmarks/results/cache_threshold.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from vecdb.embed import EmbedderRegistry

REPO_CLIENT = Path(__file__).resolve().parents[1] / "clients" / "python"
if str(REPO_CLIENT) not in sys.path:
    sys.path.insert(0, str(REPO_CLIENT))

from vecdb_client.cache_verify import guard_reason  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MRPC = ROOT.parent / "shared" / "data" / "mrpc" / "msr_paraphrase_train.tsv"
TARGET_PRECISION = 0.95
SEED = 21
TUNE_SHARE = 0.75
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


def wilson_low(p: float, n: int, z: float = 1.96) -> float:
    if n == 0:
        return 0.0
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def point(sims: np.ndarray, labels: np.ndarray, accepted: np.ndarray, t: float) -> dict[str, float]:
    hit = (sims >= t) & accepted
    n_hit = int(hit.sum())
    precision = float(labels[hit].mean()) if n_hit else 1.0
    return {
        "threshold": float(t),
        "precision": precision,
        "precision_low95": wilson_low(precision, n_hit),
        "recall": float((hit & labels).sum() / labels.sum()),
        "hit_rate": n_hit / len(sims),
        "hits": n_hit,
    }


THRESHOLDS = [float(t) for t in np.round(np.arange(0.50, 1.00, 0.01), 2)]


def curve(sims: np.ndarray, labels: np.ndarray, accepted: np.ndarray) -> list[dict[str, float]]:
    return [point(sims, labels, accepted, t) for t in THRESHOLDS]


def choose(rows: list[dict[str, float]]) -> dict[str, float]:
    """The lowest threshold from which precision stays >= the target at every higher threshold."""
    for i, r in enumerate(rows):
        if all(x["precision"] >= TARGET_PRECISION for x in rows[i:]):
            return r
    return rows[-1]


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
    reasons = [guard_reason(x, y) for x, y in zip(a, b, strict=True)]
    guarded = np.array([r is None for r in reasons])
    everything = np.ones(len(labels), dtype=bool)
    order = np.random.default_rng(SEED).permutation(len(labels))
    tune = np.zeros(len(labels), dtype=bool)
    tune[order[: int(TUNE_SHARE * len(labels))]] = True
    held = ~tune
    tune_rows = curve(sims[tune], labels[tune], guarded[tune])
    chosen = choose(tune_rows)
    t = chosen["threshold"]
    at_chosen = {
        "tune_guard": chosen,
        "heldout_guard": point(sims[held], labels[held], guarded[held], t),
        "train_guard": point(sims, labels, guarded, t),
        "tune_vector_only": point(sims[tune], labels[tune], everything[tune], t),
        "heldout_vector_only": point(sims[held], labels[held], everything[held], t),
        "train_vector_only": point(sims, labels, everything, t),
    }
    near = sims >= t
    rejected = Counter(
        f"{r} ({'paraphrase' if lab else 'non-paraphrase'})"
        for r, lab, n in zip(reasons, labels, near, strict=True)
        if n and r is not None
    )
    result = {
        "benchmark": "cache_threshold",
        "dataset": str(args.mrpc.name),
        "pairs": len(labels),
        "paraphrases": int(labels.sum()),
        "split": {"seed": SEED, "tune": int(tune.sum()), "heldout": int(held.sum())},
        "model": MODEL,
        "target_precision": TARGET_PRECISION,
        "chosen_threshold": t,
        "at_chosen": at_chosen,
        "guard_rejections_at_chosen": dict(rejected.most_common()),
        "similarity_quartiles": {
            "paraphrase": [float(q) for q in np.percentile(sims[labels], [25, 50, 75])],
            "non_paraphrase": [float(q) for q in np.percentile(sims[~labels], [25, 50, 75])],
        },
        "curve_tune_guard": tune_rows,
        "curve_heldout_guard": curve(sims[held], labels[held], guarded[held]),
        "curve_train_vector_only": curve(sims, labels, everything),
        "embed_seconds": round(seconds, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cache_threshold.json").write_text(json.dumps(result, indent=2) + "\n")
    ac = at_chosen

    def cells(r: dict[str, float]) -> str:
        return f"{r['precision']:.3f} (>= {r['precision_low95']:.3f}) | {r['recall']:.3f} | {r['hits']}"

    lines = [
        "# Semantic cache threshold (MRPC)",
        "",
        f"{len(labels)} MRPC training pairs ({int(labels.sum())} paraphrases), {MODEL} cosine similarity; "
        f"split by a seeded shuffle (seed {SEED}) into a tuning part ({int(tune.sum())} pairs) and a "
        f"held-out part ({int(held.sum())}).",
        "A pair at or above the threshold that the verifier accepts is a cache hit; a hit on a "
        "non-paraphrase is a wrong answer. Guard: `vecdb_client.cache_verify.guard` (the default verifier).",
        f"Chosen default: **{t:.2f} with the guard**, the lowest threshold from which guarded precision "
        f"stays >= {TARGET_PRECISION} on the tuning part at every higher threshold.",
        "",
        "## At the chosen point",
        "",
        "| pairs | verifier | precision (Wilson 95% low) | recall | hits |",
        "|---|---|---|---|---|",
        f"| tuning | guard | {cells(ac['tune_guard'])} |",
        f"| held-out | guard | {cells(ac['heldout_guard'])} |",
        f"| whole train split | guard | {cells(ac['train_guard'])} |",
        f"| tuning | none | {cells(ac['tune_vector_only'])} |",
        f"| held-out | none | {cells(ac['heldout_vector_only'])} |",
        f"| whole train split | none | {cells(ac['train_vector_only'])} |",
        "",
        "Guard rejections among pairs at or above it (whole split): "
        + ", ".join(f"{k}: {v}" for k, v in rejected.most_common())
        + ".",
        "",
        "## Precision / recall curve",
        "",
        "| threshold | tuning, guard: precision / recall | held-out, guard | whole split, no guard |",
        "|---|---|---|---|",
    ]
    held_rows = result["curve_heldout_guard"]
    plain_rows = result["curve_train_vector_only"]
    assert isinstance(held_rows, list) and isinstance(plain_rows, list)
    for r, h, p in zip(tune_rows, held_rows, plain_rows, strict=True):
        th = r["threshold"]
        if th >= 0.80 or round(th * 100) % 10 == 0:
            mark = " (default)" if th == t else ""
            lines.append(
                f"| {th:.2f}{mark} | {r['precision']:.3f} / {r['recall']:.3f} | "
                f"{h['precision']:.3f} / {h['recall']:.3f} | {p['precision']:.3f} / {p['recall']:.3f} |"
            )
    (args.out / "cache_threshold.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
