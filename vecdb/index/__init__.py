"""FAISS index wrappers, index specs and the search planner. Imports only the leaves."""

from vecdb.index.ann import AnnIndex, BuildCancelledError
from vecdb.index.audit import AuditSample, RecallAudit
from vecdb.index.calibrate import Calibration, recall_at_k
from vecdb.index.device import Device, GpuDevice, gpu_count, resolve_device
from vecdb.index.flat import FlatIndex, set_search_threads
from vecdb.index.spec import (
    AnySpec,
    AutoSpec,
    FlatSpec,
    HnswSpec,
    IndexSpec,
    IvfSpec,
    SearchParams,
    parse_index_spec,
    parse_search_params,
    target_of,
)
from vecdb.index.tiered import IndexPolicy, Job, TieredIndex

__all__ = [
    "AnnIndex",
    "AnySpec",
    "AuditSample",
    "AutoSpec",
    "BuildCancelledError",
    "Calibration",
    "Device",
    "FlatIndex",
    "FlatSpec",
    "GpuDevice",
    "HnswSpec",
    "IndexPolicy",
    "IndexSpec",
    "IvfSpec",
    "Job",
    "RecallAudit",
    "SearchParams",
    "TieredIndex",
    "gpu_count",
    "parse_index_spec",
    "parse_search_params",
    "recall_at_k",
    "resolve_device",
    "set_search_threads",
    "target_of",
]
