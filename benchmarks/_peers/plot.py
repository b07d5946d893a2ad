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
                ax.scatter(
                    row["single_qps"],
                    row["recall_at_10"],
                    s=60,
                    marker="o" if tuned else "s",
                    facecolors=colors[system] if tuned else "none",
                    edgecolors=colors[system],
                    label=f"{system} ({row['setting']})",
                )
                ax.annotate(
                    f"{system}{' *' if tuned else ''}",
                    (row["single_qps"], row["recall_at_10"]),
                    fontsize=7,
                    xytext=(4, 3),
                    textcoords="offset points",
                )
        ax.axhline(report["parameters"]["target_recall"], color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("single-query QPS (one query per call, log scale)")
        ax.set_ylabel("recall@10")
        ax.set_title(f"{name}: {ds['records']:,} x {ds['dim']}")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(
        f"vecdb and peers, {report['timestamp'][:10]}: squares = documented defaults, dots = tuned (*)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    fig.savefig(argv[2], dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
