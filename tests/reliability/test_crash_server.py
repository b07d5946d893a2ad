"""Crash safety of a real server: SIGKILL ``vecdb serve`` under concurrent REST and gRPC load, restart it on
the same data directory, and check the data against an exact model.

Pinned, round after round (``scale(3, 30)`` rounds; ``VECDB_CRASH_ROUNDS`` overrides, ``VECDB_CRASH_SEED``
replays the op streams and delays, not the exact kill points):

- every acknowledged write is there after the restart, bit for bit (vector, text, metadata, source), and
  every acknowledged delete (by id, by source, by filter, replace_source) is gone;
- the one write per client that was in flight at the kill is all or nothing: the client's slice equals
  its model either without that write or with all of it, never a part of a batch or of a source;
- the index is the store: ``info()`` count == index vectors == ``count()`` (REST and gRPC) == the model;
  ``list_sources`` counts, per-client filtered counts and filtered searches match the model exactly,
  and a search over everything (HNSW's ef above the graph's size) returns exactly the live ids;
- while the server is up, no call fails and reads agree with the caller's own acknowledged writes;
- the server logs no warning or error on restart (no index rebuild, no failed background job).

Four worker threads (two REST, two gRPC clients) each own disjoint ids and sources (``crash_load.py``),
so the model is exact whatever the interleaving. The collection has no embedding model (dim 8, ``auto``
index with a low threshold, so kills also land in HNSW builds, delta merges and index checkpoints, which
the server is told to write every 20 writes). The long run also kills some starts mid-recovery.
Restart-to-ready times and the rest go to the reliability report (``record("crash_server", ...)``).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from crash_load import (
    COLLECTION,
    DIM,
    Model,
    Snapshot,
    Worker,
    apply_op,
    describe_diff,
    describe_op,
    expected_snapshot,
    make_client,
    random_vectors,
    read_snapshot,
    vector_for,
)
from report import LONG, record, scale
from serverproc import ServerProcess, free_port, launch

from vecdb.storage.checkpoint import read_checkpoint
from vecdb_client.client import Collection

ROUNDS = int(os.environ.get("VECDB_CRASH_ROUNDS", int(scale(3, 30))))
WORKERS = ("rest", "rest", "grpc", "grpc")
AUTO_THRESHOLD = 400  # live records from which the auto index builds HNSW in the background
SERVER_ARGS = (
    "--no-embedding.enabled",
    "--storage.checkpoint-every-ops",
    "20",
    "--index.merge-min-records",
    "100",
)
JOIN_TIMEOUT_S = 90.0
BAD_LEVELS = {"WARNING", "ERROR", "CRITICAL"}


def kill_delay(rng: random.Random) -> float:
    """Seconds of load before the kill: short in ``make test``; in the long run from instant to long."""
    if not LONG:
        return rng.uniform(0.5, 1.5)
    return rng.choice([rng.uniform(0.02, 0.3), rng.uniform(0.3, 2.0), rng.uniform(2.0, 6.0)])


def kill(sp: ServerProcess) -> None:
    sp.exit_checked = True
    sp.close_channels()
    rc = sp.proc.poll()
    assert rc is None, f"the server exited by itself with {rc} before the kill:\n{sp.log()[-6000:]}"
    sp.proc.send_signal(signal.SIGKILL)
    assert sp.proc.wait(30) == -signal.SIGKILL


def start(data: Path, logs: Path, rest_port: int, grpc_port: int) -> ServerProcess:
    return launch(data, logs, *SERVER_ARGS, rest_port=rest_port, grpc_port=grpc_port)


def bad_log_lines(sp: ServerProcess) -> list[str]:
    """Log lines that mean something went wrong on the server's side: warnings (an index rebuilt from the
    store after a restart), errors (failed background jobs, 500s) and anything that is not a JSON line."""
    bad = []
    for line in sp.log().splitlines():
        try:
            level = json.loads(line).get("level")
        except (ValueError, AttributeError):
            level = None
        if level is None or level in BAD_LEVELS:
            bad.append(line[:2000])
    return bad


def checkpoint_state(data: Path) -> tuple[int, bool]:
    """(sequence number the index checkpoint covers, whether a checkpoint write was cut short)."""
    col_dir = data / "collections" / COLLECTION
    ckpt = col_dir / "index.ckpt"
    return (read_checkpoint(ckpt).seq if ckpt.exists() else 0), any(col_dir.glob(".*.tmp"))


def load_seconds(sp: ServerProcess) -> float | None:
    """The server's own figure for opening (recovering) the collections, from its log."""
    m = re.search(r"loaded \d+ collections in ([0-9.]+) s", sp.log())
    return float(m.group(1)) if m else None


# ---- verification ----------------------------------------------------------------------------------


def verify_worker(col: Collection, w: Worker) -> str:
    """Resolve ``w``'s pending write against what the server holds and adopt the matching model.

    Returns "certain" (nothing was pending), "landed", "not landed" or "no-op" (the pending write changed
    nothing). Raises CrashCheckError (with the number of wrong records) when neither state matches.
    """
    candidates: list[Model] = [w.model]
    if w.pending is not None:
        after = dict(w.model)
        apply_op(after, w.pending)
        candidates.append(after)
    got = read_snapshot(col, w.ids)
    wants: list[Snapshot] = [expected_snapshot(w.index, m) for m in candidates]
    chosen = next((i for i, want in enumerate(wants) if got == want), None)
    if chosen is None:
        diffs = [describe_diff(got, want) for want in wants]
        report = [
            f"worker {w.index} ({w.transport}): the server's records match neither the acknowledged "
            f"writes nor those plus the write in flight ({describe_op(w.pending)}):"
        ]
        report += [
            f"  vs {name}: {d}" for name, d in zip(("acknowledged", "+ in flight"), diffs, strict=False)
        ]
        worst = min(
            len(set(got) ^ set(want)) + sum(got[r] != want[r] for r in set(got) & set(want)) for want in wants
        )
        raise CrashCheckError("\n".join(report), worst)
    outcome = "certain"
    if w.pending is not None:
        outcome = "no-op" if wants[0] == wants[-1] else ("landed" if chosen else "not landed")
    w.model, w.pending = candidates[chosen], None
    return outcome


class CrashCheckError(AssertionError):
    def __init__(self, message: str, lost: int = 0) -> None:
        super().__init__(message)
        self.lost = lost


def verify_all(rest: Collection, grpc: Collection, workers: list[Worker], rng: random.Random) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for w in workers:  # each slice read over the transport its worker used
        outcomes[verify_worker(grpc if w.transport == "grpc" else rest, w)] += 1

    live = {rid for w in workers for rid in w.model}
    info = rest.info()
    counts = {
        "info count": info.count,
        "index vectors": info.index_state["vectors"],
        "count() REST": rest.count(),
        "count() gRPC": grpc.count(),
    }
    assert set(counts.values()) == {len(live)}, f"the model has {len(live)} records; server: {counts}"

    want_sources: Counter[str] = Counter(src for w in workers for _, _, src in w.model.values() if src)
    got_sources = {s.source: s.count for s in grpc.list_sources()}
    assert got_sources == dict(want_sources), f"list_sources {got_sources} != model {dict(want_sources)}"

    for w in workers:
        mine = set(w.model)
        assert rest.count(filter={"w": w.index}) == len(mine)
        if not mine:
            continue
        probe = rng.choice(sorted(mine))
        hits = rest.search(vector_for(probe, w.model[probe][0]), k=len(mine), filter={"w": w.index})[0]
        got = {h.id for h in hits}
        assert got == mine, (
            f"filtered search of worker {w.index}: not live {sorted(got - mine)[:8]}, "
            f"live but missing {sorted(mine - got)[:8]}"
        )
        assert hits[0].id == probe and hits[0].score == pytest.approx(1.0, abs=1e-4)

    if live:
        # Over everything: an HNSW search whose ef exceeds the graph's size explores all of it (tombstones
        # are skipped, never returned), so it too must return exactly the live records.
        state = info.index_state
        params = None
        if state["kind"] == "hnsw":
            params = {"ef_search": min(32_768, state["ann_vectors"] + state["tombstones"] + 64)}
        everything = grpc.search(random_vectors(rng, 1), k=min(len(live), 10_000), params=params)[0]
        ids = [h.id for h in everything]
        assert len(ids) == len(set(ids)), "an unfiltered search returned an id twice"
        assert set(ids) <= live, f"an unfiltered search returned dead ids {sorted(set(ids) - live)[:8]}"
        assert set(ids) == live, (
            f"a search over everything ({state}, params {params}) missed {len(live - set(ids))} live "
            f"records: {sorted(live - set(ids))[:8]}"
        )
    return outcomes


# ---- the test --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(max(300, 120 + ROUNDS * 45))
def test_sigkill_server_under_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("VECDB_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    data, logs = tmp_path / "data", tmp_path / "logs"
    rest_port, grpc_port = free_port(), free_port()
    workers = [Worker(i, t, random.Random(seed * 31 + i)) for i, t in enumerate(WORKERS)]
    ready_s: list[float] = []  # restarts only (not the first start on an empty directory)
    load_s: list[float] = []
    replayed: list[int] = []  # op-log entries past the index checkpoint at each restart
    outcomes: Counter[str] = Counter()
    kills = startup_kills = mid_checkpoint_kills = rounds_done = 0
    index_kinds: Counter[str] = Counter()
    failure: str | None = None
    lost = 0
    sp: ServerProcess | None = None
    t_run = time.perf_counter()

    try:
        sp = start(data, logs, rest_port, grpc_port)
        sp.wait_ready()
        with make_client("rest", sp.rest_url, sp.grpc_target) as c:
            c.create_collection(
                COLLECTION, DIM, "cosine", index={"type": "auto", "threshold": AUTO_THRESHOLD}
            )
        for rnd in range(ROUNDS):
            context = f"round {rnd}, seed {seed} (VECDB_CRASH_SEED)"
            delay = kill_delay(rng)
            t_kill_target = time.monotonic() + delay
            for w in workers:
                w.start(sp.rest_url, sp.grpc_target)
            time.sleep(max(0.0, t_kill_target - time.monotonic()))
            killed_at = time.monotonic()
            kill(sp)
            kills += 1
            for w in workers:
                w.join(JOIN_TIMEOUT_S)
            problems = [f"worker {w.index} ({w.transport}): {v}" for w in workers for v in w.violations]
            problems += [
                f"worker {w.index} ({w.transport}): a call failed {killed_at - w.failed_at:.2f} s before the "
                f"kill: {w.failure}"
                for w in workers
                if w.failed_at is not None and w.failed_at < killed_at
            ]
            problems += [f"server log: {line}" for line in bad_log_lines(sp)]
            assert not problems, f"{context}, while the server was up:\n" + "\n".join(problems)

            if LONG and rnd % 5 == 4:  # kill a start too: mid-import, mid-recovery or just after
                early = start(data, logs, rest_port, grpc_port)
                time.sleep(rng.uniform(0.05, statistics.median(ready_s) if ready_s else 1.0))
                kill(early)
                startup_kills += 1

            ckpt_seq, cut_short = checkpoint_state(data)
            mid_checkpoint_kills += cut_short
            sp = start(data, logs, rest_port, grpc_port)
            ready_s.append(sp.wait_ready())
            if (seconds := load_seconds(sp)) is not None:
                load_s.append(seconds)
            with (
                make_client("rest", sp.rest_url, sp.grpc_target, retries=5) as rc,
                make_client("grpc", sp.rest_url, sp.grpc_target, retries=5) as gc,
            ):
                rest, grpc = rc.collection(COLLECTION), gc.collection(COLLECTION)
                info = rest.info()
                replayed.append(info.seq - ckpt_seq)
                index_kinds[info.index_state["kind"]] += 1
                try:
                    outcomes += verify_all(rest, grpc, workers, rng)
                except CrashCheckError as exc:
                    lost = exc.lost
                    raise AssertionError(f"{context}, after the restart:\n{exc}") from None
                except AssertionError as exc:
                    raise AssertionError(f"{context}, after the restart: {exc}") from None
            rounds_done += 1
    except Exception as exc:
        failure = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise
    finally:
        if sp is not None and sp.proc.poll() is None:
            sp.proc.kill()
            sp.proc.wait()
        acked: Counter[str] = Counter()
        for w in workers:
            acked += w.acked
        uncertain = outcomes["landed"] + outcomes["not landed"] + outcomes["no-op"]
        summary: dict[str, Any] = {
            "seed": seed,
            "rounds": rounds_done,
            "kills_under_load": kills,
            "kills_during_start": startup_kills,
            "kills_mid_checkpoint_write": mid_checkpoint_kills,
            "acknowledged_ops": sum(acked.values()),
            "acknowledged_by_kind": dict(sorted(acked.items())),
            "searches": sum(w.searches for w in workers),
            "uncertain_ops": uncertain,
            "uncertain_landed": outcomes["landed"],
            "uncertain_not_landed": outcomes["not landed"],
            "uncertain_noop": outcomes["no-op"],
            "lost_or_wrong_records": lost,
            "records_at_end": sum(len(w.model) for w in workers),
            "index_kind_at_restart": dict(index_kinds),
            "restart_ready_s_median": round(statistics.median(ready_s), 3) if ready_s else None,
            "restart_ready_s_max": round(max(ready_s), 3) if ready_s else None,
            "restart_load_s_max": round(max(load_s), 3) if load_s else None,
            "oplog_replayed_max": max(replayed) if replayed else None,
            "run_s": round(time.perf_counter() - t_run, 1),
            "failure": failure,
        }
        record("crash_server", summary)
        s = summary
        line = (
            f"seed {seed}: {rounds_done}/{ROUNDS} rounds, {kills} kills under load (+{startup_kills} during"
            f" start, {mid_checkpoint_kills} mid-checkpoint-write); {s['acknowledged_ops']} acknowledged"
            f" writes {s['acknowledged_by_kind']}, {s['searches']} reads; in flight at a kill: {uncertain}"
            f" (landed {s['uncertain_landed']}, not {s['uncertain_not_landed']},"
            f" no-op {s['uncertain_noop']});"
            f" lost/wrong records {lost}; {s['records_at_end']} records at the end; restart to ready median"
            f" {s['restart_ready_s_median']} s, max {s['restart_ready_s_max']} s; op-log replayed max"
            f" {s['oplog_replayed_max']}; index at restart {s['index_kind_at_restart']}; {s['run_s']} s"
        )
        with capsys.disabled():
            print(f"\n[crash server] {line}" + (f"; FAILED: {failure}" if failure else ""))
