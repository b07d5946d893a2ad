"""API keys and roles: which key may call which operation.

Keys come from the ``api_keys`` setting as ``KEY`` or ``KEY:admin`` (everything) and ``KEY:read``
(read operations only). With no key configured the server is open. REST takes ``Authorization: Bearer
KEY``; gRPC takes the same in its ``authorization`` metadata.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Literal

from vecdb import operations
from vecdb.config import parse_api_key
from vecdb.errors import AuthenticationError, InvalidConfigError, PermissionDeniedError

__all__ = ["OPERATIONS", "WRITE_OPERATIONS", "Authenticator", "Role"]

Role = Literal["admin", "read"]

#: Every operation, named as in the engine (and the metrics' ``operation`` label): ``vecdb.operations``.
OPERATIONS = tuple(op.name for op in operations.OPERATIONS)
WRITE_OPERATIONS = frozenset(op.name for op in operations.OPERATIONS if op.writes)


class Authenticator:
    def __init__(self, api_keys: Sequence[str]) -> None:
        """Raises ``InvalidConfigError`` for an entry that is not ``KEY``, ``KEY:admin`` or ``KEY:read``:
        an unknown role fails closed, never as an admin key."""
        self._keys: list[tuple[bytes, Role]] = []
        for entry in api_keys:
            try:
                key, role = parse_api_key(entry)
            except ValueError as exc:
                raise InvalidConfigError(f"api_keys: {exc}", field="api_keys") from None
            self._keys.append((key.encode(), role))

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, authorization: str | None, operation: str) -> None:
        """Raise unless ``authorization`` ("Bearer KEY") may run ``operation``."""
        if not self._keys:
            return
        role = self.role(authorization)
        if role == "read" and operation in WRITE_OPERATIONS:
            raise PermissionDeniedError(f"this API key is read-only: {operation} needs an admin key")

    def role(self, authorization: str | None) -> Role:
        """The role of ``authorization`` ("Bearer KEY"): ``admin`` on an open server (no key configured).
        Raises ``AuthenticationError`` for a missing, malformed or unknown key."""
        if not self._keys:
            return "admin"
        if not authorization:
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("malformed authorization: expected 'Bearer <key>'")
        role = self._role(token.strip().encode())
        if role is None:
            raise AuthenticationError("unknown API key")
        return role

    def _role(self, token: bytes) -> Role | None:
        found: Role | None = None
        for key, role in self._keys:  # compare with every key, in constant time each
            if hmac.compare_digest(key, token):
                found = role
        return found
