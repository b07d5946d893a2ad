"""``vecdb ingest | sources | search | collections`` as subprocesses, against a real server and embedded.

Pinned:

- ``vecdb ingest DIR --collection C --url URL``: creates the collection with the server's model; one
  plain line per written file on stdout when it is not a terminal (``added a.md (1 chunks)``,
  ``changed ...``, ``removed b.txt (-1)``), then the summary line ``C: added ...``; an unreadable file is
  ``failed: SOURCE: REASON`` on stderr and exit status 1, the other files ingested anyway; a re-run
  changes nothing; edit + delete + add with ``--delete-missing`` leaves the collection mirroring the
  folder (seen through ``vecdb sources list`` and through ``vecdb_client``, texts and metadata);
  ``--quiet`` prints the summary line only; on a terminal a progress bar instead of the plain lines;
- ``vecdb search``: a table (#, id, score, source, text) best first with the right top hit; ``--filter``
  JSON restricts it; ``sources list`` / ``sources delete``; ``collections create/list/drop``;
- the same ingest scenario on ``--data-dir`` (no server), checked by opening the data directory after;
- errors are one line on stderr and exit status 1: unknown collection, no server at ``--url`` ("cannot
  reach"), ``--url`` with ``--data-dir``, a missing path, bad chunk sizes, a collection without a model,
  bad ``--filter`` JSON, ``sources delete`` without names.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

from serverproc import REPO, ServerProcess, free_port, server_env, vecdb_command

from vecdb import Database
from vecdb.embed import read_folder, resolve_model
from vecdb.ingest import chunk_id, read_text, split_text
from vecdb_client import Client

CLI_TIMEOUT_S = 120

CATS = "A small kitten is sleeping curled up on the warm sofa."
STOCKS = "The stock market fell sharply after the central bank raised interest rates."
RAIN_HTML = (
    "<html><head><style>.x { color: red }</style><script>var hidden = 1;</script></head>"
    "<body><h1>Weather</h1><p>Heavy rain and strong winds are expected along the coast.</p></body></html>"
)
RAIN_TEXT = "Weather\nHeavy rain and strong winds are expected along the coast."
GARDEN = "Gardening\n=========\n\nTomatoes need plenty of sun and regular watering."
#: an odd file name: ? # % must survive the REST paths (PUT /sources/{source}, deletes)
ODD = "sub/d?#%.rst"
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def cli_env() -> dict[str, str]:
    """The server's environment plus this checkout's client package (pip-installed in CI anyway)."""
    env = server_env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "clients" / "python"), env["PYTHONPATH"]])
    env.pop("COLUMNS", None)
    return env


def vecdb(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        vecdb_command(*map(str, args)),
        capture_output=True,
        text=True,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def ok(*args: str | Path) -> str:
    res = vecdb(*args)
    assert res.returncode == 0, f"vecdb {args} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    assert res.stderr == "", res.stderr
    return res.stdout


def fails(*args: str | Path, match: str) -> str:
    """Exit status 1 with one line on stderr (``vecdb CMD: ...`` containing ``match``); returns it."""
    res = vecdb(*args)
    assert res.returncode == 1, f"vecdb {args} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"vecdb {args[0]}: "), lines
    assert match in lines[0], lines
    assert "Traceback" not in res.stderr
    return lines[0]


def table(out: str) -> list[list[str]]:
    """Rows of a printed table, split in at most as many cells as the header has (the last keeps spaces)."""
    lines = out.splitlines()
    header = lines[0].split()
    assert set(lines[1]) <= {"-", " "}, lines
    return [line.split(None, len(header) - 1) for line in lines[2:]]


def write(root: Path, name: str, data: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def summary(added: int, changed: int, unchanged: int, removed: int, failed: int = 0) -> str:
    """The summary line for one-chunk files."""
    line = (
        f"added {added} files ({added} chunks), changed {changed} files ({changed} chunks), "
        f"unchanged {unchanged} files, removed {removed} files ({removed} chunks)"
    )
    return line + (f", {failed} failed" if failed else "")


def first_folder(root: Path) -> None:
    write(root, "a.md", "# Cats\n\n" + CATS)
    write(root, "b.txt", STOCKS)
    write(root, "c.html", RAIN_HTML)
    write(root, "sub/bad.txt", BINARY)


def change_folder(root: Path) -> None:
    """Edit a.md, delete b.txt, add ``ODD``, and delete the (never ingested) binary sub/bad.txt."""
    write(root, "a.md", "# Cats\n\nCats are nocturnal hunters and sleep most of the day.")
    (root / "b.txt").unlink()
    write(root, ODD, GARDEN)
    (root / "sub/bad.txt").unlink()


#: The packaged model's tokens (special ones excluded) and the default chunk size: its window less them.
TOKENS = read_folder(resolve_model("all-MiniLM-L6-v2", allow_download=False)).token_counter()
BUDGET = 254


def assert_mirrors(col: Any, root: Path) -> None:
    """``col`` (engine or client collection) holds exactly the folder's files, chunked by default."""
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert [s.source for s in col.list_sources()] == files
    for source in files:
        path = root / source
        data = path.read_bytes()
        chunks = split_text(read_text(path, data), BUDGET, BUDGET // 8, TOKENS)
        records = col.get([chunk_id(source, i) for i in range(len(chunks) + 1)])
        assert [r.text for r in records] == [c.text for c in chunks], source
        for i, rec in enumerate(records):
            assert rec.source == source
            meta = rec.metadata
            assert (meta["path"], meta["chunk"], meta["chunks"]) == (source, i, len(chunks))
            assert meta["content_hash"] == hashlib.sha256(data).hexdigest()
            assert (meta["start"], meta["end"]) == (chunks[i].start, chunks[i].end)
            assert meta["chunking"] == [BUDGET, BUDGET // 8, "tokens"]


def run_on_tty(*args: str | Path, timeout: float = CLI_TIMEOUT_S) -> tuple[int, str, str]:
    """Run ``vecdb ARGS`` with stdout on a 24x120 pseudo-terminal: (status, terminal output, stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a new pty is 0x0
    try:
        proc = subprocess.Popen(
            vecdb_command(*map(str, args)),
            stdout=slave,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=cli_env(),
        )
    finally:
        os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            out += data
        rc = proc.wait(max(1.0, deadline - time.monotonic()))
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        os.close(master)
    return rc, out.decode(errors="replace"), err


# ---- against a server ---------------------------------------------------------------------------------


def test_ingest_search_sources_collections_with_a_server(server: ServerProcess, tmp_path: Path) -> None:
    url = server.rest_url
    root = tmp_path / "docs"
    first_folder(root)
    where = ("--collection", "c", "--url", url)

    # first run: three files in, the binary one reported, exit status 1
    res = vecdb("ingest", root, *where)
    assert res.returncode == 1, res
    assert res.stdout.splitlines() == [
        "added a.md (1 chunks)",
        "added b.txt (1 chunks)",
        "added c.html (1 chunks)",
        f"c: {summary(3, 0, 0, 0, failed=1)}",
    ]
    assert res.stderr.splitlines() == ["failed: sub/bad.txt: binary content (NUL bytes)"]
    with Client(url) as client:
        col = client.collection("c")
        assert (client.collection("c").info().embedding or {}).get("model") == "all-MiniLM-L6-v2"
        assert [s.source for s in col.list_sources()] == ["a.md", "b.txt", "c.html"]
        (html,) = col.get([chunk_id("c.html", 0)])
        assert html.text == RAIN_TEXT
        seq = col.info().seq

        # a re-run, quiet: the summary line only, nothing written
        res = vecdb("ingest", root, *where, "--quiet")
        assert res.returncode == 1
        assert res.stdout == f"c: {summary(0, 0, 3, 0, failed=1)}\n"
        assert res.stderr == "failed: sub/bad.txt: binary content (NUL bytes)\n"
        assert col.info().seq == seq

        # edit one, delete one, add one, drop the bad one: the collection mirrors the folder
        change_folder(root)
        out = ok("ingest", root, *where, "--delete-missing")
        assert out.splitlines() == [
            "changed a.md (1 chunks)",
            f"added {ODD} (1 chunks)",
            "removed b.txt (-1)",
            f"c: {summary(1, 1, 1, 1)}",
        ]
        assert_mirrors(col, root)
        rows = table(ok("sources", "list", *where))
        assert rows == [["a.md", "1"], ["c.html", "1"], [ODD, "1"]]

        # search: a table, best first
        rows = table(ok("search", "a cat sleeping all day", *where, "-k", "3"))
        assert [r[0] for r in rows] == ["1", "2", "3"]
        assert rows[0][1:4:2] == [chunk_id("a.md", 0), "a.md"], rows
        assert rows[0][4].startswith("# Cats Cats are nocturnal hunters"), rows  # whitespace flattened
        scores = [float(r[2]) for r in rows]
        assert scores == sorted(scores, reverse=True)
        rows = table(ok("search", "tomato plants", *where, "-k", "1"))
        assert [r[3] for r in rows] == [ODD]
        as_json = json.loads(ok("search", "a cat sleeping all day", *where, "-k", "3", "--json"))
        assert as_json[0]["id"] == chunk_id("a.md", 0)
        assert as_json[0]["source"] == "a.md"
        assert as_json[0]["text"].startswith("# Cats\n")  # the full text, not a snippet
        assert [round(h["score"], 3) for h in as_json] == scores
        rows = table(ok("search", "a cat", *where, "--filter", '{"path": "c.html"}'))
        assert [r[3] for r in rows] == ["c.html"]
        fails("search", "x", *where, "--filter", "{not json", match="--filter is not JSON")
        fails("search", "x", "--collection", "nope", "--url", url, match="'nope'")
        fails("sources", "list", "--collection", "nope", "--url", url, match="'nope'")

        # sources delete
        assert ok("sources", "delete", ODD, *where) == f"deleted {ODD}: 1 records\n"
        assert [s.source for s in col.list_sources()] == ["a.md", "c.html"]
        assert table(ok("sources", "list", *where)) == [["a.md", "1"], ["c.html", "1"]]
        fails("sources", "delete", *where, match="needs the sources")

        # bad chunk sizes, a collection without a model, a missing path
        fails("ingest", root, *where, "--chunk-size", "100", "--chunk-overlap", "100", match="chunk_size")
        # over the model's window (256 less [CLS] and [SEP]): every chunk would be cut short
        fails("ingest", root, *where, "--chunk-size", "255", match="over the 254 tokens")
        assert ok("collections", "create", "vec", "--no-model", "--dim", "4", "--url", url).startswith(
            "created vec: dim 4, cosine, index "
        )
        fails("ingest", root, "--collection", "vec", "--url", url, match="no embedding model")
        fails("ingest", tmp_path / "nope", *where, match="does not exist")

    # on a terminal: a progress bar, not the plain lines
    rc, term, err = run_on_tty("ingest", root, "--collection", "tty", "--url", url)
    assert (rc, err) == (0, ""), (rc, term, err)
    assert "3/3" in term and "chunks written" in term, term
    assert "added a.md" not in term, term
    assert f"tty: {summary(3, 0, 0, 0)}" in term, term
    rc, term, err = run_on_tty("ingest", root, "--collection", "tty", "--url", url, "--quiet")
    assert (rc, term, err) == (0, f"tty: {summary(0, 0, 3, 0)}\r\n", "")

    # collections list / create / drop
    rows = table(ok("collections", "list", "--url", url))
    assert rows == [
        ["c", "2", "384", "cosine", "all-MiniLM-L6-v2"],
        ["tty", "3", "384", "cosine", "all-MiniLM-L6-v2"],
        ["vec", "0", "4", "cosine"],
    ]
    out = ok("collections", "create", "notes", "--url", url)
    assert out.startswith("created notes: dim 384, cosine, index "), out
    fails("collections", "create", "notes", "--url", url, match="notes")
    assert ok("collections", "drop", "vec", "--url", url) == "dropped vec\n"
    assert [r[0] for r in table(ok("collections", "list", "--url", url))] == ["c", "notes", "tty"]
    fails("collections", "drop", "vec", "--url", url, match="vec")
    fails("collections", "create", "--url", url, match="needs a name")


# ---- embedded ---------------------------------------------------------------------------------------------


def test_ingest_embedded_on_a_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    root = tmp_path / "docs"
    first_folder(root)
    where = ("--collection", "c", "--data-dir", data)

    res = vecdb("ingest", root, *where)
    assert res.returncode == 1, res
    assert res.stdout.splitlines()[-1] == f"c: {summary(3, 0, 0, 0, failed=1)}"
    assert res.stdout.splitlines()[:-1] == [
        "added a.md (1 chunks)",
        "added b.txt (1 chunks)",
        "added c.html (1 chunks)",
    ]
    assert res.stderr == "failed: sub/bad.txt: binary content (NUL bytes)\n"

    change_folder(root)
    out = ok("ingest", root, *where, "--delete-missing", "--quiet")
    assert out == f"c: {summary(1, 1, 1, 1)}\n"
    assert ok("ingest", root, *where) == f"c: {summary(0, 0, 3, 0)}\n"  # nothing to do: no lines
    assert table(ok("sources", "list", *where)) == [["a.md", "1"], ["c.html", "1"], [ODD, "1"]]
    with Database(data) as db:  # the commands closed it
        col = db.get_collection("c")
        assert (col.info()["embedding"] or {}).get("model") == "all-MiniLM-L6-v2"
        assert_mirrors(col, root)


# ---- errors without a server ------------------------------------------------------------------------------


def test_errors_without_a_server(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "a.md", CATS)
    nobody = f"http://127.0.0.1:{free_port()}"
    line = fails("ingest", root, "--collection", "c", "--url", nobody, match="cannot reach")
    assert nobody in line
    fails("collections", "list", "--url", nobody, match="cannot reach")
    fails("search", "q", "--collection", "c", "--url", nobody, match="cannot reach")
    both = ("--url", nobody, "--data-dir", tmp_path / "data")
    fails("ingest", root, "--collection", "c", *both, match="not both")
    fails("sources", "list", "--collection", "c", *both, match="not both")
    fails("search", "q", "--collection", "nope", "--data-dir", tmp_path / "data", match="'nope'")
    fails("ingest", tmp_path / "missing", "--collection", "c", "--data-dir", tmp_path / "d", match="missing")
