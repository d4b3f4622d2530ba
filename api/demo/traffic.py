"""Simulated foot traffic for the demo city, so the reach dashboard has something to show on first start.

Phones stroll between the demo shops over the past two weeks and every position goes through the real serving
path (matcher, schedules, Redis caps, event stream), exactly as an app's requests would. One difference from live
traffic: cap windows in the past have already ended, so hourly, daily and weekly counters expire at once and only
lifetime caps hold across the simulated days.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from geofences import LatLng
from geofences.shapes import moved
from geotarget.serving.answers import NearbyQuery
from geotarget.serving.server import OfferServer
from geotarget.store.repository import Repository

_NOTE = "demo_traffic"
PHONES = 200
DAYS = 14


def _step(point: LatLng, metres: float, bearing_deg: float) -> LatLng:
    return moved(point, metres * math.cos(math.radians(bearing_deg)), metres * math.sin(math.radians(bearing_deg)))


def strolls(shops: Sequence[LatLng], now: datetime, seed: int = 7) -> list[tuple[str, LatLng, datetime]]:
    """(phone, position, time) in time order: each day about half the phones visit three shops, pinging on the way
    in (80 m out), twice inside (a visit) and on the way out."""
    rng = random.Random(seed)
    pings = []
    for days_ago in range(DAYS, -1, -1):
        day = (now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
        for phone in range(PHONES):
            if rng.random() < 0.5:
                continue
            at = day + timedelta(hours=rng.uniform(7, 19))
            for shop in rng.sample(list(shops), k=min(3, len(shops))):
                inside = _step(shop, rng.uniform(0, 6), rng.uniform(0, 360))
                approach = _step(shop, 80, rng.uniform(0, 360))
                for point, minutes in ((approach, 0), (inside, 2), (inside, 9), (approach, 25)):
                    when = at + timedelta(minutes=minutes, seconds=rng.uniform(0, 50))
                    if when <= now:
                        pings.append((f"demo-phone-{phone}", point, when))
                at += timedelta(minutes=rng.uniform(40, 120))
    pings.sort(key=lambda p: p[2])
    return pings


def simulate_once(
    repository: Repository,
    server: OfferServer,
    shops: Sequence[LatLng],
    now: datetime,
) -> int:
    """Send the strolls through ``server`` unless done before; returns the number of pings sent."""
    if repository.note(_NOTE):
        return 0
    pings = strolls(shops, now)
    for phone, point, at in pings:
        server.nearby(NearbyQuery(point, phone, at, accuracy_m=8.0))
    repository.set_note(_NOTE, now.isoformat())
    return len(pings)
