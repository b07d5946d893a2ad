"""The engine: Database (data directory, collections) and Collection (write path, read path, recovery)."""

from vecdb.engine.collection import Collection
from vecdb.engine.database import Database

__all__ = ["Collection", "Database"]
