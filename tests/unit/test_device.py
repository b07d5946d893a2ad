"""Index devices (vecdb/index/device.py): GPU mirrors of flat and IVF indexes answer exactly as the CPU
index would, or step aside.

This machine has no GPU, so the mirror logic (row labels, dead rows, oversampling past exclusions,
reloads, fallbacks) runs here on ``CloneDevice``: a device whose "device copy" is a CPU FAISS clone, with
a small ``max_k`` so that every fallback path is taken. The same tests run on the real GPU through the
``gpu`` parameter, skipped cleanly without one.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import faiss
import numpy as np
import pytest

from vecdb import Database
from vecdb.config import IndexSettings, Settings, StorageSettings
from vecdb.errors import InvalidConfigError
from vecdb.index import FlatIndex, IndexPolicy, IvfSpec, SearchParams, TieredIndex
from vecdb.index.device import Device, GpuDevice, faiss_distributions, gpu_count, resolve_device

HAS_GPU = gpu_count() > 0
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no GPU visible to FAISS (faiss-cpu build or no device)")


class CloneDevice:
    """A CPU stand-in for a GPU: copies are FAISS clones, exact indexes are IndexFlat."""

    name = "clone"

    def __init__(self, max_k: int = 64) -> None:
        self.max_k = max_k
        self.lock = threading.Lock()
        self.copies = 0

    def copy(self, index: faiss.Index) -> faiss.Index:
        self.copies += 1
        return faiss.clone_index(index)

    def new_flat(self, dim: int, metric_type: int) -> faiss.Index:
        return faiss.IndexFlat(dim, metric_type)


class BrokenDevice(CloneDevice):
    """A device whose copies and searches fail, as an out-of-memory GPU would."""

    name = "broken"

    def copy(self, index: faiss.Index) -> faiss.Index:
        raise RuntimeError("out of device memory")

    def new_flat(self, dim: int, metric_type: int) -> faiss.Index:
        index = faiss.IndexFlat(dim, metric_type)

        def fail(*args: object, **kwargs: object) -> None:
            raise RuntimeError("out of device memory")

        index.search = fail
        return index


def devices() -> list[object]:
    return [
        pytest.param("clone", id="clone"),
        pytest.param("gpu", id="gpu", marks=needs_gpu),
    ]


def make_device(kind: str) -> Device:
    return CloneDevice() if kind == "clone" else GpuDevice(0)


def rng_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return rng.standard_normal((n, dim)).astype(np.float32)


def assert_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(got[1], want[1])
    valid = want[1] >= 0
    np.testing.assert_allclose(got[0][valid], want[0][valid], rtol=1e-4, atol=1e-4)


# ---- resolving index.device ------------------------------------------------------------------------------


def test_cpu_is_no_device() -> None:
    assert resolve_device("cpu") is None


@pytest.mark.skipif(HAS_GPU, reason="checks the machine without a GPU")
def test_auto_without_gpu_is_cpu() -> None:
    assert resolve_device("auto") is None


@pytest.mark.skipif(HAS_GPU, reason="checks the machine without a GPU")
def test_gpu_without_gpu_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="FAISS sees no GPU") as info:
        resolve_device("gpu")
    assert info.value.details["faiss"] == faiss_distributions()
    with pytest.raises(InvalidConfigError):
        Database(tmp_path / "db", settings=Settings(index=IndexSettings(device="gpu")))
    assert not (tmp_path / "db").exists()  # refused before anything was created


def test_one_faiss_build_is_installed() -> None:
    """faiss-cpu and faiss-gpu ship the same module: never both in one environment (docs/gpu.md)."""
    builds = faiss_distributions()
    assert len(builds) == 1, builds


def test_bad_device_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="device"):
        IndexSettings(device="tpu")  # type: ignore[arg-type]


@needs_gpu
def test_auto_with_gpu_is_the_gpu() -> None:
    device = resolve_device("auto")
    assert device is not None and device.name == "gpu"


# ---- the flat mirror -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", devices())
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_mirror_answers_as_the_cpu_index(kind: str, metric: str) -> None:
    """Random adds, removes and re-adds: every unfiltered search equals the CPU index's, whether the
    mirror answers (few dead rows), steps aside (k + dead past max_k) or was reloaded."""
    rng = np.random.default_rng(7)
    dim = 8
    device = make_device(kind)
    cpu, mirrored = FlatIndex(dim, metric), FlatIndex(dim, metric)
    mirrored.attach(device)
    live: set[int] = set()
    next_label = 0
    for step in range(60):
        if live and rng.random() < 0.4:
            gone = rng.choice(sorted(live), size=min(len(live), int(rng.integers(1, 40))), replace=False)
            labels = np.array(gone, np.int64)
            assert mirrored.remove(labels) == cpu.remove(labels)
            live -= set(gone.tolist())
        else:
            n = int(rng.integers(1, 50))
            labels = np.arange(next_label, next_label + n, dtype=np.int64)
            next_label += n
            x = rng_vectors(rng, n, dim)
            cpu.add(labels, x)
            mirrored.add(labels, x)
            live |= set(labels.tolist())
        if live:
            q = rng_vectors(rng, 3, dim)
            for k in (1, 10, 100):
                assert_same(mirrored.search(q, k), cpu.search(q, k))
        assert mirrored.on_device, f"step {step}: the mirror gave up"


def test_flat_mirror_takes_unfiltered_searches_and_leaves_filters_to_the_cpu() -> None:
    from vecdb.index.selectors import LabelSelector

    rng = np.random.default_rng(1)
    device = CloneDevice(max_k=64)
    index = FlatIndex(4, "ip")
    index.attach(device)
    index.add(np.arange(100, dtype=np.int64), rng_vectors(rng, 100, 4))
    mirror = index._mirror
    assert mirror is not None
    calls = []
    original = mirror._index.search
    mirror._index.search = lambda *a, **kw: calls.append(1) or original(*a, **kw)  # type: ignore[method-assign]
    q = rng_vectors(rng, 2, 4)
    index.search(q, 5)
    assert calls == [1]
    sel = LabelSelector(np.arange(10, dtype=np.int64))
    _, labels = index.search(q, 5, sel)
    assert calls == [1] and set(labels.ravel()) <= set(range(10))
    index.search(q, 65)  # k past max_k: the CPU
    assert calls == [1]


def test_flat_mirror_reloads_after_many_deletes_and_on_a_reused_label() -> None:
    rng = np.random.default_rng(2)
    device = CloneDevice(max_k=64)
    cpu, index = FlatIndex(4, "l2"), FlatIndex(4, "l2")
    index.attach(device)
    x = rng_vectors(rng, 200, 4)
    for ix in (cpu, index):
        ix.add(np.arange(200, dtype=np.int64), x)
    for ix in (cpu, index):
        ix.remove(np.arange(0, 40, dtype=np.int64))  # 40 dead rows: past max_k / 2, reloaded
    assert index._mirror is not None and len(index._mirror._dead) == 0
    assert len(index._mirror._rows) == 160
    for ix in (cpu, index):
        ix.remove(np.array([50], np.int64))
        ix.add(np.array([50], np.int64), x[:1])  # label 50 again, other vector: reloaded
    assert len(index._mirror._dead) == 0
    q = x[:3]
    assert_same(index.search(q, 10), cpu.search(q, 10))


def test_a_failing_device_falls_back_to_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(3)
    cpu, index = FlatIndex(4, "ip"), FlatIndex(4, "ip")
    index.attach(BrokenDevice())
    x = rng_vectors(rng, 50, 4)
    for ix in (cpu, index):
        ix.add(np.arange(50, dtype=np.int64), x)
    with caplog.at_level(logging.WARNING, logger="vecdb.index.device"):
        assert_same(index.search(x[:2], 5), cpu.search(x[:2], 5))
    assert "searching on the CPU from now on" in caplog.text
    assert not index.on_device
    assert_same(index.search(x[:2], 5), cpu.search(x[:2], 5))


# ---- the IVF mirror through TieredIndex ------------------------------------------------------------------

POLICY = IndexPolicy(merge_min=200, merge_ratio=0.05, tombstone_share=0.5, ivf_train_min=400, exact_max=50)


def _tiered(device: Device | None, spec: IvfSpec, x: np.ndarray) -> TieredIndex:
    index = TieredIndex(spec, x.shape[1], "l2", POLICY, device=device)
    labels = np.arange(len(x), dtype=np.int64)
    index.add(labels, x)
    kind = index.plan(len(x))
    assert kind == "merge"
    # A merge reads the delta's vectors from the store: here the array the labels index.
    job = index.start_job(kind, None, lambda want: (want, x[want]))  # type: ignore[arg-type]
    main, added = index.run_job(job)
    index.finish_job(job, main, added, "m1")
    return index


@pytest.mark.parametrize("kind", devices())
@pytest.mark.parametrize("storage", ["flat", "sq8"])
def test_ivf_mirror_answers_as_the_cpu_index(kind: str, storage: str) -> None:
    """An IVF main mirrored on the device: unfiltered searches (with tombstones excluded by
    oversampling) equal the CPU's; filtered ones run on the CPU; past max_k tombstones, the CPU."""
    from pyroaring import BitMap64

    rng = np.random.default_rng(11)
    x = rng_vectors(rng, 1000, 16)
    spec = IvfSpec(nlist=16, nprobe=4, storage=storage)
    cpu, dev = _tiered(None, spec, x), _tiered(make_device(kind), spec, x)
    assert dev.main is not None and dev.main.on_device
    assert dev.state()["on_device"] == ["ann", "delta"] and dev.state()["device"] == kind
    assert cpu.state()["device"] == "cpu" and cpu.state()["on_device"] == []
    q = rng_vectors(rng, 5, 16)
    params = SearchParams()
    for k in (1, 10):
        assert_same(dev.search(q, k, None, params), cpu.search(q, k, None, params))
    for ix in (cpu, dev):
        ix.remove(np.arange(0, 30, dtype=np.int64))  # tombstones: excluded by oversampling
    assert_same(dev.search(q, 10, None, params), cpu.search(q, 10, None, params))
    allowed = BitMap64(range(100, 400))
    assert_same(dev.search(q, 10, allowed, params), cpu.search(q, 10, allowed, params))
    for ix in (cpu, dev):
        ix.remove(np.arange(30, 200, dtype=np.int64))  # k + tombstones past max_k: the CPU answers
    assert_same(dev.search(q, 10, None, params), cpu.search(q, 10, None, params))
    assert_same(
        dev.search(q, 10, None, SearchParams(nprobe=16)), cpu.search(q, 10, None, SearchParams(nprobe=16))
    )


def test_hnsw_stays_on_the_cpu() -> None:
    from vecdb.index import HnswSpec

    rng = np.random.default_rng(5)
    x = rng_vectors(rng, 300, 8)
    device = CloneDevice()
    index = TieredIndex(HnswSpec(), 8, "ip", POLICY, device=device)
    index.add(np.arange(300, dtype=np.int64), x)
    job = index.start_job("merge", None, lambda want: (want, x[want]))  # type: ignore[arg-type]
    main, added = index.run_job(job)
    index.finish_job(job, main, added, "m1")
    assert index.main is not None and index.main.kind == "hnsw" and not index.main.on_device
    assert index.state()["on_device"] == ["delta"]


def test_a_failing_ivf_copy_leaves_the_index_on_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(6)
    x = rng_vectors(rng, 600, 8)
    spec = IvfSpec(nlist=8, nprobe=2)
    cpu = _tiered(None, spec, x)
    with caplog.at_level(logging.WARNING, logger="vecdb.index.ann"):
        dev = _tiered(BrokenDevice(), spec, x)
    assert "searches on the CPU" in caplog.text
    assert dev.main is not None and not dev.main.on_device
    q = x[:3]
    assert_same(dev.search(q, 10, None, SearchParams()), cpu.search(q, 10, None, SearchParams()))


# ---- the engine, by device -------------------------------------------------------------------------------


def _settings(device: str) -> Settings:
    return Settings(
        storage=StorageSettings(sync_writes=False),
        index=IndexSettings(
            device=device,  # type: ignore[arg-type]
            merge_min_records=100,
            ivf_train_min=300,
            exact_max_admitted=20,
        ),
    )


def _exercise(db: Database, rng: np.random.Generator) -> dict[str, object]:
    """Upserts, re-upserts, deletes by id and by source, searches with and without filters."""
    out: dict[str, object] = {}
    for name, spec in (("flat", {"type": "flat"}), ("ivf", {"type": "ivf", "nlist": 8, "nprobe": 8})):
        col = db.create_collection(name, 8, "l2", spec)
        x = rng_vectors(rng, 600, 8)
        ids = [f"r{i}" for i in range(600)]
        col.upsert(
            ids, x, metadatas=[{"n": i % 10} for i in range(600)], sources=[f"s{i % 6}" for i in range(600)]
        )
        col.wait_for_index()
        col.upsert(ids[:50], x[50:100])  # re-upserts: tombstones in the IVF, dead rows in the flat mirror
        col.delete(ids[100:130])
        col.delete(source="s1")
        col.wait_for_index()
        out[name] = _answers(db, name)
    return out


QUERIES = np.random.default_rng(99).standard_normal((5, 8)).astype(np.float32)


def _answers(db: Database, name: str) -> object:
    col = db.get_collection(name)
    hits = col.search(QUERIES, k=10)
    filtered = col.search(QUERIES, k=10, filter={"n": {"$in": [2, 3]}})
    return (
        [[(h.id, round(h.score, 3)) for h in row] for row in hits],
        [[(h.id, round(h.score, 3)) for h in row] for row in filtered],
        col.count(),
    )


@pytest.mark.parametrize("kind", ["clone", pytest.param("gpu", marks=needs_gpu)])
def test_engine_answers_the_same_on_every_device(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same operations on a CPU database and on a device database give the same results; the
    device database's files reopen on the CPU and answer the same again."""
    with Database(tmp_path / "cpu", settings=_settings("cpu")) as db:
        want = _exercise(db, np.random.default_rng(9))
    if kind == "clone":
        monkeypatch.setattr("vecdb.engine.database.resolve_device", lambda name: CloneDevice(max_k=1024))
    with Database(tmp_path / "dev", settings=_settings("gpu" if kind == "gpu" else "auto")) as db:
        assert db.device is not None
        got = _exercise(db, np.random.default_rng(9))
        assert db.get_collection("ivf").info()["index_state"]["on_device"] == ["ann", "delta"]
        assert db.get_collection("flat").info()["index_state"]["on_device"] == ["delta"]
    assert got == want
    monkeypatch.undo()
    with Database(tmp_path / "dev", settings=_settings("cpu")) as db:
        assert db.device is None
        assert {name: _answers(db, name) for name in ("flat", "ivf")} == want
