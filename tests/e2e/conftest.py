"""End-to-end fixtures: a real ``vecdb serve`` subprocess on free ports over a temporary data directory.

``server_factory`` starts servers (``serverproc.launch``) and waits for ``/readyz``; at teardown it sends
SIGTERM to each one still running and asserts it exits 0 within 15 s (killing it otherwise). ``server`` is
one default server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serverproc import ServerProcess, StartServer, launch


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[StartServer]:
    """``start(data_dir=None, *args, wait=True, **launch_kwargs)``: a ready server, stopped at teardown.

    Teardown sends SIGTERM to every process still running and asserts each exits 0 within 15 s. A
    process that exited on its own fails the test unless the test checked that (``sp.exit_checked``);
    processes a test stopped itself (``sp.stop()``) are not checked again.
    """
    started: list[ServerProcess] = []

    def start(data_dir: Path | None = None, *args: str, wait: bool = True, **kwargs: object) -> ServerProcess:
        sp = launch(data_dir or tmp_path / "data", tmp_path / "logs", *args, **kwargs)  # type: ignore[arg-type]
        started.append(sp)
        if wait:
            sp.wait_ready()
        return sp

    yield start
    failures = []
    for sp in started:
        if sp.exit_checked:
            continue
        if sp.proc.poll() is not None:
            failures.append(f"server {sp.rest_url} exited by itself with {sp.proc.returncode}:\n{sp.log()}")
            continue
        rc = sp.stop()
        if rc != 0:
            failures.append(f"server {sp.rest_url} exited {rc} after SIGTERM:\n{sp.log()}")
    assert not failures, "\n".join(failures)


@pytest.fixture
def server(server_factory: StartServer) -> ServerProcess:
    """One ready server (no API keys) on a fresh data directory."""
    return server_factory()
