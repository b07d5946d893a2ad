"""``vecdb.ingest.ingest`` against an embedded collection with the real embedding model.

One Database (one loaded model, ~5 s) is shared by the module; each test has its own collection. Pinned:

- first run: every file **added**, chunk ids ``chunk_id(source, i)``, metadata ``path``, ``chunk``,
  ``chunks``, ``start``, ``end``, ``lines``, ``mtime`` (ISO 8601 UTC of the file's mtime),
  ``content_hash`` (sha256 of the file's bytes), ``chunking`` ([size, overlap]), record source = the
  source, text = the chunk's text, and the text is embedded (a text search finds it);
- a re-run over unchanged files: all **unchanged** and no write at all (the collection's ``seq`` stays);
- an edited file: **changed**, its old chunk ids gone (it shrank), the new chunks in place; touching a
  file without changing it stays unchanged; a source whose chunk count no longer matches is rewritten;
- ``delete_missing``: sources without a file **removed**; without it they stay; a new file **added**;
- after every run the collection mirrors the readable files exactly (sources, ids, texts, metadata);
- a file that cannot be read (binary, not UTF-8, vanished, broken PDF) is **failed**: reported, never
  aborts the run, its old chunks stay (even with ``delete_missing``), the other files go through;
- a collection refusing one file's ``replace_source`` (or one source's delete): that file **failed**
  with the error, its old chunks kept, the others fine;
- a file that became blank is **empty**: its chunks are deleted;
- bad chunk sizes raise ValueError before anything is read or written; ``on_file`` sees every report in
  order; the summary line's format.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pdf_samples import GOOD_PDF, GOOD_PDF_TEXT, NO_TRAILER_DICT

from vecdb import Database
from vecdb.engine.collection import Collection
from vecdb.ingest import (
    Chunk,
    FileReport,
    IngestSummary,
    UnreadableFileError,
    chunk_id,
    discover,
    ingest,
    read_text,
    split_text,
)

SIZE, OVERLAP = 120, 20  # small chunks: a few paragraphs make several
_names = itertools.count()

CATS = (
    "The small kitten sleeps curled up on the warm sofa all afternoon.\n\n"
    "Cats like to chase mice across the garden and climb the old apple tree.\n\n"
    "A purring cat is a happy cat, say the people who own three of them."
)
STOCKS = (
    "The stock market fell sharply after the central bank raised interest rates.\n\n"
    "Investors sold their shares as the index dropped for a third day in a row."
)
RAIN = "Heavy rain and strong winds are expected along the coast tomorrow."


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with Database(tmp_path_factory.mktemp("ingest") / "d") as database:
        yield database


@pytest.fixture
def col(db: Database) -> Collection:
    return db.create_collection(f"c{next(_names)}", embedding={})


def write(root: Path, name: str, text: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def run(target: Any, root: Path, **kwargs: Any) -> IngestSummary:
    kwargs.setdefault("chunk_size", SIZE)
    kwargs.setdefault("chunk_overlap", OVERLAP)
    return ingest(target, discover([root]), **kwargs)


def statuses(summary: IngestSummary) -> dict[str, str]:
    return {f.source: f.status for f in summary.files}


def expected_chunks(path: Path) -> list[Chunk]:
    return split_text(read_text(path, path.read_bytes()), SIZE, OVERLAP)


def stored(col: Any, source: str, n: int) -> list[Any]:
    return list(col.get([chunk_id(source, i) for i in range(n)], include=["text", "metadata", "source"]))


def assert_source_is(col: Any, source: str, path: Path) -> None:
    """The source holds exactly the chunks of the file at ``path``, with their metadata."""
    chunks = expected_chunks(path)
    counts = {s.source: s.count for s in col.list_sources()}
    assert counts.get(source) == len(chunks), (source, counts)
    data = path.read_bytes()
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
    records = stored(col, source, len(chunks))
    assert [r.id for r in records] == [chunk_id(source, i) for i in range(len(chunks))]
    for i, (rec, c) in enumerate(zip(records, chunks, strict=True)):
        assert rec.text == c.text
        assert rec.source == source
        assert rec.metadata == {
            "path": source,
            "source": source,
            "chunk": i,
            "chunks": len(chunks),
            "start": c.start,
            "end": c.end,
            "lines": [c.first_line, c.last_line],
            "mtime": mtime,
            "content_hash": hashlib.sha256(data).hexdigest(),
            "chunking": [SIZE, OVERLAP],
        }, rec.metadata


def assert_mirrors(col: Any, root: Path, keep: Sequence[str] = ()) -> None:
    """The collection's sources are exactly the folder's readable, non-blank files (plus ``keep``: failed
    files whose old chunks must still be there), each with exactly its chunks."""
    readable = {}
    for doc in discover([root]):
        try:
            if expected_chunks(doc.path):
                readable[doc.source] = doc.path
        except UnreadableFileError:
            pass
    have = {s.source for s in col.list_sources()}
    assert have == set(readable) | set(keep), (have, sorted(readable), keep)
    for source, path in readable.items():
        assert_source_is(col, source, path)


def set_mtime(path: Path, seconds: float) -> None:
    os.utime(path, (seconds, seconds))


# ---- the life of a folder ---------------------------------------------------------------------------


def test_add_unchanged_change_remove_add(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    cats = write(root, "animals/cats.md", CATS)
    write(root, "stocks.txt", STOCKS)
    write(root, "weather.html", f"<html><script>x()</script><body><p>{RAIN}</p></body></html>")
    n_cats = len(expected_chunks(cats))
    assert n_cats >= 3

    first = run(col, root)
    assert statuses(first) == {"animals/cats.md": "added", "stocks.txt": "added", "weather.html": "added"}
    assert first.count("added") == (3, n_cats + 2 + 1)
    assert [f.chunks for f in first.files] == [n_cats, 2, 1]
    assert not first.failed
    assert_mirrors(col, root)
    hit = col.search(texts=["a sleeping kitten"], k=1)[0][0]
    assert hit.source == "animals/cats.md" and hit.id == chunk_id("animals/cats.md", 0)

    seq = col.info()["seq"]
    again = run(col, root)
    assert set(statuses(again).values()) == {"unchanged"}
    assert [f.chunks for f in again.files] == [n_cats, 2, 1]  # unchanged reports the chunks kept
    assert col.info()["seq"] == seq, "a re-run over unchanged files must not write"
    set_mtime(cats, 1_000_000_000)  # touched, same bytes: still unchanged
    assert statuses(run(col, root))["animals/cats.md"] == "unchanged"
    assert col.info()["seq"] == seq

    old_ids = {chunk_id("animals/cats.md", i) for i in range(n_cats)}
    cats.write_text("Cats are nocturnal hunters.\n\nThey sleep most of the day.", encoding="utf-8")
    n_new = len(expected_chunks(cats))
    assert 1 <= n_new < n_cats
    changed = run(col, root)
    assert statuses(changed) == {
        "animals/cats.md": "changed",
        "stocks.txt": "unchanged",
        "weather.html": "unchanged",
    }
    report = changed.files[0]
    assert (report.chunks, report.removed_chunks) == (n_new, n_cats)
    assert col.info()["seq"] == seq + 1, "a changed file is one atomic write"
    gone = old_ids - {chunk_id("animals/cats.md", i) for i in range(n_new)}
    assert gone and col.get(sorted(gone)) == []
    assert_mirrors(col, root)

    (root / "stocks.txt").unlink()
    kept = run(col, root)  # without delete_missing the source stays
    assert "stocks.txt" not in statuses(kept)
    assert "stocks.txt" in {s.source for s in col.list_sources()}
    removed = run(col, root, delete_missing=True)
    assert statuses(removed)["stocks.txt"] == "removed"
    assert removed.count("removed") == (1, 2)
    assert_mirrors(col, root)

    write(root, "animals/dogs.rst", "Dogs\n====\n\nDogs are loyal and love long walks in the park.")
    added = run(col, root, delete_missing=True)
    assert statuses(added) == {
        "animals/cats.md": "unchanged",
        "animals/dogs.rst": "added",
        "weather.html": "unchanged",
    }
    assert_mirrors(col, root)
    assert added.line() == (
        "added 1 files (1 chunks), changed 0 files (0 chunks), unchanged 2 files, removed 0 files (0 chunks)"
    )


def test_source_whose_chunk_count_changed_is_rewritten(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    cats = write(root, "cats.md", CATS)
    run(col, root)
    n = len(expected_chunks(cats))
    col.delete([chunk_id("cats.md", n - 1)])  # someone removed a chunk
    assert statuses(run(col, root)) == {"cats.md": "changed"}
    assert_mirrors(col, root)


def test_other_chunking_rewrites_unchanged_files(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "cats.md", CATS)
    run(col, root)
    again = ingest(col, discover([root]), chunk_size=SIZE * 2, chunk_overlap=OVERLAP)
    assert statuses(again) == {"cats.md": "changed"}, "new chunk sizes re-chunk the file"
    (first,) = col.get([chunk_id("cats.md", 0)], include=["metadata"])
    assert first.metadata["chunking"] == [SIZE * 2, OVERLAP]


def test_other_records_in_a_source_are_replaced(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "rain.txt", RAIN)
    col.upsert(["manual"], texts=["a stray record"], sources=["rain.txt"])
    col.upsert(["elsewhere"], texts=["kept: another source"], sources=["notes"])
    assert statuses(run(col, root)) == {"rain.txt": "changed"}  # the source existed
    assert col.get(["manual"]) == []
    assert {s.source: s.count for s in col.list_sources()} == {"notes": 1, "rain.txt": 1}


def test_empty_file_deletes_its_chunks(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    note = write(root, "note.md", STOCKS)
    write(root, "rain.txt", RAIN)
    run(col, root)
    note.write_text("  \n\n\t\n", encoding="utf-8")
    summary = run(col, root)
    assert statuses(summary) == {"note.md": "empty", "rain.txt": "unchanged"}
    assert summary.files[0].removed_chunks == 2
    assert summary.line().endswith(", 1 empty")
    assert_mirrors(col, root)
    assert statuses(run(col, root))["note.md"] == "empty"  # blank and never stored: still empty
    write(root, "new-empty.txt", "")
    assert statuses(run(col, root))["new-empty.txt"] == "empty"
    assert_mirrors(col, root)


# ---- failures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"text\x00with NUL", "binary content"),
        ("café".encode("latin-1"), "not UTF-8"),
    ],
)
def test_unreadable_file_keeps_its_old_chunks(
    col: Collection, tmp_path: Path, data: bytes, error: str
) -> None:
    root = tmp_path / "docs"
    cats = write(root, "cats.md", CATS)
    write(root, "rain.txt", RAIN)
    run(col, root)
    before = stored(col, "cats.md", 10)
    cats.write_bytes(data)
    write(root, "new.txt", STOCKS)
    summary = run(col, root, delete_missing=True)
    assert statuses(summary) == {"cats.md": "failed", "new.txt": "added", "rain.txt": "unchanged"}
    (failed,) = summary.failed
    assert failed.error is not None and error in failed.error
    assert stored(col, "cats.md", 10) == before, "a failed file's old chunks must stay"
    assert_mirrors(col, root, keep=["cats.md"])
    assert summary.line().endswith(", 1 failed")

    cats.write_text(RAIN + "\n\nAnd more rain.", encoding="utf-8")  # readable again: replaced
    assert statuses(run(col, root))["cats.md"] == "changed"
    assert_mirrors(col, root)


def test_file_gone_between_discover_and_read(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    gone = write(root, "gone.md", CATS)
    write(root, "rain.txt", RAIN)
    run(col, root)
    docs = discover([root])
    gone.unlink()
    summary = ingest(col, docs, chunk_size=SIZE, chunk_overlap=OVERLAP, delete_missing=True)
    assert statuses(summary) == {"gone.md": "failed", "rain.txt": "unchanged"}
    assert "cannot read" in (summary.failed[0].error or "")
    assert "gone.md" in {s.source for s in col.list_sources()}  # reported, not removed, this time


def test_broken_pdf_does_not_abort_the_run(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "a.txt", RAIN)
    write(root, "b.pdf", NO_TRAILER_DICT)  # a real PDF whose trailer lost "<< /Size"
    write(root, "c.txt", STOCKS)
    try:
        summary = run(col, root)
    except Exception as exc:
        pytest.fail(
            f"a damaged PDF aborted the whole run with {type(exc).__name__}: {exc}; it must be reported "
            "as failed and skipped (read_text lets pypdf's error through instead of UnreadableFileError)"
        )
    assert statuses(summary) == {"a.txt": "added", "b.pdf": "failed", "c.txt": "added"}


def test_pdf_is_ingested(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "doc.pdf", GOOD_PDF)
    assert statuses(run(col, root)) == {"doc.pdf": "added"}
    (rec,) = stored(col, "doc.pdf", 1)
    assert rec.text == GOOD_PDF_TEXT
    assert rec.metadata["lines"] == [1, 3]
    assert_mirrors(col, root)


class FailingTarget:
    """The real collection, except that writes to ``bad`` fail like a server refusing them."""

    def __init__(self, col: Collection, bad: str) -> None:
        self.col = col
        self.bad = bad
        self.replaced: list[str] = []

    def list_sources(self) -> Any:
        return self.col.list_sources()

    def get(self, ids: Sequence[str], include: Sequence[str] = ("text", "metadata", "source")) -> Any:
        return self.col.get(ids, include=include)

    def replace_source(self, source: str, ids: Sequence[str], *args: Any, **kwargs: Any) -> int:
        self.replaced.append(source)
        if source == self.bad:
            raise RuntimeError(f"refused {source}")
        return self.col.replace_source(source, ids, *args, **kwargs)

    def delete(self, ids: Sequence[str] | None = None, **kwargs: Any) -> int:
        if kwargs.get("source") == self.bad:
            raise RuntimeError(f"cannot delete {self.bad}")
        return self.col.delete(ids, **kwargs)


def test_refused_replace_keeps_old_chunks(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    cats = write(root, "cats.md", CATS)
    stocks = write(root, "stocks.txt", STOCKS)
    run(col, root)
    before = stored(col, "cats.md", 10)
    cats.write_text("Cats, rewritten.", encoding="utf-8")
    stocks.write_text("Stocks, rewritten.", encoding="utf-8")
    write(root, "rain.txt", RAIN)
    target = FailingTarget(col, "cats.md")
    summary = run(target, root)
    assert statuses(summary) == {"cats.md": "failed", "rain.txt": "added", "stocks.txt": "changed"}
    assert summary.failed[0].error == "RuntimeError: refused cats.md"
    assert target.replaced == ["cats.md", "rain.txt", "stocks.txt"]
    assert stored(col, "cats.md", 10) == before
    assert_source_is(col, "stocks.txt", stocks)
    assert_source_is(col, "rain.txt", root / "rain.txt")
    assert statuses(run(col, root))["cats.md"] == "changed"  # next time it goes through
    assert_mirrors(col, root)


def test_refused_delete_is_reported(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "cats.md", CATS)
    write(root, "rain.txt", RAIN)
    write(root, "stocks.txt", STOCKS)
    run(col, root)
    (root / "cats.md").unlink()
    (root / "stocks.txt").unlink()
    summary = run(FailingTarget(col, "cats.md"), root, delete_missing=True)
    assert statuses(summary) == {"cats.md": "failed", "rain.txt": "unchanged", "stocks.txt": "removed"}
    assert summary.failed[0].error == "delete failed: cannot delete cats.md"
    assert {s.source for s in col.list_sources()} == {"cats.md", "rain.txt"}


# ---- arguments, callback, summary ------------------------------------------------------------------------


class NoTouching:
    """A target that fails the test if ingest calls it at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"ingest called {name} before checking its arguments")


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_bad_chunk_sizes_fail_before_any_work(tmp_path: Path, size: int, overlap: int) -> None:
    root = tmp_path / "docs"
    write(root, "a.md", RAIN)
    with pytest.raises(ValueError, match="chunk_size"):
        ingest(NoTouching(), discover([root]), chunk_size=size, chunk_overlap=overlap)


def test_on_file_sees_every_report_in_order(col: Collection, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root, "a.md", RAIN)
    write(root, "b.md", STOCKS)
    run(col, root)
    (root / "a.md").unlink()
    write(root, "b.md", "changed text")
    write(root, "c.txt", b"\x00")
    seen: list[FileReport] = []
    summary = run(col, root, delete_missing=True, on_file=seen.append)
    assert seen == summary.files
    assert [(f.source, f.status) for f in seen] == [
        ("b.md", "changed"),
        ("c.txt", "failed"),
        ("a.md", "removed"),
    ]


def test_chunk_id() -> None:
    assert chunk_id("docs/a.md", 0) == hashlib.sha256(b"docs/a.md").hexdigest()[:16] + ":0"
    assert chunk_id("docs/a.md", 12).endswith(":12")
    assert chunk_id("a" * 5000, 3) == chunk_id("a" * 5000, 3)
    assert len(chunk_id("ü/" * 2000, 99999)) == 16 + 1 + 5
    assert chunk_id("a.md", 0) != chunk_id("b.md", 0)


def test_summary_line() -> None:
    summary = IngestSummary(
        [
            FileReport("a", "added", 3),
            FileReport("b", "added", 2),
            FileReport("c", "changed", 4, removed_chunks=5),
            FileReport("d", "unchanged", 7),
            FileReport("e", "removed", removed_chunks=6),
            FileReport("f", "empty", removed_chunks=1),
            FileReport("g", "failed", error="binary content (NUL bytes)"),
            FileReport("h", "failed", error="nope"),
        ]
    )
    assert summary.line() == (
        "added 2 files (5 chunks), changed 1 files (4 chunks), unchanged 1 files, "
        "removed 1 files (6 chunks), 1 empty, 2 failed"
    )
    assert summary.count("unchanged") == (1, 7)
    assert summary.count("empty") == (1, 1)
    assert [f.source for f in summary.failed] == ["g", "h"]
    assert IngestSummary().line() == (
        "added 0 files (0 chunks), changed 0 files (0 chunks), unchanged 0 files, removed 0 files (0 chunks)"
    )
