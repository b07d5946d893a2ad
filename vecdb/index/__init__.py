"""FAISS index wrappers and index specs. Imports only the leaves."""

from vecdb.index.flat import FlatIndex, set_search_threads
from vecdb.index.spec import FlatSpec, IndexSpec, parse_index_spec

__all__ = ["FlatIndex", "FlatSpec", "IndexSpec", "parse_index_spec", "set_search_threads"]
