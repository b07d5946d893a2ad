"""The console's routes (``vecdb.server.console``) and ``GET /whoami``, which it uses to hide writes.

The pages themselves are driven in a real browser by tests/e2e/test_console.py; here: what the server
sends (headers, no inline script, only the shipped files) and who may ask what.
"""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

import httpx
import pytest

from vecdb.server.auth import WRITE_OPERATIONS
from vecdb.server.console import CONTENT_SECURITY_POLICY, STATIC_FILES

ADMIN, READ = "adm", "ro"
STATIC = resources.files("vecdb.server.console").joinpath("static")
REPO = Path(__file__).resolve().parents[2]


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize("path", ["/console", "/console/collections/docs", "/console/collections/no-such"])
async def test_pages_are_the_static_shell_with_a_csp(shared_rest_auth: httpx.AsyncClient, path: str) -> None:
    """The pages need no key (they hold no data: the script fetches it with the key the user typed)."""
    r = await shared_rest_auth.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.content == STATIC.joinpath("index.html").read_bytes()


def test_csp_allows_nothing_inline_or_foreign() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_shell_has_no_inline_script_or_style_and_no_foreign_url() -> None:
    html = STATIC.joinpath("index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts == [(' src="/console/static/console.js" defer', "")]
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert "http://" not in html and "https://" not in html and "//" not in html.replace("<!--", "")


def test_script_never_writes_markup() -> None:
    """Every value goes through textContent / text nodes: no sink that parses a string as HTML."""
    js = STATIC.joinpath("console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js.replace("nothing is ever assigned to innerHTML", ""), sink
    assert 'credentials: "omit"' in js  # the key travels in a header; no cookie is ever sent
    assert "http://" not in js and "https://" not in js


async def test_static_files_are_served_with_their_types(shared_rest_auth: httpx.AsyncClient) -> None:
    for name, media_type in STATIC_FILES.items():
        r = await shared_rest_auth.get(f"/console/static/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"] == media_type
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert r.content == STATIC.joinpath(name).read_bytes()


@pytest.mark.parametrize("name", ["index.html", "nope.js", "..%2F__init__.py", "%2E%2E"])
async def test_only_the_listed_files_are_served(shared_rest_auth: httpx.AsyncClient, name: str) -> None:
    r = await shared_rest_auth.get(f"/console/static/{name}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_every_shipped_file_is_package_data() -> None:
    """pyproject's package-data must carry the console's files into the wheel."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["vecdb.server.console"]
    shipped = sorted(p.name for p in Path(str(STATIC)).iterdir() if p.is_file())
    assert shipped == sorted([*STATIC_FILES, "index.html"])
    for name in shipped:
        assert any(fnmatch(f"static/{name}", pattern) for pattern in patterns), name


async def test_console_is_not_in_the_api_schema(shared_rest: httpx.AsyncClient) -> None:
    paths = (await shared_rest.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]
    assert "/whoami" in paths


async def test_whoami_says_the_role(shared_rest_auth: httpx.AsyncClient) -> None:
    admin = (await shared_rest_auth.get("/whoami", headers=_bearer(ADMIN))).json()
    assert admin == {
        "auth": True,
        "role": "admin",
        "writes": True,
        "write_operations": sorted(WRITE_OPERATIONS),
    }
    read = (await shared_rest_auth.get("/whoami", headers=_bearer(READ))).json()
    assert read["role"] == "read" and read["writes"] is False


@pytest.mark.parametrize("headers", [{}, _bearer("wrong"), {"authorization": "Basic adm"}])
async def test_whoami_needs_a_valid_key(shared_rest_auth: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await shared_rest_auth.get("/whoami", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_whoami_on_an_open_server(shared_rest: httpx.AsyncClient) -> None:
    for headers in ({}, _bearer("anything")):
        body = (await shared_rest.get("/whoami", headers=headers)).json()
        assert body["auth"] is False and body["role"] == "admin" and body["writes"] is True
