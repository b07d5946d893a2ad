"""The reliability suite: tests that try hard to break vecdb's promises (docs/guarantees.md).

``make test`` runs a short version of each; ``make reliability`` sets ``VECDB_RELIABILITY=long`` for the
long one (more rounds, minutes of load) and the tests then write their findings to
``benchmarks/results/reliability.{json,md}`` through ``report.record``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))  # serverproc

from report import LONG


@pytest.fixture
def long_run() -> bool:
    """True under ``make reliability`` (VECDB_RELIABILITY=long)."""
    return LONG
