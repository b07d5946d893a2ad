"""``vecdb snapshot | restore | export | import | check``: backups, moving data, verifying it
(docs/operations.md).

- ``snapshot create|list|delete|restore`` work on a server or a data directory alike (the client and the
  engine share the method names).
- ``restore PATH --collection NAME --data-dir DIR`` restores a snapshot *directory* (one copied from
  another machine, say) into a data directory: it reads files, so it runs in-process.
- ``export`` writes every record as JSON Lines (one object a line: id, vector, text, metadata, source),
  or Parquet (with pyarrow installed); ``import`` reads either back, creating the collection when missing.
  Records are read with scroll (pages, in id order) and written in batches: nothing is loaded whole.
- ``check DATA_DIR`` verifies every collection and snapshot of a data directory, read-only, with or
  without a server running on it (``vecdb.engine.check``); exit status 1 when anything is damaged.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from vecdb.commands.connect import CommandError, Connection, json_flag

__all__ = ["OPS_COMMANDS", "add_ops_commands", "run_ops_command"]

OPS_COMMANDS = ("snapshot", "restore", "export", "import", "check")
FIELDS = ["text", "metadata", "source", "vector"]


def add_ops_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], connection_args: Any) -> None:
    p = sub.add_parser(
        "snapshot",
        help="create, list, delete or restore snapshots of a collection",
        description="Snapshots are online, consistent copies of a collection kept under the data "
        "directory's snapshots/ folder (a directory each, which can be copied to another machine).",
    )
    p.add_argument("action", choices=("create", "list", "delete", "restore"))
    p.add_argument("collection")
    p.add_argument("name", nargs="?", help="the snapshot (create: default the UTC time)")
    p.add_argument("--target", help="restore: the new collection's name (default: the snapshot's collection)")
    connection_args(p)

    p = sub.add_parser(
        "restore",
        help="restore a snapshot directory (e.g. copied from another machine) as a collection",
        description="Copy the snapshot directory SNAPSHOT into the data directory as the new collection "
        "NAME. The snapshot is left as it was. Runs in-process on --data-dir (stop the server first, or "
        "use `vecdb snapshot restore` for a snapshot the server already holds).",
    )
    p.add_argument("snapshot", type=Path, metavar="SNAPSHOT", help="a snapshot directory")
    p.add_argument("--collection", required=True, help="the new collection (must not exist)")
    p.add_argument("--data-dir", type=Path, required=True, help="the data directory to restore into")

    p = sub.add_parser(
        "export",
        help="write every record of a collection as JSON Lines (or Parquet)",
        description="One JSON object a line: first the collection's configuration "
        '({"vecdb_collection": {"dim", "metric", "index", "embedding", "capacity"}}), then one record a '
        "line: id, vector, text, metadata, source (expiry times are not exported). Parquet (needs pyarrow) "
        "keeps the configuration in the file's schema metadata (key vecdb_collection).",
    )
    p.add_argument("--collection", required=True)
    p.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    p.add_argument(
        "--format", choices=("jsonl", "parquet"), help="default: from --output's suffix, else jsonl"
    )
    p.add_argument("--batch", type=int, default=1000, help="records per page read (default 1000)")
    connection_args(p)

    p = sub.add_parser(
        "import",
        help="upsert records from JSON Lines (or Parquet) into a collection",
        description="Each record needs an id and a vector (or a text, for a collection with an embedding "
        "model). A missing collection is created with the configuration the export recorded (dimension, "
        "metric, index, embedding model, capacity), each overridable by the flags below; a file without "
        "one (written by another tool) gives the first vector's dimension, cosine and an auto index. "
        "An existing collection keeps its own configuration. Records are upserted by id in batches: "
        "importing twice gives the same collection.",
    )
    p.add_argument("input", type=Path, metavar="FILE", help="a .jsonl or .parquet file ('-': standard input)")
    p.add_argument("--collection", required=True)
    p.add_argument(
        "--metric",
        choices=("cosine", "ip", "l2"),
        help="for a new collection (default: the file's, else cosine)",
    )
    p.add_argument("--index", help="index spec as JSON for a new collection (default: the file's, else auto)")
    p.add_argument(
        "--model",
        help="embedding model for a new collection (default: the file's); 'none' for no model",
    )
    p.add_argument("--max-records", type=int, help="capacity of a new collection (default: the file's)")
    p.add_argument("--eviction", choices=("fifo", "lru"), help="with --max-records (default: the file's)")
    p.add_argument(
        "--ignore-config",
        action="store_true",
        help="create a new collection from the flags alone, not from the configuration in the file",
    )
    p.add_argument(
        "--format", choices=("jsonl", "parquet"), help="default: from the file's suffix, else jsonl"
    )
    p.add_argument("--batch", type=int, default=1000, help="records per upsert (default 1000)")
    connection_args(p)

    p = sub.add_parser(
        "check",
        help="verify a data directory's collections and snapshots (read-only; a server may be running)",
        description="Read every collection's store whole (block checksums, column families against each "
        "other), compare it with its acknowledged-sequence watermark (a lost or damaged write-ahead log) "
        "and its index checkpoint, and verify every snapshot's files, store and counts. Opens everything "
        "read-only, so it can run beside `vecdb serve` on the same directory. Exit status 1 when anything "
        "is damaged.",
    )
    p.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="the data directory")
    p.add_argument("--collection", action="append", help="only this collection (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per checked item")


def run_ops_command(conn: Connection | None, args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "restore":
        return _restore(args, out)
    if args.command == "check":
        return _check(args, out)
    assert conn is not None
    return {"snapshot": _snapshot, "export": _export, "import": _import}[args.command](conn, args, out)


# ---- snapshots -----------------------------------------------------------------------------------------


def _snapshot_row(s: Any) -> list[str]:
    return [s.name, s.created_at, str(s.records), str(s.seq), f"{s.bytes / 2**20:.1f} MiB"]


def _snapshot(conn: Connection, args: argparse.Namespace, out: TextIO) -> int:
    from vecdb.commands.main import _table

    api = conn.api
    if args.action == "create":
        snap = api.create_snapshot(args.collection, args.name)
        out.write(
            f"created snapshot {snap.name} of {args.collection}: {snap.records} records, seq {snap.seq}\n"
        )
    elif args.action == "list":
        rows = [_snapshot_row(s) for s in api.list_snapshots(args.collection)]
        _table(rows, ["snapshot", "created", "records", "seq", "size"], out)
    else:
        if not args.name:
            raise CommandError(f"snapshot {args.action} needs the snapshot's name")
        if args.action == "delete":
            api.delete_snapshot(args.collection, args.name)
            out.write(f"deleted snapshot {args.name} of {args.collection}\n")
        else:
            col = api.restore_snapshot(args.collection, args.name, args.target)
            out.write(f"restored snapshot {args.name} of {args.collection} as {col.name}\n")
    return 0


def _restore(args: argparse.Namespace, out: TextIO) -> int:
    from vecdb import Database
    from vecdb.errors import VecDBError

    try:
        with Database(args.data_dir) as db:
            col = db.restore_snapshot_dir(args.snapshot, args.collection)
            out.write(f"restored {args.snapshot} as {col.name}: {col.count()} records\n")
    except VecDBError as exc:
        raise CommandError(str(exc)) from exc
    return 0


def _check(args: argparse.Namespace, out: TextIO) -> int:
    from vecdb.engine.check import check_data_dir

    try:
        results = check_data_dir(args.data_dir, args.collection)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from exc
    for r in results:
        if args.json:
            out.write(json.dumps(r.to_dict()) + "\n")
            continue
        facts = ", ".join(f"{k} {v}" for k, v in r.facts.items())
        out.write(f"{'ok' if r.ok else 'DAMAGED'}  {r.kind} {r.name}{': ' + facts if facts else ''}\n")
        for problem in r.problems:
            out.write(f"    {problem}\n")
    bad = sum(not r.ok for r in results)
    if not args.json:
        out.write(f"{len(results)} checked, {bad} damaged\n")
    return 1 if bad else 0


# ---- export / import -----------------------------------------------------------------------------------


def _format(given: str | None, path: Path | None) -> str:
    if given:
        return given
    return "parquet" if path is not None and path.suffix == ".parquet" else "jsonl"


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise CommandError("Parquet needs pyarrow: pip install pyarrow (or use JSON Lines)") from exc
    return pyarrow


def _record_dict(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "vector": None if r.vector is None else [float(v) for v in r.vector],
        "text": r.text,
        "metadata": r.metadata,
        "source": r.source,
    }


def _export(conn: Connection, args: argparse.Namespace, out: TextIO) -> int:
    fmt = _format(args.format, args.output)
    if fmt == "parquet" and args.output is None:
        raise CommandError("Parquet goes to a file: give --output FILE.parquet")
    config = collection_config(conn.info(args.collection))  # a missing collection fails before any file
    records = (
        _record_dict(r) for r in conn.collection(args.collection).iter_records(args.batch, None, FIELDS)
    )
    if fmt == "parquet":
        n = _write_parquet(records, args.output, args.batch, config)
    elif args.output is None:
        n = _write_jsonl(records, out, config)
    else:
        with args.output.open("w", encoding="utf-8") as f:
            n = _write_jsonl(records, f, config)
    if args.output is not None:  # on standard output the records are the output: nothing else
        out.write(f"exported {n} records of {args.collection} to {args.output}\n")
    return 0


#: The key of the configuration: the first JSON Lines object, or the Parquet schema's metadata.
CONFIG_KEY = "vecdb_collection"
#: What of a collection's info an export carries (what creating it again needs).
CONFIG_FIELDS = ("dim", "metric", "index", "embedding", "capacity", "text_index")
#: What info() adds to the embedding declaration and the text index spec (facts, not settings).
_REPORTED = frozenset({"dim", "backend", "documents"})


def collection_config(info: dict[str, Any]) -> dict[str, Any]:
    """The creation settings in a collection's info: the embedding declaration (model, prompts, window)
    and the text index spec without what info() reports beside them."""
    config = {key: info.get(key) for key in CONFIG_FIELDS}
    for key in ("embedding", "text_index"):
        value = config[key]
        if isinstance(value, dict):
            config[key] = {k: v for k, v in value.items() if k not in _REPORTED}
    return config


def _write_jsonl(records: Iterable[dict[str, Any]], f: TextIO, config: dict[str, Any]) -> int:
    f.write(json.dumps({CONFIG_KEY: config}, ensure_ascii=False) + "\n")
    n = 0
    for rec in records:
        f.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
        n += 1
    return n


def _write_parquet(records: Iterable[dict[str, Any]], path: Path, batch: int, config: dict[str, Any]) -> int:
    pa = _pyarrow()
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("vector", pa.list_(pa.float32())),
            ("text", pa.string()),
            ("metadata", pa.string()),  # JSON text: metadata objects differ from record to record
            ("source", pa.string()),
        ],
        metadata={CONFIG_KEY: json.dumps(config)},
    )
    n = 0
    with pa.parquet.ParquetWriter(str(path), schema) as writer:
        rows: list[dict[str, Any]] = []
        for rec in records:
            rows.append({**rec, "metadata": json.dumps(rec["metadata"], ensure_ascii=False)})
            if len(rows) >= batch:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                n, rows = n + len(rows), []
        if rows or n == 0:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            n += len(rows)
    return n


def _read_jsonl(f: TextIO, config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The records; the configuration line (the first, when there is one) goes into ``config``."""
    for lineno, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise CommandError(f"line {lineno}: not JSON ({exc})") from exc
        if isinstance(rec, dict) and CONFIG_KEY in rec and "id" not in rec:
            if lineno != 1 or not isinstance(rec[CONFIG_KEY], dict):
                raise CommandError(
                    f"line {lineno}: a collection configuration must be the first line's object"
                )
            config.update(rec[CONFIG_KEY])
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
            raise CommandError(f"line {lineno}: a record must be a JSON object with a string id")
        yield rec


def _read_parquet(path: Path, batch: int, config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pa = _pyarrow()
    file = pa.parquet.ParquetFile(str(path))
    stored = (file.schema_arrow.metadata or {}).get(CONFIG_KEY.encode())
    if stored:
        config.update(json.loads(stored))
    for part in file.iter_batches(batch_size=batch):
        for rec in part.to_pylist():
            meta = rec.get("metadata")
            if isinstance(meta, str):
                rec["metadata"] = json.loads(meta) if meta else None
            yield rec


def _batches(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _import(conn: Connection, args: argparse.Namespace, out: TextIO) -> int:
    if args.batch < 1:
        raise CommandError("--batch must be at least 1")
    fmt = _format(args.format, None if str(args.input) == "-" else args.input)
    json_flag(args.index, "--index")  # a bad flag fails before anything is read
    config: dict[str, Any] = {}  # the file's, filled as it is read (before the first record)
    if fmt == "parquet":
        records: Iterator[dict[str, Any]] = _read_parquet(args.input, args.batch, config)
        total = _upsert_all(conn, args, records, config)
    elif str(args.input) == "-":
        total = _upsert_all(conn, args, _read_jsonl(sys.stdin, config), config)
    else:
        try:
            with args.input.open(encoding="utf-8") as f:
                total = _upsert_all(conn, args, _read_jsonl(f, config), config)
        except FileNotFoundError as exc:
            raise CommandError(f"{args.input}: no such file") from exc
    out.write(f"imported {total} records into {args.collection}\n")
    return 0


def new_collection_args(file_config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``create_collection``'s arguments for an import's new collection: the file's configuration (unless
    ``--ignore-config``), each part overridden by its flag. ``dim`` is None when neither says."""
    config = {} if args.ignore_config else file_config
    capacity = config.get("capacity") or {}
    declared = dict(config.get("embedding") or {})  # model, prompts, window (older files: model only)
    model = args.model if args.model is not None else declared.get("model")
    max_records = args.max_records if args.max_records is not None else capacity.get("max_records")
    eviction = args.eviction or (capacity.get("eviction") if max_records is not None else None)
    return {
        "dim": config.get("dim"),
        "metric": args.metric or config.get("metric") or "cosine",
        "index": json_flag(args.index, "--index") if args.index else config.get("index"),
        # --model replaces the model only; the prompts and window declared for it travel with the file
        "embedding": None if model in (None, "none") else {**declared, "model": model},
        "max_records": max_records,
        "eviction": eviction,
        **({"text_index": config["text_index"]} if config.get("text_index") is not None else {}),
    }


def _upsert_all(
    conn: Connection, args: argparse.Namespace, records: Iterator[dict[str, Any]], file_config: dict[str, Any]
) -> int:
    total = 0
    exists = args.collection in conn.list_collections()
    for batch in _batches(records, args.batch):
        if not exists:
            create = new_collection_args(file_config, args)
            first = next((r["vector"] for r in batch if r.get("vector")), None)
            if create["dim"] is None and create["embedding"] is None:
                if first is None:
                    raise CommandError(
                        f"collection {args.collection!r} does not exist and the first batch has no vector "
                        "to take its dimension from: create it first (vecdb collections create)"
                    )
                create["dim"] = len(first)
            conn.create_collection(args.collection, **create)
            exists = True
        col = conn.collection(args.collection)
        total += col.upsert(
            [r["id"] for r in batch],
            [r.get("vector") for r in batch],
            texts=[r.get("text") for r in batch],
            metadatas=[r.get("metadata") for r in batch],
            sources=[r.get("source") for r in batch],
        )
    return total
