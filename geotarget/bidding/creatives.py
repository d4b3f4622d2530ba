"""An offer as an exchange shows it: a banner (``adm`` HTML, every value escaped) or a Native 1.2 response with
the assets the request asked for. Pure.

What an offer can supply: its title (title asset, cut to the asked length), its image (main image or icon), its
body (data type 2, description) and its advertiser's domain (data type 1, sponsored by). A native request that
requires anything else (a video, a rating, a price) is not filled by that offer.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from geotarget.catalog.model import Offer

SPONSORED, DESCRIPTION = 1, 2  # Native 1.2 data asset types


@dataclass(frozen=True)
class Asset:
    id: int
    required: bool
    kind: str  # "title" | "img" | "data" | anything else (which we cannot supply)
    length: int | None = None  # title/data: most characters
    subtype: int | None = None  # img: 1 icon, 3 main; data: its type
    size: tuple[int, int] | None = None  # img: wanted width and height, when given


@dataclass(frozen=True)
class NativeAsk:
    assets: tuple[Asset, ...]


def native_ask(request: str | dict[str, Any]) -> NativeAsk | None:
    """A Native 1.x request (JSON text or object, with or without 1.0's ``native`` wrapper), or None when it is
    not one we can read."""
    try:
        raw = orjson.loads(request) if isinstance(request, str) else request
        raw = raw.get("native", raw)
        return NativeAsk(tuple(_asset(a) for a in raw["assets"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def _asset(raw: dict[str, Any]) -> Asset:
    required = raw.get("required") == 1
    for kind in ("title", "img", "data"):
        part = raw.get(kind)
        if isinstance(part, dict):
            size = (int(part.get("w") or part.get("wmin") or 0), int(part.get("h") or part.get("hmin") or 0))
            length = part.get("len")
            return Asset(
                int(raw["id"]),
                required,
                kind,
                int(length) if length else None,
                int(part["type"]) if part.get("type") is not None else None,
                size if all(size) else None,
            )
    return Asset(int(raw["id"]), required, "other")


def advertiser_domain(offer: Offer) -> str | None:
    """The domain an exchange checks against ``badv`` and shows as the advertiser: the offer link's host."""
    if offer.url is None:
        return None
    host = (urlsplit(str(offer.url)).hostname or "").lower()
    return host.removeprefix("www.") or None


def fills(offer: Offer, ask: NativeAsk) -> bool:
    return all(_value(offer, a) is not None for a in ask.assets if a.required)


def banner_markup(offer: Offer, size: tuple[int, int], code: str | None) -> str:
    """Self-contained HTML for a ``w`` x ``h`` slot: image, title, body and code, all one link to the offer."""
    w, h = size
    esc = html.escape
    parts = [
        f'<a href="{esc(str(offer.url))}" target="_blank" rel="noopener" style="display:flex;gap:8px;'
        f"align-items:center;box-sizing:border-box;width:{w}px;height:{h}px;overflow:hidden;padding:4px;"
        'font:13px/1.3 sans-serif;color:#111;background:#fff;text-decoration:none">'
    ]
    if offer.image_url is not None:
        side = max(1, min(h - 8, w // 3))
        parts.append(
            f'<img src="{esc(str(offer.image_url))}" alt="" width="{side}" height="{side}" style="object-fit:cover">'
        )
    parts.append(f"<span><strong>{esc(offer.title)}</strong>")
    if offer.body:
        parts.append(f"<br>{esc(offer.body)}")
    if code:
        parts.append(f"<br>Code: <b>{esc(code)}</b>")
    parts.append("</span></a>")
    return "".join(parts)


def native_markup(offer: Offer, ask: NativeAsk, code: str | None) -> str:
    """A Native 1.2 response (its top-level object, as JSON text) with every asset asked for that we can fill."""
    assets = []
    for a in ask.assets:
        value = _value(offer, a)
        if value is not None:
            assets.append({"id": a.id, "required": int(a.required), **value})
    link: dict[str, Any] = {"url": str(offer.url)}
    document: dict[str, Any] = {"ver": "1.2", "assets": assets, "link": link}
    if code:
        document["ext"] = {"redemption_code": code}
    return orjson.dumps(document).decode()


def _value(offer: Offer, asset: Asset) -> dict[str, Any] | None:
    if asset.kind == "title":
        return {"title": {"text": _cut(offer.title, asset.length)}}
    if asset.kind == "img" and offer.image_url is not None and asset.subtype in (None, 1, 3):
        image: dict[str, Any] = {"url": str(offer.image_url)}
        if asset.size:
            image["w"], image["h"] = asset.size
        return {"img": image}
    if asset.kind == "data" and asset.subtype == DESCRIPTION and offer.body:
        return {"data": {"value": _cut(offer.body, asset.length)}}
    if asset.kind == "data" and asset.subtype == SPONSORED and advertiser_domain(offer):
        return {"data": {"value": _cut(advertiser_domain(offer) or "", asset.length)}}
    return None


def _cut(text: str, length: int | None) -> str:
    if length is None or len(text) <= length:
        return text
    return text[: max(0, length - 1)].rstrip() + "…"
