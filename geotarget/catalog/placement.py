"""Warnings for a new fence that lands somewhere unlikely. A polygon typed as [lat, lon] pairs instead of GeoJSON's
[lon, lat] still validates whenever every number is within ±90: a café in Lisbon (lon -9.1, lat 38.7) becomes a
shape off West Africa. The fence is stored (it may be meant); the 201 says where it fell and why that looks odd.

Distance is judged against the middle of the merchant's fences (the median latitude and longitude), counting only
fences in a zone near the merchant's own when it has one: a mistake saved earlier must not become the "nearest
other fence" that makes the next mistake look at home."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from zoneinfo import ZoneInfo

from geofences import LatLng
from geofences.shapes import haversine_m

FAR_FROM_OTHERS_M = 500_000.0
ZONE_HOURS_APART = 2.0


@dataclass(frozen=True)
class PlacementWarning:
    code: str
    message: str
    field: str = "geometry"


@dataclass(frozen=True)
class Placed:
    """One of the merchant's other fences, as placement sees it."""

    centre: LatLng
    zone: str


def placement_warnings(
    centre: LatLng, zone: str, others: Sequence[Placed], merchant_zone: str | None, at: datetime
) -> list[PlacementWarning]:
    """``others``: the merchant's other fences; ``merchant_zone``: the merchant's stated zone."""
    warnings = []
    trusted = [o for o in others if merchant_zone is None or _hours_apart(o.zone, merchant_zone, at) < ZONE_HOURS_APART]
    if trusted:
        middle = LatLng(lat=median(o.centre.lat for o in trusted), lon=median(o.centre.lon for o in trusted))
        distance = haversine_m(centre, middle)
        if distance > FAR_FROM_OTHERS_M:
            warnings.append(
                PlacementWarning(
                    "far_from_other_fences",
                    f"this fence is {distance / 1000:,.0f} km from the middle of your other fences"
                    + _swapped_hint(centre, middle),
                )
            )
    hours = _hours_apart(zone, merchant_zone, at) if merchant_zone else 0.0
    if hours >= ZONE_HOURS_APART:
        warnings.append(
            PlacementWarning(
                "far_from_merchant_timezone",
                f"this fence is in {zone}, {hours:g} h from the merchant's time zone ({merchant_zone}); check its "
                "coordinates are [longitude, latitude]",
            )
        )
    return warnings


def _swapped_hint(centre: LatLng, middle: LatLng) -> str:
    if abs(centre.lon) > 90:
        return "; check its coordinates are [longitude, latitude]"
    swapped = LatLng(lat=centre.lon, lon=centre.lat)
    if haversine_m(swapped, middle) <= FAR_FROM_OTHERS_M:
        return "; with latitude and longitude swapped it would be near them: GeoJSON is [longitude, latitude]"
    return "; check its coordinates are [longitude, latitude]"


def _hours_apart(zone: str, other: str, at: datetime) -> float:
    """How far apart two zones' clocks are at ``at`` (what a merchant would notice), in hours."""
    first, second = (at.astimezone(ZoneInfo(z)).utcoffset() or timedelta(0) for z in (zone, other))
    return round(abs((first - second).total_seconds()) / 3600, 2)
