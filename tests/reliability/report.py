"""Findings of the long reliability run: ``record(section, data)`` merges ``data`` under ``section`` into
benchmarks/results/reliability.json and rewrites reliability.md. A no-op in the short run (``make test``)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

__all__ = ["LONG", "record", "scale"]

LONG = os.environ.get("VECDB_RELIABILITY") == "long"
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def scale(short: float, long: float) -> float:
    """``short`` in ``make test``, ``long`` under ``make reliability``."""
    return long if LONG else short


def record(section: str, data: dict[str, Any]) -> None:
    """Merge ``data`` (JSON-able, flat is best) into the report under ``section``; long run only."""
    if not LONG:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "reliability.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    report["machine"] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    report.setdefault("sections", {})[section] = {**data, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    lines = ["# Reliability run (make reliability)", "", f"Machine: {report['machine']}", ""]
    for name, values in sorted(report["sections"].items()):
        lines += [f"## {name}", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(values.items())]
        lines.append("")
    (RESULTS / "reliability.md").write_text("\n".join(lines))
