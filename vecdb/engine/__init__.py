"""The engine: Database (data directory, collections) and Collection (write path, read path, recovery),
and their contract, the ``CollectionAPI`` and ``DatabaseAPI`` Protocols (``vecdb.engine.api``).

Public modules: this package, ``vecdb.engine.api`` and ``vecdb.engine.validate``; a variant of the
engine (``vecdb.cluster``) imports nothing else from it.
"""

from typing import TYPE_CHECKING

from vecdb.engine.api import CollectionAPI, DatabaseAPI
from vecdb.engine.capacity import Eviction
from vecdb.engine.collection import Collection
from vecdb.engine.database import Database

__all__ = ["Collection", "CollectionAPI", "Database", "DatabaseAPI", "Eviction"]

if TYPE_CHECKING:

    def _implements(c: Collection, d: Database) -> tuple[CollectionAPI, DatabaseAPI]:
        """mypy checks here that the engine implements its contract."""
        return c, d
