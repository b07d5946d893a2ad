"""The full-text (BM25) index: derived state (writes, deletes, reopen, snapshots), search modes, fusion,
text filters, Chinese with jieba, and every error (issue 22)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecdb import Database
from vecdb.errors import InvalidArgumentError, InvalidConfigError, InvalidFilterError
from vecdb.index.fusion import Fusion, fuse

DIM = 8

DOCS = {
    "fox": "The quick brown fox jumps over the lazy dog",
    "foxes": "Foxes are small omnivorous mammals; a fox is quick",
    "dog": "A dog is a loyal companion and a good friend",
    "cat": "The cat sleeps on the warm windowsill all day",
    "rust": "Rust is a systems programming language focused on safety",
    "python": "Python is a programming language that is easy to read",
    "err": "error code E1234 means the disk is full",
    "none": None,
}


def _vec(i: int) -> list[float]:
    rng = np.random.default_rng(i)
    return rng.normal(size=DIM).tolist()


def _fill(col: Any, docs: dict[str, str | None] = DOCS, meta: bool = True) -> None:
    ids = list(docs)
    col.upsert(
        ids,
        [_vec(i) for i in range(len(ids))],
        texts=[docs[i] for i in ids],
        metadatas=[{"n": i, "even": i % 2 == 0} for i in range(len(ids))] if meta else None,
    )


@pytest.fixture
def col(db: Database) -> Any:
    c = db.create_collection("t", dim=DIM, text_index={})
    _fill(c)
    return c


def _ids(rows: list[list[Any]]) -> list[str]:
    return [h.id for h in rows[0]]


# ---- BM25 ------------------------------------------------------------------------------------------


def test_bm25_ranks_term_matches_and_rare_terms_first(col: Any) -> None:
    hits = col.search(texts=["programming language safety"], mode="text", k=3)[0]
    assert [h.id for h in hits][:2] == ["rust", "python"]  # rust matches the rare "safety" too
    assert hits[0].score > hits[1].score > 0
    assert _ids(col.search(texts="E1234", mode="text")) == ["err"]  # an exact identifier
    assert col.search(texts=["zebra unicorn"], mode="text") == [[]]
    # Several queries at once, each its own list.
    rows = col.search(texts=["cat", "dog"], mode="text", k=2)
    assert rows[0][0].id == "cat" and {h.id for h in rows[1]} == {"dog", "fox"}


def test_standard_tokenizer_options(db: Database) -> None:
    plain = db.create_collection("plain", dim=DIM, text_index={})
    stem = db.create_collection("stem", dim=DIM, text_index={"stemming": True, "stopwords": "english"})
    for c in (plain, stem):
        _fill(c)
    assert _ids(plain.search(texts="foxes", mode="text")) == ["foxes"]  # no stemming: foxes != fox
    assert {"fox", "foxes"} <= set(_ids(stem.search(texts="foxes", mode="text")))
    assert stem.search(texts="the", mode="text") == [[]]  # a stop word only
    assert plain.search(texts="THE", mode="text")[0]  # lowercased both sides
    ws = db.create_collection("ws", dim=DIM, text_index={"tokenizer": "whitespace"})
    _fill(ws)
    assert _ids(ws.search(texts="language;", mode="text")) == []  # whitespace: "language" != "language;"
    assert _ids(ws.search(texts="mammals;", mode="text")) == ["foxes"]


# ---- derived state ---------------------------------------------------------------------------------


def test_replaced_and_deleted_records_never_match(col: Any) -> None:
    col.upsert(["fox"], [_vec(0)], texts=["nothing about animals here"])
    assert "fox" not in _ids(col.search(texts="brown", mode="text"))
    assert _ids(col.search(texts="animals", mode="text")) == ["fox"]
    col.upsert(["fox"], [_vec(0)])  # no text at all now
    assert col.search(texts="animals", mode="text") == [[]]
    col.delete(["rust"])
    assert "rust" not in _ids(col.search(texts="safety programming", mode="text"))
    col.replace_source("src", ["a", "b"], [_vec(1), _vec(2)], texts=["alpha one", "beta two"])
    col.replace_source("src", ["c"], [_vec(3)], texts=["gamma three"])
    assert col.search(texts="alpha beta", mode="text") == [[]]
    assert col.info()["text_index"]["documents"] == 6  # 7 texts - fox's - rust + gamma
    assert col.count(text_filter={"$contains": "alpha"}) == 0


def test_reopen_rebuilds_and_survives_a_crash(tmp_path: Path) -> None:
    with Database(tmp_path / "d") as db:
        c = db.create_collection("t", dim=DIM, text_index={"stemming": True})
        _fill(c)
        c.delete(["cat"])
        before = c.search(texts=["foxes systems"], mode="text", k=5)[0]
        c.checkpoint()
        c.upsert(["late"], [_vec(20)], texts=["written after the checkpoint"])
    with Database(tmp_path / "d") as db:
        c = db.get_collection("t")
        assert c.info()["text_index"]["stemming"] is True
        after = c.search(texts=["foxes systems"], mode="text", k=5)[0]
        # The same hits; scores may move a little: BM25's statistics counted the deleted record until
        # the rebuild (docs/search.md).
        assert [h.id for h in after] == [h.id for h in before]
        assert c.search(texts="windowsill", mode="text") == [[]]
        assert _ids(c.search(texts="checkpoint", mode="text")) == ["late"]


def test_jieba_cache_is_checkpointed_and_a_damaged_one_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    zh = {
        "bj": "我们在北京大学学习自然语言处理",
        "sh": "上海是中国最大的城市之一",
        "tea": "中国茶文化历史悠久",
    }
    with Database(tmp_path / "d") as db:
        c = db.create_collection("zh", dim=DIM, text_index={"tokenizer": "jieba"})
        _fill(c, zh)
        c.checkpoint()
        assert _ids(c.search(texts="北京", mode="text")) == ["bj"]
    ckpt = tmp_path / "d" / "collections" / "zh" / "text.ckpt"
    assert ckpt.exists()
    with Database(tmp_path / "d") as db:  # from the cache
        assert _ids(db.get_collection("zh").search(texts="自然语言", mode="text")) == ["bj"]
    data = bytearray(ckpt.read_bytes())
    data[-3] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    tmp_jieba = {p.name: p.stat().st_mtime for p in Path(tempfile.gettempdir()).glob("jieba*")}
    with caplog.at_level(logging.WARNING), Database(tmp_path / "d") as db:
        c = db.get_collection("zh")
        assert _ids(c.search(texts="上海 城市", mode="text")) == ["sh"]
        assert c.count(text_filter={"$contains": "中国"}) == 2
    assert "text checkpoint unusable" in caplog.text
    # jieba's own dictionary cache (it writes one to the temp directory) is never written by vecdb.
    assert {p.name: p.stat().st_mtime for p in Path(tempfile.gettempdir()).glob("jieba*")} == tmp_jieba


def test_snapshot_and_restore_keep_the_text_index(db: Database) -> None:
    c = db.create_collection("s", dim=DIM, text_index={"tokenizer": "jieba"})
    _fill(c, {"a": "北京欢迎你", "b": "hello world"})
    db.create_snapshot("s", "snap")
    c.upsert(["c"], [_vec(9)], texts=["北京 later"])
    r = db.restore_snapshot("s", "snap", target="r")
    assert r.info()["text_index"]["tokenizer"] == "jieba"
    assert _ids(r.search(texts="北京", mode="text")) == ["a"]


def test_set_text_index_adds_replaces_drops_and_persists(tmp_path: Path) -> None:
    with Database(tmp_path / "d") as db:
        c = db.create_collection("t", dim=DIM)
        _fill(c)
        assert c.info()["text_index"] is None
        with pytest.raises(InvalidArgumentError, match="set_text_index"):
            c.search(texts="fox", mode="text")
        info = c.set_text_index({})
        assert info is not None and info["documents"] == 7
        assert c.set_text_index({}) == info  # idempotent
        assert "fox" in _ids(c.search(texts="fox", mode="text"))
        c.set_text_index({"stemming": True})
        assert {"fox", "foxes"} <= set(_ids(c.search(texts="fox", mode="text")))
    with Database(tmp_path / "d") as db:
        c = db.get_collection("t")
        assert c.info()["text_index"]["stemming"] is True
        assert c.set_text_index(None) is None
    with Database(tmp_path / "d") as db:
        assert db.get_collection("t").info()["text_index"] is None


# ---- filters: exact on both branches ----------------------------------------------------------------


def _big(db: Database, n: int = 300) -> tuple[Any, list[str], np.ndarray]:
    rng = np.random.default_rng(7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    words += ["eta", "theta", "iota", "kappa", "lambda", "mu"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(3, 12)))) for _ in range(n)]
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    c = db.create_collection("big", dim=DIM, index={"type": "flat"}, text_index={})
    c.upsert([f"r{i}" for i in range(n)], vecs, texts=texts, metadatas=[{"g": i % 10} for i in range(n)])
    return c, texts, vecs


def test_filters_apply_exactly_to_the_text_branch(db: Database) -> None:
    c, texts, _ = _big(db)
    n = len(texts)
    full = {h.id: h.score for h in c.search(texts="alpha kappa", mode="text", k=n)[0]}
    flt = {"g": {"$in": [3]}}
    tflt = {"$not_contains": "beta"}
    admitted = {f"r{i}" for i in range(n) if i % 10 == 3 and "beta" not in texts[i].split()}
    expected = sorted(((-s, i) for i, s in full.items() if i in admitted))[:10]
    got = c.search(texts="alpha kappa", mode="text", k=10, filter=flt, text_filter=tflt)[0]
    assert len(got) == min(10, len(expected))  # never short when k matching records exist
    assert [round(h.score, 5) for h in got] == [round(-s, 5) for s, _ in expected]
    assert {h.id for h in got} <= admitted


def test_ties_past_the_first_pass_are_ordered_by_id(db: Database) -> None:
    """300 identical texts tie on BM25: the text branch must read past its first pass (4k hits) and
    return the k smallest ids, whatever order tantivy holds them in (they are written shuffled)."""
    c = db.create_collection("ties", dim=DIM)
    c.set_text_index({})
    order = np.random.default_rng(7).permutation(300)
    ids = [f"d{i:03d}" for i in order]
    c.upsert(
        ids,
        [_vec(int(i)) for i in order],
        texts=["same words here"] * 300,
        metadatas=[{"odd": int(i) % 2} for i in order],
    )
    c.upsert(["z"], [_vec(999)], texts=["same words here and more"], metadatas=[{"odd": 1}])
    got = c.search(texts="same words", mode="text", k=10, include=["explain"])[0]
    assert [h.id for h in got] == [f"d{i:03d}" for i in range(10)]
    assert len({h.score for h in got}) == 1 and got[0].score > 0
    odd = c.search(texts="same words", mode="text", k=5, filter={"odd": 1})[0]
    assert [h.id for h in odd] == [f"d{i:03d}" for i in range(1, 10, 2)]
    assert len(c.search(texts="words", mode="text", k=301)[0]) == 301


def test_filters_apply_exactly_to_the_vector_branch_and_hybrid(db: Database) -> None:
    c, texts, vecs = _big(db)
    q = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    admitted = [i for i in range(len(texts)) if i % 10 == 5 and "gamma" in texts[i].split()]
    sims = (vecs[admitted] / np.linalg.norm(vecs[admitted], axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    want = [f"r{admitted[i]}" for i in np.argsort(-sims)[:5]]
    kw: dict[str, Any] = {"filter": {"g": 5}, "text_filter": {"$contains": "gamma"}}
    assert _ids(c.search(q, k=5, **kw)) == want
    hybrid = c.search(q, texts=["gamma"], k=5, mode="hybrid", include=["explain"], **kw)[0]
    assert {h.id for h in hybrid} <= {f"r{i}" for i in admitted}
    assert len(hybrid) == 5
    for h in hybrid:
        assert set(h.explain) <= {"vector", "text"} and h.explain


def test_hybrid_equals_fusing_the_branches(db: Database) -> None:
    c, _, vecs = _big(db)
    q = vecs[3]
    vec = c.search(q, k=50, include=[])[0]
    txt = c.search(texts="delta theta", mode="text", k=50, include=[])[0]
    for fusion in (None, {"method": "weighted", "alpha": 0.3}, {"method": "rrf", "k": 10, "candidates": 50}):
        f = Fusion() if fusion is None else Fusion(**{k: v for k, v in fusion.items()})  # type: ignore[arg-type]
        want = fuse([(h.id, h.score) for h in vec], [(h.id, h.score) for h in txt], f, 10)
        got = c.search(
            q[None, :], texts=["delta theta"], k=10, mode="hybrid", fusion=fusion, include=["explain"]
        )[0]
        assert [(h.id, round(h.score, 6)) for h in got] == [(i, round(s, 6)) for i, s, _ in want]
        assert [h.explain for h in got] == [e for _, _, e in want]


def test_rrf_and_weighted_fusion_math() -> None:
    v = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    t = [("c", 7.0), ("a", 3.0)]
    rrf = fuse(v, t, Fusion(), 3)
    assert rrf[0][0] == "a" and rrf[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert rrf[0][2] == {"vector": {"rank": 1, "score": 0.9}, "text": {"rank": 2, "score": 3.0}}
    w = fuse(v, t, Fusion("weighted", alpha=0.5), 3)
    # a: 0.5 * 1 + 0.5 * 0 ; c: 0.5 * 0 + 0.5 * 1 ; b: 0.5 * 0.5
    assert [(i, round(s, 6)) for i, s, _ in w] == [("a", 0.5), ("c", 0.5), ("b", 0.25)]
    l2 = fuse([("x", 0.1), ("y", 0.9)], [], Fusion("weighted", alpha=1.0), 2, lower_better=True)
    assert [i for i, _, _ in l2] == ["x", "y"]


# ---- text_filter on every read and delete ------------------------------------------------------------


def test_text_filter_in_count_scroll_iter_and_delete(col: Any) -> None:
    assert col.count(text_filter={"$contains": "programming language"}) == 2  # a phrase
    assert col.count(text_filter={"$contains": "language programming"}) == 0  # order matters
    assert col.count(text_filter={"$not_contains": "fox"}) == 6  # "none" (no text) included
    both = {"$and": [{"$contains": "quick"}, {"$not_contains": "foxes"}]}
    assert col.count(text_filter=both) == 1
    either = {"$or": [{"$contains": "cat"}, {"$contains": "dog"}]}
    assert col.count(text_filter=either) == 3
    assert col.count(filter={"even": True}, text_filter=either) == 2  # fox 0 (its dog), dog 2; cat is 3
    page, _ = col.scroll(text_filter={"$contains": "language"})
    assert [r.id for r in page] == ["python", "rust"]
    assert [r.id for r in col.iter_records(text_filter={"$contains": "language"}, limit=1)] == [
        "python",
        "rust",
    ]
    assert col.delete(filter={"even": False}, text_filter={"$contains": "language"}) == 1  # python is 5
    assert col.delete(text_filter={"$contains": "quick"}) == 2
    assert col.count() == 5


def test_jieba_chinese_search(db: Database) -> None:
    c = db.create_collection("zh", dim=DIM, text_index={"tokenizer": "jieba"})
    zh = {
        "a": "长城是中国古代的军事防御工程",
        "b": "熊猫是中国特有的珍稀动物，主要生活在四川",  # noqa: RUF001 (Chinese punctuation, on purpose)
        "c": "西湖位于浙江省杭州市",
        "d": "Python programming",
    }
    _fill(c, zh)
    assert _ids(c.search(texts="熊猫生活在哪里", mode="text"))[0] == "b"
    assert _ids(c.search(texts="杭州的西湖", mode="text"))[0] == "c"
    assert c.count(text_filter={"$contains": "中国"}) == 2
    assert _ids(c.search(texts="PYTHON", mode="text")) == ["d"]


def test_text_and_hybrid_without_an_embedding_model(col: Any) -> None:
    assert col.embedding_model is None
    assert col.search(texts="fox", mode="text")[0]
    with pytest.raises(InvalidArgumentError, match="no embedding model"):
        col.search(texts="fox", mode="hybrid")
    rows = col.search([_vec(0)], texts=["fox"], mode="hybrid", k=3)
    assert rows[0][0].id == "fox"


def test_score_threshold_and_explain_in_single_modes(col: Any) -> None:
    hits = col.search(texts="fox", mode="text", include=["explain"])[0]
    assert [h.explain for h in hits] == [
        {"text": {"rank": r, "score": h.score}} for r, h in enumerate(hits, 1)
    ]
    assert col.search(texts="fox", mode="text", score_threshold=1e9) == [[]]
    v = col.search(_vec(0), include=["explain"], k=2)[0]
    assert v[0].explain == {"vector": {"rank": 1, "score": v[0].score}}
    assert col.search(_vec(0), k=2)[0][0].explain is None


# ---- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("standard", "must be an object"),
        ({"tokenizer": "icu"}, "tokenizer"),
        ({"k1": 2.0}, "k1 = 1.2"),
        ({"b": 0.5}, "b = 0.75"),
        ({"stemming": True, "tokenizer": "jieba"}, "standard tokenizer only"),
        ({"stopwords": "french"}, "stopwords"),
        ({"boost": 1}, "boost"),
        ({"stemming": "yes"}, "stemming"),
    ],
)
def test_bad_text_index_specs(db: Database, spec: Any, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        db.create_collection("x", dim=DIM, text_index=spec)
    c = db.create_collection("y", dim=DIM)
    with pytest.raises(InvalidConfigError, match=match):
        c.set_text_index(spec)
    db.drop_collection("y")
    assert "x" not in db.list_collections()


def test_default_bm25_parameters_are_accepted(db: Database) -> None:
    c = db.create_collection("x", dim=DIM, text_index={"k1": 1.2, "b": 0.75})
    assert c.info()["text_index"]["k1"] == 1.2


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"texts": "fox", "mode": "keyword"}, InvalidArgumentError, "mode must be one of"),
        ({"mode": "text"}, InvalidArgumentError, "needs texts"),
        ({"vectors": [_vec(0)], "texts": "fox", "mode": "text"}, InvalidArgumentError, "not vectors"),
        (
            {"texts": "fox", "mode": "text", "params": {"ef_search": 10}},
            InvalidArgumentError,
            "for mode 'text'",
        ),
        ({"texts": "fox", "mode": "text", "fusion": {}}, InvalidArgumentError, "'hybrid' only"),
        (
            {"vectors": [_vec(0)], "texts": "fox", "mode": "hybrid", "fusion": {"method": "max"}},
            InvalidArgumentError,
            "method",
        ),
        (
            {"vectors": [_vec(0)], "texts": "fox", "mode": "hybrid", "fusion": {"alpha": 0.5}},
            InvalidArgumentError,
            "do not apply",
        ),
        (
            {
                "vectors": [_vec(0)],
                "texts": "fox",
                "mode": "hybrid",
                "fusion": {"method": "weighted", "k": 3},
            },
            InvalidArgumentError,
            "do not apply",
        ),
        (
            {
                "vectors": [_vec(0)],
                "texts": "fox",
                "mode": "hybrid",
                "fusion": {"method": "weighted", "alpha": 2},
            },
            InvalidArgumentError,
            "alpha",
        ),
        (
            {"vectors": [_vec(0)], "texts": "fox", "mode": "hybrid", "fusion": {"k": 0}},
            InvalidArgumentError,
            "fusion.k",
        ),
        (
            {"vectors": [_vec(0)], "texts": "fox", "mode": "hybrid", "fusion": {"candidates": 2}},
            InvalidArgumentError,
            "candidates",
        ),
        (
            {"vectors": [_vec(0)], "texts": "fox", "mode": "hybrid", "fusion": "rrf"},
            InvalidArgumentError,
            "object",
        ),
        (
            {"vectors": [_vec(0), _vec(1)], "texts": ["fox"], "mode": "hybrid"},
            InvalidArgumentError,
            "one vector per text",
        ),
        ({"texts": "fox", "mode": "text", "include": ["score"]}, InvalidArgumentError, "include"),
        (
            {"texts": "fox", "mode": "text", "score_threshold": "high"},
            InvalidArgumentError,
            "score_threshold",
        ),
        (
            {"texts": "fox", "mode": "text", "text_filter": {"$has": "x"}},
            InvalidFilterError,
            "unknown text_filter",
        ),
        ({"texts": "fox", "mode": "text", "text_filter": {"$contains": ""}}, InvalidFilterError, "non-empty"),
        (
            {"texts": "fox", "mode": "text", "text_filter": {"$contains": 3}},
            InvalidFilterError,
            "non-empty string",
        ),
        ({"texts": "fox", "mode": "text", "text_filter": {"$and": []}}, InvalidFilterError, "non-empty list"),
        (
            {"texts": "fox", "mode": "text", "text_filter": {"$contains": "a", "$or": []}},
            InvalidFilterError,
            "exactly one",
        ),
        (
            {"texts": "fox", "mode": "text", "text_filter": {"$contains": "!!!"}},
            InvalidFilterError,
            "no searchable terms",
        ),
        (
            {"texts": "fox", "mode": "text", "text_filter": {"$contains": "x" * 5000}},
            InvalidFilterError,
            "longer",
        ),
    ],
)
def test_search_errors(col: Any, kwargs: dict[str, Any], err: type[Exception], match: str) -> None:
    with pytest.raises(err, match=match):
        col.search(**kwargs)


def test_text_filter_errors_elsewhere(db: Database, col: Any) -> None:
    plain = db.create_collection("plain", dim=DIM)
    with pytest.raises(InvalidArgumentError, match="set_text_index"):
        plain.count(text_filter={"$contains": "x"})
    with pytest.raises(InvalidArgumentError, match="set_text_index"):
        plain.search(_vec(0), text_filter={"$contains": "x"})
    with pytest.raises(InvalidFilterError):
        col.scroll(text_filter=["$contains", "x"])
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        col.delete(["fox"], text_filter={"$contains": "x"})
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        col.delete(source="s", filter={"n": 1})
    with pytest.raises(InvalidFilterError, match="non-empty filter"):
        col.delete(filter={})
    deep: dict[str, Any] = {"$contains": "x"}
    for _ in range(20):
        deep = {"$and": [deep]}
    with pytest.raises(InvalidFilterError, match="deeper"):
        col.count(text_filter=deep)


def test_vecdb_check_reports_the_text_index(tmp_path: Path) -> None:
    from vecdb.engine.check import check_data_dir

    with Database(tmp_path / "d") as db:
        _fill(db.create_collection("std", dim=DIM, text_index={}))
        _fill(db.create_collection("zh", dim=DIM, text_index={"tokenizer": "jieba"}), {"a": "北京欢迎你"})
        db.create_collection("none", dim=DIM)
    facts = {
        r.name: r.facts.get("text_index") for r in check_data_dir(tmp_path / "d") if r.kind == "collection"
    }
    assert facts["std"].startswith("standard") and facts["none"] == "none"
    assert facts["zh"].startswith("jieba, segmentation cache at seq")
    (tmp_path / "d" / "collections" / "zh" / "text.ckpt").write_bytes(b"garbage")
    results = check_data_dir(tmp_path / "d")
    zh = next(r for r in results if r.name == "zh")
    assert "unreadable" in zh.facts["text_index"] and not zh.problems
