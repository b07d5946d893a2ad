"""The LangChain store's parity with the FAISS and Chroma integrations (issue 24), against a real server:
``from_documents`` without Embeddings, ``score_threshold`` honoured, unknown keyword arguments refused
with their names, an Embeddings of another model than the collection's refused, the record's source in
``Document.metadata`` (and in filters, for chunks written by ``vecdb ingest``), ``update_documents``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from serverproc import ServerProcess, server_env, vecdb_command

from vecdb_client import Client
from vecdb_client.errors import InvalidArgumentError
from vecdb_client.langchain import SEARCH_KWARGS, VecDBVectorStore

DOCS = [
    Document("The cat sat on the mat", id="d1", metadata={"lang": "en"}),
    Document("Stocks fell sharply on Monday", id="d2", metadata={"lang": "en"}),
    Document("Le chat dort sur le canapé", id="d3", metadata={"lang": "fr"}),
]


def test_from_documents_without_embeddings_and_thresholds(
    vecdb_server: ServerProcess, unique_name: str
) -> None:
    with VecDBVectorStore.from_documents(
        DOCS, collection_name=unique_name, url=vecdb_server.rest_url
    ) as store:
        assert [d.id for d in store.get_by_ids(["d1", "d3"])] == ["d1", "d3"]
        pairs = store.similarity_search_with_score("a feline on a rug", k=3)
        assert pairs[0][0].id == "d1"
        cut = (pairs[0][1] + pairs[1][1]) / 2
        kept = store.similarity_search_with_score("a feline on a rug", k=3, score_threshold=cut)
        assert [d.id for d, _ in kept] == ["d1"]
        assert [d.id for d in store.similarity_search("a feline on a rug", k=3, score_threshold=cut)] == [
            "d1"
        ]
        # a Chroma-style where= is refused, naming it, not ignored (it would be an unfiltered search)
        with pytest.raises(InvalidArgumentError, match=r"\['where'\]") as err:
            store.similarity_search("cat", k=1, where={"lang": "fr"})
        assert err.value.details["unknown"] == ["where"]
        assert "score_threshold" in str(err.value) and "score_threshold" in SEARCH_KWARGS
        with pytest.raises(InvalidArgumentError, match="fetch_kk"):
            store.max_marginal_relevance_search("cat", k=1, fetch_kk=5)
        with pytest.raises(InvalidArgumentError, match="sourcez"):
            store.add_texts(["x"], sourcez=["a"])
        with pytest.raises(InvalidArgumentError, match="filters"):
            store.delete(filters={"lang": "fr"})
        store.update_documents(["d2"], [Document("Bond yields rose", metadata={"lang": "en", "v": 2})])
        (d2,) = store.get_by_ids(["d2"])
        assert (d2.page_content, d2.metadata) == ("Bond yields rose", {"lang": "en", "v": 2})
        store.delete()


async def test_afrom_documents_without_embeddings(vecdb_server: ServerProcess, unique_name: str) -> None:
    store = await VecDBVectorStore.afrom_documents(
        DOCS, collection_name=unique_name, url=vecdb_server.rest_url
    )
    try:
        hits = await store.asimilarity_search("a feline on a rug", k=1, filter={"lang": "en"})
        assert [d.id for d in hits] == ["d1"]
        with pytest.raises(InvalidArgumentError, match="where"):
            await store.asimilarity_search("cat", where={})
    finally:
        await store.aclose()
        store.close()


def test_an_embeddings_of_another_model_is_refused(vecdb_server: ServerProcess, unique_name: str) -> None:
    url = vecdb_server.rest_url
    with VecDBVectorStore.from_documents(DOCS, collection_name=unique_name, url=url):
        pass  # the collection embeds with the server's default model (384 dimensions)

    class Named(DeterministicFakeEmbedding):
        model: str = "text-embedding-3-small"

    for embedding, why in (
        (Named(size=384), "is model 'text-embedding-3-small'"),
        (DeterministicFakeEmbedding(size=384), "embeds unlike"),  # no name: a probe text tells
        (DeterministicFakeEmbedding(size=8), "8-dimensional"),
    ):
        with VecDBVectorStore(unique_name, embedding, url=url) as store:
            with pytest.raises(InvalidArgumentError, match=why):
                store.similarity_search("cat", k=1)
            with pytest.raises(InvalidArgumentError, match=why):
                store.add_texts(["more"])
    with Client(url) as client:
        assert client.collection(unique_name).count() == 3  # nothing was written
        client.drop_collection(unique_name)


def test_ingested_chunks_show_and_filter_by_source(
    vecdb_server: ServerProcess, unique_name: str, tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "cats.md").write_text("Cats sleep most of the day.")
    (folder / "bread.md").write_text("Bread rises because yeast ferments sugar.")
    cmd = vecdb_command("ingest", str(folder), "--collection", unique_name, "--url", vecdb_server.rest_url)
    subprocess.run(cmd, env=server_env(), check=True, capture_output=True, timeout=300)
    with Client(vecdb_server.rest_url) as client:
        client.collection(unique_name).upsert(["bare"], texts=["Cats purr"], sources=["elsewhere.md"])
    with VecDBVectorStore(unique_name, url=vecdb_server.rest_url) as store:
        docs = store.similarity_search("why does dough rise", k=1, filter={"source": "bread.md"})
        assert [d.metadata["source"] for d in docs] == ["bread.md"]
        (bare,) = store.get_by_ids(["bare"])
        assert bare.metadata == {"source": "elsewhere.md"}  # the record's source, shown in the metadata
        store.delete()
