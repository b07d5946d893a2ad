"""Index specs and search params: defaults, validation, clear errors."""

from __future__ import annotations

import pytest

from vecdb.errors import InvalidArgumentError, InvalidConfigError
from vecdb.index import AutoSpec, FlatSpec, HnswSpec, IvfSpec, parse_index_spec, parse_search_params


def test_defaults() -> None:
    assert parse_index_spec(None) == AutoSpec()
    assert parse_index_spec({"type": "flat"}) == FlatSpec()
    # ef_search / nprobe None: calibrated to target_recall (vecdb.index.calibrate)
    assert parse_index_spec({"type": "hnsw"}) == HnswSpec(m=32, ef_construction=100, ef_search=None)
    assert parse_index_spec({"type": "hnsw"}).target_recall == 0.95
    assert parse_index_spec({"type": "ivf"}) == IvfSpec(nlist="auto", nprobe=None, storage="flat")
    assert parse_index_spec({"type": "auto"}).target_recall == 0.95
    assert parse_index_spec({"type": "ivf", "nlist": 64, "storage": "pq8"}, dim=32).nlist == 64


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"type": "annoy"}, "unknown index type"),
        ({}, "unknown index type"),
        ("hnsw", "must be an object"),
        ({"type": "hnsw", "m": 2}, "m"),
        ({"type": "hnsw", "ef_search": 0}, "ef_search"),
        ({"type": "hnsw", "efSearch": 10}, "efSearch"),
        ({"type": "ivf", "nlist": 0}, "nlist"),
        ({"type": "ivf", "nlist": "many"}, "nlist"),
        ({"type": "ivf", "storage": "pq"}, "storage"),
        ({"type": "ivf", "storage": "lz4"}, "storage"),
        ({"type": "flat", "nprobe": 3}, "nprobe"),
        ({"type": "auto", "threshold": 0}, "threshold"),
        ({"type": "hnsw", "target_recall": 0}, "target_recall"),
        ({"type": "ivf", "target_recall": 1.01}, "target_recall"),
        ({"type": "auto", "target_recall": -0.5}, "target_recall"),
        ({"type": "hnsw", "target_recall": "high"}, "target_recall"),
        ({"type": "flat", "target_recall": 0.9}, "target_recall"),
    ],
)
def test_bad_specs(raw: object, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        parse_index_spec(raw)


def test_pq_must_divide_dim() -> None:
    with pytest.raises(InvalidConfigError, match="divide"):
        parse_index_spec({"type": "ivf", "storage": "pq7"}, dim=32)


def test_search_params() -> None:
    assert parse_search_params(None).ef_search is None
    assert parse_search_params({"ef_search": 128, "nprobe": 4}).nprobe == 4
    assert parse_search_params({"target_recall": 0.99}).target_recall == 0.99
    for bad in (
        {"ef": 3},
        {"ef_search": 0},
        {"nprobe": "x"},
        [1],
        {"target_recall": 0},
        {"target_recall": 1.5},
    ):
        with pytest.raises(InvalidArgumentError):
            parse_search_params(bad)


def test_only_compressed_ivf_is_lossy() -> None:
    import numpy as np

    from vecdb.index.ann import build_ann, new_ann

    x = np.random.default_rng(0).normal(size=(400, 8)).astype(np.float32)
    labels = np.arange(400, dtype=np.int64)

    def fetch(want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return want, x[want]

    import threading

    kinds = {"flat": False, "sq8": True, "pq4": True}
    for storage, lossy in kinds.items():
        ann, _ = build_ann(
            new_ann(IvfSpec(nlist=4, storage=storage), 8, "l2", 400), labels, fetch, threading.Event()
        )
        assert ann.lossy is lossy, storage
    hnsw, _ = build_ann(new_ann(HnswSpec(), 8, "l2", 400), labels, fetch, threading.Event())
    assert hnsw.lossy is False
