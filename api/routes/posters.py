"""Posters and the pages their QR codes open: a merchant's offer as a QR code of a signed link
(``GET /v1/offers/{id}/qr``), the public page that link opens (``/o/{token}``), and any redemption code drawn as
a QR code the till can scan (``/qr/{code}.svg``). The two public routes need no key and are rate-limited per
client address (``GEOTARGET_RATE_LIMIT_PUBLIC``)."""

from __future__ import annotations

import html
import re
import secrets
from functools import cache
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from api.deps import Merchant, Now, RuntimeDep, merchant_id
from api.errors import ERROR_RESPONSES, NOT_FOUND
from api.routes.pages import SECURITY_HEADERS, WEB
from geotarget.errors import InvalidInput
from geotarget.posters.landing import Landing
from geotarget.posters.qr import MEDIA_TYPES, qr_image, qr_modules
from geotarget.runtime import Runtime

router = APIRouter(tags=["offers"], responses=ERROR_RESPONSES)
BROWSER_COOKIE = "gt_browser"
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_YEAR_S = 365 * 86_400


def base_url(request: Request, runtime: Runtime) -> str:
    return runtime.server.public_url or str(request.base_url).rstrip("/")


@router.get(
    "/v1/offers/{offer_id}/qr",
    responses=NOT_FOUND | {200: {"content": {"image/svg+xml": {}, "image/png": {}}, "description": "the QR code"}},
    response_class=Response,
    operation_id="offer_poster_qr",
)
def poster_qr(
    offer_id: Annotated[str, Path(max_length=64)],
    request: Request,
    principal: Merchant,
    runtime: RuntimeDep,
    geofence_id: Annotated[str | None, Query(max_length=64, description="the store; needed if several")] = None,
    format: Annotated[Literal["svg", "png"], Query()] = "svg",
    size: Annotated[int, Query(ge=100, le=4000, description="about this many pixels wide")] = 600,
) -> Response:
    """A QR code of the offer's poster link at one of its stores: print it on a poster, a receipt, a table tent.
    The link (in the ``Geotarget-Poster-Link`` header too) is signed: it cannot be forged or guessed."""
    link = runtime.posters.link(merchant_id(principal), offer_id, geofence_id, base_url(request, runtime))
    scale = max(1, size // qr_modules(link))
    headers = {
        "Geotarget-Poster-Link": link,
        "Content-Disposition": f'inline; filename="poster-{offer_id}.{format}"',
        "Cache-Control": "private, max-age=3600",
    }
    return Response(qr_image(link, format, scale), media_type=MEDIA_TYPES[format], headers=headers)


def _over_limit(request: Request, runtime: Runtime) -> Response | None:
    """Public routes count per client address; over the limit: a 429 page, before any work."""
    address = request.client.host if request.client else "unknown"
    refused = runtime.rate_limits.check(f"address:{address}", "public")
    if refused is None:
        return None
    message = f"Too many requests from your address; try again in {refused.retry_after_s} s."
    page = _page("Too many requests", f"<h1>Too many requests</h1><p>{html.escape(message)}</p>", runtime)
    page.status_code = 429
    page.headers["Retry-After"] = str(refused.retry_after_s)
    return page


@router.get("/qr/{code}.svg", include_in_schema=False)
def code_qr(code: str, request: Request, runtime: RuntimeDep) -> Response:
    """A redemption code as a QR code (the ``redemption_qr`` of a served offer): the till scans the code's own
    text, so it reads the same as one typed in."""
    if (limited := _over_limit(request, runtime)) is not None:
        return limited
    if not _CODE.fullmatch(code):
        raise InvalidInput("a code is letters, digits and dashes (at most 64)", "code")
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}
    return Response(qr_image(code, "svg", 8), media_type=MEDIA_TYPES["svg"], headers=headers)


@router.get("/o/{token}", response_class=HTMLResponse, include_in_schema=False)
def landing(token: Annotated[str, Path(max_length=400)], request: Request, runtime: RuntimeDep, at: Now) -> Response:
    """The page a poster's QR code opens. No key; a browser that does not ask not to be tracked gets a random
    first-party id in a cookie (counted like a device: caps and reach), one that does gets none."""
    if (limited := _over_limit(request, runtime)) is not None:
        return limited
    tracked = request.headers.get("DNT") != "1" and request.headers.get("Sec-GPC") != "1"
    browser = request.cookies.get(BROWSER_COOKIE) if tracked else None
    if tracked and (browser is None or not re.fullmatch(r"[A-Za-z0-9_-]{22,64}", browser)):
        browser = secrets.token_urlsafe(16)
    seen = runtime.posters.scanned(token, browser, at)
    page = _page(_title(seen), _content(seen), runtime)
    page.status_code = {"unknown": 404, "gone": 410}.get(seen.state, 200)
    page.headers["Cache-Control"] = "no-store"  # a fresh code each time it may have one
    if browser is not None:
        secure = request.url.scheme == "https"
        page.set_cookie(BROWSER_COOKIE, browser, _YEAR_S, path="/o/", httponly=True, samesite="lax", secure=secure)
    return page


def _title(seen: Landing) -> str:
    if seen.state == "unknown":
        return "Not a poster of ours"
    return seen.offer.title if seen.offer is not None else "No longer running"


def _content(seen: Landing) -> str:
    e = html.escape
    if seen.state == "unknown":
        return "<h1>Not a poster of ours</h1><p>This link is not one we made: check that it was scanned whole.</p>"
    offer, fence = seen.offer, seen.fence
    if seen.state == "gone" or offer is None or fence is None:
        named = f"“{e(offer.title)}” is" if offer is not None else "This offer is"
        return f"<h1>No longer running</h1><p>{named} no longer running. Ask in the store what is on now.</p>"
    parts = [f"<h1>{e(offer.title)}</h1>"]
    if offer.image_url is not None:
        parts.append(f'<img class="offer-image" src="{e(str(offer.image_url))}" alt="">')
    if offer.body:
        parts.append(f"<p>{e(offer.body)}</p>")
    if offer.url is not None:
        parts.append(f'<p><a href="{e(str(offer.url))}" rel="noopener noreferrer">More about it</a></p>')
    if seen.state == "not_now":
        parts.append('<p class="note" id="not-now">Not on right now: come back during its hours.</p>')
    elif seen.code is not None:
        parts.append(
            f'<div class="code" id="code"><p>Show this at the till</p><p class="code-text">{e(seen.code)}</p>'
            f'<img src="/qr/{e(seen.code)}.svg" alt="QR code of {e(seen.code)}" width="200" height="200"></div>'
        )
    elif seen.no_code:
        parts.append(f'<p class="note" id="no-code">No code: {e(seen.no_code)}.</p>')
    geometry = e(orjson.dumps({"geometry": fence.geometry, "radius_m": fence.radius_m}).decode(), quote=True)
    parts.append(f"<h2>{e(fence.name or 'The store')}</h2>")
    parts.append(f'<div id="store-map" class="map store-map" data-store="{geometry}"></div>')
    return "\n".join(parts)


@cache
def _template() -> str:
    return (WEB / "templates" / "landing.html").read_text(encoding="utf-8")


def _page(title: str, content: str, runtime: Runtime) -> HTMLResponse:
    text = _template().replace("{{tile_url}}", html.escape(runtime.settings.tile_url, quote=True))
    text = text.replace("{{title}}", html.escape(title)).replace("{{content}}", content)
    return HTMLResponse(text, headers=dict(SECURITY_HEADERS))
