"""One system, one process: ``python -m _peers.worker JOB.json`` (``benchmarks/`` on PYTHONPATH).

The job (JSON) names the system, the prepared data folder, a work folder and the sizes; the result (JSON)
goes to ``job["result"]``. A failure is written as ``{"error": ...}`` with the traceback, never a number.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# system name -> (module under _peers, class)
SYSTEMS: dict[str, tuple[str, str]] = {
    "vecdb-embedded": ("vecdb_systems", "VecdbEmbedded"),
    "vecdb-grpc": ("vecdb_systems", "VecdbGrpc"),
    "vecdb-rest": ("vecdb_systems", "VecdbRest"),
    "faiss-flat": ("faiss_systems", "FaissFlat"),
    "faiss-hnsw": ("faiss_systems", "FaissHnsw"),
    "hnswlib": ("hnswlib_system", "Hnswlib"),
    "chroma": ("chroma_system", "Chroma"),
    "milvus-lite": ("milvus_system", "MilvusLite"),
    "lancedb-flat": ("lancedb_systems", "LanceFlat"),
    "lancedb-ivfpq": ("lancedb_systems", "LanceIvfPq"),
}


def main(argv: list[str]) -> int:
    job: dict[str, Any] = json.loads(Path(argv[1]).read_text())
    started = time.perf_counter()
    try:
        module, cls = SYSTEMS[job["system"]]
        system = getattr(importlib.import_module(f"_peers.{module}"), cls)(job)
        from _peers.harness import run

        result = run(job, system)
    except BaseException as exc:  # recorded, never hidden: the orchestrator reports it
        result = {
            "system": job["system"],
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    result["worker_wall_s"] = time.perf_counter() - started
    Path(job["result"]).write_text(json.dumps(result, indent=1, default=float) + "\n")
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
