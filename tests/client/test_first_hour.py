"""Smaller first-hour fixes in the client: a connection error names the URL, ``grpc_url`` alone means
gRPC (and contradicts ``prefer_grpc=False``), an AsyncClient used from a second event loop says so."""

from __future__ import annotations

import asyncio

import pytest
from serverproc import ServerProcess, free_port

from vecdb_client import AsyncClient, Client
from vecdb_client.errors import FailedPreconditionError, UnavailableError


def test_a_connection_error_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, retries=0) as client, pytest.raises(UnavailableError) as err:
        client.list_collections()
    assert url in err.value.message
    assert err.value.details["url"] == url


async def test_an_async_connection_error_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncClient(url, retries=0) as client:
        with pytest.raises(UnavailableError, match=url):
            await client.list_collections()


def test_grpc_url_alone_means_grpc(vecdb_server: ServerProcess) -> None:
    with Client(grpc_url=vecdb_server.grpc_target) as client:
        assert client.transport_name == "grpc"
        assert isinstance(client.list_collections(), list)
    assert AsyncClient(grpc_url=vecdb_server.grpc_target).endpoint.grpc_target == vecdb_server.grpc_target
    with Client(vecdb_server.rest_url) as client:
        assert client.transport_name == "rest"
    with pytest.raises(ValueError, match="prefer_grpc=False"):
        Client(grpc_url=vecdb_server.grpc_target, prefer_grpc=False)
    with pytest.raises(ValueError, match="prefer_grpc=False"):
        AsyncClient(grpc_url=vecdb_server.grpc_target, prefer_grpc=False)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_an_async_client_in_a_second_loop_says_so(vecdb_server: ServerProcess, transport: str) -> None:
    if transport == "grpc":
        aclient = AsyncClient(grpc_url=vecdb_server.grpc_target)
    else:
        aclient = AsyncClient(vecdb_server.rest_url)

    async def names() -> list[str]:
        return await aclient.list_collections()

    first = asyncio.new_event_loop()
    try:
        assert isinstance(first.run_until_complete(names()), list)
        with pytest.raises(FailedPreconditionError, match="one AsyncClient per event loop"):
            asyncio.run(names())
        assert isinstance(first.run_until_complete(names()), list)  # still fine in its own loop
    finally:
        first.run_until_complete(aclient.close())
        first.close()
