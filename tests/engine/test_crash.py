"""Crash loop: SIGKILL a writer at random moments, reopen, and check the store against a model.

Each round starts ``crash_writer.py`` on the same data directory, lets it write for a random while,
kills it with SIGKILL, then opens the database here and checks that

- the state equals the model after every acknowledged op, or after those plus the one op that had
  begun without an acknowledgement (it may or may not have landed, but never half of it);
- every record has exactly its vector (bit for bit), text, metadata and source;
- the index holds exactly the live records (count, info, a search over everything, top-1 self hits);
- sources and metadata bitmaps agree with the model (list_sources, count with filters).

The model carries over from round to round. The run's seed is printed; set ``VECDB_CRASH_SEED`` to
replay the same op streams and delays (the exact kill points still vary with timing).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from vecdb.engine.database import Database
from vecdb.storage.checkpoint import read_checkpoint

WRITER_PATH = Path(__file__).with_name("crash_writer.py")
ROUNDS = int(os.environ.get("VECDB_CRASH_ROUNDS", "24"))
READY_TIMEOUT_S = 60.0


def _load_writer_module() -> Any:
    spec = importlib.util.spec_from_file_location("vecdb_tests_crash_writer", WRITER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cw = _load_writer_module()

# The model: id -> (version, g, source).
Model = dict[str, tuple[int, int, str | None]]
# What a record looks like when read back: (text, metadata, source, vector bytes).
Snapshot = dict[str, tuple[str | None, dict[str, Any], str | None, bytes]]


# ---- the model -------------------------------------------------------------------------------------


def _matches(flt: dict[str, Any], meta: dict[str, Any]) -> bool:
    """The few filter forms the writer emits ($and, equality, $in, $gte, $lt), evaluated directly."""
    for field, cond in flt.items():
        if field == "$and":
            if not all(_matches(sub, meta) for sub in cond):
                return False
            continue
        if field not in meta:
            return False
        value = meta[field]
        if not isinstance(cond, dict):
            if value != cond:
                return False
            continue
        for op, operand in cond.items():
            ok = {
                "$in": lambda v, o: v in o,
                "$gte": lambda v, o: v >= o,
                "$lt": lambda v, o: v < o,
            }[op](value, operand)
            if not ok:
                return False
    return True


def apply_op(model: Model, op: dict[str, Any]) -> int:
    """Apply ``op`` to ``model`` in place; return what the engine call should have returned."""
    kind = op["op"]
    if kind == "upsert":
        for rid, version, g, source in op["records"]:
            model[rid] = (version, g, source)
        return len(op["records"])
    if kind == "delete_ids":
        gone = {rid for rid in op["ids"] if rid in model}
    elif kind == "delete_source":
        gone = {rid for rid, (_, _, src) in model.items() if src == op["source"]}
    elif kind == "delete_filter":
        gone = {rid for rid, (v, g, _) in model.items() if _matches(op["filter"], cw.metadata_for(v, g))}
    elif kind == "replace_source":
        source, records = op["source"], op["records"]
        gone = {rid for rid, (_, _, src) in model.items() if src == source}
        gone |= {rid for rid, _, _ in records if rid in model}
        for rid in gone:
            del model[rid]
        for rid, version, g in records:
            model[rid] = (version, g, source)
        return len(records) if records else len(gone)
    else:
        raise AssertionError(f"unknown op {kind!r}")
    for rid in gone:
        del model[rid]
    return len(gone)


@lru_cache(maxsize=100_000)
def _vector_bytes(rid: str, version: int) -> bytes:
    return bytes(cw.vector_for(rid, version).tobytes())


def expected_snapshot(model: Model) -> Snapshot:
    return {
        rid: (cw.text_for(rid, v), cw.metadata_for(v, g), src, _vector_bytes(rid, v))
        for rid, (v, g, src) in model.items()
    }


def read_snapshot(col: Any) -> Snapshot:
    recs = col.get(cw.POOL_IDS, include=["text", "metadata", "source", "vector"])
    out: Snapshot = {}
    for r in recs:
        assert r.vector is not None and r.vector.dtype == np.float32 and r.vector.shape == (cw.DIM,)
        out[r.id] = (r.text, r.metadata, r.source, r.vector.tobytes())
    return out


def describe_diff(got: Snapshot, want: Snapshot, limit: int = 8) -> str:
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(rid for rid in set(want) & set(got) if want[rid] != got[rid])
    lines = [f"{len(missing)} missing, {len(extra)} unexpected, {len(changed)} differing"]
    lines += [f"  missing {rid}: want {want[rid][:3]}" for rid in missing[:limit]]
    lines += [f"  unexpected {rid}: got {got[rid][:3]}" for rid in extra[:limit]]
    for rid in changed[:limit]:
        w, g = want[rid], got[rid]
        same_vec = "same vector" if w[3] == g[3] else "DIFFERENT vector"
        lines.append(f"  differs {rid}: want {w[:3]}, got {g[:3]} ({same_vec})")
    return "\n".join(lines)


# ---- the writer process ----------------------------------------------------------------------------


def parse_output(raw: bytes) -> tuple[list[tuple[dict[str, Any], int]], dict[str, Any] | None, bool]:
    """(acknowledged ops with their results, the op begun but not acknowledged, READY seen).

    A last line without its newline was cut by the kill; the call it would announce never started.
    """
    lines = raw.split(b"\n")[:-1]
    acked: list[tuple[dict[str, Any], int]] = []
    pending: dict[str, Any] | None = None
    ready = False
    for line in lines:
        if line == b"READY":
            ready = True
        elif line.startswith(b"BEGIN "):
            assert pending is None, "BEGIN after BEGIN without ACK"
            pending = orjson.loads(line[6:])
        elif line.startswith(b"ACK "):
            assert pending is not None, "ACK without BEGIN"
            acked.append((pending, int(line[4:])))
            pending = None
        else:
            raise AssertionError(f"unexpected writer output line {line[:200]!r}")
    return acked, pending, ready


def run_writer_round(data: Path, seed: int, log_dir: Path, delay: float, from_start: bool) -> bytes:
    """Run the writer, SIGKILL it ``delay`` s after READY (or after the start), return its stdout."""
    out_path, err_path = log_dir / f"writer-{seed}.out", log_dir / f"writer-{seed}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER_PATH), str(data), str(seed)], stdout=out, stderr=err
        )
    try:
        if not from_start:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while b"READY\n" not in out_path.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        time.sleep(delay)
        died = proc.poll()
        if died is not None:
            pytest.fail(
                f"writer (seed {seed}) exited on its own with {died}:\n{err_path.read_text()[-4000:]}"
            )
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out_path.read_bytes()


# ---- verification ----------------------------------------------------------------------------------


def verify(col: Any, candidates: list[Model], rng: random.Random) -> int:
    """Check the collection against the candidate states; return the index of the one it matches."""
    got = read_snapshot(col)
    wants = [expected_snapshot(m) for m in candidates]
    chosen = next((i for i, want in enumerate(wants) if got == want), None)
    if chosen is None:
        report = ["state matches neither the acknowledged model nor acknowledged + pending op:"]
        report += [f"vs candidate {i}: {describe_diff(got, want)}" for i, want in enumerate(wants)]
        pytest.fail("\n".join(report))
    model = candidates[chosen]

    info = col.info()
    assert col.count() == len(model) == info["count"] == info["index_state"]["vectors"]

    sources: dict[str, int] = {}
    for _, _, src in model.values():
        if src is not None:
            sources[src] = sources.get(src, 0) + 1
    assert {s.source: s.count for s in col.list_sources()} == sources
    for g in range(cw.GROUPS):
        assert col.count(filter={"g": g}) == sum(1 for _, gg, _ in model.values() if gg == g)

    if model:
        ids = rng.sample(sorted(model), min(6, len(model)))
        queries = np.stack([np.frombuffer(got[rid][3], dtype=np.float32) for rid in ids])
        hits = col.search(queries, k=3)
        for rid, row in zip(ids, hits, strict=True):
            assert row, f"no hits for stored record {rid}"
            assert row[0].id == rid, f"searching {rid}'s vector found {row[0].id} first"
            assert row[0].score == pytest.approx(1.0, abs=1e-4)
        # The index holds exactly the live records: no ghosts of deleted or replaced versions.
        everything = col.search(queries[:1], k=len(model))[0]
        assert sorted(h.id for h in everything) == sorted(model)
    return chosen


# ---- the test --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_crash_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    master_seed = int(os.environ.get("VECDB_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(master_seed)
    data = tmp_path / "data"
    logs = tmp_path / "logs"
    logs.mkdir()
    model: Model = {}
    recovery_s: list[float] = []
    landed = not_landed = ambiguous = total_ops = ckpt_kills = startup_kills = 0
    caplog.set_level(logging.WARNING, logger="vecdb")
    engine_warnings: list[str] = []  # index rebuilds, failed background checkpoints
    replayed: list[int] = []  # op-log entries past the checkpoint that each recovery replayed

    for rnd in range(ROUNDS):
        seed = master_seed % 1000 * 1000 + rnd + 1
        # Most rounds kill while writing; every fourth kills soon after the start (during imports,
        # opening, recovery or its catch-up checkpoint, or the first writes).
        from_start = rnd > 0 and rnd % 4 == 3
        delay = rng.uniform(0.05, 1.2) if from_start else rng.uniform(0.2, 1.5)
        context = f"round {rnd}, writer seed {seed}, master seed {master_seed} (VECDB_CRASH_SEED)"
        raw = run_writer_round(data, seed, logs, delay, from_start)
        acked, pending, ready = parse_output(raw)
        if from_start and not ready:
            startup_kills += 1
        if (data / "collections" / "c" / ".index.ckpt.tmp").exists():
            ckpt_kills += 1

        for op, n in acked:
            expected_n = apply_op(model, op)
            assert n == expected_n, f"{context}: {op['op']} returned {n}, the model says {expected_n}"
        total_ops += len(acked)
        candidates = [model]
        if pending is not None:
            after = dict(model)
            apply_op(after, pending)
            candidates.append(after)

        ckpt = data / "collections" / "c" / "index.ckpt"
        ckpt_seq = read_checkpoint(ckpt).seq if ckpt.exists() else 0
        caplog.clear()
        t0 = time.perf_counter()
        db = Database(data)
        try:
            col = db.get_collection("c")
            recovery_s.append(time.perf_counter() - t0)
            replayed.append(col.info()["seq"] - ckpt_seq)
            try:
                chosen = verify(col, candidates, rng)
            except AssertionError as exc:
                raise AssertionError(f"{context}: {exc}") from exc
        finally:
            db.close()
        engine_warnings += [f"round {rnd}: {r.getMessage()}" for r in caplog.records]
        model = candidates[chosen]
        if pending is not None:
            if candidates[0] == candidates[1]:
                ambiguous += 1
            elif chosen:
                landed += 1
            else:
                not_landed += 1

    med, worst = statistics.median(recovery_s), max(recovery_s)
    with capsys.disabled():
        print(
            f"\n[crash loop] master seed {master_seed}: {ROUNDS} rounds, {total_ops} acknowledged ops; "
            f"unacknowledged op landed {landed}x, did not land {not_landed}x, was a no-op {ambiguous}x; "
            f"{ckpt_kills} kills mid-checkpoint-write, {startup_kills} before READY; "
            f"{len(model)} records at the end\n"
            f"[crash loop] reopen + recovery: median {med * 1000:.1f} ms, max {worst * 1000:.1f} ms; "
            f"op-log replayed in {sum(1 for n in replayed if n)} recoveries (max {max(replayed)} "
            f"entries); engine warnings (rebuilds, failed checkpoints): {len(engine_warnings)}"
        )
        for line in engine_warnings:
            print(f"[crash loop]   {line}")
    # A checkpoint is written atomically and the op-log covers everything past it, so recovery after a
    # kill must never need a rebuild from the store (nor may a background checkpoint fail).
    assert not engine_warnings, engine_warnings
