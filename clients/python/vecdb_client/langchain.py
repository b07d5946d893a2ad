"""``VecDBVectorStore``: a LangChain ``VectorStore`` over one vecdb collection (extra ``[langchain]``).

- Embeddings: give any LangChain ``Embeddings`` (vectors are computed here and sent), or none: the
  collection's own model on the server embeds texts and queries (``embedding_model``; ``None`` means the
  server's default model).
- The collection is made on the first write when missing (get-or-create, like Chroma): its dim comes from
  the first vectors (or from the server model), with ``metric`` and ``index``. Until then reads find
  nothing.
- ``Document.id`` is the record id (generated as a UUID4 when missing); ``Document.metadata`` is stored as
  is; the record's source is ``metadata[source_key]`` when that is a string (LangChain loaders put the file
  path there), so ``delete(source=path)`` removes a whole file's chunks.
- ``filter=`` takes the server's filter language: ``{"lang": "en", "year": {"$gte": 2020}}``.
- Scores: ``similarity_search_with_score`` returns the server's score (cosine or ip: similarity, higher is
  better; l2: squared distance, lower is better). Relevance scores (``[0, 1]``, 1 best) are
  ``(1 + s) / 2`` for cosine and ip and ``1 - d / 4`` for l2, clamped to [0, 1]: for unit-length vectors
  the three metrics give the same relevance to the same pair.
- Keyword and hybrid search (the collection needs a full-text index: ``text_index={}`` when the store
  creates it, or ``Collection.set_text_index``): ``similarity_search(query, mode="text" | "hybrid")``,
  ``fusion={"method": "weighted", "alpha": 0.7}``, and Chroma's ``where_document={"$contains": "..."}``
  (the server's ``text_filter``) in every mode, MMR and ``delete``. A retriever:
  ``store.as_retriever(search_kwargs={"mode": "hybrid", "k": 5})``. Text and hybrid scores are BM25 and
  fused scores (higher is better), not similarities: relevance scores need ``relevance_score_fn`` there.
- Every method has a native async twin that goes through ``AsyncClient`` (no thread pool). An
  ``AsyncClient`` belongs to one event loop: the store makes one per loop unless given one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from vecdb_client.aio import AsyncClient, AsyncCollection
from vecdb_client.client import Client, Collection
from vecdb_client.errors import CollectionExistsError, CollectionNotFoundError, InvalidArgumentError
from vecdb_client.types import Hit, Metric, SearchMode

__all__ = [
    "ADD_KWARGS",
    "DELETE_KWARGS",
    "MMR_KWARGS",
    "SEARCH_KWARGS",
    "VecDBVectorStore",
    "check_kwargs",
    "embeddings_model_name",
    "relevance_function",
]

#: Records per upsert call when adding many texts (each call is atomic on its own).
DEFAULT_BATCH_SIZE = 1000
_SEARCH_INCLUDE = ("text", "metadata", "source")
_MMR_INCLUDE = ("text", "metadata", "source", "vector")

#: The keyword arguments each method takes through ``**kwargs`` (LangChain's signatures), ONE set per
#: method family: anything else is refused with an error naming it (a typo'd filter must not become an
#: unfiltered search). A new search option is added here, and read in ``_search_options``.
SEARCH_KWARGS: frozenset[str] = frozenset({"score_threshold"})
MMR_KWARGS: frozenset[str] = frozenset()
ADD_KWARGS: frozenset[str] = frozenset({"sources"})
DELETE_KWARGS: frozenset[str] = frozenset({"filter", "source"})


def relevance_function(metric: Metric) -> Callable[[float], float]:
    """The map from a server score to a relevance in [0, 1] (1 most similar) for ``metric``."""
    if metric in ("cosine", "ip"):
        # clamped for cosine too: float32 scores of unit vectors stray past +-1 by an ulp or two
        return lambda s: min(1.0, max(0.0, (1.0 + s) / 2.0))
    if metric == "l2":
        return lambda d: min(1.0, max(0.0, 1.0 - d / 4.0))
    raise ValueError(f"unknown metric {metric!r}")


@dataclass(frozen=True, slots=True)
class _Search:
    """How a search ranks (``mode``, ``fusion``) and its full-text filter (Chroma's ``where_document``)."""

    mode: SearchMode = "vector"
    where_document: dict[str, Any] | None = None
    fusion: dict[str, Any] | None = None


def _embedding_args(embedding: dict[str, Any] | None) -> dict[str, Any] | None:
    """create_collection's ``embedding`` from a collection's info (its declaration, without the ``dim``
    and ``backend`` the server reports beside it)."""
    if embedding is None:
        return None
    return {k: v for k, v in embedding.items() if k not in ("dim", "backend")}


def _text_index_args(text_index: dict[str, Any] | None) -> dict[str, Any]:
    """create_collection's ``text_index`` from a collection's info (its spec, without the counts)."""
    if text_index is None:
        return {}
    return {"text_index": {k: v for k, v in text_index.items() if k != "documents"}}


def embeddings_model_name(embedding: Any) -> str | None:
    """The model name an Embeddings object declares (``model`` or ``model_name``), if any."""
    for attr in ("model", "model_name"):
        value = getattr(embedding, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def check_kwargs(method: str, kwargs: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """InvalidArgumentError naming the keyword arguments ``method`` does not take."""
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise InvalidArgumentError(
            f"VecDBVectorStore.{method} got unknown keyword argument(s) {unknown}; it takes "
            f"{takes} besides its named parameters (filters go in filter=, the server's filter language)",
            unknown=unknown,
        )


def _document(hit: Any, source_key: str | None = "source") -> Document:
    """The hit as a Document; the record's source is ``metadata[source_key]`` unless the metadata has
    that key already (records written by ``vecdb ingest`` keep their source outside the metadata)."""
    metadata = dict(hit.metadata or {})
    source = getattr(hit, "source", None)
    if source_key is not None and source is not None and source_key not in metadata:
        metadata[source_key] = source
    return Document(id=hit.id, page_content=hit.text or "", metadata=metadata)


class VecDBVectorStore(VectorStore):
    """A LangChain vector store backed by the vecdb collection ``collection_name``.

    Connect with ``client`` / ``async_client`` (their owner closes them), or with ``url``, ``grpc_url``,
    ``prefer_grpc``, ``api_key``, ``timeout`` (the store then owns its clients: ``close()`` them, or use
    the store as a context manager). ``metric``, ``index`` and ``embedding_model`` apply when the store
    creates the collection, and so does ``text_index`` (a full-text index spec, ``{}`` for the defaults,
    ``{"tokenizer": "jieba"}`` for Chinese) for ``mode="text" | "hybrid"`` and ``where_document``.
    ``relevance_score_fn`` replaces the per-metric relevance function.
    """

    def __init__(
        self,
        collection_name: str = "langchain",
        embedding: Embeddings | None = None,
        *,
        client: Client | None = None,
        async_client: AsyncClient | None = None,
        url: str = "http://127.0.0.1:8080",
        grpc_url: str | None = None,
        prefer_grpc: bool | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        metric: Metric = "cosine",
        index: Mapping[str, Any] | None = None,
        embedding_model: str | None = None,
        source_key: str | None = "source",
        relevance_score_fn: Callable[[float], float] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        text_index: Mapping[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.collection_name = collection_name
        self.embedding = embedding
        self.metric: Metric = metric
        self.index = dict(index) if index is not None else None
        self.text_index = dict(text_index) if text_index is not None else None
        self.embedding_model = embedding_model
        self.source_key = source_key
        self.override_relevance_score_fn = relevance_score_fn
        self.batch_size = batch_size
        self._owns_client = client is None
        self.client = client or Client(
            url, grpc_url=grpc_url, prefer_grpc=prefer_grpc, api_key=api_key, timeout=timeout
        )
        self._given_async = async_client
        self._async_clients: dict[asyncio.AbstractEventLoop, AsyncClient] = {}
        self._collection_ready = False
        self._collection_metric: Metric | None = None  # an existing collection's, learned when needed
        self._model_checked = embedding is None  # the server embeds: nothing to compare

    # ---- lifecycle ---------------------------------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings | None:
        return self.embedding

    def close(self) -> None:
        """Close the clients this store made (not the ones it was given). Idempotent."""
        if self._owns_client:
            self.client.close()
        for loop, aclient in list(self._async_clients.items()):
            if loop.is_closed():
                del self._async_clients[loop]  # its connections went with the loop
            elif not loop.is_running():
                loop.run_until_complete(aclient.close())
                del self._async_clients[loop]
            # a running loop's client stays for aclose() (or async with) to close in that loop

    async def aclose(self) -> None:
        """Close the async client this store made for the running loop, and the sync one it made."""
        aclient = self._async_clients.pop(asyncio.get_running_loop(), None)
        if aclient is not None:
            await aclient.close()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> VecDBVectorStore:
        return self

    async def __aenter__(self) -> VecDBVectorStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _doc(self, hit: Any) -> Document:
        return _document(hit, self.source_key)

    @property
    def collection(self) -> Collection:
        return self.client.collection(self.collection_name)

    def _async_collection(self) -> AsyncCollection:
        return self._aclient().collection(self.collection_name)

    def _aclient(self) -> AsyncClient:
        if self._given_async is not None:
            return self._given_async
        loop = asyncio.get_running_loop()
        aclient = self._async_clients.get(loop)
        if aclient is None:
            for old in [lp for lp in self._async_clients if lp.is_closed()]:
                del self._async_clients[old]  # its connections died with their loop
            aclient = self._async_clients[loop] = AsyncClient.like(self.client)
        return aclient

    # ---- the Embeddings against the collection's model ------------------------------------------------

    #: A probe text embedded by both sides when the Embeddings does not say its model's name.
    PROBE = "vecdb checks that two embedding models agree"

    def _mismatch(self, info: Any, dim: int | None, probe: tuple[Any, Any] | None) -> str | None:
        """Why this store's Embeddings does not fit the collection (``info``), or None."""
        model = (info.embedding or {}).get("model")
        name = embeddings_model_name(self.embedding)
        why = None
        if dim is not None and dim != info.dim:
            why = f"its Embeddings makes {dim}-dimensional vectors, the collection holds {info.dim}"
        elif model is not None and name is not None:
            if name.rsplit("/", 1)[-1] != str(model).rsplit("/", 1)[-1]:
                why = f"its Embeddings is model {name!r}, the collection embeds with {model!r}"
        elif model is not None and probe is not None:
            mine, theirs = (np.asarray(v, dtype=np.float32).ravel() for v in probe)
            if mine.shape != theirs.shape:
                why = f"its Embeddings makes {mine.size}-dimensional vectors, model {model!r} {theirs.size}"
            else:
                cos = float(mine @ theirs / (np.linalg.norm(mine) * np.linalg.norm(theirs) or 1.0))
                if cos < 0.98:  # the same model gives the same vector (float noise aside)
                    why = f"its Embeddings embeds unlike the collection's model {model!r} (cosine {cos:.2f})"
        return why

    def _raise_mismatch(self, why: str) -> None:
        raise InvalidArgumentError(
            f"VecDBVectorStore over collection {self.collection_name!r}: {why}; use the collection's "
            "model (or no Embeddings: the server embeds), or another collection",
            collection=self.collection_name,
        )

    def _check_model(self, dim: int | None = None) -> None:
        """Once per store: refuse an Embeddings that does not fit the existing collection (dimension,
        model name where both are known, else a probe text embedded by both)."""
        if self._model_checked:
            return
        try:
            info = self.collection.info()
            probe = None
            if (info.embedding or {}).get("model") and embeddings_model_name(self.embedding) is None:
                assert self.embedding is not None
                theirs, _ = self.client.embed([self.PROBE], collection=self.collection_name)
                probe = (self.embedding.embed_query(self.PROBE), theirs[0])
        except CollectionNotFoundError:
            return  # nothing to compare yet: the store makes it with this Embeddings
        why = self._mismatch(info, dim, probe)
        if why is not None:
            self._raise_mismatch(why)
        self._model_checked = True

    async def _acheck_model(self, dim: int | None = None) -> None:
        """Async ``_check_model``."""
        if self._model_checked:
            return
        try:
            info = await self._async_collection().info()
            probe = None
            if (info.embedding or {}).get("model") and embeddings_model_name(self.embedding) is None:
                assert self.embedding is not None
                theirs, _ = await self._aclient().embed([self.PROBE], collection=self.collection_name)
                probe = (await self.embedding.aembed_query(self.PROBE), theirs[0])
        except CollectionNotFoundError:
            return
        why = self._mismatch(info, dim, probe)
        if why is not None:
            self._raise_mismatch(why)
        self._model_checked = True

    # ---- writes ------------------------------------------------------------------------------------

    def _prepare(
        self,
        texts: Iterable[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None,
        ids: Sequence[str | None] | None,
        sources: Sequence[str | None] | None,
    ) -> tuple[list[str], list[str], list[dict[str, Any]], list[str | None]]:
        text_list = list(texts)
        n = len(text_list)
        if metadatas is not None and len(metadatas) != n:
            raise ValueError(f"{len(metadatas)} metadatas for {n} texts")
        if ids is not None and len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} texts")
        if sources is not None and len(sources) != n:
            raise ValueError(f"{len(sources)} sources for {n} texts")
        id_list = [i if i else str(uuid.uuid4()) for i in (ids or [None] * n)]
        metas = [dict(m) if m else {} for m in (metadatas or [None] * n)]
        if sources is None:
            key = self.source_key
            sources = [m[key] if key is not None and isinstance(m.get(key), str) else None for m in metas]
        return id_list, text_list, metas, list(sources)

    def _create_args(self, dim: int | None) -> dict[str, Any]:
        args: dict[str, Any] = {"text_index": self.text_index} if self.text_index is not None else {}
        if self.embedding is None:
            model = {"model": self.embedding_model} if self.embedding_model else {}
            return {**args, "dim": None, "embedding": model}
        return {**args, "dim": dim, "embedding": None}

    def _ensure_collection(self, dim: int | None) -> None:
        if self._collection_ready:
            return
        with contextlib.suppress(CollectionExistsError):  # made meanwhile, or before this store
            self.client.create_collection(
                self.collection_name, metric=self.metric, index=self.index, **self._create_args(dim)
            )
        self._collection_ready = True

    async def _aensure_collection(self, dim: int | None) -> None:
        if self._collection_ready:
            return
        with contextlib.suppress(CollectionExistsError):
            await self._aclient().create_collection(
                self.collection_name, metric=self.metric, index=self.index, **self._create_args(dim)
            )
        self._collection_ready = True

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed (unless the server does) and upsert texts; returns their ids (generated where missing).

        ``sources=[...]`` sets record sources explicitly (default: ``metadata[source_key]``). Records are
        sent ``batch_size`` at a time; each batch is atomic. An id already stored is replaced.
        """
        check_kwargs("add_texts", kwargs, ADD_KWARGS)
        id_list, text_list, metas, sources = self._prepare(texts, metadatas, ids, kwargs.get("sources"))
        if not id_list:
            return []
        vectors = None if self.embedding is None else np.asarray(self.embedding.embed_documents(text_list))
        dim = None if vectors is None else vectors.shape[1]
        self._ensure_collection(dim)
        self._check_model(dim)
        for lo in range(0, len(id_list), self.batch_size):
            hi = lo + self.batch_size
            args = (
                id_list[lo:hi],
                None if vectors is None else vectors[lo:hi],
                text_list[lo:hi],
                metas[lo:hi],
                sources[lo:hi],
            )
            try:
                self.collection.upsert(*args)
            except CollectionNotFoundError:  # dropped by someone else since: make it again
                self._collection_ready = False
                self._ensure_collection(dim)
                self.collection.upsert(*args)
        return id_list

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async ``add_texts``."""
        check_kwargs("aadd_texts", kwargs, ADD_KWARGS)
        id_list, text_list, metas, sources = self._prepare(texts, metadatas, ids, kwargs.get("sources"))
        if not id_list:
            return []
        vectors = None
        if self.embedding is not None:
            vectors = np.asarray(await self.embedding.aembed_documents(text_list))
        dim = None if vectors is None else vectors.shape[1]
        await self._aensure_collection(dim)
        await self._acheck_model(dim)
        col = self._async_collection()
        for lo in range(0, len(id_list), self.batch_size):
            hi = lo + self.batch_size
            args = (
                id_list[lo:hi],
                None if vectors is None else vectors[lo:hi],
                text_list[lo:hi],
                metas[lo:hi],
                sources[lo:hi],
            )
            try:
                await col.upsert(*args)
            except CollectionNotFoundError:
                self._collection_ready = False
                await self._aensure_collection(dim)
                await col.upsert(*args)
        return id_list

    def delete(
        self, ids: list[str] | None = None, *, where_document: dict[str, Any] | None = None, **kwargs: Any
    ) -> bool | None:
        """Delete by ``ids``, or by ``filter=`` and/or ``where_document=`` (full-text filter), or by
        ``source=``; with none of them, empty the collection (it is dropped and made again with the same
        configuration). Missing ids are no error."""
        check_kwargs("delete", kwargs, DELETE_KWARGS)
        filter, source = kwargs.get("filter"), kwargs.get("source")
        if ids is not None and not ids and filter is None and source is None and where_document is None:
            return True  # nothing to delete (an empty list never means "everything")
        try:
            if ids is None and filter is None and source is None and where_document is None:
                info = self.collection.info()
                self.client.drop_collection(self.collection_name)
                self.client.create_collection(
                    self.collection_name,
                    info.dim,
                    info.metric,
                    info.index,
                    _embedding_args(info.embedding),
                    **_text_index_args(info.text_index),
                )
            else:
                self.collection.delete(ids, filter=filter, source=source, text_filter=where_document)
        except CollectionNotFoundError:
            pass
        return True

    async def adelete(
        self, ids: list[str] | None = None, *, where_document: dict[str, Any] | None = None, **kwargs: Any
    ) -> bool | None:
        """Async ``delete``."""
        check_kwargs("adelete", kwargs, DELETE_KWARGS)
        filter, source = kwargs.get("filter"), kwargs.get("source")
        if ids is not None and not ids and filter is None and source is None and where_document is None:
            return True
        aclient = self._aclient()
        try:
            if ids is None and filter is None and source is None and where_document is None:
                info = await aclient.collection(self.collection_name).info()
                await aclient.drop_collection(self.collection_name)
                await aclient.create_collection(
                    self.collection_name,
                    info.dim,
                    info.metric,
                    info.index,
                    _embedding_args(info.embedding),
                    **_text_index_args(info.text_index),
                )
            else:
                await aclient.collection(self.collection_name).delete(
                    ids, filter=filter, source=source, text_filter=where_document
                )
        except CollectionNotFoundError:
            pass
        return True

    def update_documents(self, ids: Sequence[str], documents: Sequence[Document]) -> None:
        """Replace the records ``ids`` by ``documents`` (text re-embedded, metadata and source replaced)."""
        if len(ids) != len(documents):
            raise InvalidArgumentError(f"{len(ids)} ids for {len(documents)} documents")
        self.add_texts([d.page_content for d in documents], [d.metadata for d in documents], ids=list(ids))

    async def aupdate_documents(self, ids: Sequence[str], documents: Sequence[Document]) -> None:
        """Async ``update_documents``."""
        if len(ids) != len(documents):
            raise InvalidArgumentError(f"{len(ids)} ids for {len(documents)} documents")
        await self.aadd_texts(
            [d.page_content for d in documents], [d.metadata for d in documents], ids=list(ids)
        )

    # ---- reads -------------------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents among ``ids`` that exist, in the order asked."""
        if not ids:
            return []
        try:
            return [self._doc(r) for r in self.collection.get(list(ids))]
        except CollectionNotFoundError:
            return []

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async ``get_by_ids``."""
        if not ids:
            return []
        try:
            return [self._doc(r) for r in await self._async_collection().get(list(ids))]
        except CollectionNotFoundError:
            return []

    @staticmethod
    def _search_options(method: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The client's search arguments for a search method's ``**kwargs`` (``SEARCH_KWARGS``):
        ``score_threshold`` is the server's (cosine / ip: similarity at least it; l2: distance at most it)."""
        check_kwargs(method, kwargs, SEARCH_KWARGS)
        return {"score_threshold": kwargs.get("score_threshold")}

    def _search(
        self,
        vector: Sequence[float] | None,
        query: str | None,
        k: int,
        filter: Any,
        include: Sequence[str],
        search: _Search | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        search = search or _Search()
        self._check_model()
        try:
            return self.collection.search(
                vector,
                k=k,
                filter=filter,
                include=include,
                texts=query,
                mode=search.mode,
                text_filter=search.where_document,
                fusion=search.fusion,
                **(options or {}),
            )[0]
        except CollectionNotFoundError:
            return []

    async def _asearch(
        self,
        vector: Sequence[float] | None,
        query: str | None,
        k: int,
        filter: Any,
        include: Sequence[str],
        search: _Search | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        search = search or _Search()
        await self._acheck_model()
        try:
            col = self._async_collection()
            hits = await col.search(
                vector,
                k=k,
                filter=filter,
                include=include,
                texts=query,
                mode=search.mode,
                text_filter=search.where_document,
                fusion=search.fusion,
                **(options or {}),
            )
            return hits[0]
        except CollectionNotFoundError:
            return []

    def _query(self, query: str, mode: SearchMode = "vector") -> tuple[list[float] | None, str | None]:
        """The query as a vector (with an Embeddings) or as text for the server's model; text mode sends
        the text alone, hybrid the text and (with an Embeddings) its vector for the vector branch."""
        if mode == "text" or self.embedding is None:
            return None, query
        return self.embedding.embed_query(query), (query if mode == "hybrid" else None)

    async def _aquery(self, query: str, mode: SearchMode = "vector") -> tuple[list[float] | None, str | None]:
        if mode == "text" or self.embedding is None:
            return None, query
        return await self.embedding.aembed_query(query), (query if mode == "hybrid" else None)

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        *,
        mode: SearchMode = "vector",
        where_document: dict[str, Any] | None = None,
        fusion: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` documents that best match ``query`` (and ``filter``, ``where_document``), best first.

        ``mode``: ``"vector"`` (default), ``"text"`` (BM25) or ``"hybrid"`` (both fused; ``fusion`` tunes
        it); text and hybrid need the collection's full-text index, and so does ``where_document``
        (``{"$contains": "..."}``, ``{"$not_contains": "..."}``, ``$and`` / ``$or`` of them).
        """
        pairs = self.similarity_search_with_score(
            query, k, filter=filter, mode=mode, where_document=where_document, fusion=fusion, **kwargs
        )
        return [doc for doc, _ in pairs]

    async def asimilarity_search(
        self,
        query: str,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        *,
        mode: SearchMode = "vector",
        where_document: dict[str, Any] | None = None,
        fusion: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async ``similarity_search``."""
        pairs = await self.asimilarity_search_with_score(
            query, k, filter=filter, mode=mode, where_document=where_document, fusion=fusion, **kwargs
        )
        return [doc for doc, _ in pairs]

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        *,
        mode: SearchMode = "vector",
        where_document: dict[str, Any] | None = None,
        fusion: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Documents with the server's score (see the module docstring), best first; ``mode``,
        ``where_document`` and ``fusion`` as in ``similarity_search``. ``score_threshold`` keeps the hits
        whose score is at least it (cosine, ip, and the text and hybrid modes' scores) or at most it (l2
        distance)."""
        options = self._search_options("similarity_search_with_score", kwargs)
        search = _Search(mode, where_document, fusion)
        vector, text = self._query(query, mode)
        hits = self._search(vector, text, k, filter, _SEARCH_INCLUDE, search, options)
        return [(self._doc(h), h.score) for h in hits]

    async def asimilarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        *,
        mode: SearchMode = "vector",
        where_document: dict[str, Any] | None = None,
        fusion: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Async ``similarity_search_with_score``."""
        options = self._search_options("asimilarity_search_with_score", kwargs)
        search = _Search(mode, where_document, fusion)
        vector, text = await self._aquery(query, mode)
        hits = await self._asearch(vector, text, k, filter, _SEARCH_INCLUDE, search, options)
        return [(self._doc(h), h.score) for h in hits]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | None = None,
        *,
        where_document: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` documents nearest to ``embedding`` (matching ``filter`` and ``where_document``),
        best first."""
        options = self._search_options("similarity_search_by_vector", kwargs)
        search = _Search(where_document=where_document)
        hits = self._search(embedding, None, k, filter, _SEARCH_INCLUDE, search, options)
        return [self._doc(h) for h in hits]

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | None = None,
        *,
        where_document: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async ``similarity_search_by_vector``."""
        options = self._search_options("asimilarity_search_by_vector", kwargs)
        search = _Search(where_document=where_document)
        hits = await self._asearch(embedding, None, k, filter, _SEARCH_INCLUDE, search, options)
        return [self._doc(h) for h in hits]

    # ---- relevance ---------------------------------------------------------------------------------

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.override_relevance_score_fn is not None:
            return self.override_relevance_score_fn
        return relevance_function(self._collection_metric or self.metric)

    def _learn_metric(self) -> None:
        with contextlib.suppress(CollectionNotFoundError):
            self._collection_metric = self.collection.info().metric

    async def _alearn_metric(self) -> None:
        with contextlib.suppress(CollectionNotFoundError):
            self._collection_metric = (await self._async_collection().info()).metric

    def _check_relevance_mode(self, mode: Any) -> None:
        if mode != "vector" and self.override_relevance_score_fn is None:
            raise ValueError(
                f"relevance scores in [0, 1] are defined for mode='vector' only; mode={mode!r} gives BM25 "
                "or fused scores: give the store a relevance_score_fn, or use similarity_search_with_score"
            )

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        self._check_relevance_mode(kwargs.get("mode", "vector"))
        self._learn_metric()  # a collection made elsewhere may use another metric than the store's
        return super()._similarity_search_with_relevance_scores(query, k, **kwargs)

    async def _asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        self._check_relevance_mode(kwargs.get("mode", "vector"))
        await self._alearn_metric()
        return await super()._asimilarity_search_with_relevance_scores(query, k, **kwargs)

    # ---- maximal marginal relevance ----------------------------------------------------------------

    def _mmr(self, vector: Sequence[float], hits: list[Hit], k: int, lambda_mult: float) -> list[Document]:
        if not hits:
            return []
        chosen = maximal_marginal_relevance(
            np.asarray(vector, dtype=np.float32),
            [h.vector.tolist() for h in hits if h.vector is not None],
            lambda_mult=lambda_mult,
            k=k,
        )
        return [self._doc(hits[i]) for i in chosen]

    def _query_vector(self, query: str) -> list[float]:
        if self.embedding is not None:
            return self.embedding.embed_query(query)
        vectors, _ = self.client.embed([query], collection=self.collection_name)
        return vectors[0].tolist()  # type: ignore[no-any-return]

    async def _aquery_vector(self, query: str) -> list[float]:
        if self.embedding is not None:
            return await self.embedding.aembed_query(query)
        vectors, _ = await self._aclient().embed([query], collection=self.collection_name)
        return vectors[0].tolist()  # type: ignore[no-any-return]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        *,
        where_document: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents among the ``fetch_k`` nearest (matching ``filter`` and ``where_document``), chosen
        for similarity to the query and diversity among themselves (``lambda_mult``: 1 = similarity only,
        0 = diversity only)."""
        check_kwargs("max_marginal_relevance_search", kwargs, MMR_KWARGS)
        try:
            vector = self._query_vector(query)
        except CollectionNotFoundError:
            return []
        return self.max_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter=filter, where_document=where_document
        )

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        *,
        where_document: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async ``max_marginal_relevance_search``."""
        check_kwargs("amax_marginal_relevance_search", kwargs, MMR_KWARGS)
        try:
            vector = await self._aquery_vector(query)
        except CollectionNotFoundError:
            return []
        return await self.amax_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter=filter, where_document=where_document
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        *,
        where_document: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``max_marginal_relevance_search`` from a query vector."""
        check_kwargs("max_marginal_relevance_search_by_vector", kwargs, MMR_KWARGS)
        search = _Search(where_document=where_document)
        hits = self._search(embedding, None, max(k, fetch_k), filter, _MMR_INCLUDE, search)
        return self._mmr(embedding, hits, k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict[str, Any] | None = None,
        *,
        where_document: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async ``max_marginal_relevance_search_by_vector``."""
        check_kwargs("amax_marginal_relevance_search_by_vector", kwargs, MMR_KWARGS)
        search = _Search(where_document=where_document)
        hits = await self._asearch(embedding, None, max(k, fetch_k), filter, _MMR_INCLUDE, search)
        return self._mmr(embedding, hits, k, lambda_mult)

    # ---- constructors ------------------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> VecDBVectorStore:
        """A store over ``collection_name`` (kwargs: the constructor's, and ``sources=``) with ``texts``."""
        sources = kwargs.pop("sources", None)
        store = cls(embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids, sources=sources)
        return store

    @classmethod
    def from_documents(
        cls, documents: list[Document], embedding: Embeddings | None = None, **kwargs: Any
    ) -> VecDBVectorStore:
        """A store with ``documents`` (their ids kept); without ``embedding`` the server embeds."""
        texts, metadatas = _unpack_documents(documents, kwargs)
        return cls.from_texts(texts, embedding, metadatas, **kwargs)

    @classmethod
    async def afrom_documents(
        cls, documents: list[Document], embedding: Embeddings | None = None, **kwargs: Any
    ) -> VecDBVectorStore:
        """Async ``from_documents``."""
        texts, metadatas = _unpack_documents(documents, kwargs)
        return await cls.afrom_texts(texts, embedding, metadatas, **kwargs)

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> VecDBVectorStore:
        """Async ``from_texts``."""
        sources = kwargs.pop("sources", None)
        store = cls(embedding=embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids, sources=sources)
        return store


def _unpack_documents(
    documents: list[Document], kwargs: dict[str, Any]
) -> tuple[list[str], list[dict[str, Any]]]:
    """(texts, metadatas) of ``documents``; their ids go to ``kwargs["ids"]`` unless ids were given."""
    if "ids" not in kwargs and any(d.id for d in documents):
        kwargs["ids"] = [d.id for d in documents]
    return [d.page_content for d in documents], [d.metadata for d in documents]
