"""IANA time zones: check a given name, or find the zone of a place (timezonefinder, offline)."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from timezonefinder import TimezoneFinder

from geofences import LatLng
from geotarget.errors import InvalidInput


@lru_cache(maxsize=1)
def _finder() -> TimezoneFinder:
    return TimezoneFinder(in_memory=True)


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(name: str, field: str = "timezone") -> str:
    """Return ``name`` when it is an IANA zone such as ``Europe/Lisbon``; raise ``InvalidInput`` otherwise."""
    if name not in _known():
        raise InvalidInput(f"{name!r} is not an IANA time zone (for example Europe/Lisbon)", field)
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:
        raise InvalidInput(f"{name!r} is not an IANA time zone", field) from exc
    return name


def timezone_at(point: LatLng) -> str:
    """The zone at ``point``; at sea, the nautical zone (``Etc/GMT-2``), never nothing."""
    zone = _finder().timezone_at(lng=point.lon, lat=point.lat)
    if zone is None:
        hours = round(point.lon / 15)
        zone = "Etc/GMT" if hours == 0 else f"Etc/GMT{-hours:+d}"
    return str(zone)
