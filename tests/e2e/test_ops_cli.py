"""``vecdb snapshot | restore | export | import`` as users run them: the installed command, against a
real server (``--url``) and on a data directory (``--data-dir``); a snapshot directory copied to
another data directory restores there; export -> import round-trips (JSON Lines and Parquet)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from serverproc import ServerProcess
from test_ingest_cli import fails, ok, table

from vecdb import Database
from vecdb_client import Client

DIM = 4


def records(n: int = 25) -> list[dict]:
    x = np.random.default_rng(4).standard_normal((n, DIM)).astype(np.float32)
    return [
        {
            "id": f"r{i:03d}",
            "vector": [float(v) for v in x[i]],
            "text": f"text {i} é",
            "metadata": {"n": i, "tags": ["a", "b"]} if i % 2 else {},
            "source": f"file{i % 3}.txt" if i % 4 else None,
        }
        for i in range(n)
    ]


def read_jsonl(text: str) -> list[dict]:
    """The records of an export (its first line, the collection's configuration, checked and left out)."""
    header, *lines = [json.loads(line) for line in text.splitlines() if line]
    assert set(header) == {"vecdb_collection"}
    assert set(header["vecdb_collection"]) == {
        "dim",
        "metric",
        "index",
        "embedding",
        "capacity",
        "text_index",
    }
    return lines


def same(a: list[dict], b: list[dict]) -> None:
    assert [r["id"] for r in a] == [r["id"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert {k: v for k, v in x.items() if k != "vector"} == {k: v for k, v in y.items() if k != "vector"}
        assert np.allclose(x["vector"], y["vector"], atol=1e-6)


def test_export_import_snapshot_restore_with_a_server(server: ServerProcess, tmp_path: Path) -> None:
    url = ("--url", server.rest_url)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records()), encoding="utf-8")
    assert ok("import", src, "--collection", "docs", "--metric", "l2", "--batch", "7", *url).strip() == (
        "imported 25 records into docs"
    )
    exported = read_jsonl(ok("export", "--collection", "docs", "--batch", "4", *url))
    same(exported, records())
    # importing again changes nothing (upsert by id)
    ok("import", src, "--collection", "docs", *url)
    with Client(server.rest_url) as client:
        assert client.collection("docs").count() == 25
        assert client.collection("docs").info().metric == "l2"
    # Parquet, to a file and back into another collection
    pq_file = tmp_path / "docs.parquet"
    ok("export", "--collection", "docs", "--output", pq_file, *url)
    assert pq.read_table(pq_file).num_rows == 25
    ok("import", pq_file, "--collection", "copy", *url)  # l2 from the file's configuration
    same(read_jsonl(ok("export", "--collection", "copy", *url)), records())
    with Client(server.rest_url) as client:
        assert client.collection("copy").info().metric == "l2"
    # snapshots through the server
    assert "created snapshot s1 of docs: 25 records" in ok("snapshot", "create", "docs", "s1", *url)
    rows = table(ok("snapshot", "list", "docs", *url))
    assert [r[0] for r in rows] == ["s1"] and rows[0][2] == "25"
    with Client(server.rest_url) as client:
        client.collection("docs").delete(source="file1.txt")
    ok("snapshot", "restore", "docs", "s1", "--target", "back", *url)
    same(read_jsonl(ok("export", "--collection", "back", *url)), records())
    fails("snapshot", "restore", "docs", "s1", *url, match="already exists")
    fails("snapshot", "delete", "docs", "nope", *url, match="no snapshot 'nope'")
    fails("snapshot", "delete", "docs", *url, match="needs the snapshot's name")
    ok("snapshot", "delete", "docs", "s1", *url)
    assert table(ok("snapshot", "list", "docs", *url)) == []


def test_snapshot_directory_restores_into_another_data_directory(tmp_path: Path) -> None:
    data, other = tmp_path / "data", tmp_path / "other"
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records(40)), encoding="utf-8")
    ok("import", src, "--collection", "docs", "--metric", "l2", "--data-dir", data)
    ok("snapshot", "create", "docs", "nightly", "--data-dir", data)
    moved = tmp_path / "copied" / "nightly"
    shutil.copytree(data / "snapshots" / "docs" / "nightly", moved)
    out = ok("restore", moved, "--collection", "docs", "--data-dir", other)
    assert out.strip() == f"restored {moved} as docs: 40 records"
    same(read_jsonl(ok("export", "--collection", "docs", "--data-dir", other)), records(40))
    fails("restore", moved, "--collection", "docs", "--data-dir", other, match="already exists")
    fails(
        "restore",
        tmp_path / "nothing",
        "--collection",
        "x",
        "--data-dir",
        other,
        match="not a vecdb snapshot",
    )
    with Database(other) as db:
        assert db.list_collections() == ["docs"]


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (["{nope"], "line 1: not JSON"),
        (['{"vector": [1, 2, 3, 4]}'], "line 1: a record must be a JSON object with a string id"),
        (['{"id": "a", "vector": [1, 2, 3, 4]}', "[1]"], "line 2"),
        (['{"id": "a", "text": "no vector"}'], "has no vector to take its dimension from"),
        (['{"id": "a", "vector": [1, 2, 3, 4]}', '{"id": "b", "vector": [1, 2]}'], "dimension"),
    ],
)
def test_import_errors(tmp_path: Path, lines: list[str], match: str) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fails("import", src, "--collection", "bad", "--batch", "1", "--data-dir", tmp_path / "d", match=match)


def test_export_of_a_missing_collection_fails(tmp_path: Path) -> None:
    fails("export", "--collection", "nope", "--data-dir", tmp_path / "d", match="nope")
    fails(
        "export",
        "--collection",
        "nope",
        "--format",
        "parquet",
        "--data-dir",
        tmp_path / "d",
        match="--output",
    )


def config_of(info: dict[str, Any]) -> dict[str, Any]:
    """A collection's creation settings in its info (without the facts info reports beside them)."""
    embedding, text = info["embedding"], info["text_index"]
    return {
        "dim": info["dim"],
        "metric": info["metric"],
        "index": info["index"],
        "embedding": None
        if embedding is None
        else {k: embedding[k] for k in embedding if k not in ("dim", "backend")},
        "capacity": info["capacity"],
        "text_index": None if text is None else {k: text[k] for k in text if k != "documents"},
    }


def test_export_import_carries_the_configuration(tmp_path: Path) -> None:
    """The model (with its prompts), index, metric, capacity and full-text index travel with the records
    (JSON Lines and Parquet); flags override them; a file another tool wrote (no configuration) still
    imports."""
    data = tmp_path / "d"
    with Database(data) as db:
        col = db.create_collection(
            "notes",
            embedding={"document_prompt": "passage: "},
            metric="ip",
            index={"type": "flat"},
            max_records=100,
            eviction="lru",
            text_index={"tokenizer": "whitespace"},
        )
        col.upsert(["a", "b"], texts=["cats purr", "stocks fell"], sources=["x.md", "y.md"])
        want = config_of(col.info())
    assert want["embedding"]["document_prompt"] == "passage: "
    assert want["text_index"] == {
        "tokenizer": "whitespace",
        "stemming": False,
        "stopwords": None,
        "k1": 1.2,
        "b": 0.75,
    }
    jsonl, parquet = tmp_path / "n.jsonl", tmp_path / "n.parquet"
    ok("export", "--collection", "notes", "--output", jsonl, "--data-dir", data)
    ok("export", "--collection", "notes", "--output", parquet, "--data-dir", data)
    header = json.loads(jsonl.read_text().splitlines()[0])
    assert header == {"vecdb_collection": want}
    ok("import", jsonl, "--collection", "from_jsonl", "--data-dir", data)
    ok("import", parquet, "--collection", "from_parquet", "--data-dir", data)
    ok(
        "import",
        jsonl,
        "--collection",
        "over",
        "--metric",
        "cosine",
        "--max-records",
        "5",
        "--data-dir",
        data,
    )
    ok("import", jsonl, "--collection", "plain", "--ignore-config", "--data-dir", data)
    bare = tmp_path / "bare.jsonl"  # records only, as another tool writes them
    bare.write_text("\n".join(jsonl.read_text().splitlines()[1:]) + "\n")
    ok("import", bare, "--collection", "bare", "--model", "all-MiniLM-L6-v2", "--data-dir", data)
    with Database(data) as db:
        for name in ("from_jsonl", "from_parquet"):
            info = db.get_collection(name).info()
            assert config_of(info) == want, name
            # text search works on the copy: the model came along, and so did the full-text index
            (hit,) = db.get_collection(name).search(texts=["a purring cat"], k=1)[0]
            assert hit.id == "a"
            (hit,) = db.get_collection(name).search(texts=["stocks"], k=1, mode="text")[0]
            assert hit.id == "b"
        over = db.get_collection("over").info()
        assert over["metric"] == "cosine"
        assert over["capacity"] == {"max_records": 5, "eviction": "lru"}
        assert config_of(over)["embedding"] == want["embedding"]
        plain = db.get_collection("plain").info()
        assert plain["embedding"] is None
        assert plain["capacity"] is None
        assert plain["metric"] == "cosine"
        bare_info = db.get_collection("bare").info()
        assert bare_info["embedding"]["model"] == want["embedding"]["model"]
        assert bare_info["text_index"] is None
    fails(
        "import",
        bare,
        "--collection",
        "bad",
        "--index",
        "{x",
        "--data-dir",
        data,
        match="--index is not JSON",
    )
