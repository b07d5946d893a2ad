"""The replicas of each shard as Ray actors: placement, start-up, and the calls with their failover.

Writes go to every replica of a shard; a replica that is down (Ray is restarting it) is retried until
the write's deadline. Reads go to one replica (round robin over calls) and fall back to the others.
``ShardedCollection`` merges and raises; this module only reaches the actors.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from vecdb.cluster.collection import NoReplicaError
from vecdb.cluster.shard import ShardActor
from vecdb.config import Settings
from vecdb.errors import UnavailableError

__all__ = ["START_TIMEOUT_SECONDS", "RayReplicas", "place_replicas", "start_replicas"]

#: How long a collection's actors may take to start (be placed, open their stores).
START_TIMEOUT_SECONDS = 120.0


def place_replicas(shards: int, replicas: int) -> list[list[str]]:
    """A node id for each replica of each shard: the alive nodes with CPUs, in turn, so a shard's
    replicas land on different nodes whenever there are at least ``replicas`` of them."""
    alive: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    nodes = sorted(n["NodeID"] for n in alive if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0)
    if not nodes:
        raise UnavailableError("the Ray cluster has no alive node with CPUs to hold shards")
    return [[nodes[(s * replicas + r) % len(nodes)] for r in range(replicas)] for s in range(shards)]


class RayReplicas:
    """The replica actors of one shard (a ``ReplicaGroup``)."""

    def __init__(self, actors: list[Any]) -> None:
        self.actors = actors

    def read(self, method: str, kwargs: dict[str, Any], turn: int) -> Callable[[], Any]:
        n = len(self.actors)
        order = [(turn + i) % n for i in range(n)]
        first = self.actors[order[0]].call.remote(method, kwargs)

        def wait() -> Any:
            ref = first
            for tried in range(1, n + 1):
                try:
                    return ray.get(ref)
                except RayActorError:
                    if tried == n:
                        raise NoReplicaError from None
                    ref = self.actors[order[tried]].call.remote(method, kwargs)
            raise AssertionError("unreachable")

        return wait

    def write(
        self, method: str, kwargs: dict[str, Any], deadline: float
    ) -> Callable[[], tuple[list[Any], list[int]]]:
        refs = [actor.call.remote(method, kwargs) for actor in self.actors]

        def wait() -> tuple[list[Any], list[int]]:
            results: list[Any] = [None] * len(self.actors)
            down: list[int] = []
            for r, first in enumerate(refs):
                ref = first
                while True:
                    try:
                        results[r] = ray.get(ref)
                        break
                    except RayActorError:
                        if time.monotonic() > deadline:
                            down.append(r)
                            break
                        time.sleep(0.2)
                        ref = self.actors[r].call.remote(method, kwargs)
            return results, down

        return wait

    def close(self) -> None:
        """Close every replica's store (checkpointing its index), then end the actors."""
        self._end("close")

    def destroy(self) -> None:
        """Delete every replica's data and end the actors."""
        self._end("destroy")

    def _end(self, method: str) -> None:
        refs = [getattr(a, method).remote() for a in self.actors]
        for ref in refs:
            with contextlib.suppress(RayActorError):  # a dead replica recovers from its store next time
                ray.get(ref)
        for actor in self.actors:
            ray.kill(actor, no_restart=True)


def start_replicas(
    name: str,
    config: dict[str, Any],
    path: Path,
    settings: Settings,
    actor_options: dict[str, Any] | None,
) -> list[RayReplicas]:
    """Start the ``shards x replicas`` actors of collection ``name`` (each pinned to the node its data
    lives on, ``config["placement"]``) and wait until every one has opened its store. Raises
    UnavailableError (and ends them all) when they do not within ``START_TIMEOUT_SECONDS``."""
    shards, replicas = int(config["shards"]), int(config["replicas"])
    actor_class = ray.remote(ShardActor)
    base = {"max_restarts": -1, "max_task_retries": 0, **(actor_options or {"num_cpus": 1})}
    # A restarted actor must find its own store, never start empty on another node.
    placement: list[list[str]] | None = config.get("placement")
    shard_config = {"dim": int(config["dim"]), "metric": config["metric"], "index": config["index"]}

    def start(s: int, r: int) -> Any:
        opts = dict(base)
        if placement is not None:
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(placement[s][r], soft=False)
        return actor_class.options(**opts).remote(str(path / f"s{s}-r{r}"), name, shard_config, settings)

    actors = [[start(s, r) for r in range(replicas)] for s in range(shards)]
    # Surface a start-up failure (bad path, locked store, no room in the cluster) here rather than on
    # the first request.
    everyone = [a for row in actors for a in row]
    try:
        ray.get([a.ping.remote() for a in everyone], timeout=START_TIMEOUT_SECONDS)
    except (GetTimeoutError, RayActorError) as exc:
        for actor in everyone:
            ray.kill(actor, no_restart=True)
        raise UnavailableError(
            f"collection {name!r}: its {len(everyone)} shard actors did not all start within "
            f"{START_TIMEOUT_SECONDS:.0f} s (not enough resources in the Ray cluster for "
            f"{actor_options or {'num_cpus': 1}} each?): {exc}",
            shards=shards,
            replicas=replicas,
        ) from exc
    return [RayReplicas(row) for row in actors]
