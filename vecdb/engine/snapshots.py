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
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vecdb.errors import CorruptionError, SnapshotExistsError, SnapshotNotFoundError
from vecdb.storage import atomic_write_json, fsync_dir, read_json
from vecdb.types import SnapshotInfo

__all__ = ["SNAPSHOT_FILE", "Snapshots", "read_snapshot"]

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
    ) -> SnapshotInfo:
        """Write the manifest and snapshot.json into ``tmp`` and rename it to ``final``."""
        meta = {
            "format": SNAPSHOT_FORMAT,
            "collection": collection,
            "name": name,
            "created_at": datetime.now(UTC).isoformat(),
            "seq": seq,
            "records": records,
            "dim": manifest["dim"],
            "metric": manifest["metric"],
        }
        atomic_write_json(tmp / "collection.json", manifest)
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
            meta, _ = read_snapshot(path)
            out.append(_info(path, meta))
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
