"""FAISS index wrappers, index specs and the search planner. Imports only the leaves."""

from vecdb.index.ann import AnnIndex, BuildCancelledError
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
)
from vecdb.index.tiered import IndexPolicy, Job, TieredIndex

__all__ = [
    "AnnIndex",
    "AnySpec",
    "AutoSpec",
    "BuildCancelledError",
    "Device",
    "FlatIndex",
    "FlatSpec",
    "GpuDevice",
    "HnswSpec",
    "IndexPolicy",
    "IndexSpec",
    "IvfSpec",
    "Job",
    "SearchParams",
    "TieredIndex",
    "gpu_count",
    "parse_index_spec",
    "parse_search_params",
    "resolve_device",
    "set_search_threads",
]
