"""Prometheus metrics: requests and latency per operation and transport; records and index state per
collection, read from the engine at scrape time (never stale)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vecdb.engine import DatabaseAPI

__all__ = ["Metrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _CollectionCollector(Collector):
    def __init__(self, db: DatabaseAPI) -> None:
        self._db = db

    def collect(self) -> Iterator[Metric]:
        records = GaugeMetricFamily("vecdb_records", "Records per collection.", labels=["collection"])
        vectors = GaugeMetricFamily(
            "vecdb_index_vectors",
            "Index entries per collection and part (ann, delta, tombstones).",
            labels=["collection", "part"],
        )
        building = GaugeMetricFamily(
            "vecdb_index_building", "1 while a background index build runs.", labels=["collection"]
        )
        damaged = GaugeMetricFamily(
            "vecdb_collection_damaged",
            "1 for a collection that failed an integrity check or could not be opened (vecdb check "
            "says why).",
            labels=["collection"],
        )
        target = GaugeMetricFamily(
            "vecdb_recall_target", "Recall@k target of an ANN collection's index.", labels=["collection"]
        )
        estimate = GaugeMetricFamily(
            "vecdb_recall_estimate",
            "Recall@k delivered, estimated by the online audit (sampled queries re-run exactly).",
            labels=["collection"],
        )
        samples = GaugeMetricFamily(
            "vecdb_recall_audit_samples", "Queries behind vecdb_recall_estimate.", labels=["collection"]
        )
        knob = GaugeMetricFamily(
            "vecdb_recall_knob",
            "ef_search or nprobe the calibration chose per k band, with its calibrated recall estimate "
            "in vecdb_recall_calibrated.",
            labels=["collection", "param", "k_band"],
        )
        calibrated = GaugeMetricFamily(
            "vecdb_recall_calibrated",
            "Recall@k the calibration measured at the chosen knob, per k band.",
            labels=["collection", "k_band"],
        )
        memory = GaugeMetricFamily(
            "vecdb_memory_bytes",
            "Bytes held per collection, by component (index, store) and part (ann_vectors, ann_graph, "
            "delta_vectors, memtables, block_cache, ...; docs/indexes.md#memory).",
            labels=["collection", "component", "part"],
        )
        for name in self._db.damaged():
            damaged.add_metric([name], 1)
        for col in self._db.open_collections():
            try:
                info = col.info()
            except Exception:  # closed or dropped between listing and reading: skip it
                continue
            state = info["index_state"]
            records.add_metric([col.name], info["count"])
            vectors.add_metric([col.name, "ann"], state["ann_vectors"])
            vectors.add_metric([col.name, "delta"], state["delta_vectors"])
            vectors.add_metric([col.name, "tombstones"], state["tombstones"])
            building.add_metric([col.name], 1 if state["building"] else 0)
            for component in ("index", "store"):
                for part, nbytes in (info.get("memory") or {}).get(component, {}).items():
                    memory.add_metric([col.name, component, part], nbytes)
            recall = state.get("recall") or {}
            if recall.get("target") is not None:
                target.add_metric([col.name], recall["target"])
            audit = recall.get("audit") or {}
            if audit.get("estimated_recall") is not None:
                estimate.add_metric([col.name], audit["estimated_recall"])
            if audit:
                samples.add_metric([col.name], audit["samples"])
            cal = recall.get("calibration")
            if cal:
                for band in cal["bands"]:
                    knob.add_metric([col.name, cal["param"], str(band["k"])], band["value"])
                    calibrated.add_metric([col.name, str(band["k"])], band["estimated_recall"])
        yield records
        yield vectors
        yield building
        yield damaged
        yield target
        yield estimate
        yield samples
        yield knob
        yield calibrated
        yield memory


class Metrics:
    """One registry per server, so tests can run several servers in one process."""

    def __init__(self, db: DatabaseAPI) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vecdb_requests",
            "Requests by transport, operation and outcome code.",
            ["transport", "operation", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vecdb_request_seconds",
            "Request latency by transport and operation.",
            ["transport", "operation"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_CollectionCollector(db))

        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def reject(self, transport: str, operation: str, code: str) -> None:
        """Count a request refused before it reached the engine (a body that fails validation): in
        ``vecdb_requests_total`` only, since its latency is not the operation's."""
        self.requests.labels(transport, operation, code).inc()

    def observe(self, transport: str, operation: str, code: str, seconds: float) -> None:
        key = (transport, operation, code)
        children = self._children.get(key)
        if children is None:  # label lookups cost ~10 us a call: resolve each combination once
            children = (self.requests.labels(*key), self.latency.labels(transport, operation))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
