"""A bid request read as what the serving path needs: where the device is and how far to trust that, who it is,
what it allows, and the impression slots we could fill. Pure: the same request and rules give the same reading.

Position (device.geo, else user.geo): GPS (type 1), user-given (3) or unstated fixes are precise unless older
than ``max_fix_age_s``; IP-derived (2) and stale fixes are *coarse*: they never win inside-only offers. Without
TCF special feature 1 (precise geolocation) the position is coarsened to the centre of its H3 cell of about
1.2 km and treated as coarse. ``accuracy`` is the ping's ``accuracy_m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from geofences import LatLng, cells
from geotarget.bidding.consent import Consent, gdpr_applies, gdpr_consent, gpp_opt_out, us_privacy_opt_out
from geotarget.bidding.creatives import NativeAsk, native_ask
from geotarget.bidding.openrtb import BidRequest, Geo, Imp
from geotarget.bidding.reasons import NoBid
from geotarget.serving.types import Attributes

COARSE_RES = 7  # H3 resolution a position without precise-geolocation consent is reduced to (~1.2 km edges)
COARSE_ACCURACY_M = 1_500.0
GENDERS = {"M": "male", "F": "female", "O": "other"}


@dataclass(frozen=True)
class BidRules:
    vendor_id: int  # our TCF vendor id
    currency: str = "USD"  # what offers' bid_cpm is in and we bid in
    max_fix_age_s: int = 300
    hold_s: int = 300  # how long a bid holds its cap slot when the imp does not say (imp.exp)
    min_hold_s: int = 5  # however soon the imp says it comes: notices are rarely faster
    max_hold_s: int = 3_600


@dataclass(frozen=True)
class Slot:
    """One impression slot we can fill: a banner of ``size`` and/or a native ad asking for ``native``."""

    imp_id: str
    floor: float
    hold_s: int
    size: tuple[int, int] | None
    native: NativeAsk | None


@dataclass(frozen=True)
class Reading:
    point: LatLng
    coarse: bool
    accuracy_m: float | None
    device_id: str
    lmt: bool
    attributes: Attributes
    slots: tuple[Slot, ...]
    blocked_domains: frozenset[str]


def read(request: BidRequest, rules: BidRules, at: datetime) -> Reading | NoBid:
    regs, user, device = request.regs, request.user, request.device
    if regs is not None and regs.coppa == 1:
        return NoBid("coppa")
    consent = _consent(request, rules)
    if consent.refused:
        return NoBid(consent.refused)
    if request.cur and rules.currency not in request.cur:
        return NoBid("currency")
    slots = tuple(s for s in (_slot(imp, rules) for imp in request.imp) if s is not None)
    if not slots:
        return NoBid("no_slot")
    geo = (device.geo if device else None) or (user.geo if user else None)
    if geo is None or geo.lat is None or geo.lon is None:
        return NoBid("no_location")
    if not _valid(geo.lat, geo.lon):
        return NoBid("invalid_location")
    device_id = _device_id(request)
    if device_id is None:
        return NoBid("no_device")
    point, coarse, accuracy = _position(geo, consent, rules)
    lmt = bool(device and (device.lmt == 1 or device.dnt == 1)) or consent.opted_out
    return Reading(
        point,
        coarse,
        accuracy,
        device_id,
        lmt,
        _attributes(request, at),
        slots,
        frozenset(d.lower() for d in request.badv or ()),
    )


def _consent(request: BidRequest, rules: BidRules) -> Consent:
    regs, user = request.regs, request.user
    applies = gdpr_applies(regs.gdpr, regs.ext.gdpr if regs.ext else None) if regs else False
    consent = (user.consent or (user.ext.consent if user.ext else None)) if user else None
    decided = gdpr_consent(applies, consent, rules.vendor_id)
    us_privacy = regs.us_privacy or (regs.ext.us_privacy if regs.ext else None) if regs else None
    opted_out = us_privacy_opt_out(us_privacy) or bool(regs and gpp_opt_out(regs.gpp, regs.gpp_sid))
    return Consent(decided.refused, decided.precise, opted_out)


def _valid(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180


def _device_id(request: BidRequest) -> str | None:
    """``device.ifa`` unless empty or zeroed (an opted-out device sends zeros), else the exchange's user id."""
    ifa = (request.device.ifa or "").strip() if request.device else ""
    if ifa.strip("0-"):
        return ifa
    user_id = (request.user.id or "").strip() if request.user else ""
    return user_id or None


def _position(geo: Geo, consent: Consent, rules: BidRules) -> tuple[LatLng, bool, float | None]:
    point = LatLng(lat=float(geo.lat), lon=float(geo.lon))  # type: ignore[arg-type]
    accuracy = geo.accuracy
    coarse = geo.type == 2 or (geo.lastfix is not None and geo.lastfix > rules.max_fix_age_s)
    if not consent.precise:
        point = cells.cell_centre(cells.latlng_to_cell(point, COARSE_RES))
        accuracy = max(accuracy or 0.0, COARSE_ACCURACY_M)
        coarse = True
    return point, coarse, accuracy


def _slot(imp: Imp, rules: BidRules) -> Slot | None:
    """An imp we can fill (a banner or native one, its floor in our currency), or None."""
    if imp.bidfloor > 0 and imp.bidfloorcur.upper() != rules.currency:
        return None  # no exchange rates here: a floor in another currency cannot be compared
    size = _size(imp) if imp.banner is not None else None
    native = native_ask(imp.native.request) if imp.native is not None else None
    if size is None and native is None:
        return None
    hold = max(rules.min_hold_s, min(imp.exp or rules.hold_s, rules.max_hold_s))
    return Slot(imp.id, imp.bidfloor, hold, size, native)


def _size(imp: Imp) -> tuple[int, int]:
    banner = imp.banner
    assert banner is not None
    for f in banner.format or ():
        if f.w and f.h:
            return f.w, f.h
    return (banner.w or 320, banner.h or 50)


def _attributes(request: BidRequest, at: datetime) -> Attributes:
    user, device = request.user, request.device
    age = at.year - user.yob if user and user.yob and 0 < at.year - user.yob <= 130 else None
    gender = GENDERS.get((user.gender or "").upper()) if user else None
    os = device.os.strip().lower() if device and device.os else None
    language = device.language.strip().lower() if device and device.language else None
    return Attributes(age=age, gender=gender, os=os, language=language)
