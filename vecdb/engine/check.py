"""``vecdb check``: verify a data directory's collections and snapshots, with or without a server on it.

Everything is opened read-only (RocksDB beside a writer, files as they are), so a running server keeps
serving while it runs; nothing is written or repaired. Per collection: the manifest, the store read
whole (every block's checksum, the column families against each other), the store against the
acknowledged-sequence watermark (a lost or damaged WAL), the index checkpoint (its checksum, that it
belongs to this store and does not run ahead of it). Per snapshot: its files against the checksums its
``snapshot.json`` lists, its store read whole, its sequence and record count against ``snapshot.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vecdb.engine.collection import STORE_DIR, WATERMARK_FILE
from vecdb.engine.filter_state import FILTER_CHECKPOINT_FILE
from vecdb.engine.record_index import DUMP_FORMAT
from vecdb.engine.snapshots import SNAPSHOT_FILE, read_snapshot, verify_files
from vecdb.engine.text_state import TEXT_CHECKPOINT_FILE
from vecdb.engine.vector_state import CHECKPOINT_FILE, MAIN_FILE
from vecdb.errors import VecDBError
from vecdb.storage import Checkpoint, CollectionStore, read_checkpoint, read_json
from vecdb.storage.watermark import Watermark

__all__ = ["CheckResult", "check_data_dir"]

_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass
class CheckResult:
    """One checked thing: ``kind`` is "collection" or "snapshot"; ``problems`` empty when intact."""

    kind: str
    name: str
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "ok": self.ok, "problems": self.problems, **self.facts}


def _names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and set(p.name) <= _NAME_OK)


def check_data_dir(path: Path, collections: list[str] | None = None) -> list[CheckResult]:
    """Check every collection (or those named) of the data directory ``path`` and their snapshots."""
    if not (path / "collections").is_dir():
        raise FileNotFoundError(f"{path} is not a vecdb data directory (no collections/ folder)")
    names = collections if collections is not None else _names(path / "collections")
    results = []
    for name in names:
        results.append(check_collection(path / "collections" / name, name))
    snap_root = path / "snapshots"
    for col in _names(snap_root):
        if collections is not None and col not in collections:
            continue
        for snap in _names(snap_root / col):
            results.append(check_snapshot(snap_root / col / snap, f"{col}/{snap}"))
    return results


def _manifest(folder: Path, name: str, result: CheckResult) -> dict[str, Any] | None:
    try:
        manifest = read_json(folder / "collection.json")
        int(manifest["dim"])
        return dict(manifest)
    except FileNotFoundError:
        result.problems.append("manifest collection.json is missing")
    except (ValueError, KeyError, TypeError) as exc:
        result.problems.append(f"manifest collection.json is damaged ({exc})")
    return None


def check_collection(folder: Path, name: str) -> CheckResult:
    result = CheckResult("collection", name)
    if not folder.is_dir():
        result.problems.append("no such collection")
        return result
    manifest = _manifest(folder, name, result)
    if manifest is None:
        return result
    try:
        store = CollectionStore(
            folder / STORE_DIR,
            int(manifest["dim"]),
            create=False,
            sync=False,
            what="store",
            read_only=True,
        )
    except VecDBError as exc:
        result.problems.append(exc.message)
        return result
    try:
        result.facts["seq"] = store.last_seq
        try:
            counts = store.verify()
            result.facts["records"] = counts.records
        except VecDBError as exc:
            result.problems.append(exc.message)
        if (folder / WATERMARK_FILE).exists():
            mark = Watermark(folder / WATERMARK_FILE)
            try:
                acked = mark.read()
            finally:
                mark.close()
            if acked is not None and acked > store.last_seq:
                result.problems.append(
                    f"the store ends at sequence {store.last_seq} but sequence {acked} was acknowledged: "
                    "its write-ahead log was lost or damaged"
                )
        _check_index(folder, store, result)
        _check_filters(folder, store, result)
        _check_text(folder, manifest, store, result)
    finally:
        store.close()
    return result


def _check_text(folder: Path, manifest: dict[str, Any], store: CollectionStore, result: CheckResult) -> None:
    """The text index is rebuilt at open; a jieba index's segmentation cache is reported, never fatal."""
    spec = manifest.get("text_index")
    if not isinstance(spec, dict):
        result.facts["text_index"] = "none"
        return
    tokenizer = spec.get("tokenizer", "standard")
    if tokenizer != "jieba":
        result.facts["text_index"] = f"{tokenizer} (rebuilt from the store on open)"
        return
    ckpt = _derived_checkpoint(folder / TEXT_CHECKPOINT_FILE, store, result, "text_index", "jieba, ")
    if ckpt is not None:
        result.facts["text_index"] = f"jieba, segmentation cache at seq {ckpt.seq}"


def _check_filters(folder: Path, store: CollectionStore, result: CheckResult) -> None:
    """The filter bitmaps' checkpoint only saves the open scan: reported, never fatal."""
    ckpt = _derived_checkpoint(folder / FILTER_CHECKPOINT_FILE, store, result, "filter_checkpoint")
    if ckpt is None:
        return
    if ckpt.meta.get("format") != DUMP_FORMAT:
        result.facts["filter_checkpoint"] = "another format, rebuilt on open"
    else:
        result.facts["filter_checkpoint"] = f"seq {ckpt.seq}"


def _derived_checkpoint(
    path: Path, store: CollectionStore, result: CheckResult, fact: str, prefix: str = ""
) -> Checkpoint | None:
    """A checkpoint that only saves work at open: read and tied to this store, or None with the reason
    recorded as ``result.facts[fact]`` (never a problem: the open rebuilds what it lacks)."""
    try:
        ckpt = read_checkpoint(path)
    except FileNotFoundError:
        result.facts[fact] = f"{prefix}no checkpoint (rebuilt on open)"
        return None
    except (VecDBError, OSError) as exc:
        result.facts[fact] = f"{prefix}checkpoint unreadable, rebuilt on open ({exc})"
        return None
    if ckpt.meta.get("store") != store.uuid:
        result.facts[fact] = f"{prefix}checkpoint of another store, rebuilt on open"
        return None
    return ckpt


def _check_index(folder: Path, store: CollectionStore, result: CheckResult) -> None:
    """The index checkpoint is derived state: damage is reported (the server rebuilds it), not fatal."""
    path = folder / CHECKPOINT_FILE
    if not path.exists():
        result.facts["index_checkpoint"] = "none (rebuilt from the store on open)"
        return
    try:
        ckpt = read_checkpoint(path)
        main = ckpt.meta.get("main")
        if main is not None:
            read_checkpoint(folder / MAIN_FILE.format(main["id"]))
    except (VecDBError, OSError, KeyError, TypeError) as exc:
        result.facts["index_checkpoint"] = f"unreadable, will be rebuilt ({exc})"
        return
    if ckpt.meta.get("store") != store.uuid:
        result.facts["index_checkpoint"] = "belongs to another store, will be rebuilt"
    elif ckpt.seq > store.last_seq:
        result.problems.append(
            f"the index checkpoint covers sequence {ckpt.seq} but the store ends at {store.last_seq}: "
            "acknowledged writes are missing from the store"
        )
    else:
        result.facts["index_checkpoint"] = f"seq {ckpt.seq}"


def check_snapshot(folder: Path, name: str) -> CheckResult:
    result = CheckResult("snapshot", name)
    if not (folder / SNAPSHOT_FILE).exists():
        result.problems.append(f"{SNAPSHOT_FILE} is missing")
        return result
    try:
        meta, manifest = read_snapshot(folder)
        if not verify_files(folder, meta):
            result.facts["files"] = "not listed (a snapshot from before checksums)"
        store = CollectionStore(
            folder / STORE_DIR, int(manifest["dim"]), create=False, sync=False, what="store", read_only=True
        )
        try:
            counts = store.verify()
            result.facts.update(seq=store.last_seq, records=counts.records)
            if store.last_seq != meta.get("seq"):
                result.problems.append(
                    f"store at sequence {store.last_seq}, snapshot.json says {meta.get('seq')}"
                )
            if "stored" in meta and counts.records != meta["stored"]:
                result.problems.append(
                    f"store holds {counts.records} records, snapshot.json says {meta['stored']}"
                )
        finally:
            store.close()
    except VecDBError as exc:
        result.problems.append(exc.message)
    except (KeyError, TypeError, ValueError) as exc:
        result.problems.append(f"{SNAPSHOT_FILE} is damaged ({exc})")
    return result
