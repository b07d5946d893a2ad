"""vecdb: a vector database. Embedded use::

from vecdb import Database
with Database("./data") as db:
    col = db.create_collection("docs", dim=384, metric="cosine")
"""

from vecdb.config import Settings
from vecdb.engine import Collection, Database
from vecdb.errors import VecDBError
from vecdb.types import Hit, Record, SourceInfo

__all__ = ["Collection", "Database", "Hit", "Record", "Settings", "SourceInfo", "VecDBError"]
__version__ = "0.1.0"
