"""Merging the shards' answers into the one a single collection would give. Pure functions (no Ray,
no I/O): each takes the per-shard results in shard order.

- ``merge_hits``: each shard returns its own exact top-k, so the merged top-k equals the unsharded one
  on a flat index (cosine/ip: higher first, l2: lower first, equal scores by id).
- ``merge_get``: request order, each id once, missing ids skipped.
- ``sum_counts`` / ``merge_sources``: sums (sources sorted).
- ``merge_index_state``: the vector counts summed (what metrics read), each shard's own state kept.
- ``merge_scroll``: id order (UTF-8 bytes); a shard whose page stopped early bounds the merged page,
  so nothing is skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from vecdb.engine.validate import Fusion, decode_cursor, encode_cursor
from vecdb.index.fusion import fuse
from vecdb.types import Hit, Metric, Record, SourceInfo

__all__ = [
    "fuse_hits",
    "merge_get",
    "merge_hits",
    "merge_index_state",
    "merge_scroll",
    "merge_sources",
    "sum_counts",
]


def merge_hits(per_shard: Sequence[list[list[Hit]]], k: int, metric: Metric) -> list[list[Hit]]:
    """The best ``k`` hits per query over every shard's hits for it (``per_shard[s][q]``)."""
    lower_is_better = metric == "l2"

    def key(hit: Hit) -> tuple[float, str]:
        return (hit.score if lower_is_better else -hit.score, hit.id)

    return [sorted(itertools.chain(*per_query), key=key)[:k] for per_query in zip(*per_shard, strict=True)]


def fuse_hits(
    vector: list[list[Hit]],
    text: list[list[Hit]],
    fusion: Fusion,
    k: int,
    metric: Metric,
    score_threshold: float | None,
    explain: bool,
) -> list[list[Hit]]:
    """Hybrid search: each query's merged vector and text candidates (best first) fused as the engine
    fuses them (``vecdb.index.fusion``); ``score_threshold`` applies to the fused score."""
    out = []
    for vrow, trow in zip(vector, text, strict=True):
        by_id = {h.id: h for h in trow} | {h.id: h for h in vrow}
        fused = fuse(
            [(h.id, h.score) for h in vrow],
            [(h.id, h.score) for h in trow],
            fusion,
            k,
            lower_better=metric == "l2",
        )
        out.append(
            [
                replace(by_id[i], score=score, explain=why if explain else None)
                for i, score, why in fused
                if score_threshold is None or score >= score_threshold
            ]
        )
    return out


def merge_get(per_shard: Sequence[list[Record]], ids: Sequence[str]) -> list[Record]:
    """The records found for ``ids``, in ``ids`` order, each once."""
    by_id = {rec.id: rec for recs in per_shard for rec in recs}
    return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]


def sum_counts(per_shard: Sequence[int]) -> int:
    return sum(per_shard)


def merge_sources(per_shard: Sequence[list[SourceInfo]]) -> list[SourceInfo]:
    """Every source with its records summed over the shards, sorted by source."""
    counts: dict[str, int] = {}
    for infos in per_shard:
        for info in infos:
            counts[info.source] = counts.get(info.source, 0) + info.count
    return [SourceInfo(s, counts[s]) for s in sorted(counts)]


def merge_scroll(
    pages: Sequence[tuple[list[Record], str | None]], limit: int
) -> tuple[list[Record], str | None]:
    """One page of at most ``limit`` records from every shard's page after the same cursor, and the
    next cursor (None once every shard is exhausted)."""
    bound: bytes | None = None  # the smallest position a shard with more to give has reached
    for _, nxt in pages:
        pos = decode_cursor(nxt)
        if pos is not None and (bound is None or pos < bound):
            bound = pos
    merged = sorted((rec for recs, _ in pages for rec in recs), key=lambda rec: rec.id.encode("utf-8"))
    if bound is not None:
        merged = [rec for rec in merged if rec.id.encode("utf-8") <= bound]
    page = merged[:limit]
    if len(merged) > limit:
        return page, encode_cursor(page[-1].id.encode("utf-8"))
    return page, None if bound is None else encode_cursor(bound)


def merge_index_state(per_shard: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The shards' index states as one: vector counts summed, ``building`` the first build running (or
    None), and ``shards``, each shard's own state."""
    summed = {
        key: sum(int(state.get(key, 0)) for state in per_shard)
        for key in ("vectors", "ann_vectors", "delta_vectors", "tombstones")
    }
    building = next((state["building"] for state in per_shard if state.get("building")), None)
    return {**summed, "building": building, "shards": list(per_shard)}
