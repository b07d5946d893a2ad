"""Generate the gRPC code of the server and of the client from proto/vecdb.proto (``make proto``).

Two copies: ``vecdb/server/_generated`` (package ``vecdb.server._generated``) and
``clients/python/vecdb_client/_generated`` (``vecdb_client._generated``: the client must not import the
server). ``python scripts/gen_proto.py`` regenerates both; protoc writes ``vecdb_pb2.py``,
``vecdb_pb2.pyi`` and ``vecdb_pb2_grpc.py``; the gRPC module's top-level ``import vecdb_pb2`` is
rewritten to the package path.
A test runs this into a temp dir and fails when the committed files differ (stale generated code).
"""

from __future__ import annotations

from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
#: Where each copy goes, and the package it is imported as.
TARGETS = {
    "vecdb.server._generated": ROOT / "vecdb" / "server" / "_generated",
    "vecdb_client._generated": ROOT / "clients" / "python" / "vecdb_client" / "_generated",
}


def generate(out: Path, package: str = "vecdb.server._generated") -> None:
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT / 'proto'}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(ROOT / "proto" / "vecdb.proto"),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    grpc_file = out / "vecdb_pb2_grpc.py"
    text = grpc_file.read_text().replace("import vecdb_pb2 as", f"from {package} import vecdb_pb2 as")
    grpc_file.write_text(text)
    (out / "__init__.py").write_text(
        '"""Generated from proto/vecdb.proto by scripts/gen_proto.py: do not edit."""\n'
    )


if __name__ == "__main__":
    for pkg, folder in TARGETS.items():
        generate(folder, pkg)
