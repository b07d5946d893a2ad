"""The errors the client raises: the server's error tree (``vecdb.errors``), class for class.

Whichever transport carried the call, a server error comes back as the class whose ``code`` the server
sent (REST ``{"error": {"code", "message", "details"}}``, gRPC trailer ``vecdb-error-code``), with the
same ``message`` and ``details``. Failures of the transport itself are ``UnavailableError`` (connection
refused or reset, HTTP 503, gRPC UNAVAILABLE) and ``DeadlineExceededError`` (the call's timeout ran out).

::

    VecDBError                      internal
    ├── InvalidArgumentError        invalid_argument
    │   ├── DimensionMismatchError  dimension_mismatch
    │   ├── InvalidVectorError      invalid_vector
    │   ├── InvalidIdError          invalid_id
    │   ├── DuplicateIdError        duplicate_id
    │   ├── InvalidMetadataError    invalid_metadata
    │   ├── InvalidSourceError      invalid_source
    │   ├── InvalidFilterError      invalid_filter
    │   ├── InvalidNameError        invalid_name
    │   └── InvalidConfigError      invalid_config
    │       └── ModelUnavailableError model_unavailable
    ├── LimitExceededError          limit_exceeded
    ├── NotFoundError               not_found
    │   ├── CollectionNotFoundError collection_not_found
    │   └── SnapshotNotFoundError   snapshot_not_found
    ├── AlreadyExistsError          already_exists
    │   ├── CollectionExistsError   collection_exists
    │   └── SnapshotExistsError     snapshot_exists
    ├── AuthenticationError         unauthenticated
    ├── PermissionDeniedError       permission_denied
    ├── UnavailableError            unavailable
    ├── DeadlineExceededError       deadline_exceeded
    ├── FailedPreconditionError     failed_precondition
    │   ├── DatabaseLockedError     database_locked
    │   ├── ClosedError             closed
    │   └── EmbeddingDisabledError  embedding_disabled
    └── StorageError                storage_error
        ├── CorruptionError         corruption
        └── TooManyOpenFilesError   too_many_open_files

This module mirrors the server's by hand (the client must not import the server); a test in the server's
repository pins that both trees have the same classes, codes, parents and statuses.
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
    """Root of every error the client raises on purpose.

    ``message`` is the server's message, ``details`` its details (the offending position, id, field...).
    """

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
    """The class whose ``code`` is ``code``; ``VecDBError`` for a code this client does not know."""
    for cls in _all_subclasses(VecDBError):
        if cls.code == code:
            return cls
    return VecDBError
