"""RocksDB's errors, translated to vecdb's error tree in this one place.

rocksdict raises a bare ``Exception`` whose text is RocksDB's ``Status::ToString()``: a fixed prefix
naming the status code ("Corruption: ...", "IO error: ...", "Invalid argument: ...") followed by the
detail. Match the prefix, never a substring of the whole text: "Corruption: block checksum mismatch"
contains "lock". OS errors (EMFILE from an open) surface as "IO error: ... Too many open files".
"""

from __future__ import annotations

import errno
import os

from vecdb.errors import (
    CorruptionError,
    DatabaseLockedError,
    StorageError,
    TooManyOpenFilesError,
    VecDBError,
)

__all__ = ["translate"]

_EMFILE = os.strerror(errno.EMFILE)  # "Too many open files"
_ENFILE = os.strerror(errno.ENFILE)  # "Too many open files in system"


def translate(exc: BaseException, what: str, **details: object) -> VecDBError:
    """The vecdb error for ``exc``, raised while ``what`` (e.g. "store of collection 'docs'").

    ``Corruption`` -> ``CorruptionError`` (DATA_LOSS); a held lock -> ``DatabaseLockedError`` (a
    ``FailedPreconditionError``, returned as such); running out of file descriptors ->
    ``TooManyOpenFilesError``; anything else -> ``StorageError``. The caller raises it ``from exc``.
    """
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return TooManyOpenFilesError(f"{what}: the process has too many open files", **details)
    if text.startswith("Corruption:"):
        return CorruptionError(f"{what} is damaged ({_short(text)})", **details)
    if text.startswith("IO error:"):
        if _EMFILE in text or _ENFILE in text:
            return TooManyOpenFilesError(
                f"{what}: the process has too many open files (raise its RLIMIT_NOFILE, or lower "
                "storage.max_open_files)",
                **details,
            )
        # "IO error: lock hold by current process" / "IO error: While lock file: ...: Resource
        # temporarily unavailable": RocksDB's LOCK file is held.
        body = text[len("IO error:") :].lstrip()
        if body.startswith(("lock ", "While lock file")):
            return DatabaseLockedError(f"{what} is in use by another process", **details)
    return StorageError(f"{what} failed ({_short(text)})", **details)


def _short(text: str) -> str:
    """RocksDB's text without the server's file paths (they are logged, not sent to clients)."""
    head = text.split(" in /", 1)[0].split(": /", 1)[0]
    return head[:200]
