"""Collection snapshots on disk: consistent, self-contained directories that can be copied and restored.

Layout::

    DATA_DIR/snapshots/COLLECTION/NAME/
      snapshot.json           what it is (written last: a directory without it is not a snapshot)
      collection.json         the collection's manifest at snapshot time
      store/                  a RocksDB checkpoint of the collection's store
      index.ckpt, index-main-*.faiss   the index checkpoint files, as of the same moment (optional)

A snapshot is made in ``.creating-*`` and renamed into place, deleted by renaming it to ``.deleting-*``
first, so a crash never leaves half a snapshot under a real name; leftovers are cleaned when the
database opens. Restoring copies (never links) the files into a new collection directory, so the
snapshot stays as it was.

Integrity: ``snapshot.json`` lists every file with its size and SHA-256 (``files``) and the number of
records the store holds (``stored``, counted by a full, checksummed read when the snapshot is taken).
``verify_files`` checks the list before a restore copies anything; the restore then opens the copy and
reads it whole before it becomes visible. Operations on one snapshot name are serialized (``lock``).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vecdb.errors import CorruptionError, SnapshotExistsError, SnapshotNotFoundError
from vecdb.storage import atomic_write_json, fsync_dir, read_json
from vecdb.types import SnapshotInfo

__all__ = ["SNAPSHOT_FILE", "Snapshots", "file_digests", "read_snapshot", "verify_files"]

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.json"
SNAPSHOT_FORMAT = 1


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def read_snapshot(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(snapshot meta, collection manifest) of the snapshot directory ``path``; CorruptionError when it
    is not a complete vecdb snapshot."""
    try:
        meta = read_json(path / SNAPSHOT_FILE)
        manifest = read_json(path / "collection.json")
    except FileNotFoundError as exc:
        raise CorruptionError(f"{path} is not a vecdb snapshot ({exc.filename} is missing)") from exc
    except ValueError as exc:
        raise CorruptionError(f"snapshot {path} is damaged: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != SNAPSHOT_FORMAT or not isinstance(manifest, dict):
        raise CorruptionError(f"snapshot {path} has an unknown format")
    if not (path / "store").is_dir():
        raise CorruptionError(f"snapshot {path} has no store/ directory")
    return meta, manifest


def file_digests(root: Path) -> dict[str, list[Any]]:
    """{relative path: [size, sha256 hex]} of every file under ``root`` but ``snapshot.json``."""
    out: dict[str, list[Any]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel == SNAPSHOT_FILE:
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        out[rel] = [path.stat().st_size, digest.hexdigest()]
    return out


def verify_files(path: Path, meta: dict[str, Any]) -> bool:
    """Check the snapshot's files against the list in its ``snapshot.json``: every listed file present
    with its size and SHA-256, none added. CorruptionError names the first that differs. Returns False
    for a snapshot taken before snapshots listed their files (nothing to check against)."""
    listed = meta.get("files")
    if listed is None:
        return False
    if not isinstance(listed, dict):
        raise CorruptionError(f"snapshot {path.name}: {SNAPSHOT_FILE} has a damaged file list")
    found = file_digests(path)
    for rel, expected in listed.items():
        got = found.get(rel)
        if got is None:
            raise CorruptionError(f"snapshot {path.name}: file {rel} is missing", file=rel)
        if list(got) != list(expected):
            raise CorruptionError(f"snapshot {path.name}: file {rel} is damaged (size or checksum)", file=rel)
    extra = sorted(set(found) - set(listed))
    if extra:
        raise CorruptionError(f"snapshot {path.name}: unexpected file {extra[0]}", file=extra[0])
    return True


def _info(path: Path, meta: dict[str, Any]) -> SnapshotInfo:
    try:
        return SnapshotInfo(
            collection=str(meta["collection"]),
            name=str(meta["name"]),
            created_at=str(meta["created_at"]),
            seq=int(meta["seq"]),
            records=int(meta["records"]),
            dim=int(meta["dim"]),
            metric=meta["metric"],
            bytes=_size(path),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptionError(f"snapshot {path}: {SNAPSHOT_FILE} is damaged ({exc})") from exc


class Snapshots:
    """The snapshot directories under ``root`` (``DATA_DIR/snapshots``). Names are validated by the
    caller (collection and snapshot names follow the collection name rule)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, exist_ok=True)
        for leftover in root.glob("*/.*"):  # a snapshot cut short by a crash, or half deleted
            shutil.rmtree(leftover, ignore_errors=True)
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], tuple[threading.Lock, int]] = {}

    @contextmanager
    def lock(self, collection: str, name: str) -> Iterator[None]:
        """Serialize create, delete and restore of one snapshot name (different names run in parallel)."""
        key = (collection, name)
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def path(self, collection: str, name: str) -> Path:
        return self.root / collection / name

    def begin(self, collection: str, name: str) -> tuple[Path, Path]:
        """(a fresh temporary directory to fill, the final path). Raises when the name is taken."""
        final = self.path(collection, name)
        if final.exists():
            raise SnapshotExistsError(
                f"collection {collection!r} already has a snapshot named {name!r}",
                collection=collection,
                name=name,
            )
        (self.root / collection).mkdir(mode=0o700, exist_ok=True)
        tmp = self.root / collection / f".creating-{name}-{uuid.uuid4().hex}"
        tmp.mkdir(mode=0o700)
        return tmp, final

    def commit(
        self,
        tmp: Path,
        final: Path,
        manifest: dict[str, Any],
        collection: str,
        name: str,
        seq: int,
        records: int,
        stored: int,
    ) -> SnapshotInfo:
        """Write the manifest and snapshot.json (with the list of files and their checksums) into ``tmp``
        and rename it to ``final``. ``stored``: records in the snapshot's store, expired ones included."""
        atomic_write_json(tmp / "collection.json", manifest)
        meta = {
            "format": SNAPSHOT_FORMAT,
            "collection": collection,
            "name": name,
            "created_at": datetime.now(UTC).isoformat(),
            "seq": seq,
            "records": records,
            "stored": stored,
            "dim": manifest["dim"],
            "metric": manifest["metric"],
            "files": file_digests(tmp),
        }
        atomic_write_json(tmp / SNAPSHOT_FILE, meta)
        tmp.rename(final)
        fsync_dir(final.parent)
        return _info(final, meta)

    def abort(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def list(self, collection: str) -> list[SnapshotInfo]:
        """The collection's snapshots, oldest first (also after the collection was dropped)."""
        folder = self.root / collection
        if not folder.is_dir():
            return []
        out = []
        for path in folder.iterdir():
            if path.name.startswith(".") or not (path / SNAPSHOT_FILE).exists():
                continue
            try:
                meta, _ = read_snapshot(path)
                out.append(_info(path, meta))
            except CorruptionError as exc:
                if path.exists():  # else deleted meanwhile
                    # One damaged snapshot must not hide the others; vecdb check reports it.
                    log.error("snapshot %s/%s is damaged and not listed: %s", collection, path.name, exc)
            except FileNotFoundError:  # deleted while being listed
                continue
        return sorted(out, key=lambda s: (s.created_at, s.name))

    def get(self, collection: str, name: str) -> Path:
        path = self.path(collection, name)
        if not (path / SNAPSHOT_FILE).exists():
            raise SnapshotNotFoundError(
                f"collection {collection!r} has no snapshot {name!r}", collection=collection, name=name
            )
        return path

    def delete(self, collection: str, name: str) -> None:
        path = self.get(collection, name)
        trash = path.parent / f".deleting-{name}-{uuid.uuid4().hex}"
        path.rename(trash)
        fsync_dir(path.parent)
        shutil.rmtree(trash)
