"""The web pages: the merchant map editor, the ad-ops dashboard and the API reference (Swagger UI), with their
vendored scripts and styles.

The pages are static HTML that call the public API with the key the user types in; the server only fills in the
map tile URL. Nothing is loaded from a CDN.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
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
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob: https: http:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Page:
    title: str
    key_label: str
    styles: tuple[str, ...]
    scripts: tuple[str, ...]


_LEAFLET = "vendor/leaflet/leaflet"
PAGES = {
    "merchant": Page(
        "merchant map",
        "Merchant API key",
        (f"{_LEAFLET}.css", "vendor/leaflet-geoman/leaflet-geoman.css", "app/style.css"),
        (
            f"{_LEAFLET}.js",
            "vendor/leaflet-geoman/leaflet-geoman.js",
            "app/common.js",
            "app/audiences.js",
            "app/till.js",
            "app/webhooks.js",
            "app/posters.js",
            "app/whynot.js",
            "app/variants.js",
            "app/merchant.js",
        ),
    ),
    "adops": Page(
        "reach dashboard",
        "Ad-ops (or merchant) API key",
        (f"{_LEAFLET}.css", "app/style.css"),
        (f"{_LEAFLET}.js", "vendor/chart.js/chart.umd.min.js", "app/common.js", "app/adops.js"),
    ),
}


@cache
def _template(name: str) -> str:
    return (WEB / "templates" / name).read_text(encoding="utf-8")


@cache
def _render(name: str) -> str:
    """The shared shell (head, header, login form) around the page's own body; the tile URL is filled per call."""
    page = PAGES[name]
    parts = {
        "title": html.escape(page.title),
        "key_label": html.escape(page.key_label),
        "styles": "\n".join(f'  <link rel="stylesheet" href="/static/{s}">' for s in page.styles),
        "scripts": "\n".join(f'  <script src="/static/{s}"></script>' for s in page.scripts),
        "body": _template(f"{name}.html"),
    }
    text = _template("_shell.html")
    for key, value in parts.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _with_tiles(text: str, tile_url: str) -> HTMLResponse:
    body = text.replace("{{tile_url}}", html.escape(tile_url, quote=True))
    return HTMLResponse(body, headers=SECURITY_HEADERS)


@router.get("/", response_class=HTMLResponse)
def home() -> HTMLResponse:
    return HTMLResponse(_template("home.html"), headers=SECURITY_HEADERS)


@router.get("/docs", response_class=HTMLResponse)
def api_reference() -> HTMLResponse:
    """Swagger UI served from the vendored copy: it works offline and under the same strict CSP."""
    return HTMLResponse(_template("docs.html"), headers=SECURITY_HEADERS)


@router.get("/merchant", response_class=HTMLResponse)
def merchant_page(runtime: RuntimeDep) -> HTMLResponse:
    return _with_tiles(_render("merchant"), runtime.settings.tile_url)


@router.get("/adops", response_class=HTMLResponse)
def adops_page(runtime: RuntimeDep) -> HTMLResponse:
    return _with_tiles(_render("adops"), runtime.settings.tile_url)
