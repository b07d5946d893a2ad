"""One interface over a server (``vecdb_client.Client``) and an embedded ``vecdb.Database``.

Both already share the method names of the collections (upsert, get, search, replace_source, delete,
list_sources); this adds the few database-level calls the commands need, with errors of either side
turned into ``CommandError`` with a readable message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

__all__ = ["DEFAULT_URL", "CommandError", "Connection", "connect", "json_flag"]

DEFAULT_URL = "http://127.0.0.1:8080"


class CommandError(Exception):
    """A failure to report in one line (exit status 1)."""


def json_flag(value: str | None, flag: str) -> Any:
    """The JSON a flag holds (None when not given); CommandError naming the flag when it is not JSON."""
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError as exc:
        raise CommandError(f"{flag} is not JSON: {exc}") from exc


class Connection(Protocol):
    where: str
    api: Any  # the Database or the Client: the same snapshot methods on both

    def collection(self, name: str) -> Any: ...
    def info(self, name: str) -> dict[str, Any]: ...
    def list_collections(self) -> list[str]: ...
    def create_collection(self, name: str, **kwargs: Any) -> None: ...
    def drop_collection(self, name: str) -> None: ...


class _Embedded:
    def __init__(self, db: Any, path: Path) -> None:
        self.db = db
        self.api = db
        self.where = f"data directory {path}"

    def collection(self, name: str) -> Any:
        return self.db.get_collection(name)

    def info(self, name: str) -> dict[str, Any]:
        return dict(self.db.get_collection(name).info())

    def list_collections(self) -> list[str]:
        return list(self.db.list_collections())

    def create_collection(self, name: str, **kwargs: Any) -> None:
        self.db.create_collection(name, **kwargs)

    def drop_collection(self, name: str) -> None:
        self.db.drop_collection(name)


class _Remote:
    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.api = client
        self.where = f"server {url}"

    def collection(self, name: str) -> Any:
        return self.client.collection(name)

    def info(self, name: str) -> dict[str, Any]:
        return dict(self.client.collection(name).info().to_dict())

    def list_collections(self) -> list[str]:
        return list(self.client.list_collections())

    def create_collection(self, name: str, **kwargs: Any) -> None:
        self.client.create_collection(name, **kwargs)

    def drop_collection(self, name: str) -> None:
        self.client.drop_collection(name)


def _tls_file(given: Path | None, env: str) -> Path | None:
    value = os.environ.get(env) if given is None else None
    return Path(value) if value else given


@contextmanager
def connect(
    url: str | None,
    api_key: str | None,
    data_dir: Path | None,
    *,
    ca_cert: Path | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> Iterator[Connection]:
    """The server at ``url`` (default ``$VECDB_URL`` or http://127.0.0.1:8080), or the data directory
    ``data_dir`` opened in this process (exclusive: not while a server has it open). ``ca_cert``,
    ``client_cert``, ``client_key`` (defaults ``$VECDB_CA_CERT``, ``$VECDB_CLIENT_CERT``,
    ``$VECDB_CLIENT_KEY``) are PEM files for an https:// server (the latter two for mutual TLS)."""
    from vecdb.errors import VecDBError

    if data_dir is not None:
        if url is not None:
            raise CommandError("give --url or --data-dir, not both")
        if ca_cert is not None or client_cert is not None or client_key is not None:
            raise CommandError(
                "--ca-cert / --client-cert / --client-key are for a server (--url), not --data-dir"
            )
        from vecdb import Database

        try:
            db = Database(data_dir)
        except VecDBError as exc:
            raise CommandError(str(exc)) from exc
        try:
            yield _Embedded(db, data_dir)
        except VecDBError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            db.close()
        return
    try:
        from vecdb_client import Client
        from vecdb_client.errors import UnavailableError
        from vecdb_client.errors import VecDBError as ClientError
    except ImportError as exc:
        raise CommandError(
            "talking to a server needs vecdb-client (pip install -e clients/python); or use --data-dir"
        ) from exc

    target = url or os.environ.get("VECDB_URL") or DEFAULT_URL
    try:
        client = Client(
            target,
            api_key=api_key or os.environ.get("VECDB_API_KEY"),
            retries=1,
            ca_cert=_tls_file(ca_cert, "VECDB_CA_CERT"),
            client_cert=_tls_file(client_cert, "VECDB_CLIENT_CERT"),
            client_key=_tls_file(client_key, "VECDB_CLIENT_KEY"),
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    try:
        yield _Remote(client, target)
    except UnavailableError as exc:
        tls_hint = (
            "; over TLS, check --ca-cert (and --client-cert / --client-key if the server requires them)"
            if target.startswith("https://")
            else ""
        )
        raise CommandError(
            f"cannot reach the vecdb server at {target} ({exc}); start it with `vecdb serve`"
            f" or give --url / --data-dir{tls_hint}"
        ) from exc
    except ClientError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        client.close()
