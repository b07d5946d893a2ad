"""Recall@10 versus single-query QPS, one point per system and setting.

``python -m _peers.plot RESULTS.json OUT.png``

Runs with the peers' Python (it has matplotlib; the product's environment does not).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

Y_MIN = 0.8  # recall below this is drawn on the floor (down-triangles) with its value written


def main(argv: list[str]) -> int:
    report: dict[str, Any] = json.loads(Path(argv[1]).read_text())
    datasets = [(name, ds) for name, ds in report["results"].items() if ds.get("systems")]
    if not datasets:
        return 1
    fig, axes = plt.subplots(1, len(datasets), figsize=(7.5 * len(datasets), 5.5), squeeze=False)
    cmap = plt.get_cmap("tab10")
    names = sorted({s for _, ds in datasets for s in ds["systems"]})
    colors = {s: cmap(i % 10) for i, s in enumerate(names)}
    for ax, (name, ds) in zip(axes[0], datasets, strict=True):
        for system, res in ds["systems"].items():
            for row in res.get("settings", []):
                tuned = row["setting"] == "tuned"
                recall = row["recall_at_10"]
                low = recall < Y_MIN  # drawn on the floor as a down-triangle, its recall written next to it
                ax.scatter(
                    row["single_qps"],
                    max(recall, Y_MIN + 0.004),
                    s=70,
                    marker="v" if low else ("o" if tuned else "s"),
                    facecolors=colors[system] if tuned else "none",
                    edgecolors=colors[system],
                    linewidths=1.5,
                    label=f"{system} ({row['setting']})",
                )
                if low:
                    ax.annotate(
                        f"{system} {row['setting']}: {recall:.2f}",
                        (row["single_qps"], Y_MIN + 0.004),
                        fontsize=7,
                        xytext=(5, 4),
                        textcoords="offset points",
                    )
        ax.axhline(report["parameters"]["target_recall"], color="grey", lw=0.8, ls="--")
        ax.set_ylim(Y_MIN, 1.005)
        ax.set_xscale("log")
        ax.set_xlabel("single-query QPS (one query per call, log scale)")
        ax.set_ylabel("recall@10")
        ax.set_title(f"{name}: {ds['records']:,} x {ds['dim']}")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(
        f"vecdb and peers, {report['timestamp'][:10]}: hollow squares = documented defaults, dots = tuned "
        f"(recall@10 >= {report['parameters']['target_recall']}, dashed line)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    fig.savefig(argv[2], dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
