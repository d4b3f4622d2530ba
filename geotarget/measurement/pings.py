"""Pings sent in bulk by apps (``POST /v1/pings``): validated row by row, hashed, handed to the event stream.

A ping is idempotent by (device, timestamp): its event id is ``p:<device_key>:<epoch ms>``. Rows that break a
rule are reported by index and the others are kept. ``lmt`` pings are accepted and dropped: no history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from geofences import FenceIndex, LatLng, cells
from geofences.bulk import query_many
from geotarget.errors import InvalidInput
from geotarget.measurement.devices import device_key
from geotarget.measurement.events import Event, EventSink, ping_event_id

MAX_PINGS = 1_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PingResult:
    index: int
    event_id: str | None = None
    stored: bool = False
    error: InvalidInput | None = None


def parse_timestamp(raw: Any, field: str, now: datetime) -> datetime:
    """ISO 8601 with an offset or ``Z``, or epoch seconds; UTC out. Naive times are refused (whose clock?)."""
    if isinstance(raw, bool) or raw is None:
        raise InvalidInput("ts is required: ISO 8601 with an offset, or epoch seconds", field)
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise InvalidInput("ts must be a finite number of epoch seconds", field)
        try:
            at = datetime.fromtimestamp(raw, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidInput(f"{raw} is not a usable epoch time", field) from None
    elif isinstance(raw, str):
        try:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{raw!r} is not an ISO 8601 timestamp", field) from None
        if at.tzinfo is None:
            raise InvalidInput(f"{raw!r} has no UTC offset; add Z or +hh:mm", field)
    else:
        raise InvalidInput("ts must be an ISO 8601 string or epoch seconds", field)
    at = at.astimezone(UTC)
    if not EARLIEST <= at <= now + timedelta(days=1):
        raise InvalidInput(f"{at.isoformat()} is outside the accepted range (2000 until tomorrow)", field)
    return at


def parse_ping(raw: Any, field: str, now: datetime, secret: str, res: int) -> tuple[Event, bool]:
    """One ping → (event, lmt)."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("a ping is an object with device_id, lat, lon, ts", field)
    device = raw.get("device_id")
    if not isinstance(device, str) or not 1 <= len(device) <= 200:
        raise InvalidInput("device_id must be a string of 1 to 200 characters", f"{field}.device_id")
    lat, lon = _coordinate(raw.get("lat"), 90, f"{field}.lat"), _coordinate(raw.get("lon"), 180, f"{field}.lon")
    at = parse_timestamp(raw.get("ts"), f"{field}.ts", now)
    accuracy = raw.get("accuracy_m")
    if accuracy is not None and (
        isinstance(accuracy, bool) or not isinstance(accuracy, int | float) or not 0 <= accuracy <= 100_000
    ):
        raise InvalidInput("accuracy_m must be a number of metres, 0 to 100,000", f"{field}.accuracy_m")
    lmt = raw.get("lmt", False)
    if not isinstance(lmt, bool):
        raise InvalidInput("lmt must be true or false", f"{field}.lmt")
    key = device_key(secret, device)
    cell = cells.cell_to_str(cells.latlng_to_cell(LatLng(lat, lon), res))
    event = Event(
        "ping",
        ping_event_id(key, at),
        at,
        key,
        lat,
        lon,
        cell,
        accuracy_m=None if accuracy is None else float(accuracy),
    )
    return event, lmt


def _coordinate(raw: Any, bound: float, field: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidInput("must be a finite number of degrees", field)
    if not -bound <= raw <= bound:
        raise InvalidInput(f"{raw} is outside ±{bound:g}", field)
    return float(raw)


def accept_pings(rows: Sequence[Any], sink: EventSink, secret: str, res: int, now: datetime) -> list[PingResult]:
    """Validate every row, append the good ones in one call, report each by index."""
    if len(rows) > MAX_PINGS:
        raise InvalidInput(f"at most {MAX_PINGS:,} pings per request; this has {len(rows):,}", "pings")
    results: list[PingResult] = []
    keep: list[Event] = []
    for i, raw in enumerate(rows):
        try:
            event, lmt = parse_ping(raw, f"pings[{i}]", now, secret, res)
        except InvalidInput as error:
            results.append(PingResult(i, error=error))
            continue
        results.append(PingResult(i, event.event_id if not lmt else None, stored=not lmt))
        if not lmt:
            keep.append(event)
    sink.append(keep)
    return results


def fences_inside(index: FenceIndex, events: Sequence[Event]) -> list[list[str]]:
    """For each event, the fences a ping was inside (empty for other kinds), in one vectorised pass."""
    inside: list[list[str]] = [[] for _ in events]
    pings = [i for i, e in enumerate(events) if e.kind == "ping"]
    if not pings:
        return inside
    lats = np.array([events[i].lat for i in pings])
    lons = np.array([events[i].lon for i in pings])
    matches = query_many(index, lats, lons)
    for point, fence in zip(matches.point.tolist(), matches.fence.tolist(), strict=True):
        inside[pings[point]].append(matches.fence_ids[fence])
    return inside
