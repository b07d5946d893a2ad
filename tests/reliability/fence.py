"""Did an attack write outside the data directory? The hostile-input tests put the data directory two
"fence" folders deep under a root of their own and check, after every example, that nothing appeared in
the root or the fences, and that the data directory holds only the database's own entries."""

from __future__ import annotations

import os
from pathlib import Path

from vecdb.engine.database import NAME_RE

__all__ = ["FENCE", "HOSTILE_NAMES", "escaped_paths"]

FENCE = ("f1", "f2")

#: Collection names that must never reach the file system as paths (nor be accepted: the rule is
#: [A-Za-z0-9_-]{1,64}).
HOSTILE_NAMES = [
    "",
    " ",
    ".",
    "..",
    "../x",
    "../../x",
    "../../../x",
    "a/b",
    "/tmp/x",
    "a\\b",
    "docs\x00",
    "\x00",
    "docs\n",
    "%2e%2e",
    "é",
    "😀",
    "\uff44\uff4f\uff43\uff53",  # fullwidth "docs": isalnum() but not [A-Za-z0-9]
    "x" * 65,
    "x" * 5000,
]

#: What a data directory holds: its lock, collections/NAME, snapshots/COLLECTION/NAME.
_OWN = ("LOCK", "collections", "snapshots")


def escaped_paths(root: Path, data: Path) -> list[str]:
    """Anything under ``root`` outside ``data`` (the fence folders aside), and entries of ``data`` that
    are not the database's own (names not of the collection-name form included)."""
    fence = {root.joinpath(*FENCE[: i + 1]) for i in range(len(FENCE))}
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == data:
            dirnames.clear()
            continue
        out += [str(here / f) for f in filenames]
        out += [str(here / d) for d in dirnames if here / d not in fence and here / d != data]
    out += [str(data / e) for e in os.listdir(data) if e not in _OWN]
    collections = data / "collections"
    if collections.exists():
        out += [str(collections / e) for e in os.listdir(collections) if not NAME_RE.fullmatch(e)]
    snapshots = data / "snapshots"
    if snapshots.exists():
        for col in os.listdir(snapshots):
            if not NAME_RE.fullmatch(col):
                out.append(str(snapshots / col))
                continue
            out += [str(snapshots / col / e) for e in os.listdir(snapshots / col) if not NAME_RE.fullmatch(e)]
    return out
