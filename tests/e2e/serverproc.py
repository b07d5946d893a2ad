"""Helpers for end-to-end tests: run a real ``vecdb serve`` subprocess and talk to it.

``launch`` starts ``sys.executable -m vecdb serve`` on free ports with ``PYTHONPATH`` pointing at this
checkout; ``ServerProcess.wait_ready`` polls ``/readyz`` until 200 and ``stop`` sends SIGTERM. A server
started with TLS flags is given ``ssl_context`` (what to trust and present): its ``rest_url`` is then
``https://`` and the readiness poll and ``http()`` go through that context.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from vecdb.server._generated import vecdb_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    """A port the kernel just handed out (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a server subprocess: this checkout first on PYTHONPATH, no stray VECDB_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECDB_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def vecdb_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "vecdb", *args]


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    rest_port: int
    grpc_port: int
    log_path: Path
    started_at: float = 0.0  # perf_counter() when the process was spawned
    ready_seconds: float = float("nan")
    exit_checked: bool = False  # the test stopped it (or expected it to exit) itself
    ssl_context: ssl.SSLContext | None = None  # REST over HTTPS: the client side's context
    _channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def rest_url(self) -> str:
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://127.0.0.1:{self.rest_port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx's ``verify=`` for this server."""
        return True if self.ssl_context is None else self.ssl_context

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def http(self, api_key: str | None = None) -> httpx.Client:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.Client(base_url=self.rest_url, headers=headers, timeout=30.0, verify=self.verify)

    def channel(self) -> grpc.Channel:
        ch = grpc.insecure_channel(self.grpc_target)
        self._channels.append(ch)
        return ch

    def stub(self) -> pb_grpc.VecDBStub:
        return pb_grpc.VecDBStub(self.channel())  # type: ignore[no-untyped-call]

    def close_channels(self) -> None:
        for ch in self._channels:
            ch.close()
        self._channels.clear()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Poll /readyz until 200; returns seconds since the process was started. Fails if it exits."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, verify=self.verify) as client:
            while time.monotonic() < deadline:
                rc = self.proc.poll()
                if rc is not None:
                    raise AssertionError(f"server exited with {rc} before ready:\n{self.log()}")
                try:
                    if client.get(f"{self.rest_url}/readyz").status_code == 200:
                        self.ready_seconds = time.perf_counter() - self.started_at
                        return self.ready_seconds
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"server not ready within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to ``timeout``; kill (and fail) if it does not exit. Returns the exit code."""
        self.close_channels()
        self.exit_checked = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"server did not exit within {timeout} s of SIGTERM:\n{self.log()}"
                ) from None
        return int(self.proc.returncode)


def launch(
    data_dir: Path,
    log_dir: Path,
    *args: str,
    rest_port: int | None = None,
    grpc_port: int | None = None,
    env: dict[str, str] | None = None,
    port_flags: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> ServerProcess:
    """Start ``vecdb serve`` without waiting.

    Ports are free ones unless given; they are passed as ``--rest-port`` / ``--grpc-port`` unless
    ``port_flags`` is False (then they only tell the returned object where the server listens).
    ``ssl_context``: the server serves TLS (``args`` carry ``--tls-cert`` ...); REST is reached with it.
    """
    rest_port = free_port() if rest_port is None else rest_port
    grpc_port = free_port() if grpc_port is None else grpc_port
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{rest_port}-{grpc_port}-{time.monotonic_ns()}.log"
    argv = ["serve", "--data-dir", str(data_dir), *args]
    if port_flags:
        argv += ["--rest-port", str(rest_port), "--grpc-port", str(grpc_port)]
    with log_path.open("wb") as log_file:
        started = time.perf_counter()
        proc = subprocess.Popen(
            vecdb_command(*argv),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=server_env(env),
            cwd=str(log_dir),
        )
    return ServerProcess(
        proc, data_dir, rest_port, grpc_port, log_path, started_at=started, ssl_context=ssl_context
    )


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"process still running after {timeout} s") from None


def grpc_error_code(exc: grpc.RpcError) -> str | None:
    """The ``vecdb-error-code`` trailing metadata of a failed call."""
    for key, value in exc.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "vecdb-error-code":
            return str(value)
    return None


def metadata_for(api_key: str | None) -> Sequence[tuple[str, str]]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


#: ``server_factory``'s type: ``start(data_dir=None, *args, wait=True, **launch_kwargs)``.
StartServer = Callable[..., ServerProcess]
