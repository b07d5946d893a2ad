"""The README's retrieval chain (examples/retrieval_chain.py) runs as shown, against a real server: a
folder of text files goes in (one source per file, re-indexing replaces a file's chunks), a question
comes back answered from the right file."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from serverproc import ServerProcess

from vecdb_client import Client

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retrieval_chain.py"

FILES = {
    "cats.txt": "Cats sleep for most of the day and hunt small animals at dawn and dusk.",
    "volcanoes.md": "A volcano erupts when magma rises through the crust and escapes as lava and ash.",
    "bread.txt": "Bread dough rises because yeast ferments sugar and releases carbon dioxide.",
}


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("retrieval_chain", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["retrieval_chain"] = module
    spec.loader.exec_module(module)
    return module


def test_retrieval_chain_answers_from_the_right_file(
    vecdb_server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text)
    collection = f"docs_{uuid.uuid4().hex[:8]}"
    example = load_example()
    argv = [str(folder), "Why does lava come out of a mountain?", "--url", vecdb_server.rest_url]
    answer = example.main([*argv, "--collection", collection])
    assert f"[{folder / 'volcanoes.md'}]" in answer
    assert "magma" in answer
    assert "indexed 3 chunks" in capsys.readouterr().out

    # Indexing again replaces each file's chunks instead of adding copies.
    (folder / "cats.txt").write_text("Cats purr when content.")
    example.main([*argv, "--collection", collection])
    with Client(vecdb_server.rest_url) as client:
        col = client.collection(collection)
        sources = {s.source: s.count for s in col.list_sources()}
        assert sources == {str(folder / name): 1 for name in FILES}
        (hit,) = col.search(texts="purring", k=1)[0]
        assert hit.text == "Cats purr when content."
        client.drop_collection(collection)
