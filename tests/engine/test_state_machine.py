"""A stateful test: random sequences of writes, reads and restarts checked against a brute-force model.

The model is a dict ``id -> record`` and numpy in float64. After every step the collection must agree
with it: every record (vector, text, metadata, source), ``count`` and ``list_sources``. Searches are
compared robustly: ties may come back in any order and FAISS computes in float32, so scores are
compared approximately, position by position, and each returned id must score what the model says.

Each run picks a metric and how often the index is checkpointed (every write, every few writes, or
only on close), so reopening exercises loading a checkpoint, replaying the op-log past it, and
rebuilding from the store when the checkpoint is missing or stale.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from vecdb import Collection, Database, Settings
from vecdb.config import IndexSettings, StorageSettings
from vecdb.errors import (
    ClosedError,
    DuplicateIdError,
    InvalidFilterError,
    InvalidMetadataError,
    InvalidVectorError,
    VecDBError,
)
from vecdb.filters import parse_filter
from vecdb.types import INCLUDE_FIELDS, METRICS, Hit, Metric, Record

NAME = "col"
DIM = 4
ID_POOL = [f"id{i}" for i in range(12)]
SOURCES = ["s1", "s2", "s3"]
# ef_search / nprobe past the pool size make the ANN kinds exhaustive, so results must equal the model's
# exactly whatever state the background builds are in.
INDEXES: list[dict[str, Any]] = [
    {"type": "flat"},
    {"type": "hnsw", "m": 4, "ef_construction": 16, "ef_search": 256},
    {"type": "ivf", "nprobe": 64},
    {"type": "auto", "threshold": 5},
]
RTOL = 1e-4
ATOL = 1e-4

# ---- strategies -----------------------------------------------------------------------------------

components = st.one_of(
    st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]),  # coarse values: equal vectors and tied scores
    st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False, width=32),
)
vectors = st.lists(components, min_size=DIM, max_size=DIM)

G_VALUES: list[Any] = ["x", "y", 1, 1.0, True, None]
N_VALUES: list[Any] = [0, 1, 2, 3, 1.5, 2.5]
g_values = st.sampled_from(G_VALUES)
n_values = st.sampled_from(N_VALUES)
# "ts": a number per record, nearly always distinct (a timestamp, a price): answered by the range index
# (each run sets index.range_max_repeat to 0, the default, or always). Ints past 2**53 compare exactly.
TS_SPECIAL: list[Any] = [2**53, 2**53 + 1, float(2**53), -0.0, 0, 2**64 - 1, -(2**63), True, "5"]
ts_values = st.one_of(
    st.integers(-1000, 1000),
    st.floats(-1000, 1000, allow_nan=False),
    st.sampled_from(TS_SPECIAL),
)
ts_bounds = st.one_of(st.integers(-1000, 1000), st.floats(-1000, 1000), st.sampled_from(TS_SPECIAL[:7]))

metadatas = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "g": g_values,
            "n": n_values,
            "t": st.lists(st.sampled_from(["x", "y"]), max_size=2),
            "ts": ts_values,
        },
    ),
)
WORDS = ["red", "Blue", "green"]
#: Arbitrary texts, and texts of a few words (what the text filter rule looks for), sometimes joined by
#: white space the whitespace tokenizer does not split on (a no-break space).
texts = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.lists(st.sampled_from([*WORDS, "red\u00a0green", "\t"]), max_size=4).map(" ".join),
)
#: The collections carry a whitespace text index: its model below (tantivy splits on ASCII white space
#: but vertical tab, and lowercases).
TEXT_INDEX = {"tokenizer": "whitespace"}
sources = st.sampled_from([None, *SOURCES])


@dataclass(frozen=True)
class Item:
    id: str
    vector: list[float]
    text: str | None
    metadata: dict[str, Any] | None
    source: str | None


items = st.builds(Item, st.sampled_from(ID_POOL), vectors, texts, metadatas, sources)
batches = st.lists(items, min_size=1, max_size=5, unique_by=lambda it: it.id)

simple_filters = st.one_of(
    g_values.map(lambda v: {"g": v}),
    n_values.map(lambda x: {"n": {"$gte": x}}),
    ts_bounds.map(lambda x: {"ts": {"$lt": x}}),
)
ts_filters = st.one_of(
    st.tuples(st.sampled_from(["$gt", "$gte"]), ts_bounds, st.sampled_from(["$lt", "$lte"]), ts_bounds).map(
        lambda q: {"ts": {q[0]: q[1], q[2]: q[3]}}
    ),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), ts_bounds).map(lambda q: {"ts": {q[0]: q[1]}}),
    st.lists(ts_bounds, max_size=40).map(lambda vs: {"ts": {"$in": vs}}),
    ts_bounds.map(lambda x: {"$not": {"ts": {"$gte": x}}}),
    ts_bounds.map(lambda x: {"g": "x", "ts": {"$lte": x}}),
)
search_filters = st.one_of(
    st.none(),
    st.just({}),
    simple_filters,
    ts_filters,
    st.lists(g_values, max_size=3).map(lambda vs: {"g": {"$nin": vs}}),
    st.lists(g_values, min_size=1, max_size=3).map(lambda vs: {"g": {"$in": vs}}),
    st.sampled_from(
        [
            {"g": {"$exists": False}},
            {"t": {"$exists": True}},
            {"g": {"$ne": "x"}},
            {"n": {"$gt": 1, "$lte": 2.5}},
            {"g": "x", "n": {"$lt": 2}},
            {"$or": [{"g": "x"}, {"n": {"$lt": 2}}]},
            {"$not": {"n": {"$gt": 1}}},
            {"$and": [{"g": {"$in": [1, "y"]}}, {"$not": {"t": {"$exists": True}}}]},
        ]
    ),
)
includes = st.lists(st.sampled_from(sorted(INCLUDE_FIELDS)), unique=True, max_size=4)


# ---- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRecord:
    vector: np.ndarray  # float32, as the engine stores it (not normalized)
    text: str | None
    metadata: dict[str, Any]
    source: str | None


def _json(value: Any) -> bytes:
    """A strict comparison key: unlike ``==``, it tells ``True`` from ``1`` and ``1`` from ``1.0``."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _score(metric: Metric, query: np.ndarray, vector: np.ndarray) -> float:
    q = query.astype(np.float64)
    v = vector.astype(np.float64)
    if metric == "l2":
        return float(np.sum((q - v) ** 2))
    if metric == "ip":
        return float(q @ v)
    return float(q @ v / (np.linalg.norm(q) * np.linalg.norm(v)))


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= ATOL + RTOL * abs(b)


class VecDBMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="vecdb-sm-"))
        self.path = self.tmp / "data"
        self.db: Database | None = None
        self._col: Collection | None = None
        self.metric: Metric = "l2"
        self.index: dict[str, Any] = {"type": "flat"}
        self.settings = Settings()  # type: ignore[call-arg]
        self.model: dict[str, ModelRecord] = {}
        self.saved_checkpoint: bytes | None = None
        self.saved_filters: bytes | None = None

    def teardown(self) -> None:
        try:
            if self.db is not None:
                self.db.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def col(self) -> Collection:
        assert self._col is not None
        return self._col

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "collections" / NAME / "index.ckpt"

    # ---- helpers ---------------------------------------------------------------------------------

    def _vector(self, values: list[float]) -> np.ndarray:
        v = np.asarray(values, dtype=np.float32)
        if self.metric == "cosine" and float(np.linalg.norm(v.astype(np.float64))) < 1e-3:
            v[0] += 1.0  # cosine rejects zero vectors; keep clear of them and of tiny ones
        return v

    def _matching(self, raw: Any) -> set[str]:
        flt = parse_filter(raw)
        if flt is None:
            return set(self.model)
        return {rid for rid, rec in self.model.items() if flt.matches(rec.metadata)}

    def _add(self, rid: str, vector: np.ndarray, item: Item, source: str | None) -> None:
        self.model[rid] = ModelRecord(vector, item.text, dict(item.metadata or {}), source)

    def _check_record(self, rec: Record | Hit, fields: frozenset[str]) -> None:
        want = self.model[rec.id]
        assert rec.text == (want.text if "text" in fields else None)
        assert _json(rec.metadata) == _json(want.metadata if "metadata" in fields else {})
        assert rec.source == (want.source if "source" in fields else None)
        if "vector" in fields:
            assert rec.vector is not None
            assert rec.vector.dtype == np.float32
            np.testing.assert_array_equal(rec.vector, want.vector)
        else:
            assert rec.vector is None

    # ---- lifecycle -------------------------------------------------------------------------------

    @initialize(
        metric=st.sampled_from(METRICS),
        checkpoint_every=st.sampled_from([1, 3, 1000]),
        index=st.sampled_from(INDEXES),
        exact_max=st.sampled_from([0, 1000, "auto"]),
        range_max_repeat=st.sampled_from([0, 128, 2**40]),
        seed=st.lists(items, max_size=10, unique_by=lambda it: it.id),
    )
    def create(
        self,
        metric: Metric,
        checkpoint_every: int,
        index: dict[str, Any],
        exact_max: int | str,
        range_max_repeat: int,
        seed: list[Item],
    ) -> None:
        self.metric = metric
        self.index = index
        # Tiny thresholds: ANN indexes are built, merged and rebuilt (in the background) within a run.
        self.settings = Settings(  # type: ignore[call-arg]
            storage=StorageSettings(sync_writes=False, checkpoint_every_ops=checkpoint_every),
            index=IndexSettings(
                merge_min_records=3,
                merge_ratio=0.01,
                tombstone_share=0.3,
                ivf_train_min=4,
                exact_max_admitted=exact_max,
                range_max_repeat=range_max_repeat,
            ),
        )
        self.db = Database(self.path, settings=self.settings)
        self._col = self.db.create_collection(
            NAME, dim=DIM, metric=metric, index=index, text_index=TEXT_INDEX
        )
        assert self.db.list_collections() == [NAME]
        if seed:
            self.upsert(seed)

    @rule(mode=st.sampled_from(["reopen", "no_checkpoint", "save_checkpoint", "stale_checkpoint", "drop"]))
    def lifecycle(self, mode: str) -> None:
        """Close and reopen the database, after touching the index checkpoint; or drop and recreate.

        - ``no_checkpoint``: the checkpoint is deleted, the index is rebuilt from the store;
        - ``save_checkpoint``: keep a copy of the checkpoint that closing wrote;
        - ``stale_checkpoint``: put that older copy back (a restored backup): it must not be trusted.
        """
        assert self.db is not None
        if mode == "drop":
            self.db.drop_collection(NAME)
            with pytest.raises(ClosedError):
                self.col.count()
            self._col = self.db.create_collection(
                NAME, dim=DIM, metric=self.metric, index=self.index, text_index=TEXT_INDEX
            )
            self.model.clear()
            self.saved_checkpoint = None
            return
        old = self.col
        self.db.close()
        self.db = None
        self._col = None
        with pytest.raises(ClosedError):
            old.count()
        ckpt = self.checkpoint_path
        filters = ckpt.with_name("filters.ckpt")  # the filter bitmaps' checkpoint goes the same way
        if mode == "no_checkpoint":
            ckpt.unlink(missing_ok=True)
            filters.unlink(missing_ok=True)
        elif mode == "save_checkpoint":
            self.saved_checkpoint = ckpt.read_bytes() if ckpt.exists() else None
            self.saved_filters = filters.read_bytes() if filters.exists() else None
        elif mode == "stale_checkpoint" and self.saved_checkpoint is not None:
            ckpt.write_bytes(self.saved_checkpoint)
            if self.saved_filters is not None:
                filters.write_bytes(self.saved_filters)
        self.db = Database(self.path, settings=self.settings)
        self._col = self.db.get_collection(NAME)

    @rule()
    def wait_for_index(self) -> None:
        assert self.col.wait_for_index(timeout=60)
        state = self.col.info()["index_state"]
        assert state["building"] is None
        assert state["vectors"] == len(self.model)

    # ---- writes ----------------------------------------------------------------------------------

    @rule(batch=batches)
    def upsert(self, batch: list[Item]) -> None:
        vecs = [self._vector(it.vector) for it in batch]
        n = self.col.upsert(
            [it.id for it in batch],
            np.stack(vecs),
            texts=[it.text for it in batch],
            metadatas=[it.metadata for it in batch],
            sources=[it.source for it in batch],
        )
        assert n == len(batch)
        for it, v in zip(batch, vecs, strict=True):
            self._add(it.id, v, it, it.source)

    @rule(batch=batches, data=st.data(), defect=st.sampled_from(["duplicate", "nan", "metadata", "filter"]))
    def write_rejected(self, batch: list[Item], data: st.DataObject, defect: str) -> None:
        """A batch with one bad item is rejected whole: nothing is written (checked by the invariants)."""
        if defect == "filter":
            with pytest.raises(InvalidFilterError):
                self.col.delete(filter={})  # an empty filter never means "everything"
            return
        ids = [it.id for it in batch]
        vecs = [self._vector(it.vector).tolist() for it in batch]
        metas: list[dict[str, Any] | None] = [it.metadata for it in batch]
        at = data.draw(st.integers(0, len(batch) - 1), label="at")
        expected: type[VecDBError] = DuplicateIdError
        if defect == "duplicate":
            ids.append(ids[at])
            vecs.append(self._vector(data.draw(vectors, label="dup vector")).tolist())
            metas.append(None)
        elif defect == "nan":
            vecs[at][data.draw(st.integers(0, DIM - 1), label="component")] = float("nan")
            expected = InvalidVectorError
        else:
            metas[at] = {"bad": float("inf")}
            expected = InvalidMetadataError
        with pytest.raises(expected):
            self.col.upsert(ids, vecs, metadatas=metas)

    @rule(ids=st.lists(st.sampled_from([*ID_POOL, "missing"]), min_size=1, max_size=4))
    def delete_ids(self, ids: list[str]) -> None:
        present = {rid for rid in ids if rid in self.model}
        assert self.col.delete(ids) == len(present)
        for rid in present:
            del self.model[rid]

    @rule(raw=simple_filters)
    def delete_filter(self, raw: dict[str, Any]) -> None:
        doomed = self._matching(raw)
        assert self.col.delete(filter=raw) == len(doomed)
        for rid in doomed:
            del self.model[rid]

    @rule(source=st.sampled_from(SOURCES))
    def delete_source(self, source: str) -> None:
        doomed = {rid for rid, rec in self.model.items() if rec.source == source}
        assert self.col.delete(source=source) == len(doomed)
        for rid in doomed:
            del self.model[rid]

    @rule(source=st.sampled_from(SOURCES), batch=st.lists(items, max_size=4, unique_by=lambda it: it.id))
    def replace_source(self, source: str, batch: list[Item]) -> None:
        vecs = [self._vector(it.vector) for it in batch]
        removed = {rid for rid, rec in self.model.items() if rec.source == source}
        removed |= {it.id for it in batch if it.id in self.model}
        n = self.col.replace_source(
            source,
            [it.id for it in batch],
            np.stack(vecs) if vecs else np.empty((0, DIM), dtype=np.float32),
            texts=[it.text for it in batch],
            metadatas=[it.metadata for it in batch],
        )
        assert n == (len(batch) if batch else len(removed))
        for rid in removed:
            del self.model[rid]
        for it, v in zip(batch, vecs, strict=True):
            self._add(it.id, v, it, source)

    # ---- reads -----------------------------------------------------------------------------------

    @rule(
        queries=st.lists(vectors, min_size=1, max_size=3),
        k=st.integers(1, 6),
        raw=search_filters,
        include=includes,
    )
    def search(self, queries: list[list[float]], k: int, raw: Any, include: list[str]) -> None:
        qs = np.stack([self._vector(q) for q in queries])
        results = self.col.search(qs, k, filter=raw, include=include)
        assert len(results) == len(qs)
        allowed = self._matching(raw)
        fields = frozenset(include)
        for q, hits in zip(qs, results, strict=True):
            model_scores = {rid: _score(self.metric, q, self.model[rid].vector) for rid in allowed}
            ordered = sorted(model_scores.values(), reverse=self.metric != "l2")
            expected = ordered[:k]
            assert len(hits) == len(expected), (len(hits), len(expected))
            got_ids = [h.id for h in hits]
            assert len(set(got_ids)) == len(got_ids), got_ids
            for hit, want in zip(hits, expected, strict=True):
                assert hit.id in allowed, hit.id
                assert _close(hit.score, want), (hit.id, hit.score, want)
                assert _close(hit.score, model_scores[hit.id]), (hit.id, hit.score, model_scores[hit.id])
                self._check_record(hit, fields)

    @rule(ids=st.lists(st.sampled_from([*ID_POOL, "missing"]), min_size=1, max_size=6), include=includes)
    def get(self, ids: list[str], include: list[str]) -> None:
        recs = self.col.get(ids, include=include)
        assert [r.id for r in recs] == [rid for rid in dict.fromkeys(ids) if rid in self.model]
        for rec in recs:
            self._check_record(rec, frozenset(include))

    @rule(raw=search_filters)
    def count(self, raw: Any) -> None:
        assert self.col.count(raw) == len(self._matching(raw))

    @rule(
        word=st.sampled_from(WORDS),
        other=st.sampled_from(WORDS),
        op=st.sampled_from(["$contains", "$not_contains", "$or"]),
        raw=search_filters,
    )
    def count_text(self, word: str, other: str, op: str, raw: Any) -> None:
        """text_filter counts (alone and with a metadata filter) against the model's tokens."""

        def has(rid: str, w: str) -> bool:
            text = self.model[rid].text or ""
            return w.lower() in [t.lower() for t in re.split("[ \t\n\x0c\r]+", text) if t]

        if op == "$or":
            tf: dict[str, Any] = {"$or": [{"$contains": word}, {"$contains": other}]}
            want = {rid for rid in self.model if has(rid, word) or has(rid, other)}
        else:
            tf = {op: word}
            want = {rid for rid in self.model if has(rid, word) == (op == "$contains")}
        assert self.col.count(text_filter=tf) == len(want)
        assert self.col.count(raw, text_filter=tf) == len(want & self._matching(raw))
        hits = self.col.search(texts=[word], mode="text", k=len(ID_POOL), include=[])[0]
        assert {h.id for h in hits} == {rid for rid in self.model if has(rid, word)}

    # ---- invariants ------------------------------------------------------------------------------

    @invariant()
    def counts_agree(self) -> None:
        assert self.col.count() == len(self.model)
        per_source = Counter(rec.source for rec in self.model.values() if rec.source is not None)
        assert [(s.source, s.count) for s in self.col.list_sources()] == sorted(per_source.items())

    @invariant()
    def records_agree(self) -> None:
        recs = self.col.get(ID_POOL, include=sorted(INCLUDE_FIELDS))
        assert [r.id for r in recs] == [rid for rid in ID_POOL if rid in self.model]
        for rec in recs:
            self._check_record(rec, INCLUDE_FIELDS)


VecDBMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("VECDB_SM_EXAMPLES", "40")), stateful_step_count=30, deadline=None
)
TestVecDB = VecDBMachine.TestCase
