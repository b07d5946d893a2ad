"""A real browser for end-to-end tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download (``playwright install``) is never used: the browser is the system's
``/usr/bin/chromium``, installed with apt-get when missing (as root, non-interactive). Where it cannot be
installed (not root, no apt-get, the install fails), ``chromium_path`` skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and nothing that reaches out of the machine (updates, sync, QUIC probes, first-run pages).
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
INSTALL_TIMEOUT_S = 600


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def chromium_path() -> str:
    """``/usr/bin/chromium``, installing Debian's ``chromium`` package first if needed (else skip)."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if shutil.which("apt-get") is None:
        pytest.skip(f"{CHROMIUM} is missing and there is no apt-get to install Debian's chromium package")
    if os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} is missing and installing Debian's chromium package needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            done = subprocess.run(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"could not install chromium: {' '.join(command)} ran past {INSTALL_TIMEOUT_S} s")
        if done.returncode != 0:
            pytest.skip(
                f"could not install chromium: {' '.join(command)} exited {done.returncode}: "
                f"{_tail(done.stderr or done.stdout)}"
            )
    if not CHROMIUM.exists():
        pytest.skip(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return str(CHROMIUM)
