"""Congruence of full-text and hybrid search: the embedded engine, REST and gRPC give the same results.

The same script (collections with a full-text index, ``set_text_index``, ``search`` in the modes
``text`` and ``hybrid`` with fusion and ``explain``, ``text_filter`` in search, count, scroll and delete,
and the errors of each) runs through the three adapters of ``test_congruence`` extended with these
arguments; the transcripts must be identical (scores to 1e-6).
No embedding model is needed: hybrid searches send the query vectors with the texts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from tests.congruence.test_congruence import (
    DIM,
    SETTINGS,  # noqa: F401 (the fixtures below build their databases with it)
    ApiError,
    Embedded,
    Grpc,
    Rest,
    _record,
    compare,
    embedded,  # noqa: F401 (fixture)
    grpc_api,  # noqa: F401 (fixture)
    rest,  # noqa: F401 (fixture)
)
from vecdb.server import convert
from vecdb.server._generated import vecdb_pb2 as pb

WORDS = ["faiss", "rocksdb", "vector", "search", "index", "hybrid", "bm25", "snapshot", "shard", "filter"]
N = 40


class TextEmbedded(Embedded):
    def create_text(self, name: str, text_index: Any) -> dict[str, Any]:
        return self._run(lambda: self.db.create_collection(name, DIM, text_index=text_index).info())  # type: ignore[no-any-return]

    def set_text_index(self, name: str, spec: Any) -> Any:
        return self._run(lambda: self.db.get_collection(name).set_text_index(spec))

    def tsearch(self, name: str, **kw: Any) -> list[list[dict[str, Any]]]:
        res = self._run(lambda: self.db.get_collection(name).search(**kw))
        return [[_record(h.to_dict()) for h in hits] for hits in res]

    def tcount(self, name: str, filter: Any = None, text_filter: Any = None) -> int:
        return self._run(lambda: self.db.get_collection(name).count(filter=filter, text_filter=text_filter))  # type: ignore[no-any-return]

    def tscroll(self, name: str, cursor: str | None, limit: int, text_filter: Any) -> Any:
        recs, nxt = self._run(
            lambda: self.db.get_collection(name).scroll(cursor, limit, text_filter=text_filter)
        )
        return [_record(r.to_dict()) for r in recs], nxt

    def tdelete(self, name: str, filter: Any = None, text_filter: Any = None) -> int:
        return self._run(lambda: self.db.get_collection(name).delete(filter=filter, text_filter=text_filter))  # type: ignore[no-any-return]


class TextRest(Rest):
    def create_text(self, name: str, text_index: Any) -> dict[str, Any]:
        body = {"name": name, "dim": DIM, "text_index": text_index}
        return self._do("POST", "/v1/collections", json=body)  # type: ignore[no-any-return]

    def set_text_index(self, name: str, spec: Any) -> Any:
        # the body is the spec, or JSON null to drop the index (httpx's json=None would send no body)
        body = orjson.dumps(spec)
        headers = {"content-type": "application/json"}
        return self._do("PUT", f"/v1/collections/{name}/text_index", content=body, headers=headers)[
            "text_index"
        ]

    def tsearch(self, name: str, **kw: Any) -> list[list[dict[str, Any]]]:
        body = {k: v for k, v in kw.items() if v is not None}
        if "vectors" in body:
            body["vectors"] = np.asarray(body["vectors"], dtype=np.float32).tolist()
        res = self._do("POST", f"/v1/collections/{name}/search", json=body)["results"]
        return [[_record(h) for h in hits] for hits in res]

    def tcount(self, name: str, filter: Any = None, text_filter: Any = None) -> int:
        params = {
            k: orjson.dumps(v).decode() for k, v in (("filter", filter), ("text_filter", text_filter)) if v
        }
        return self._do("GET", f"/v1/collections/{name}/count", params=params)["count"]  # type: ignore[no-any-return]

    def tscroll(self, name: str, cursor: str | None, limit: int, text_filter: Any) -> Any:
        body = {"cursor": cursor, "limit": limit, "text_filter": text_filter}
        page = self._do("POST", f"/v1/collections/{name}/scroll", json=body)
        return [_record(r) for r in page["records"]], page["next_cursor"]

    def tdelete(self, name: str, filter: Any = None, text_filter: Any = None) -> int:
        body = {k: v for k, v in (("filter", filter), ("text_filter", text_filter)) if v is not None}
        return self._do("POST", f"/v1/collections/{name}/delete", json=body)["count"]  # type: ignore[no-any-return]


class TextGrpc(Grpc):
    def create_text(self, name: str, text_index: Any) -> dict[str, Any]:
        req = pb.CreateCollectionRequest(name=name, dim=DIM, text_index_json=convert.to_json_text(text_index))
        return convert.from_proto_collection_info(self._call(lambda: self.stub.CreateCollection(req)))

    def set_text_index(self, name: str, spec: Any) -> Any:
        req = pb.SetTextIndexRequest(collection=name, text_index_json=convert.to_json_text(spec))
        return convert.from_proto_text_index(self._call(lambda: self.stub.SetTextIndex(req)))

    def tsearch(self, name: str, **kw: Any) -> list[list[dict[str, Any]]]:
        req = pb.SearchRequest(
            collection=name,
            k=kw.get("k", 10),
            texts=kw.get("texts") or [],
            mode=kw.get("mode") or "",
            filter_json=convert.to_json_text(kw.get("filter")),
            text_filter_json=convert.to_json_text(kw.get("text_filter")),
            fusion_json=convert.to_json_text(kw.get("fusion")),
            include=convert.to_proto_include(kw.get("include")),
        )
        if kw.get("vectors") is not None:
            req.queries.CopyFrom(convert.to_proto_vectors(kw["vectors"]))
        res = self._call(lambda: self.stub.Search(req)).results
        return [[_record(convert.from_proto_record(h)) for h in r.hits] for r in res]

    def tcount(self, name: str, filter: Any = None, text_filter: Any = None) -> int:
        req = pb.CountRequest(
            collection=name,
            filter_json=convert.to_json_text(filter),
            text_filter_json=convert.to_json_text(text_filter),
        )
        return self._call(lambda: self.stub.Count(req)).count  # type: ignore[no-any-return]

    def tscroll(self, name: str, cursor: str | None, limit: int, text_filter: Any) -> Any:
        req = pb.ScrollRequest(
            collection=name, limit=limit, max_pages=1, text_filter_json=convert.to_json_text(text_filter)
        )
        if cursor is not None:
            req.cursor = cursor
        (page,) = self._call(lambda: list(self.stub.Scroll(req)))
        recs = [_record(convert.from_proto_record(r)) for r in page.records]
        return recs, page.next_cursor if page.HasField("next_cursor") else None

    def tdelete(self, name: str, filter: Any = None, text_filter: Any = None) -> int:
        req = pb.DeleteRequest(collection=name, text_filter_json=convert.to_json_text(text_filter))
        if filter is not None:
            req.filter_json = convert.to_json_text(filter)
        return self._call(lambda: self.stub.Delete(req)).count  # type: ignore[no-any-return]


TextApi = TextEmbedded | TextRest | TextGrpc


def corpus(seed: int = 11) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    texts: list[str | None] = []
    for i in range(N):
        words = rng.choice(WORDS, size=int(rng.integers(2, 7)))
        texts.append(None if i % 10 == 7 else " ".join(words) + f" doc{i}")
    return {
        "ids": [f"t-{i:02d}" for i in range(N)],
        "vecs": rng.standard_normal((N, DIM)).astype(np.float32),
        "texts": texts,
        "metas": [{"i": i, "lang": ["en", "zh"][i % 2]} for i in range(N)],
        "queries": rng.standard_normal((3, DIM)).astype(np.float32),
    }


QUERIES = ["faiss index", "hybrid bm25 search", "snapshot"]
TEXT_FILTERS: list[Any] = [
    {"$contains": "faiss"},
    {"$not_contains": "rocksdb"},
    {"$and": [{"$contains": "vector"}, {"$not_contains": "shard"}]},
    {"$or": [{"$contains": "bm25"}, {"$contains": "snapshot"}]},
    {"$contains": "doc3"},
]
INCLUDE = ["text", "metadata", "explain"]


def script(api: Any) -> list[tuple[str, Any]]:
    d = corpus()
    out: list[tuple[str, Any]] = []

    def step(label: str, fn: Callable[[], Any]) -> None:
        try:
            out.append((label, ("ok", fn())))
        except ApiError as exc:
            out.append((label, ("error", exc.code, exc.details)))

    q, v = QUERIES, d["queries"]
    step("create with text index", lambda: _drop_seqs(api.create_text("t", {})))
    step("create whitespace", lambda: _drop_seqs(api.create_text("w", {"tokenizer": "whitespace"})))
    step("create plain", lambda: api.create_collection("p", DIM))
    step("create bad text index", lambda: api.create_text("bad", {"tokenizer": "klingon"}))
    step("create text index extra key", lambda: api.create_text("bad", {"nope": 1}))
    step("create text index other k1", lambda: api.create_text("bad", {"k1": 1.5}))
    for name in ("t", "w", "p"):
        step(f"{name} upsert", lambda n=name: api.upsert(n, d["ids"], d["vecs"], d["texts"], d["metas"]))
    step("t info", lambda: api.info("t")["text_index"])
    step("p info", lambda: api.info("p").get("text_index"))
    for name in ("t", "w"):
        step(f"{name} text", lambda n=name: api.tsearch(n, texts=q, k=5, mode="text", include=INCLUDE))
        step(f"{name} text no include", lambda n=name: api.tsearch(n, texts=q[:1], k=3, mode="text"))
        step(
            f"{name} text filter",
            lambda n=name: api.tsearch(n, texts=q, k=5, mode="text", filter={"lang": "en"}, include=INCLUDE),
        )
        step(
            f"{name} hybrid rrf",
            lambda n=name: api.tsearch(n, vectors=v, texts=q, k=6, mode="hybrid", include=INCLUDE),
        )
        step(
            f"{name} hybrid rrf k",
            lambda n=name: api.tsearch(
                n, vectors=v, texts=q, k=6, mode="hybrid", fusion={"method": "rrf", "k": 5}, include=INCLUDE
            ),
        )
        step(
            f"{name} hybrid weighted",
            lambda n=name: api.tsearch(
                n,
                vectors=v,
                texts=q,
                k=6,
                mode="hybrid",
                fusion={"method": "weighted", "alpha": 0.3, "candidates": 20},
                include=INCLUDE,
            ),
        )
        for j, tf in enumerate(TEXT_FILTERS):
            step(
                f"{name} vector text_filter {j}",
                lambda n=name, f=tf: api.tsearch(n, vectors=v[:1], k=5, text_filter=f, include=["text"]),
            )
            step(
                f"{name} hybrid text_filter {j}",
                lambda n=name, f=tf: api.tsearch(
                    n, vectors=v[:1], texts=q[:1], k=5, mode="hybrid", text_filter=f, include=INCLUDE
                ),
            )
            step(f"{name} count text_filter {j}", lambda n=name, f=tf: api.tcount(n, text_filter=f))
            step(
                f"{name} count both {j}",
                lambda n=name, f=tf: api.tcount(n, filter={"lang": "zh"}, text_filter=f),
            )
            step(f"{name} scroll text_filter {j}", lambda n=name, f=tf: _scroll_all(api, n, f))
    # errors
    step("text on plain", lambda: api.tsearch("p", texts=q, mode="text"))
    step("hybrid on plain", lambda: api.tsearch("p", vectors=v, texts=q, mode="hybrid"))
    step("text_filter on plain", lambda: api.tcount("p", text_filter={"$contains": "faiss"}))
    step("fusion with vector mode", lambda: api.tsearch("t", vectors=v, fusion={"method": "rrf"}))
    step("fusion unknown key", lambda: api.tsearch("t", vectors=v, texts=q, mode="hybrid", fusion={"x": 1}))
    step(
        "fusion alpha for rrf",
        lambda: api.tsearch("t", vectors=v, texts=q, mode="hybrid", fusion={"method": "rrf", "alpha": 0.5}),
    )
    step(
        "fusion bad method",
        lambda: api.tsearch("t", vectors=v, texts=q, mode="hybrid", fusion={"method": "max"}),
    )
    step("bad mode", lambda: api.tsearch("t", vectors=v, mode="keyword"))
    step("text mode without texts", lambda: api.tsearch("t", vectors=v, mode="text"))
    step("text mode with vectors", lambda: api.tsearch("t", vectors=v, texts=q, mode="text"))
    step("hybrid without model or vectors", lambda: api.tsearch("t", texts=q, mode="hybrid"))
    step("hybrid vectors count", lambda: api.tsearch("t", vectors=v[:2], texts=q, mode="hybrid"))
    step("bad text_filter op", lambda: api.tcount("t", text_filter={"$regex": "x"}))
    step("bad text_filter value", lambda: api.tcount("t", text_filter={"$contains": 3}))
    step("bad text_filter in search", lambda: api.tsearch("t", vectors=v, text_filter={"$and": "x"}))
    step("explain in get", lambda: api.get("t", ["t-01"], ["explain"]))
    # deletes by full-text filter, alone and with a metadata filter
    step("t delete text_filter", lambda: api.tdelete("t", text_filter={"$contains": "snapshot"}))
    step(
        "t delete both",
        lambda: api.tdelete("t", filter={"lang": "en"}, text_filter={"$contains": "faiss"}),
    )
    step("t count after delete", lambda: api.tcount("t"))
    step("t no snapshot left", lambda: api.tcount("t", text_filter={"$contains": "snapshot"}))
    step("t text after delete", lambda: api.tsearch("t", texts=q, k=5, mode="text", include=INCLUDE))
    # set_text_index: drop, search fails, add again (built from the stored texts), replace
    step("w drop text index", lambda: api.set_text_index("w", None))
    step("w info dropped", lambda: api.info("w").get("text_index"))
    step("w text after drop", lambda: api.tsearch("w", texts=q, mode="text"))
    step("p add text index", lambda: api.set_text_index("p", {}))
    step("p text after add", lambda: api.tsearch("p", texts=q, k=5, mode="text", include=INCLUDE))
    step("p replace text index", lambda: api.set_text_index("p", {"tokenizer": "whitespace"}))
    step("p bad text index", lambda: api.set_text_index("p", {"tokenizer": "nope"}))
    step("ghost set text index", lambda: api.set_text_index("ghost", {}))
    return out


def _drop_seqs(info: dict[str, Any]) -> dict[str, Any]:
    # checkpoint_seq moves with background checkpoints, memory with the process (embedded only)
    return {k: v for k, v in info.items() if k not in ("checkpoint_seq", "memory")}


def _scroll_all(api: Any, name: str, text_filter: Any) -> list[Any]:
    pages, cursor = [], None
    while True:
        recs, cursor = api.tscroll(name, cursor, 7, text_filter)
        pages.append([r["id"] for r in recs])
        if cursor is None:
            return pages


def test_text_and_hybrid_search_same_everywhere(
    embedded: Embedded,  # noqa: F811 (the imported fixture)
    rest: Rest,  # noqa: F811
    grpc_api: Grpc,  # noqa: F811
) -> None:
    apis = [
        TextEmbedded(embedded.db),
        TextRest(rest.http),
        TextGrpc(grpc_api.stub),
    ]
    transcripts = {api.name: script(api) for api in apis}
    ref_names = list(transcripts)
    compare(transcripts)
    ref = dict(transcripts["embedded"])
    errors = {label: o[1] for label, o in ref.items() if o[0] == "error"}
    # the script exercises what it claims
    assert errors["text on plain"] == errors["w text after drop"] == "invalid_argument"
    assert errors["bad text_filter op"] == errors["bad text_filter in search"] == "invalid_filter"
    assert errors["create bad text index"] == "invalid_config"
    assert errors["ghost set text index"] == "collection_not_found"
    for label in ("t text", "t hybrid rrf", "t hybrid weighted", "p text after add"):
        assert label not in errors, (label, ref[label])
        hits = ref[label][1]
        assert all(hits) and all(h["explain"] for q in hits for h in q), label
    assert "explain" not in ref["t text no include"][1][0][0]
    assert ref["t delete text_filter"][1] > 0
    assert ref["t no snapshot left"][1] == 0
    assert ref["w drop text index"][1] is None
    assert ref["w info dropped"][1] is None
    print(
        f"\ntext congruence: {len(ref)} operations, {len(errors)} errors, the same on {', '.join(ref_names)}"
    )
