"""One shard replica: a Ray actor holding an embedded vecdb collection in its own data directory.

The actor opens a plain ``Database`` at its path (``DATA_DIR/shards/COLLECTION/sSHARD-rREPLICA`` on the
node Ray placed it on) and creates the collection there on first start. RocksDB is the source of truth:
when the actor dies, Ray restarts it (``max_restarts=-1``) by running ``__init__`` again, which reopens
the same store and recovers the index exactly as a restarted server would.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from vecdb.config import Settings
from vecdb.engine import Database
from vecdb.errors import CollectionNotFoundError, VecDBError
from vecdb.operations import OPERATIONS

__all__ = ["SHARD_METHODS", "ShardActor", "ShardFailure"]

#: The collection methods a shard serves: every collection operation (``vecdb.operations``) and ``info``
#: (get_collection's answer).
SHARD_METHODS = frozenset(op.name for op in OPERATIONS if op.target == "collection") | {"info"}


class ShardFailure:
    """A VecDBError raised in a shard, carried back whole (an exception's ``details`` do not survive
    pickling, and Ray's wrapped task errors lose the class's own fields)."""

    def __init__(self, exc: VecDBError) -> None:
        self.cls = type(exc)
        self.message = exc.message
        self.details = dict(exc.details)

    def error(self) -> VecDBError:
        return self.cls(self.message, **self.details)


class ShardActor:
    """Wraps ``Database(path)`` and its one collection ``name``. Made a Ray actor by ``ray.remote``
    (``vecdb.cluster.collection`` does it, with ``max_restarts=-1``)."""

    def __init__(self, path: str, name: str, config: dict[str, Any], settings: Settings) -> None:
        self.path = Path(path)
        self.name = name
        self.db = Database(self.path, settings=settings.model_copy(update={"data_dir": self.path}))
        try:
            self.col = self.db.get_collection(name)
        except CollectionNotFoundError:
            self.col = self.db.create_collection(
                name,
                dim=config["dim"],
                metric=config["metric"],
                index=config["index"],
                text_index=config.get("text_index"),
            )

    def call(self, method: str, kwargs: dict[str, Any]) -> Any:
        """Run ``collection.method(**kwargs)`` (keywords only: a parameter the engine reorders or
        renames cannot be filled silently with another's value); a VecDBError comes back as a
        ShardFailure."""
        if method not in SHARD_METHODS:
            raise ValueError(f"not a shard method: {method}")
        try:
            return getattr(self.col, method)(**kwargs)
        except VecDBError as exc:
            return ShardFailure(exc)

    def ping(self) -> int:
        """The worker's process id (tests kill and watch it)."""
        import os

        return os.getpid()

    def close(self) -> None:
        """Checkpoint and close the store (before the actor is killed on a clean shutdown)."""
        self.db.close()

    def destroy(self) -> None:
        """Close and delete this replica's data (drop_collection)."""
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)
