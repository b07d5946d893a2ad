"""One interface over a server (``vecdb_client.Client``) and an embedded ``vecdb.Database``.

Both already share the method names of the collections (upsert, get, search, replace_source, delete,
list_sources); this adds the few database-level calls the commands need, with errors of either side
turned into ``CommandError`` with a readable message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

__all__ = ["DEFAULT_URL", "CommandError", "Connection", "connect"]

DEFAULT_URL = "http://127.0.0.1:8080"


class CommandError(Exception):
    """A failure to report in one line (exit status 1)."""


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


@contextmanager
def connect(url: str | None, api_key: str | None, data_dir: Path | None) -> Iterator[Connection]:
    """The server at ``url`` (default ``$VECDB_URL`` or http://127.0.0.1:8080), or the data directory
    ``data_dir`` opened in this process (exclusive: not while a server has it open)."""
    from vecdb.errors import VecDBError

    if data_dir is not None:
        if url is not None:
            raise CommandError("give --url or --data-dir, not both")
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
        client = Client(target, api_key=api_key or os.environ.get("VECDB_API_KEY"), retries=1)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    try:
        yield _Remote(client, target)
    except UnavailableError as exc:
        raise CommandError(
            f"cannot reach the vecdb server at {target} ({exc}); start it with `vecdb serve`"
            " or give --url / --data-dir"
        ) from exc
    except ClientError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        client.close()
