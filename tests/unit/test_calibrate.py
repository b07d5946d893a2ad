"""Calibration building blocks: exact scan, recall curves, the query reservoir, the audit's queue, its
batched exact view, scheduling and budget."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb.index.audit import BATCH, BURST, QUEUE, SHARE, AuditPart, AuditView, RecallAudit, Start
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


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_audit_view_matches_numpy_over_parts_and_dead_rows(metric: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(45_000, 8)).astype(np.float32)  # several scan chunks
    q = rng.normal(size=(19, 8)).astype(np.float32)
    labels = np.arange(100, 100 + len(x), dtype=np.int64)
    dead = rng.random(30_000) < 0.3
    parts = [
        AuditPart(labels[:30_000], x[:30_000], dead=dead),  # an array read in slices, some rows dead
        AuditPart(labels[30_000:40_000], fetch=lambda lb: x[lb - 100]),  # read chunk by chunk
        *(AuditPart(labels[a : a + 50], x[a : a + 50]) for a in range(40_000, 45_000, 50)),  # small blocks
    ]
    view = AuditView(parts, metric)
    assert view.size == len(x) - int(dead.sum())
    scores, got = view.top(q, 7)
    live = np.flatnonzero(np.concatenate([~dead, np.ones(len(x) - len(dead), bool)]))
    d = ((q[:, None, :] - x[None, live]) ** 2).sum(-1) if metric == "l2" else -(q @ x[live].T)
    order = np.argsort(d, axis=1)[:, :7]
    assert (got == live[order] + 100).all()
    assert np.allclose(scores, np.take_along_axis(d if metric == "l2" else -d, order, axis=1), atol=1e-3)
    assert view.top(q[:1], 100_000)[1].shape == (1, view.size)  # k beyond the live count: all of them


def _offer(a: RecallAudit, n: int) -> Start:
    return a.offer(np.zeros((n, 2)), 10, np.zeros((n, 10), np.int64), np.zeros((n, 10)))


def test_audit_batches_samples_before_scheduling() -> None:
    a = RecallAudit(1.0)
    assert _offer(a, 1) == Start.LATER and a.scheduled  # the caller arms a timer
    assert _offer(a, BATCH - 3) == Start.NO  # the timer is armed already
    assert _offer(a, 2) == Start.NOW  # a full batch: the task starts now
    assert not a.fire()  # the timer going off later starts nothing
    assert len(a.take()) == BATCH and a.take() == [] and not a.scheduled
    assert _offer(a, 3) == Start.LATER and a.fire()  # a small batch waited long enough
    assert _offer(a, BATCH) == Start.NO  # the task is scheduled: it takes these too
    assert len(a.take()) == BATCH + 3 and a.take() == []


def test_audit_never_works_more_than_its_share_of_wall_time() -> None:
    now = [0.0]
    a = RecallAudit(1.0, clock=lambda: now[0])
    assert _offer(a, BATCH) == Start.NOW
    a.take()
    a.charge(BURST + 1.0)  # a pass much longer than the saved-up budget: in debt for 1 s of work
    a.take()
    now[0] += 0.5 / SHARE  # half the debt earned back
    assert _offer(a, 5) == Start.NO and a.dropped == 5 and a.over_budget == 5
    now[0] += 0.6 / SHARE
    assert _offer(a, 5) == Start.LATER and a.dropped == 5
    assert a.busy == BURST + 1.0
    now[0] += 1_000.0  # idle for long: at most BURST saved up
    a.charge(BURST + 0.01)
    assert _offer(a, 1) == Start.NO and a.over_budget == 6
    assert a.summary()["dropped"] == 6
