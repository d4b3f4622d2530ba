"""Named literal fences used across the API tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from geotarget.measurement.events import Event, ping_event_id

ALFAMA_CAFE = {
    "type": "Feature",
    "properties": {"name": "Café Tejo — Alfama", "tags": ["cafe"]},
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [
                [-9.1305, 38.7110],
                [-9.1298, 38.7110],
                [-9.1298, 38.7115],
                [-9.1305, 38.7115],
                [-9.1305, 38.7110],
            ]
        ],
    },
}
INSIDE_ALFAMA_CAFE = {"lat": 38.71125, "lon": -9.13015}
CHIADO_KIOSK = {
    "type": "Feature",
    "properties": {"name": "Padaria Lisboa — Chiado kiosk", "radius_m": 25},
    "geometry": {"type": "Point", "coordinates": [-9.14195, 38.71075]},
}
NEW_YORK_BAR = {
    "type": "Feature",
    "properties": {"name": "Bar on Bleecker"},
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [
                [-74.0020, 40.7280],
                [-74.0012, 40.7280],
                [-74.0012, 40.7285],
                [-74.0020, 40.7285],
                [-74.0020, 40.7280],
            ]
        ],
    },
}


def ping_event(device_key: str, at: datetime, lat: float = 38.7112, lon: float = -9.1301) -> Event:
    """A ping as the serving path appends it (by default inside the Alfama café)."""
    return Event(
        kind="ping", event_id=ping_event_id(device_key, at), at=at, device_key=device_key, lat=lat, lon=lon, cell="c"
    )


def offer_event(**fields: Any) -> Event:
    """An impression or a cap-blocked serve; ``kind``, ``event_id``, ``at``, ``device_key`` and the offer, merchant
    and fence ids are given, the position defaults to the Alfama café."""
    return Event(**{"lat": 38.7112, "lon": -9.1301, "cell": "c", **fields})


def impressions(count: int, start: datetime, devices: int) -> list[Event]:
    """``count`` impressions of one offer in one fence, a second apart from ``start``, by ``devices`` devices in
    turn; event ids ``imp-000000``, ``imp-000001``, ..."""
    return [
        offer_event(
            kind="impression",
            event_id=f"imp-{i:06d}",
            at=start + timedelta(seconds=i),
            device_key=f"dev{i % devices:02d}",
            offer_id="off_x",
            merchant_id="mer_x",
            fence_id="fen_x",
            inside=True,
            distance_m=0.0,
        )
        for i in range(count)
    ]
