"""Sharding over Ray (the ``vecdb[cluster]`` extra). Nothing outside this package imports it, except
``vecdb serve`` when given ``--ray-address``.

The package composes the engine through its public modules only (``vecdb.engine``, ``vecdb.engine.api``,
``vecdb.engine.validate``). Ray is imported by ``replicas`` and ``database`` alone, and only when one of
their names is first used here: ``collection``, ``routing``, ``merge`` and ``shard`` run without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vecdb.cluster.collection import ShardedCollection
    from vecdb.cluster.database import ClusterDatabase
    from vecdb.cluster.routing import shard_of
    from vecdb.cluster.shard import ShardActor

__all__ = ["ClusterDatabase", "ShardActor", "ShardedCollection", "shard_of"]

_HOME = {
    "ClusterDatabase": "vecdb.cluster.database",
    "ShardActor": "vecdb.cluster.shard",
    "ShardedCollection": "vecdb.cluster.collection",
    "shard_of": "vecdb.cluster.routing",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
