"""Imports flow one way: leaves <- storage, index (never each other) <- engine <- server."""

from __future__ import annotations

import ast
from pathlib import Path

import vecdb

ROOT = Path(vecdb.__file__).parent
LEAVES = {"types", "errors", "config", "filters"}
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
    "commands": LEAVES | {"engine", "ingest", "commands"},
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


def test_single_node_path_never_imports_ray() -> None:
    """Ray is an optional extra: the engine, the server and the CLI import without it."""
    import subprocess
    import sys

    code = (
        "import sys, vecdb, vecdb.cli, vecdb.engine, vecdb.server.serve, vecdb.server.rest, "
        "vecdb.server.grpc_service; assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
