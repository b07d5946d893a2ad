"""Sharding over Ray (the ``vecdb[cluster]`` extra). Nothing outside this package imports it, except
``vecdb serve`` when given ``--ray-address``."""

from vecdb.cluster.collection import ShardedCollection, shard_of
from vecdb.cluster.database import ClusterDatabase
from vecdb.cluster.shard import ShardActor

__all__ = ["ClusterDatabase", "ShardActor", "ShardedCollection", "shard_of"]
