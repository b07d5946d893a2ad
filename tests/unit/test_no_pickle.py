"""Nothing is pickled, to disk or over the wire, and data stays private (docs/guarantees.md).

- No module of vecdb or vecdb_client imports pickle (or its relatives: cPickle, dill, cloudpickle,
  joblib, shelve, marshal) or calls numpy's load/save with pickling allowed or torch.save/load.
- Every RocksDB handle, option and write batch is opened in raw mode (bytes only: rocksdict's default mode
  pickles non-bytes values), and a store written by the engine says so in rocksdict-config.json.
- The data directory and its collections folder are created owner-only (0700).
"""

from __future__ import annotations

import ast
import json
import stat
from pathlib import Path

import vecdb
from vecdb import Database

ROOT = Path(vecdb.__file__).resolve().parents[1]
PACKAGES = [ROOT / "vecdb", ROOT / "clients" / "python" / "vecdb_client"]
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def modules() -> list[Path]:
    return [p for pkg in PACKAGES for p in pkg.rglob("*.py") if "_generated" not in p.parts]


def test_no_module_imports_a_pickler() -> None:
    found = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in BANNED_MODULES]
    assert len(modules()) > 30
    assert not found, found


def test_no_call_allows_pickling() -> None:
    found = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} allow_pickle")
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                if func.value.id == "torch" and func.attr in {"save", "load"}:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} torch.{func.attr}")
                if func.value.id in {"np", "numpy"} and func.attr in {"save", "load", "savez"}:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} np.{func.attr}")
    assert not found, found


def _raw_mode_missing(node: ast.AST) -> bool:
    """An ``Options(...)`` / ``WriteBatch(...)`` call without ``raw_mode=True``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return False
    if node.func.id not in {"Options", "WriteBatch"}:
        return False
    raw = [kw.value for kw in node.keywords if kw.arg == "raw_mode"]
    return not (raw and isinstance(raw[0], ast.Constant) and raw[0].value is True)


def test_rocksdb_is_only_used_in_raw_mode() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        for path in modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if _raw_mode_missing(node)
    ]
    assert not found, f"Options/WriteBatch without raw_mode=True: {found}"


def test_store_on_disk_is_raw_and_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Database(data) as db:
        db.create_collection("c", dim=2).upsert(["a"], [[1.0, 0.0]], metadatas=[{"k": [1, "x"]}])
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "collections").stat().st_mode) == 0o700
    configs = list(data.rglob("rocksdict-config.json"))
    assert configs, "rocksdict writes its mode next to the store"
    for config in configs:
        assert json.loads(config.read_text())["raw_mode"] is True
