"""LangChain's own standard tests for vector stores (``langchain_tests``), unchanged, against a real
``vecdb serve`` subprocess: once over REST, once over gRPC; sync and async; no xfail, no override but the
``vectorstore`` fixture (an empty store on a fresh collection, dropped afterwards).

The fixture is async so that it runs in the test's event loop and can close the async client the store
opened there (an ``AsyncClient`` belongs to one loop).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests
from serverproc import ServerProcess

from vecdb_client.errors import CollectionNotFoundError
from vecdb_client.langchain import VecDBVectorStore


async def _store(
    server: ServerProcess, transport: str, tests: VectorStoreIntegrationTests
) -> AsyncIterator[VecDBVectorStore]:
    name = f"lc_{transport}_{uuid.uuid4().hex[:12]}"
    if transport == "grpc":
        store = VecDBVectorStore(name, tests.get_embeddings(), prefer_grpc=True, grpc_url=server.grpc_target)
    else:
        store = VecDBVectorStore(name, tests.get_embeddings(), url=server.rest_url)
    try:
        yield store
    finally:
        with contextlib.suppress(CollectionNotFoundError):
            store.client.drop_collection(name)
        await store.aclose()  # closes the async client the async tests opened in this loop


class TestVecDBOverRest(VectorStoreIntegrationTests):
    @pytest.fixture
    async def vectorstore(self, vecdb_server: ServerProcess) -> AsyncIterator[VectorStore]:  # type: ignore[override]
        async for store in _store(vecdb_server, "rest", self):
            yield store


class TestVecDBOverGrpc(VectorStoreIntegrationTests):
    @pytest.fixture
    async def vectorstore(self, vecdb_server: ServerProcess) -> AsyncIterator[VectorStore]:  # type: ignore[override]
        async for store in _store(vecdb_server, "grpc", self):
            yield store
