"""``vecdb search --mode text|hybrid --text-filter --fusion`` and ``vecdb collections create --text-index``
as subprocesses on a data directory (no server, no embedding model: text mode needs neither).

Pinned: the collection is created with the full-text index the flag names; ``--mode text`` ranks by BM25
(the record holding the query's identifier first); ``--text-filter`` restricts any mode; bad JSON in the
new flags and a text search without a full-text index are one line on stderr and exit status 1.
"""

from __future__ import annotations

from pathlib import Path

from test_ingest_cli import fails, ok, table, vecdb

from vecdb import Database

TEXTS = {
    "err": "Error E4021 means the snapshot manifest checksum did not match.",
    "db": "A vector database stores embeddings.",
    "draft": "Draft: a database nobody reviewed.",
}


def test_text_search_from_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    where = ("--collection", "kw", "--data-dir", data)
    out = ok(
        "collections",
        "create",
        "kw",
        "--no-model",
        "--dim",
        "2",
        "--text-index",
        '{"tokenizer": "whitespace"}',
        "--data-dir",
        data,
    )
    assert out.startswith("created kw: dim 2"), out
    ok("collections", "create", "plain", "--no-model", "--dim", "2", "--data-dir", data)
    with Database(data) as db:  # the commands closed it
        col = db.get_collection("kw")
        assert col.info()["text_index"]["tokenizer"] == "whitespace"
        col.upsert(list(TEXTS), [[1, 0], [0, 1], [1, 1]], texts=list(TEXTS.values()))
        db.get_collection("plain").upsert(["a"], [[1, 0]], texts=["E4021"])

    rows = table(ok("search", "E4021", *where, "--mode", "text"))
    assert [r[1] for r in rows] == ["err"]
    rows = table(ok("search", "database", *where, "--mode", "text", "-k", "3"))
    assert sorted(r[1] for r in rows) == ["db", "draft"]
    rows = table(
        ok("search", "database", *where, "--mode", "text", "--text-filter", '{"$not_contains": "Draft:"}')
    )
    assert [r[1] for r in rows] == ["db"]

    fails(
        "search", "x", *where, "--mode", "text", "--text-filter", "{nope", match="--text-filter is not JSON"
    )
    fails("search", "x", *where, "--mode", "hybrid", "--fusion", "[", match="--fusion is not JSON")
    res = vecdb("search", "x", *where, "--mode", "keyword")  # argparse: a usage error, status 2
    assert res.returncode == 2 and "invalid choice: 'keyword'" in res.stderr, res
    fails(
        "search",
        "E4021",
        "--collection",
        "plain",
        "--data-dir",
        data,
        "--mode",
        "text",
        match="set_text_index",
    )
    fails(
        "collections",
        "create",
        "bad",
        "--no-model",
        "--dim",
        "2",
        "--text-index",
        "{",
        "--data-dir",
        data,
        match="--text-index is not JSON",
    )
