"""Imports flow one way: leaves <- storage, index (never each other) <- engine <- server."""

from __future__ import annotations

import ast
from pathlib import Path

import vecdb

ROOT = Path(vecdb.__file__).parent
LEAVES = {"types", "errors", "config", "filters", "operations"}
ALLOWED: dict[str, set[str]] = {
    "leaf": LEAVES,
    "storage": LEAVES | {"storage"},
    "embed": LEAVES | {"embed"},
    "index": LEAVES | {"index"},
    "engine": LEAVES | {"storage", "index", "embed", "engine"},
    # vecdb serve imports the cluster package lazily, only when --ray-address is given.
    "server": LEAVES | {"engine", "server", "cluster"},
    "cluster": LEAVES | {"engine", "embed", "index", "storage", "cluster"},
    "ingest": LEAVES | {"ingest"},
    "commands": LEAVES | {"engine", "ingest", "embed", "commands"},
    "top": LEAVES | {"engine", "storage", "index", "server", "cli", "commands"},
}


def _layer(module: Path) -> str:
    rel = module.relative_to(ROOT)
    if rel.parts[0] in {"storage", "index", "embed", "engine", "server", "ingest", "commands", "cluster"}:
        return rel.parts[0]
    if rel.stem in LEAVES:
        return "leaf"
    return "top"


def _vecdb_imports(module: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import"
            names = [node.module or ""]
        for name in names:
            parts = name.split(".")
            if parts[0] == "vecdb" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_imports_flow_down() -> None:
    modules = [p for p in ROOT.rglob("*.py") if "_generated" not in p.parts]
    assert len(modules) > 10
    for module in modules:
        layer = _layer(module)
        bad = _vecdb_imports(module) - ALLOWED[layer]
        assert not bad, f"{module.relative_to(ROOT)} ({layer}) imports {sorted(bad)}"


def test_operations_is_a_leaf() -> None:
    """The operation registry imports nothing from vecdb: everyone may read it."""
    assert _vecdb_imports(ROOT / "operations.py") == set()


#: The engine's public modules: a variant of the engine (the cluster) imports from these only.
ENGINE_PUBLIC = {"vecdb.engine", "vecdb.engine.api", "vecdb.engine.validate"}


def test_cluster_imports_only_public_names() -> None:
    """vecdb.cluster composes the engine through its contract: every name it imports from vecdb is in
    the ``__all__`` of the module it comes from, and from the engine only its public modules."""
    import importlib

    modules = sorted((ROOT / "cluster").glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("vecdb."), f"{module.name}: import {alias.name}"
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("vecdb"):
                continue
            where = node.module or ""
            if where.startswith("vecdb.cluster"):
                continue
            if where.startswith("vecdb.engine"):
                assert where in ENGINE_PUBLIC, (
                    f"{module.name} imports from {where}, not a public engine module"
                )
            public = getattr(importlib.import_module(where), "__all__", None)
            assert public is not None, f"{where} has no __all__"
            for alias in node.names:
                assert alias.name in public, (
                    f"{module.name} imports {alias.name} from {where}, not in its __all__"
                )


def test_cluster_core_never_imports_ray() -> None:
    """The sharded collection, routing, merging and the shard itself run (and are tested) without Ray."""
    import subprocess
    import sys

    code = (
        "import sys, vecdb.cluster, vecdb.cluster.collection, vecdb.cluster.merge, vecdb.cluster.routing, "
        "vecdb.cluster.shard; assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_single_node_path_never_imports_ray() -> None:
    """Ray is an optional extra: the engine, the server and the CLI import without it."""
    import subprocess
    import sys

    code = (
        "import sys, vecdb, vecdb.cli, vecdb.engine, vecdb.server.serve, vecdb.server.rest, "
        "vecdb.server.grpc_service; assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
