"""vecdb-client: the Python client of the vecdb server, over REST or gRPC, sync or async.

>>> from vecdb_client import Client
>>> with Client("http://127.0.0.1:8080") as client:
...     docs = client.create_collection("docs", dim=384)
...     docs.upsert(["a"], [[0.1] * 384], texts=["hello"], sources=["notes.md"])
...     hits = docs.search([0.1] * 384, k=5)

``vecdb_client.langchain.VecDBVectorStore`` (extra ``vecdb-client[langchain]``) is a LangChain VectorStore.
"""

from vecdb_client.aio import AsyncClient, AsyncCollection
from vecdb_client.client import Client, Collection
from vecdb_client.errors import VecDBError
from vecdb_client.types import CollectionInfo, Hit, Record, SnapshotInfo, SourceInfo

__all__ = [
    "AsyncClient",
    "AsyncCollection",
    "Client",
    "Collection",
    "CollectionInfo",
    "Hit",
    "Record",
    "SnapshotInfo",
    "SourceInfo",
    "VecDBError",
]

__version__ = "0.1.0"
