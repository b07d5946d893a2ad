"""The one error tree of vecdb.

Every error vecdb raises on purpose is a ``VecDBError``. Each class carries a stable machine-readable
``code``, the HTTP status and the gRPC status code the server will map it to, and a ``details`` dict
that names the offending item (its position in the batch, the id, the field...).

::

    VecDBError                      internal            500  INTERNAL
    ├── InvalidArgumentError        invalid_argument    400  INVALID_ARGUMENT
    │   ├── DimensionMismatchError  dimension_mismatch
    │   ├── InvalidVectorError      invalid_vector      (NaN, inf, zero vector under cosine)
    │   ├── InvalidIdError          invalid_id          (empty, oversized, not a string)
    │   ├── DuplicateIdError        duplicate_id        (the same id twice in one batch)
    │   ├── InvalidMetadataError    invalid_metadata    (not a JSON object, NaN inside, bad key)
    │   ├── InvalidSourceError      invalid_source
    │   ├── InvalidFilterError      invalid_filter      (unknown operator, malformed filter)
    │   ├── InvalidNameError        invalid_name        (collection name)
    │   └── InvalidConfigError      invalid_config      (index spec, metric, dim, settings)
    │       └── ModelUnavailableError model_unavailable (embedding model not available locally)
    ├── LimitExceededError          limit_exceeded      413  RESOURCE_EXHAUSTED (batch, text, metadata, k)
    ├── NotFoundError               not_found           404  NOT_FOUND
    │   ├── CollectionNotFoundError collection_not_found
    │   └── SnapshotNotFoundError   snapshot_not_found
    ├── AlreadyExistsError          already_exists      409  ALREADY_EXISTS
    │   ├── CollectionExistsError   collection_exists
    │   └── SnapshotExistsError     snapshot_exists
    ├── AuthenticationError         unauthenticated     401  UNAUTHENTICATED (no or unknown API key)
    ├── PermissionDeniedError       permission_denied   403  PERMISSION_DENIED (read-only key writing)
    ├── UnavailableError            unavailable         503  UNAVAILABLE (starting, draining or unreachable)
    ├── DeadlineExceededError       deadline_exceeded   504  DEADLINE_EXCEEDED (a call ran past its timeout)
    ├── FailedPreconditionError     failed_precondition 409  FAILED_PRECONDITION
    │   ├── DatabaseLockedError     database_locked     (another process holds the data directory)
    │   ├── ClosedError             closed              (the database or collection was closed)
    │   └── EmbeddingDisabledError  embedding_disabled  (texts without vectors, embedding turned off)
    └── StorageError                storage_error       500  INTERNAL (RocksDB or the file system failed)
        ├── CorruptionError         corruption          500  DATA_LOSS (manifest, store file or WAL damaged)
        └── TooManyOpenFilesError   too_many_open_files 503  RESOURCE_EXHAUSTED (the process ran out of fds)

``UnavailableError`` and ``DeadlineExceededError`` are what clients raise for transport failures; the
Python client (``vecdb_client.errors``) mirrors this tree class for class (a test pins it).

Third-party exceptions (FAISS, RocksDB, OS) are translated once, at the boundary, with ``raise ... from``.
gRPC codes are names of ``grpc.StatusCode`` members, kept as strings so that this leaf module imports
nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "ClosedError",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "CorruptionError",
    "DatabaseLockedError",
    "DeadlineExceededError",
    "DimensionMismatchError",
    "DuplicateIdError",
    "EmbeddingDisabledError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "InvalidConfigError",
    "InvalidFilterError",
    "InvalidIdError",
    "InvalidMetadataError",
    "InvalidNameError",
    "InvalidSourceError",
    "InvalidVectorError",
    "LimitExceededError",
    "ModelUnavailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "SnapshotExistsError",
    "SnapshotNotFoundError",
    "StorageError",
    "TooManyOpenFilesError",
    "UnavailableError",
    "VecDBError",
    "error_class_for_code",
]


class VecDBError(Exception):
    """Root of every error vecdb raises on purpose."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The wire shape: ``{"code": ..., "message": ..., "details": {...}}``."""
        return {"code": self.code, "message": self.message, "details": dict(self.details)}


class InvalidArgumentError(VecDBError):
    code = "invalid_argument"
    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class DimensionMismatchError(InvalidArgumentError):
    code = "dimension_mismatch"


class InvalidVectorError(InvalidArgumentError):
    code = "invalid_vector"


class InvalidIdError(InvalidArgumentError):
    code = "invalid_id"


class DuplicateIdError(InvalidArgumentError):
    code = "duplicate_id"


class InvalidMetadataError(InvalidArgumentError):
    code = "invalid_metadata"


class InvalidSourceError(InvalidArgumentError):
    code = "invalid_source"


class InvalidFilterError(InvalidArgumentError):
    code = "invalid_filter"


class InvalidNameError(InvalidArgumentError):
    code = "invalid_name"


class InvalidConfigError(InvalidArgumentError):
    code = "invalid_config"


class ModelUnavailableError(InvalidConfigError):
    code = "model_unavailable"


class LimitExceededError(VecDBError):
    code = "limit_exceeded"
    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class NotFoundError(VecDBError):
    code = "not_found"
    http_status = 404
    grpc_code = "NOT_FOUND"


class CollectionNotFoundError(NotFoundError):
    code = "collection_not_found"


class SnapshotNotFoundError(NotFoundError):
    code = "snapshot_not_found"


class AlreadyExistsError(VecDBError):
    code = "already_exists"
    http_status = 409
    grpc_code = "ALREADY_EXISTS"


class CollectionExistsError(AlreadyExistsError):
    code = "collection_exists"


class SnapshotExistsError(AlreadyExistsError):
    code = "snapshot_exists"


class AuthenticationError(VecDBError):
    code = "unauthenticated"
    http_status = 401
    grpc_code = "UNAUTHENTICATED"


class PermissionDeniedError(VecDBError):
    code = "permission_denied"
    http_status = 403
    grpc_code = "PERMISSION_DENIED"


class UnavailableError(VecDBError):
    code = "unavailable"
    http_status = 503
    grpc_code = "UNAVAILABLE"


class DeadlineExceededError(VecDBError):
    code = "deadline_exceeded"
    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"


class FailedPreconditionError(VecDBError):
    code = "failed_precondition"
    http_status = 409
    grpc_code = "FAILED_PRECONDITION"


class DatabaseLockedError(FailedPreconditionError):
    code = "database_locked"


class ClosedError(FailedPreconditionError):
    code = "closed"


class EmbeddingDisabledError(FailedPreconditionError):
    code = "embedding_disabled"


class StorageError(VecDBError):
    code = "storage_error"


class CorruptionError(StorageError):
    code = "corruption"
    grpc_code = "DATA_LOSS"


class TooManyOpenFilesError(StorageError):
    code = "too_many_open_files"
    http_status = 503
    grpc_code = "RESOURCE_EXHAUSTED"


def _all_subclasses(cls: type[VecDBError]) -> list[type[VecDBError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


def error_class_for_code(code: str) -> type[VecDBError]:
    """The class whose ``code`` is ``code`` (``VecDBError`` when unknown): how clients rebuild errors."""
    for cls in _all_subclasses(VecDBError):
        if cls.code == code:
            return cls
    return VecDBError
