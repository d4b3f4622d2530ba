"""What one ``/v1/nearby`` asks and what it is answered, and an offer as an app is shown it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from geofences import LatLng
from geotarget.serving.types import Attributes, Candidate


@dataclass(frozen=True)
class NearbyQuery:
    point: LatLng
    device_id: str
    at: datetime
    accuracy_m: float | None = None
    limit: int = 5
    lmt: bool = False
    attributes: Attributes = field(default_factory=Attributes)
    app: str = ""  # the key that sent it: whose webhooks hear of this device's presence
    coarse: bool = False  # the position is IP-derived, stale or coarsened (bid requests): no inside-only offers


@dataclass(frozen=True)
class Served:
    candidate: Candidate
    impression_id: str  # signed for the app it is shown to (measurement.interactions)
    redemption_code: str | None = None  # the offer's static code, or a new unique one
    variant_id: str | None = None  # the creative shown, for an offer with variants (its fields are the offer's)


@dataclass(frozen=True)
class NearbyAnswer:
    offers: list[Served]
    cell: str
    degraded: str | None = None
    swapped: str | None = None  # an empty answer whose lat and lon look swapped (serving.swapped)


def code_qr_url(code: str, base: str = "") -> str:
    """Where the QR code of a redemption code is drawn (``GET /qr/<code>.svg``): a link, not the image, because
    drawing one costs about a millisecond, as much as the rest of the request; an app that shows the code fetches
    it then (and caches it). ``base`` is ``GEOTARGET_PUBLIC_URL``; without it the link is relative to the API.

    >>> code_qr_url("7KQ3-M9XD-2PWT", "https://offers.example")
    'https://offers.example/qr/7KQ3-M9XD-2PWT.svg'
    """
    return f"{base}/qr/{quote(code, safe='')}.svg"


def shown(served: Served, base: str = "") -> dict[str, Any]:
    """An offer as an app is shown it (``/v1/nearby``, and a push's ``offer``), without its impression id."""
    candidate = served.candidate
    offer = candidate.offer
    return {
        "offer_id": offer.id,
        "merchant_id": offer.merchant_id,
        "title": offer.title,
        "body": offer.body,
        "url": None if offer.url is None else str(offer.url),
        "image_url": None if offer.image_url is None else str(offer.image_url),
        "special": offer.special,
        "geofence_id": candidate.fence_id,
        "inside": candidate.inside,
        "distance_m": round(candidate.distance_m, 1),
        "redemption_code": served.redemption_code,
        "redemption_qr": None if served.redemption_code is None else code_qr_url(served.redemption_code, base),
        "variant_id": served.variant_id,
    }
