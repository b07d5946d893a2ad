"""The README's examples, run as a newcomer runs them: every ``sh`` and ``python`` block of README.md, then
of clients/python/README.md, in order, against one fresh ``vecdb serve`` (its data directory ``./data``
in the working directory, as ``make run`` has it), twice (each snippet may be run again).

The blocks are read from the READMEs themselves, so the test breaks when the READMEs drift. A block
preceded by ``<!-- readme-test: skip (reason) -->`` is only compiled (python) or listed (sh): the install
and ``make run`` blocks, which set up what the rest runs in. URLs to 127.0.0.1:8080 / :50051 are pointed
at the test server's ports; the ``vecdb`` command is this checkout's (``sys.executable -m vecdb``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from serverproc import REPO, ServerProcess, launch, server_env

from vecdb_client import Client

READMES = (REPO / "README.md", REPO / "clients" / "python" / "README.md")
SKIP = "<!-- readme-test: skip ("
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
BLOCK_TIMEOUT_S = 300
DOCS_SUBSET = ("operations.md", "ingest.md")


@dataclass(frozen=True)
class Block:
    where: str  # README path and line
    lang: str
    code: str
    skipped: bool


def readme_blocks(path: Path) -> list[Block]:
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, m.start()) + 1
        where = f"{path.relative_to(REPO)}:{line}"
        out.append(Block(where, m["lang"], m["body"], before.startswith(SKIP)))
    return out


def all_blocks() -> list[Block]:
    return [b for path in READMES for b in readme_blocks(path) if b.lang in ("sh", "python")]


def test_blocks_are_found_and_few_are_skipped() -> None:
    blocks = all_blocks()
    assert sum(b.lang == "python" for b in blocks) >= 6
    assert sum(b.lang == "sh" for b in blocks) >= 3
    skipped = [b.where for b in blocks if b.skipped]
    assert len(skipped) == 2, skipped  # the install / make run blocks only
    for b in blocks:
        if b.lang == "python":
            compile(b.code, b.where, "exec")


def localize(code: str, sp: ServerProcess) -> str:
    code = re.sub(r"(localhost|127\.0\.0\.1):8080", f"127.0.0.1:{sp.rest_port}", code)
    return code.replace("127.0.0.1:50051", f"127.0.0.1:{sp.grpc_port}")


def run_block(block: Block, sp: ServerProcess, cwd: Path, env: dict[str, str]) -> str:
    code = localize(block.code, sp)
    shell = ["bash", "-euo", "pipefail", "-c", code]
    cmd = shell if block.lang == "sh" else [sys.executable, "-c", code]
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S, check=False
    )
    shown = f"{block.where} ({block.lang}) exited {done.returncode}\n--- code\n{code}\n--- stdout\n"
    shown += f"{done.stdout}\n--- stderr\n{done.stderr}\n--- server log\n{sp.log()[-4000:]}"
    assert done.returncode == 0, shown
    assert '{"error":' not in done.stdout, shown  # curl -s prints an error body and exits 0
    return done.stdout


@pytest.fixture
def readme_server(tmp_path: Path) -> tuple[ServerProcess, Path]:
    sp = launch(tmp_path / "data", tmp_path / "logs")
    try:
        sp.wait_ready()
    except BaseException:
        sp.stop()
        raise
    yield sp, tmp_path  # type: ignore[misc]
    assert sp.stop() == 0, sp.log()


def test_readme_runs_in_order_twice(readme_server: tuple[ServerProcess, Path]) -> None:
    sp, cwd = readme_server
    # The folder the examples index, as in a clone, but two of its files only: embedding all of docs/ takes
    # minutes on a busy 2-core machine.
    (cwd / "docs").mkdir()
    for name in DOCS_SUBSET:
        shutil.copy(REPO / "docs" / name, cwd / "docs" / name)
    bindir = cwd / "bin"
    bindir.mkdir()
    shim = bindir / "vecdb"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m vecdb "$@"\n')
    shim.chmod(0o755)
    env = server_env({"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "VECDB_URL": sp.rest_url})
    blocks = [b for b in all_blocks() if not b.skipped]
    outputs = {}
    for round_ in range(2):
        for block in blocks:
            start = time.perf_counter()
            outputs[block.where] = run_block(block, sp, cwd, env)
            print(f"round {round_ + 1} {block.where}: {time.perf_counter() - start:.1f} s")  # with -s

    with Client(sp.rest_url) as client:
        names = set(client.list_collections())
        assert {"quickstart", "notes", "handbook", "docs", "docs_copy", "faq"} <= names, names
        assert "articles" not in names  # the embedded example has a data directory of its own
        assert client.collection("quickstart").count() == 1
        assert client.collection("notes").count() == 2
        handbook = {s.source for s in client.collection("handbook").list_sources()}
        assert "docs/operations.md" in handbook
        assert client.collection("docs_copy").count() == client.collection("docs").count() > 0
    printed = "\n".join(outputs.values())
    assert "n1" in printed  # the client example's search found the cat
    assert "docs/operations.md" in printed  # the filtered LangChain search by source
