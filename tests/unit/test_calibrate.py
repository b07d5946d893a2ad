"""Calibration building blocks: exact scan, recall curves, the query reservoir, the audit's queue."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb.index.audit import QUEUE, RecallAudit
from vecdb.index.calibrate import BandCurve, Calibration, ExactScan, QueryReservoir, recall_at_k


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_exact_scan_matches_numpy(metric: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40_000, 8)).astype(np.float32)  # more than one scan chunk
    q = rng.normal(size=(5, 8)).astype(np.float32)
    labels = np.arange(100, 100 + len(x), dtype=np.int64)
    scores, got = ExactScan(labels, lambda lb: x[lb - 100], metric).top(q, 7)
    d = ((q[:, None, :] - x[None]) ** 2).sum(-1) if metric == "l2" else -(q @ x.T)
    want = np.argsort(d, axis=1)[:, :7] + 100
    assert (got == want).all()
    assert np.allclose(scores, np.take_along_axis(d if metric == "l2" else -d, want - 100, axis=1), atol=1e-3)


def test_recall_counts_ties_as_found() -> None:
    truth = np.array([[1, 2]])
    assert recall_at_k(np.array([[1, 3]]), truth, np.array([[0.9, 0.8]]), None, False) == 0.5
    # 3 scores as well as the 2nd exact neighbour (a duplicate vector): found
    assert (
        recall_at_k(np.array([[1, 3]]), truth, np.array([[0.9, 0.8]]), np.array([[0.9, 0.8]]), False) == 1.0
    )


def test_curves_choose_the_cheapest_value_and_round_trip() -> None:
    band = BandCurve(10, 200, (16, 32, 64), (0.8, 0.93, 0.97))
    assert band.choose(0.9) == 32 and band.choose(0.95) == 64 and band.choose(0.999) == 64
    assert band.recall_at(48) == 0.93
    cal = Calibration(
        "ef_search", (band, BandCurve(100, 100, (128, 256), (0.9, 0.96))), 1.5, 200, 0, 0.4, 1.0, 5000
    )
    assert cal.choose(5, 0.95) == 64 and cal.choose(50, 0.95) == 256 and cal.choose(500, 0.5) == 500
    assert Calibration.from_json(cal.to_json()) == cal
    assert cal.summary(0.99)["bands"][0] == {
        "k": 10,
        "value": 64,
        "estimated_recall": 0.97,
        "reachable": False,
        "queries": 200,
    }
    with pytest.raises(ValueError):
        Calibration.from_json({**cal.to_json(), "param": "efSearch"})


def test_reservoir_is_bounded_and_follows_traffic() -> None:
    r = QueryReservoir(4, size=10)
    r.offer(np.zeros((10, 4), np.float32))
    for _ in range(2_000):
        r.offer(np.ones((1, 4), np.float32))
    s = r.sample()
    assert s.shape == (10, 4) and s.mean() > 0.9  # old queries faded out


def test_audit_queue_is_bounded_and_summarized() -> None:
    off = RecallAudit(0.0)
    assert not off.offer(np.zeros((5, 2)), 10, np.zeros((5, 10), np.int64), np.zeros((5, 10)))
    a = RecallAudit(1.0)
    assert a.offer(
        np.zeros((QUEUE + 10, 2)), 10, np.zeros((QUEUE + 10, 10), np.int64), np.zeros((QUEUE + 10, 10))
    )
    assert not a.offer(np.zeros((1, 2)), 10, np.zeros((1, 10), np.int64), np.zeros((1, 10)))  # scheduled
    assert a.dropped == 11 and len(a.take(1_000)) == QUEUE and a.take() == [] and not a.scheduled
    for r in (1.0, 0.9, 0.8):
        a.record(10, r)
    a.record(50, 0.5)
    s = a.summary()
    assert s["samples"] == 4 and s["estimated_recall"] == 0.8 and s["bands"]["10"]["samples"] == 3
    assert s["bands"]["100"] == {"samples": 1, "estimated_recall": 0.5}
    a.reset()
    assert a.summary()["samples"] == 0
