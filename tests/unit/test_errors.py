"""One error tree: unique codes, a status for each transport, a stable wire shape."""

from __future__ import annotations

from vecdb import errors
from vecdb.errors import VecDBError, error_class_for_code

CLASSES = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, VecDBError)]
GRPC_CODES = {
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "FAILED_PRECONDITION",
    "RESOURCE_EXHAUSTED",
    "INTERNAL",
    "DATA_LOSS",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
}


def test_codes_are_unique_and_round_trip() -> None:
    assert len(CLASSES) == len(errors.__all__) - 1  # all but error_class_for_code
    assert len({c.code for c in CLASSES}) == len(CLASSES)
    for cls in CLASSES:
        assert error_class_for_code(cls.code) is cls
        assert cls.grpc_code in GRPC_CODES
        assert 400 <= cls.http_status < 600
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} is missing from the tree drawing"
    assert error_class_for_code("no-such-code") is VecDBError


def test_bad_input_is_never_a_server_error() -> None:
    for cls in CLASSES:
        if issubclass(cls, errors.InvalidArgumentError | errors.NotFoundError | errors.LimitExceededError):
            assert cls.http_status < 500
            assert cls.grpc_code not in {"INTERNAL", "UNKNOWN"}


def test_wire_shape() -> None:
    err = errors.DuplicateIdError("id 'x' twice", index=3, id="x")
    assert err.to_dict() == {
        "code": "duplicate_id",
        "message": "id 'x' twice",
        "details": {"index": 3, "id": "x"},
    }
    assert str(err) == "id 'x' twice"
