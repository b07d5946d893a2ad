"""Generate vecdb/server/_generated from proto/vecdb.proto (``make proto``).

``python scripts/gen_proto.py [OUT_DIR]``: protoc writes ``vecdb_pb2.py``, ``vecdb_pb2.pyi`` and
``vecdb_pb2_grpc.py``; the gRPC module's top-level ``import vecdb_pb2`` is rewritten to the package path.
A test runs this into a temp dir and fails when the committed files differ (stale generated code).
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vecdb.server._generated"


def generate(out: Path) -> None:
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
    text = grpc_file.read_text().replace("import vecdb_pb2 as", f"from {PACKAGE} import vecdb_pb2 as")
    grpc_file.write_text(text)
    (out / "__init__.py").write_text(
        '"""Generated from proto/vecdb.proto by scripts/gen_proto.py: do not edit."""\n'
    )


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "vecdb" / "server" / "_generated")
