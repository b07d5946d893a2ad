"""TieredIndex invariant: every live label is in exactly one of delta and main - tombstones.

Hypothesis interleaves adds, removes and background jobs (started, written to, finished) and checks the
invariant, that an exhaustive search returns exactly the live labels, and that the recall audit's cached
exact view scans exactly them, with the same scores.
"""

from __future__ import annotations

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pyroaring import BitMap64

from vecdb.index import HnswSpec, IndexPolicy, IvfSpec, SearchParams, TieredIndex

DIM = 8
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 40)),
        st.tuples(st.just("remove"), st.integers(1, 15)),
        st.tuples(st.just("job"), st.integers(0, 2)),
    ),
    max_size=25,
)


def _vectors(labels: np.ndarray) -> np.ndarray:
    return np.stack([np.random.default_rng(int(lb)).normal(size=DIM) for lb in labels]).astype(np.float32)


def _check(index: TieredIndex, live: set[int]) -> None:
    delta = set(index.delta.labels().tolist())
    main = set(index.main_labels) - set(index.tombstones)
    assert not delta & main
    assert delta | main == live
    assert len(index) == len(live)
    assert set(index.tombstones) <= set(index.main_labels)
    if live:
        params = SearchParams(ef_search=4096, nprobe=4096)
        scores, found = index.search(_vectors(np.array([0]))[:1], len(live) + 5, None, params)
        assert set(found[0][found[0] >= 0].tolist()) == live
    # The recall audit's view (cached across writes and swaps) covers exactly the live vectors.
    view = index.audit_view()
    assert view.size == len(live)
    if live:
        got_s, got = view.top(index.prepare(_vectors(np.array([0]))[:1]), len(live) + 5)
        assert sorted(got[0].tolist()) == sorted(live)
        want = dict(zip(found[0].tolist(), scores[0].tolist(), strict=True))
        assert np.allclose(got_s[0], [want[lb] for lb in got[0].tolist()], atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(ops=OPS, kind=st.sampled_from(["hnsw", "ivf"]), metric=st.sampled_from(["cosine", "l2"]))
def test_invariant_under_interleaved_jobs(ops: list[tuple[str, int]], kind: str, metric: str) -> None:
    spec = HnswSpec() if kind == "hnsw" else IvfSpec()
    policy = IndexPolicy(merge_min=1, merge_ratio=0.0001, tombstone_share=0.3, ivf_train_min=1)
    index = TieredIndex(spec, DIM, metric, policy)
    store: dict[int, np.ndarray] = {}
    live: set[int] = set()
    next_label = 1
    jobs_run: list[str] = []
    rng = np.random.default_rng(0)

    def store_fetch(want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = np.array([lb for lb in want if int(lb) in live], dtype=np.int64)
        vecs = np.stack([store[int(lb)] for lb in found]) if len(found) else np.empty((0, DIM), np.float32)
        return found, vecs

    for op, arg in ops:
        if op == "add":
            labels = np.arange(next_label, next_label + arg, dtype=np.int64)
            next_label += arg
            vecs = _vectors(labels)
            store.update(zip(labels.tolist(), vecs, strict=True))
            live.update(labels.tolist())
            index.add(labels, vecs)
        elif op == "remove" and live:
            gone = rng.choice(sorted(live), size=min(arg, len(live)), replace=False)
            live.difference_update(gone.tolist())
            index.remove(gone)
        elif op == "job":
            kind_of_job = index.plan(len(live)) or ("rebuild" if live and index.main is not None else None)
            if kind_of_job is None or (kind == "ivf" and index.main is None and len(index.delta_labels) < 4):
                continue
            job = index.start_job(kind_of_job, BitMap64(live), store_fetch)
            new_main, added = index.run_job(job)
            # Writes that land while the job runs: removals of absorbed labels, and new labels.
            for _ in range(arg):
                if live:
                    victim = np.array([sorted(live)[0]], dtype=np.int64)
                    live.discard(int(victim[0]))
                    index.remove(victim)
                labels = np.array([next_label], dtype=np.int64)
                next_label += 1
                store[int(labels[0])] = _vectors(labels)[0]
                live.add(int(labels[0]))
                index.add(labels, _vectors(labels))
            index.finish_job(job, new_main, added, f"m{next_label}")
            jobs_run.append(kind_of_job)
        _check(index, live)
    event(f"jobs: {' '.join(jobs_run) or 'none'}")


def test_rebuild_after_everything_is_deleted_drops_the_ann_index() -> None:
    policy = IndexPolicy(merge_min=1, merge_ratio=0.0001, tombstone_share=0.3, ivf_train_min=1)
    index = TieredIndex(IvfSpec(), DIM, "cosine", policy)
    labels = np.arange(1, 5, dtype=np.int64)
    vectors = _vectors(labels)
    index.add(labels, vectors)
    job = index.start_job("merge", BitMap64(labels.tolist()), lambda w: (w, vectors[w - 1]))
    index.finish_job(job, *index.run_job(job), "m1")
    assert index.main is not None and len(index.main_labels) == 4
    index.remove(labels)
    assert index.plan(0) == "rebuild"
    job = index.start_job("rebuild", BitMap64(), lambda w: (w, vectors[w - 1]))
    index.finish_job(job, *index.run_job(job), "m2")
    assert index.main is None and index.main_id is None
    assert len(index) == 0 and not index.tombstones
    assert index.plan(0) is None
