"""Errors through the client: the same fault raises the same exception class with the same ``details``
over REST and over gRPC, against a real ``vecdb serve``.

Pinned:

- a table of faults (missing / existing collection, bad name, wrong dimension, NaN or zero vector,
  duplicate id, bad filter operator, k over the limit, unknown include field, non-object metadata, bad
  metric or index, missing dim, unknown model, texts on a collection without a model, empty id or
  source...): each raises exactly the listed class on both transports, with equal ``details`` (and the
  ``details`` listed, where the table names them);
- API keys (a server of this module's own, ``--api-key KEY --api-key RO:read``): a wrong or missing key is
  ``AuthenticationError``, a read-only key writing ``PermissionDeniedError``, on both transports; the
  read-only key may read;
- path-unsafe collection names (``a/b``, ``.``, ``..``, empty) and out-of-range ``k`` behave the same on
  both transports (these pin client bugs found while writing this file: see each test);
- the client's error tree (``vecdb_client.errors``) is the server's (``vecdb.errors``): same class names,
  codes, parent classes, HTTP statuses and gRPC codes, same ``__all__``; and every code the server can
  send is rebuilt, from either transport's wire shape, as the class of the same name with its details.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import grpc
import numpy as np
import pytest
from clientkit import TRANSPORTS, client_for, start_server, stop_checked
from serverproc import ServerProcess

import vecdb.errors as server_errors
import vecdb_client.errors as client_errors
from vecdb_client import Client
from vecdb_client import _grpc as client_grpc
from vecdb_client import _rest as client_rest
from vecdb_client.errors import (
    AuthenticationError,
    CollectionExistsError,
    CollectionNotFoundError,
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidFilterError,
    InvalidIdError,
    InvalidMetadataError,
    InvalidNameError,
    InvalidSourceError,
    InvalidVectorError,
    LimitExceededError,
    ModelUnavailableError,
    PermissionDeniedError,
    VecDBError,
)

ADMIN_KEY, READ_KEY = "KEY", "RO"
Q = [1.0, 0.0, 0.0, 0.0]


@dataclass(frozen=True)
class Names:
    """Collections of this module on the shared server: ``vec`` (dim 4, cosine, records "a" and "b", no
    embedding model) and ``missing`` (never created)."""

    vec: str
    missing: str


@pytest.fixture(scope="module")
def names(vecdb_server: ServerProcess) -> Iterator[Names]:
    tag = uuid.uuid4().hex[:8]
    n = Names(vec=f"errors-{tag}", missing=f"errors-missing-{tag}")
    with Client(vecdb_server.rest_url) as c:
        c.create_collection(n.vec, dim=4).upsert(["a", "b"], [Q, [0, 1, 0, 0]], texts=["a", "b"])
        yield n
        c.drop_collection(n.vec)


@pytest.fixture(scope="module")
def clients(vecdb_server: ServerProcess) -> Iterator[dict[str, Client]]:
    """One client per transport, of the shared server."""
    made = {t: client_for(t, vecdb_server.rest_url, vecdb_server.grpc_target) for t in TRANSPORTS}
    yield made
    for c in made.values():
        c.close()


Fault = Callable[[Client, Names], Any]


class Returned(NamedTuple):
    """What a fault returned when it raised nothing."""

    value: Any


def outcome(fault: Fault, client: Client, names: Names) -> BaseException | Returned:
    """The exception ``fault`` raised, or what it returned."""
    try:
        return Returned(fault(client, names))
    except Exception as exc:
        return exc


def describe(exc: BaseException | Returned) -> str:
    if isinstance(exc, Returned):
        return f"no error, returned {exc.value!r}"
    details = getattr(exc, "details", None)
    return f"{type(exc).__name__}({str(exc)[:160]!r}, details={details!r})"


def assert_same_error(
    outcomes: dict[str, BaseException | Returned], expected: type[VecDBError], details: dict[str, Any] | None
) -> None:
    """Each transport raised exactly ``expected``, with equal details (``details`` when given)."""
    report = "; ".join(f"{t}: {describe(e)}" for t, e in outcomes.items())
    for t, exc in outcomes.items():
        assert type(exc) is expected, f"{t} should raise {expected.__name__} -- {report}"
    rest, grpc_ = (outcomes[t] for t in TRANSPORTS)
    assert isinstance(rest, VecDBError) and isinstance(grpc_, VecDBError)
    assert rest.details == grpc_.details, f"details differ between transports -- {report}"
    if details is not None:
        assert rest.details == details, report
    for t, exc in outcomes.items():
        assert isinstance(exc, VecDBError) and exc.message, f"{t}: empty message"


def c4(c: Client, n: Names) -> Any:
    return c.collection(n.vec)


#: (expected class, the fault, expected details or None), by id.
FAULTS: list[Any] = [
    pytest.param(
        CollectionNotFoundError,
        lambda c, n: c.get_collection(n.missing),
        None,
        id="missing-get_collection",
    ),
    pytest.param(
        CollectionNotFoundError, lambda c, n: c.collection(n.missing).search(Q), None, id="missing-search"
    ),
    pytest.param(
        CollectionNotFoundError, lambda c, n: c.collection(n.missing).count(), None, id="missing-count"
    ),
    pytest.param(
        CollectionNotFoundError,
        lambda c, n: c.collection(n.missing).upsert(["x"], [Q]),
        None,
        id="missing-upsert",
    ),
    pytest.param(CollectionNotFoundError, lambda c, n: c.drop_collection(n.missing), None, id="missing-drop"),
    pytest.param(
        CollectionNotFoundError, lambda c, n: c.embed(["x"], collection=n.missing), None, id="missing-embed"
    ),
    pytest.param(
        CollectionExistsError, lambda c, n: c.create_collection(n.vec, dim=4), None, id="exists-create"
    ),
    pytest.param(
        InvalidNameError,
        lambda c, n: c.create_collection("bad name!", dim=4),
        {"name": "bad name!"},
        id="bad-name-create",
    ),
    pytest.param(
        InvalidNameError, lambda c, n: c.get_collection("x" * 65), {"name": "x" * 65}, id="bad-name-long"
    ),
    pytest.param(
        InvalidNameError, lambda c, n: c.collection("a?b").count(), {"name": "a?b"}, id="bad-name-query"
    ),
    pytest.param(
        DimensionMismatchError,
        lambda c, n: c4(c, n).upsert(["x"], [[1, 2, 3]]),
        {"index": 0, "expected": 4, "got": 3},
        id="wrong-dim-upsert",
    ),
    pytest.param(
        DimensionMismatchError,
        lambda c, n: c4(c, n).search(np.ones((2, 5))),
        {"index": 0, "expected": 4, "got": 5},
        id="wrong-dim-search",
    ),
    pytest.param(
        DimensionMismatchError,
        lambda c, n: c4(c, n).upsert(["x", "y"], [Q, [1, 2]]),
        {"index": 1},
        id="ragged-upsert",
    ),
    pytest.param(
        InvalidVectorError,
        lambda c, n: c4(c, n).upsert(["x"], [[1, math.nan, 0, 0]]),
        {"index": 0},
        id="nan-vector",
    ),
    pytest.param(
        InvalidVectorError,
        lambda c, n: c4(c, n).search([0, math.inf, 0, 0]),
        {"index": 0},
        id="inf-query",
    ),
    pytest.param(
        InvalidVectorError,
        lambda c, n: c4(c, n).upsert(["x"], [[0, 0, 0, 0]]),
        {"index": 0},
        id="zero-vector-cosine",
    ),
    pytest.param(
        DuplicateIdError,
        lambda c, n: c4(c, n).upsert(["x", "x"], [Q, Q]),
        {"index": 1, "id": "x"},
        id="duplicate-id",
    ),
    pytest.param(InvalidIdError, lambda c, n: c4(c, n).upsert([""], [Q]), {"index": 0}, id="empty-id"),
    pytest.param(
        InvalidIdError, lambda c, n: c4(c, n).get(["x" * 600]), {"index": 0, "limit": 512}, id="long-id"
    ),
    pytest.param(
        InvalidSourceError, lambda c, n: c4(c, n).upsert(["x"], [Q], sources=[""]), {}, id="empty-source"
    ),
    pytest.param(
        InvalidFilterError,
        lambda c, n: c4(c, n).search(Q, filter={"a": {"$foo": 1}}),
        {"path": "filter.a.$foo"},
        id="bad-operator-search",
    ),
    pytest.param(
        InvalidFilterError,
        lambda c, n: c4(c, n).count(filter={"a": {"$foo": 1}}),
        {"path": "filter.a.$foo"},
        id="bad-operator-count",
    ),
    pytest.param(
        InvalidFilterError,
        lambda c, n: c4(c, n).delete(filter={"$and": []}),
        None,
        id="empty-and-delete",
    ),
    pytest.param(
        LimitExceededError,
        lambda c, n: c4(c, n).search(Q, k=10_001),
        {"limit": 10_000},
        id="k-too-large",
    ),
    pytest.param(
        LimitExceededError,
        lambda c, n: c4(c, n).search(Q, k=2**31),
        {"limit": 10_000},
        id="k-2**31",
    ),
    pytest.param(InvalidArgumentError, lambda c, n: c4(c, n).search(Q, k=0), {}, id="k-zero"),
    pytest.param(
        InvalidArgumentError, lambda c, n: c4(c, n).get(["a"], include=["bogus"]), {}, id="include-get"
    ),
    pytest.param(
        InvalidArgumentError,
        lambda c, n: c4(c, n).search(Q, include=["text", "bogus"]),
        {},
        id="include-search",
    ),
    pytest.param(
        InvalidArgumentError,
        lambda c, n: c4(c, n).search(Q, params={"ef_search": 0}),
        {"field": "ef_search"},
        id="bad-params",
    ),
    pytest.param(
        InvalidMetadataError,
        lambda c, n: c4(c, n).upsert(["x"], [Q], metadatas=[[1, 2]]),
        {"index": 0},
        id="metadata-list",
    ),
    pytest.param(
        InvalidMetadataError,
        lambda c, n: c4(c, n).upsert(["x"], [Q], metadatas=["text"]),
        {"index": 0},
        id="metadata-str",
    ),
    pytest.param(
        InvalidMetadataError,
        lambda c, n: c4(c, n).upsert(["x"], [Q], metadatas=[{"v": math.nan}]),
        None,
        id="metadata-nan",
    ),
    pytest.param(
        InvalidConfigError,
        lambda c, n: c.create_collection(f"{n.missing}-m", dim=4, metric="hamming"),
        {"field": "metric"},
        id="bad-metric",
    ),
    pytest.param(
        InvalidConfigError,
        lambda c, n: c.create_collection(f"{n.missing}-i", dim=4, index={"type": "nope"}),
        {"field": "index.type"},
        id="bad-index",
    ),
    pytest.param(
        InvalidConfigError,
        lambda c, n: c.create_collection(f"{n.missing}-d"),
        {"field": "dim"},
        id="no-dim",
    ),
    pytest.param(
        InvalidConfigError,
        lambda c, n: c.create_collection(f"{n.missing}-z", dim=0),
        {"field": "dim"},
        id="dim-zero",
    ),
    pytest.param(
        ModelUnavailableError,
        lambda c, n: c.create_collection(f"{n.missing}-e", embedding={"model": "no-such-model"}),
        {"model": "no-such-model"},
        id="unknown-model",
    ),
    pytest.param(
        InvalidArgumentError,
        lambda c, n: c4(c, n).upsert(["x"], texts=["text only"]),
        {},
        id="texts-without-model-upsert",
    ),
    pytest.param(
        InvalidArgumentError,
        lambda c, n: c4(c, n).search(texts=["text query"]),
        {},
        id="texts-without-model-search",
    ),
    pytest.param(
        InvalidArgumentError,
        lambda c, n: c.embed(["x"], collection=n.vec),
        {},
        id="embed-collection-without-model",
    ),
    pytest.param(InvalidArgumentError, lambda c, n: c4(c, n).get([]), {}, id="get-no-ids"),
    pytest.param(
        InvalidArgumentError, lambda c, n: c4(c, n).search(Q, texts=["x"]), {}, id="search-vectors-and-texts"
    ),
]


@pytest.mark.parametrize(("expected", "fault", "details"), FAULTS)
def test_same_error_class_and_details_on_both_transports(
    clients: dict[str, Client],
    names: Names,
    expected: type[VecDBError],
    fault: Fault,
    details: dict[str, Any] | None,
) -> None:
    outcomes = {t: outcome(fault, c, names) for t, c in clients.items()}
    assert_same_error(outcomes, expected, details)


def test_faults_left_the_collection_unchanged(clients: dict[str, Client], names: Names) -> None:
    for c in clients.values():
        assert c.collection(names.vec).count() == 2
        assert not [n for n in c.list_collections() if n.startswith(names.missing)]


# ---- API keys ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own with an admin key and a read-only key, and a collection "docs"."""
    sp = start_server(
        tmp_path_factory.mktemp("auth-server"), "--api-key", ADMIN_KEY, "--api-key", f"{READ_KEY}:read"
    )
    with Client(sp.rest_url, api_key=ADMIN_KEY) as admin:
        admin.create_collection("docs", dim=4).upsert(["a"], [Q], sources=["s"])
    yield sp
    stop_checked([sp])


AUTH_FAULTS: list[Any] = [
    pytest.param("WRONG", AuthenticationError, lambda c: c.list_collections(), id="wrong-key-list"),
    pytest.param("WRONG", AuthenticationError, lambda c: c.collection("docs").count(), id="wrong-key-count"),
    pytest.param(
        "WRONG", AuthenticationError, lambda c: c.create_collection("new", dim=4), id="wrong-key-create"
    ),
    pytest.param(None, AuthenticationError, lambda c: c.collection("docs").search(Q), id="no-key-search"),
    pytest.param(
        READ_KEY, PermissionDeniedError, lambda c: c.create_collection("new", dim=4), id="read-only-create"
    ),
    pytest.param(
        READ_KEY,
        PermissionDeniedError,
        lambda c: c.collection("docs").upsert(["b"], [Q]),
        id="read-only-upsert",
    ),
    pytest.param(
        READ_KEY, PermissionDeniedError, lambda c: c.collection("docs").delete(["a"]), id="read-only-delete"
    ),
    pytest.param(
        READ_KEY,
        PermissionDeniedError,
        lambda c: c.collection("docs").delete(source="s"),
        id="read-only-delete-source",
    ),
    pytest.param(READ_KEY, PermissionDeniedError, lambda c: c.drop_collection("docs"), id="read-only-drop"),
]


@pytest.mark.parametrize(("key", "expected", "fault"), AUTH_FAULTS)
def test_auth_errors_on_both_transports(
    auth_server: ServerProcess, key: str | None, expected: type[VecDBError], fault: Callable[[Client], Any]
) -> None:
    outcomes = {}
    for t in TRANSPORTS:
        with client_for(t, auth_server.rest_url, auth_server.grpc_target, api_key=key) as c:
            outcomes[t] = outcome(lambda c, _: fault(c), c, Names("docs", "-"))
    assert_same_error(outcomes, expected, {})


def test_read_only_key_reads_and_admin_key_writes(auth_server: ServerProcess) -> None:
    for t in TRANSPORTS:
        with client_for(t, auth_server.rest_url, auth_server.grpc_target, api_key=READ_KEY) as ro:
            docs = ro.collection("docs")
            assert "docs" in ro.list_collections()
            assert docs.count() == 1
            assert docs.search(Q, k=1)[0][0].id == "a"
            assert [r.id for r in docs.get(["a"])] == ["a"]
            assert docs.info().count == 1
        with client_for(t, auth_server.rest_url, auth_server.grpc_target, api_key=ADMIN_KEY) as admin:
            assert admin.collection("docs").upsert([f"by-{t}"], [Q]) == 1
            assert admin.collection("docs").delete([f"by-{t}"]) == 1


# ---- client bugs found while writing this file --------------------------------------------------------


#: Collection names that are not path segments, and the operations tried with them.
PATH_UNSAFE_NAMES = ["a/b", ".", "..", ""]
NAMED_OPS: dict[str, Callable[[Client, str], Any]] = {
    "get_collection": lambda c, name: c.get_collection(name),
    "count": lambda c, name: c.collection(name).count(),
    "list_sources": lambda c, name: c.collection(name).list_sources(),
    "search": lambda c, name: c.collection(name).search(Q),
    "drop_collection": lambda c, name: c.drop_collection(name),
}


def _named_op(op: Callable[[Client, str], Any], name: str, client: Client, _: Names) -> Any:
    return op(client, name)


def test_path_unsafe_names_are_invalid_names_on_both_transports(clients: dict[str, Client]) -> None:
    """A name goes into REST paths: ``.`` and ``..`` would be dot segments (which httpx resolves), ``""`` an
    empty segment, ``a/b`` a second one. The client checks names by the server's rule before sending, so
    every such name is InvalidNameError on both transports. All mismatches are listed in one failure."""
    mismatches = []
    for bad in PATH_UNSAFE_NAMES:
        for label, op in NAMED_OPS.items():
            outcomes = {
                t: outcome(partial(_named_op, op, bad), c, Names("-", "-")) for t, c in clients.items()
            }
            try:
                assert_same_error(outcomes, InvalidNameError, {"name": bad})
            except AssertionError as exc:
                mismatches.append(f"{label}({bad!r}): {str(exc).splitlines()[0]}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches)


def test_dot_name_does_not_reach_another_collection(clients: dict[str, Client], names: Names) -> None:
    """``collection(".").count()`` would request ``/v1/collections/./count``, which httpx resolves to
    ``/v1/collections/count`` (the info of a collection named "count"): it must be InvalidNameError."""
    admin = clients["rest"]
    existed = "count" in admin.list_collections()
    if not existed:
        admin.create_collection("count", dim=2).upsert(["x", "y"], [[1, 0], [0, 1]])
    try:
        outcomes = {t: outcome(lambda c, _: c.collection(".").count(), c, names) for t, c in clients.items()}
        assert_same_error(outcomes, InvalidNameError, {"name": "."})
    finally:
        if not existed:
            admin.drop_collection("count")


@pytest.mark.parametrize("k", [2**32, 2**40, -1, 0])
def test_out_of_range_k_same_on_both_transports(clients: dict[str, Client], names: Names, k: int) -> None:
    """k beyond gRPC's uint32 is sent as the largest uint32, so the server's limit answers on both
    transports (``LimitExceededError``); k < 1 is refused by the client as the server refuses it."""
    outcomes = {t: outcome(lambda c, n: c4(c, n).search(Q, k=k), c, names) for t, c in clients.items()}
    expected = InvalidArgumentError if k < 1 else LimitExceededError
    assert_same_error(outcomes, expected, {} if k < 1 else None)


def test_empty_query_row_same_on_both_transports(clients: dict[str, Client], names: Names) -> None:
    """A batch of one empty query vector (shape (1, 0)) cannot travel over gRPC (``Vectors.dim`` 0 means no
    vectors): the client refuses it before sending, the same way on both transports."""
    outcomes = {t: outcome(lambda c, n: c4(c, n).search([[]]), c, names) for t, c in clients.items()}
    assert_same_error(outcomes, DimensionMismatchError, {"index": 0, "got": 0})


# ---- the error tree -----------------------------------------------------------------------------------


def tree(root: type[Exception]) -> dict[str, tuple[str, str | None, int, str]]:
    """Class name -> (code, parent class name, HTTP status, gRPC code), for ``root`` and its subclasses."""
    out: dict[str, tuple[str, str | None, int, str]] = {}
    todo: list[type[Any]] = [root]
    while todo:
        cls = todo.pop()
        assert cls.__name__ not in out, f"two classes named {cls.__name__}"
        parent = None if cls is root else cls.__bases__[0].__name__
        assert cls is root or len(cls.__bases__) == 1, cls
        out[cls.__name__] = (cls.code, parent, cls.http_status, cls.grpc_code)
        todo.extend(cls.__subclasses__())
    return out


def test_client_error_tree_is_the_servers() -> None:
    server_tree = tree(server_errors.VecDBError)
    client_tree = tree(client_errors.VecDBError)
    assert len(server_tree) >= 25
    assert client_tree == server_tree
    assert sorted(client_errors.__all__) == sorted(server_errors.__all__)
    for name in server_tree:
        assert getattr(client_errors, name).__module__ == "vecdb_client.errors"
    codes = [code for code, *_ in client_tree.values()]
    assert len(codes) == len(set(codes)), "codes must be unique"
    for code in [*codes, "no_such_code"]:
        server_cls = server_errors.error_class_for_code(code)
        assert client_errors.error_class_for_code(code).__name__ == server_cls.__name__


def _all_server_classes() -> list[type[server_errors.VecDBError]]:
    out, todo = [], [server_errors.VecDBError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


@pytest.mark.parametrize("server_cls", _all_server_classes(), ids=lambda cls: cls.__name__)
def test_every_server_error_is_rebuilt_from_both_wire_shapes(
    server_cls: type[server_errors.VecDBError],
) -> None:
    """What the server sends for each class (REST body; gRPC status and trailers) comes back as the client
    class of the same name, with the message and details."""
    exc = server_cls("something failed", index=3, field="f")
    from_rest = client_rest.error_from_response(exc.http_status, {"error": exc.to_dict()}, "")
    trailers = (("vecdb-error-code", exc.code), ("vecdb-error-details", '{"index": 3, "field": "f"}'))
    from_grpc = client_grpc.error_from_rpc(grpc.StatusCode[exc.grpc_code], exc.message, trailers)
    for rebuilt in (from_rest, from_grpc):
        assert type(rebuilt).__name__ == server_cls.__name__
        assert type(rebuilt).__module__ == "vecdb_client.errors"
        assert (rebuilt.message, rebuilt.details) == ("something failed", {"index": 3, "field": "f"})
