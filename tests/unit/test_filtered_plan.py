"""Filtered search: the plan choice (vecdb.index.filtered.choose_plan, TieredIndex.filter_plan) and the exact
plan's in-place reads of main's storage (RowMap) against ``reconstruct`` and brute force; the delta's
streamed serialization (FlatIndex.write_to)."""

from __future__ import annotations

import itertools
import math
import threading

import numpy as np
import pytest
from pyroaring import BitMap64

from vecdb.index import HnswSpec, IndexPolicy, IvfSpec, SearchParams, TieredIndex
from vecdb.index.ann import MAX_EF, build_ann, new_ann
from vecdb.index.filtered import HNSW_VISIT_COST, STORE_ROW_COST, RowMap, choose_plan, row_chunks
from vecdb.index.flat import FlatIndex

DIM = 16


def _plan(
    admitted: int, n: int, *, kind: str = "hnsw", knob: int = 64, nlist: int = 0, lossy: bool = False
) -> str:
    return choose_plan(
        kind=kind,
        admitted=admitted,
        n_main=n,
        k=10,
        knob=knob,
        nlist=nlist,
        lossy=lossy,
        rerank=40,
        max_ef=MAX_EF,
    ).plan


def _break_even(n: int, ef: int) -> int:
    """The smallest admitted count the HNSW plan takes (exhaustive: the rule is monotonic in it)."""
    lo, hi = 1, n
    while lo < hi:
        mid = (lo + hi) // 2
        if _plan(mid, n, knob=ef) == "ann":
            hi = mid
        else:
            lo = mid + 1
    return lo


@pytest.mark.parametrize("n", [100_000, 1_000_000, 10_000_000])
def test_hnsw_break_even_grows_with_sqrt_of_size_times_ef(n: int) -> None:
    for ef in (32, 128, 512):
        a = _break_even(n, ef)
        assert _plan(a - 1, n, knob=ef) == "exact" and _plan(a, n, knob=ef) == "ann"
        # a* = sqrt(HNSW_VISIT_COST x ef x n), within the rounding of ef' = ceil(ef x n / a).
        assert a == pytest.approx(math.sqrt(HNSW_VISIT_COST * ef * n), rel=0.02)


def test_low_selectivity_goes_exact_at_any_size() -> None:
    # At a fixed selectivity the exact work grows with n and the ANN work does not: but the break-even
    # grows with sqrt(n), so a fixed small selectivity stays exact (where filtered HNSW loses recall).
    for n in (10_000, 1_000_000, 100_000_000):
        assert _plan(n // 1000, n) == "exact"  # 0.1%
    assert _plan(10_000, 1_000_000) == "exact"  # the scale benchmark's 1% at 1M (was ANN: 257 ms)
    assert _plan(200_000, 1_000_000) == "ann"  # 20%: ef' = 320


def test_a_widening_past_the_ef_cap_goes_exact() -> None:
    n = 10**9
    admitted = 3 * n // MAX_EF  # ef' = 64 x n / admitted > MAX_EF, though the cost alone would say ANN
    choice = choose_plan(
        kind="hnsw", admitted=admitted, n_main=n, k=10, knob=64, nlist=0, lossy=False, rerank=0, max_ef=MAX_EF
    )
    assert choice.plan == "exact" and choice.reason == "cap" and choice.ann_cost == math.inf


def test_ivf_costs_the_widened_lists_it_scans() -> None:
    n, nlist, nprobe = 1_000_000, 1000, 16
    # nprobe' = nprobe x n / a lists of n / nlist rows each: exact below a = n sqrt(nprobe / nlist).
    a_star = n * math.sqrt(nprobe / nlist)
    assert _plan(int(a_star * 0.9), n, kind="ivf", knob=nprobe, nlist=nlist) == "exact"
    assert _plan(int(a_star * 1.1), n, kind="ivf", knob=nprobe, nlist=nlist) == "ann"
    # Widened to every list: a full scan, never cheaper than the admitted rows.
    assert _plan(nprobe, n, kind="ivf", knob=nprobe, nlist=nlist) == "exact"


def test_exact_rows_from_the_store_cost_more() -> None:
    n, ef = 1_000_000, 64
    a = _break_even(n, ef)
    assert _plan(a - 1, n, knob=ef, lossy=True) == "ann"  # exact would read from RocksDB
    lossy = choose_plan(
        kind="hnsw", admitted=a, n_main=n, k=10, knob=ef, nlist=0, lossy=True, rerank=40, max_ef=MAX_EF
    )
    assert lossy.exact_cost == a * STORE_ROW_COST


def test_row_map_of_ascending_labels_keeps_no_permutation() -> None:
    x = np.arange(5 * DIM, dtype=np.float32).reshape(5, DIM)
    labels = np.array([3, 7, 8, 20, 21], dtype=np.int64)
    rows = RowMap([(labels, x)], DIM)
    assert rows.nbytes == labels.nbytes
    got = rows.rows(np.array([8, 21], dtype=np.int64))
    assert got.tolist() == [2, 4]
    buf = np.empty((4, DIM), np.float32)
    assert np.array_equal(rows.gather(got, buf), x[[2, 4]])
    with pytest.raises(KeyError, match="label 9"):
        rows.rows(np.array([8, 9], dtype=np.int64))
    with pytest.raises(KeyError, match="label 99"):
        rows.rows(np.array([99], dtype=np.int64))


def test_row_map_over_unordered_blocks() -> None:
    rng = np.random.default_rng(0)
    labels = rng.permutation(1000).astype(np.int64) * 3
    x = rng.normal(size=(1000, DIM)).astype(np.float32)
    cuts = [0, 10, 400, 401, 1000]
    blocks = [(labels[a:b], x[a:b]) for a, b in itertools.pairwise(cuts)]
    rows = RowMap(blocks, DIM)
    assert len(rows) == 1000 and rows.nbytes == 16 * 1000
    want = np.sort(rng.choice(labels, 300, replace=False))
    got = rows.gather(rows.rows(want), np.empty((300, DIM), np.float32))
    by_label = dict(zip(labels.tolist(), x, strict=True))
    assert np.array_equal(got, np.stack([by_label[int(lb)] for lb in want]))


def test_row_chunks_cover_every_row_in_bounded_pieces() -> None:
    chunks = list(row_chunks(100_000, 384))
    assert chunks[0].start == 0 and chunks[-1].stop == 100_000
    assert all(a.stop == b.start for a, b in itertools.pairwise(chunks))
    assert max(c.stop - c.start for c in chunks) * 384 * 4 <= 8 << 20
    assert list(row_chunks(0, 384)) == []


# ---- the exact plan on a TieredIndex: in place == reconstruct == brute force ----------------------------


def _vec(labels: np.ndarray, salt: int = 0) -> np.ndarray:
    return np.stack([np.random.default_rng(int(lb) * 7 + salt).normal(size=DIM) for lb in labels]).astype(
        np.float32
    )


def _brute(index: TieredIndex, q: np.ndarray, k: int, labels: np.ndarray, x: np.ndarray) -> np.ndarray:
    qp, xp = index.prepare(q), index.prepare(x)
    s = ((xp - qp[0]) ** 2).sum(axis=1) if index.metric == "l2" else -(xp @ qp[0])
    return labels[np.argsort(s, kind="stable")[:k]]


def _job(index: TieredIndex, kind: str, live: dict[int, np.ndarray]) -> None:
    def fetch(want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = np.array([lb for lb in want if int(lb) in live], dtype=np.int64)
        return found, np.stack([live[int(lb)] for lb in found]) if len(found) else np.empty(
            (0, DIM), np.float32
        )

    job = index.start_job(kind, BitMap64(list(live)), fetch)  # type: ignore[arg-type]
    index.finish_job(job, *index.run_job(job), f"m{len(live)}")


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize(
    "spec", [HnswSpec(), IvfSpec(nlist=4), HnswSpec(storage="sq8"), HnswSpec(storage="fp16")]
)
def test_exact_plan_reads_main_in_place_through_merges_rebuilds_tombstones_and_delta(
    spec: HnswSpec | IvfSpec, metric: str
) -> None:
    live: dict[int, np.ndarray] = {}

    def raw_fetch(want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = np.array([lb for lb in want if int(lb) in live], dtype=np.int64)
        return found, np.stack([live[int(lb)] for lb in found])

    policy = IndexPolicy(merge_min=1, merge_ratio=0.0001, ivf_train_min=1, exact_max=10**9)
    index = TieredIndex(spec, DIM, metric, policy, raw_fetch=raw_fetch)
    q = _vec(np.array([10**6]))
    rng = np.random.default_rng(1)

    def add(labels: np.ndarray) -> None:
        x = _vec(labels)
        live.update(zip(labels.tolist(), x, strict=True))
        index.add(labels, x)

    def check(stage: str, only: np.ndarray | None = None) -> None:
        labels = np.array(sorted(live), dtype=np.int64) if only is None else only
        allowed = np.sort(rng.choice(labels, size=max(1, len(labels) // 3), replace=False))
        _, found = index.search(q, 10, BitMap64(allowed.tolist()), SearchParams())
        want = _brute(index, q, 10, allowed, np.stack([live[int(lb)] for lb in allowed]))
        assert found[0].tolist() == want.tolist(), stage
        rows = index._row_map()
        if index.main is None or index.main.lossy:
            assert rows is None, stage  # compressed: the exact plan reads the stored vectors instead
            return
        assert rows is not None
        in_main = np.array(sorted(set(index.main_labels) & set(allowed.tolist())), dtype=np.int64)
        got = rows.gather(rows.rows(in_main), np.empty((len(in_main), DIM), np.float32))
        assert np.array_equal(got, index.main.reconstruct(in_main)), stage

    add(np.arange(1, 301, dtype=np.int64))
    _job(index, "merge", live)  # the first main
    check("first main")
    add(np.arange(301, 351, dtype=np.int64))  # in the delta
    for lb in (5, 6, 7, 200, 320):  # tombstones in main, a removal from the delta
        live.pop(lb)
        index.remove(np.array([lb], dtype=np.int64))
    replaced = np.array([10, 11], dtype=np.int64)  # a replacement: tombstone + new label in the delta
    for lb in replaced:
        live.pop(int(lb))
    index.remove(replaced)
    add(np.array([1000, 1001], dtype=np.int64))
    check("tombstones and delta")
    check("only delta labels admitted", only=np.array([1000, 1001], dtype=np.int64))
    first = index._rows
    _job(index, "merge", live)
    # The new main's map was made by the job (outside the lock), none for compressed storage.
    assert (
        (index._rows is None)
        if spec.storage != "flat"
        else (index._rows is not None and index._rows[0] is index.main)
    )
    assert first is None or index._rows is not first
    check("after a merge")
    _job(index, "rebuild", live)
    assert not index.tombstones
    check("after a rebuild")


def test_filter_plan_follows_the_setting() -> None:
    x = _vec(np.arange(1, 2001, dtype=np.int64))
    labels = np.arange(1, 2001, dtype=np.int64)
    main, _ = build_ann(
        new_ann(HnswSpec(), DIM, "cosine", 2000), labels, lambda w: (w, x[w - 1]), threading.Event()
    )
    few, many = BitMap64(range(1, 11)), BitMap64(range(1, 1501))
    params = SearchParams(ef_search=8)
    auto = TieredIndex(HnswSpec(), DIM, "cosine", IndexPolicy(), main=main)
    assert auto.filter_plan(10, few, params).plan == "exact"
    # 1,500 of 2,000 admitted at ef 8: ef' = 11, 8 x 11 = 88 rows of work against 1,500.
    chosen = auto.filter_plan(10, many, params)
    assert chosen.plan == "ann" and chosen.reason == "cost" and chosen.admitted == 1500
    assert auto.plan_for(10, 1500, params) == chosen  # from counts alone (reports)
    assert auto.plan_for(10, 1500, params, in_main=10).plan == "exact"  # the rest waits in the delta
    pinned = TieredIndex(HnswSpec(), DIM, "cosine", IndexPolicy(exact_max=10), main=main)
    assert [pinned.filter_plan(10, bm, params).plan for bm in (few, many)] == ["exact", "ann"]
    assert pinned.filter_plan(10, few, params).reason == "pinned"
    never = TieredIndex(HnswSpec(), DIM, "cosine", IndexPolicy(exact_max=0), main=main)
    assert never.filter_plan(10, few, params).plan == "ann"
    empty = TieredIndex(HnswSpec(), DIM, "cosine", IndexPolicy(exact_max=0))
    assert empty.filter_plan(10, few, params).plan == "exact"  # no ANN index yet


def test_a_denser_graph_costs_more_per_unit_of_ef() -> None:
    n, ef = 1_000_000, 128
    a = _break_even(n, ef)  # m = 32
    dense = choose_plan(
        kind="hnsw", admitted=a, n_main=n, k=10, knob=ef, nlist=0, lossy=False, rerank=0, max_ef=MAX_EF, m=64
    )
    assert dense.plan == "exact" and dense.ann_cost == pytest.approx(
        2 * HNSW_VISIT_COST * math.ceil(ef * n / a)
    )


def test_flat_index_streams_the_bytes_serialize_returns() -> None:
    delta = FlatIndex(DIM, "l2")
    labels = np.arange(5, 3005, dtype=np.int64)
    delta.add(labels, _vec(labels))
    chunks: list[bytes] = []
    delta.write_to(chunks.append)
    assert b"".join(chunks) == delta.serialize().tobytes()
    assert max(len(c) for c in chunks) <= 1 << 20
    back = FlatIndex.deserialize(DIM, "l2", np.frombuffer(b"".join(chunks), dtype=np.uint8))
    assert np.array_equal(back.vectors()[1], delta.vectors()[1])
