"""The web pages: the merchant map editor and the ad-ops dashboard, with their vendored scripts and styles.

The pages are static HTML that call the public API with the key the user types in; the server only fills in the
map tile URL. Nothing is loaded from a CDN.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.deps import RuntimeDep

WEB = Path(__file__).resolve().parent.parent / "web"
router = APIRouter(include_in_schema=False)
static = StaticFiles(directory=WEB / "static")

# Pages never run third-party code: scripts and styles come from this server only; tiles may come from the
# configured tile host (img-src), API calls go back to this server.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob: https: http:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def _template(name: str) -> str:
    return (WEB / "templates" / name).read_text(encoding="utf-8")


def _page(name: str, tile_url: str) -> HTMLResponse:
    body = _template(name).replace("{{tile_url}}", html.escape(tile_url, quote=True))
    return HTMLResponse(body, headers=_SECURITY_HEADERS)


@router.get("/", response_class=HTMLResponse)
def home(runtime: RuntimeDep) -> HTMLResponse:
    return _page("home.html", runtime.settings.tile_url)


@router.get("/merchant", response_class=HTMLResponse)
def merchant_page(runtime: RuntimeDep) -> HTMLResponse:
    return _page("merchant.html", runtime.settings.tile_url)


@router.get("/adops", response_class=HTMLResponse)
def adops_page(runtime: RuntimeDep) -> HTMLResponse:
    return _page("adops.html", runtime.settings.tile_url)
