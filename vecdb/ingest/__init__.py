"""Keep a collection in step with folders of documents, file by file (``vecdb ingest``).

``documents`` reads files into text (txt, md, rst, html; pdf with the ``pdf`` extra), ``chunks`` splits
text into chunks with their spans, ``sync`` plans and applies the changes against a collection: the
embedded engine's or a remote one through ``vecdb_client`` (both have the same method names).
"""

from vecdb.ingest.chunks import Chunk, split_text
from vecdb.ingest.documents import SUPPORTED_SUFFIXES, UnreadableFileError, discover, glob_regex, read_text
from vecdb.ingest.sync import FileReport, IngestSummary, chunk_id, ingest

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "FileReport",
    "IngestSummary",
    "UnreadableFileError",
    "chunk_id",
    "discover",
    "glob_regex",
    "ingest",
    "read_text",
    "split_text",
]
