"""The web console: ``GET /console`` and ``GET /console/collections/{name}`` on the REST port.

The pages are one static HTML shell and one vanilla JavaScript file shipped in this package
(``static/``, package data): no CDN, no build step, no server-side rendering of data. The script talks
to the public REST API only (``/v1/...``, ``/whoami``, ``/metrics``) with the API key the user typed,
kept in ``sessionStorage`` and sent as ``Authorization: Bearer``, never as a cookie, so a write cannot
be forged cross-site (CSRF needs an ambient credential). Every value is rendered with ``textContent``.

The pages themselves need no key (they hold no data); every response here carries a
Content-Security-Policy that allows scripts, styles and connections from this origin only, and no
inline script or style.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import Response

from vecdb.errors import NotFoundError

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_FILES", "add_console"]

#: No inline script or style, nothing from another origin, not framable, no plugins, forms post here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

#: The files ``/console/static/{name}`` serves, with their media types (nothing else is served).
STATIC_FILES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # A new vecdb version ships new files under the same names: revalidate rather than run stale code.
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return resources.files(__name__).joinpath("static", name).read_bytes()


def _page() -> Response:
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=_HEADERS)


def add_console(app: FastAPI) -> None:
    """Add the console's routes to ``app`` (left out of the OpenAPI schema: they are pages, not API)."""

    @app.get("/console", include_in_schema=False)
    async def console() -> Response:
        return _page()

    # One shell for every page: the script reads the collection's name from the address.
    @app.get("/console/collections/{name}", include_in_schema=False)
    async def console_collection(name: str) -> Response:
        return _page()

    @app.get("/console/static/{filename}", include_in_schema=False)
    async def console_static(filename: str) -> Response:
        media_type = STATIC_FILES.get(filename)
        if media_type is None:
            raise NotFoundError(f"no console file {filename!r}")
        return Response(_read(filename), media_type=media_type, headers=_HEADERS)
