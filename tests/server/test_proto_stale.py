"""The committed generated code (vecdb/server/_generated and the client's copy in
clients/python/vecdb_client/_generated) is what scripts/gen_proto.py makes from proto/vecdb.proto: this
fails when someone edits the proto and forgets ``make proto``."""

from __future__ import annotations

import difflib
import importlib.util
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import pytest

import vecdb

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_proto.py"
COPIES = {
    "vecdb.server._generated": ROOT / "vecdb" / "server" / "_generated",
    "vecdb_client._generated": ROOT / "clients" / "python" / "vecdb_client" / "_generated",
}
#: The grpcio-tools version pyproject.toml pins: its protoc decides the exact output.
PINNED_TOOLS = "1.85.1"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.suffix != ".pyc"}


def test_tests_run_against_this_checkout() -> None:
    # The venv may hold an editable install of another worktree: these tests must import this one.
    assert Path(vecdb.__file__).resolve().parent == ROOT / "vecdb"


def test_pinned_tools() -> None:
    assert version("grpcio-tools") == PINNED_TOOLS, (
        "grpcio-tools differs from the version pyproject.toml pins; the staleness check below compares "
        "against code generated with the pinned one"
    )


def test_the_script_writes_both_copies() -> None:
    assert load_script().TARGETS == COPIES


@pytest.mark.parametrize("package", sorted(COPIES))
def test_generated_code_is_fresh(tmp_path: Path, package: str) -> None:
    gen_proto = load_script()
    assert gen_proto.ROOT == ROOT
    out = tmp_path / "generated"
    gen_proto.generate(out, package)
    committed_dir = COPIES[package]
    fresh, committed = files(out), files(committed_dir)
    assert set(fresh) == {"__init__.py", "vecdb_pb2.py", "vecdb_pb2.pyi", "vecdb_pb2_grpc.py"}
    assert set(committed) == set(fresh), f"{committed_dir} holds other files than gen_proto.py makes"
    for name in sorted(fresh):
        if fresh[name] != committed[name]:
            diff = "\n".join(
                list(
                    difflib.unified_diff(
                        committed[name].decode(errors="replace").splitlines(),
                        fresh[name].decode(errors="replace").splitlines(),
                        f"committed/{name}",
                        f"generated/{name}",
                        lineterm="",
                    )
                )[:40]
            )
            raise AssertionError(f"{committed_dir}/{name} is stale: run `make proto`\n{diff}")


@pytest.mark.parametrize("package", sorted(COPIES))
def test_grpc_module_imports_the_package_path(package: str) -> None:
    text = (COPIES[package] / "vecdb_pb2_grpc.py").read_text()
    assert f"from {package} import vecdb_pb2 as" in text
    assert "\nimport vecdb_pb2" not in text
