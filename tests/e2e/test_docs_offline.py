"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) work offline: every asset the pages load is served by the
server itself (no CDN), and headless Chromium renders the operations from them (Debian's ``chromium``
package; ``make test`` installs it when missing). And the server's log is JSON lines throughout."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from serverproc import ServerProcess, StartServer

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_pages_load_only_local_assets(server: ServerProcess, page: str) -> None:
    with httpx.Client(base_url=server.rest_url) as http:
        html = http.get(page).text
        assert "http://" not in html
        assert "https://" not in html, html  # no CDN, no Google Fonts
        assets = ASSET.findall(html)
        assert len(assets) >= 2, html  # the script and the favicon at least
        for url in assets:
            assert url.startswith("/docs-assets/"), url
            resp = http.get(url)
            assert resp.status_code == 200, url
            assert len(resp.content) > 500, url
        assert http.get("/docs/oauth2-redirect").status_code == 200


def render(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium, with every non-local host refused."""
    assert CHROMIUM, "chromium is not installed: `make test` installs it (apt-get install chromium)"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline, whatever the machine
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_chromium_renders_the_operations(server: ServerProcess, tmp_path: Path) -> None:
    swagger = render(f"{server.rest_url}/docs", tmp_path / "p1")
    assert swagger.count('class="opblock ') >= 15, swagger[-2000:]  # one block per operation
    assert "/v1/collections/{name}/search" in swagger
    redoc = render(f"{server.rest_url}/redoc", tmp_path / "p2")
    assert "/v1/collections/{name}/search" in redoc, redoc[-2000:]
    assert "Create Collection" in redoc


def test_every_log_line_is_json(server_factory: StartServer) -> None:
    """docs/server.md: logs are JSON lines, uvicorn's own (start, access, shutdown) included."""
    sp = server_factory(None, "--log-level", "debug")
    with httpx.Client(base_url=sp.rest_url) as http:
        http.get("/v1/collections")
        http.post("/v1/collections", content=b"{bad", headers={"content-type": "application/json"})
        http.get("/nope")
    assert sp.stop() == 0
    lines = [line for line in sp.log().splitlines() if line.strip()]
    access = []
    for line in lines:
        entry = json.loads(line)  # a plain-text line fails here, naming itself
        assert {"time", "level", "logger", "message"} <= set(entry), line
        if entry["logger"] == "uvicorn.access":
            access.append(entry["message"])
    for request in ('"GET /v1/collections HTTP/1.1" 200', '"POST /v1/collections HTTP/1.1" 400', "/nope"):
        assert any(request in m for m in access), (request, access)
