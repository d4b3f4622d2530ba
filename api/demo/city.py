"""A small demo city: independent shops in central Lisbon with store-sized fences (polygons and circles).

Loading is idempotent: the merchants are created once; every start issues each of them a fresh key to print.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from geofences import LatLng
from geofences.shapes import moved
from geotarget.catalog import accounts
from geotarget.catalog.fences import FenceService
from geotarget.catalog.model import OfferFields
from geotarget.catalog.offers import OfferService
from geotarget.store.repository import Repository

_NOTE = "demo_city"
EXAMPLE_POINT = (38.71152, -9.13010)  # (lat, lon) inside "Café Tejo — Alfama"


@dataclass(frozen=True)
class Store:
    name: str
    lat: float
    lon: float
    width_m: float = 0.0  # a rotated rectangle when set, else a circle
    depth_m: float = 0.0
    bearing_deg: float = 0.0
    radius_m: float = 0.0
    tags: tuple[str, ...] = ()


DEMO_CITY: dict[str, list[Store]] = {
    "Café Tejo": [
        Store("Café Tejo — Alfama", 38.71150, -9.13015, width_m=28, depth_m=18, bearing_deg=20, tags=("cafe",)),
        Store("Café Tejo — Rua Augusta", 38.71050, -9.13760, radius_m=35, tags=("cafe",)),
        Store(
            "Café Tejo — Cais do Sodré",
            38.70630,
            -9.14490,
            width_m=40,
            depth_m=22,
            bearing_deg=-15,
            tags=("cafe", "waterfront"),
        ),
    ],
    "Padaria Lisboa": [
        Store(
            "Padaria Lisboa — Chiado",
            38.71075,
            -9.14195,
            width_m=22,
            depth_m=15,
            bearing_deg=35,
            tags=("bakery",),
        ),
        Store("Padaria Lisboa — Bairro Alto", 38.71290, -9.14545, radius_m=25, tags=("bakery",)),
    ],
    "Ginásio Rossio": [
        Store("Ginásio Rossio", 38.71395, -9.13920, width_m=60, depth_m=35, bearing_deg=5, tags=("gym",)),
    ],
    "Livraria do Carmo": [
        Store("Livraria do Carmo", 38.71215, -9.14050, radius_m=20, tags=("books",)),
    ],
    "Mercado do Cais": [
        Store(
            "Mercado do Cais — food hall",
            38.70700,
            -9.14600,
            width_m=90,
            depth_m=55,
            bearing_deg=-20,
            tags=("market", "food"),
        ),
        Store("Mercado do Cais — Martim Moniz stall", 38.71620, -9.13590, radius_m=15, tags=("market",)),
    ],
}


WEEKDAY_MORNINGS = [{"days": ["weekdays"], "start": "07:00", "end": "10:00"}]
# Offers per merchant: (title, body, stores by index, extra fields). Something is always live at EXAMPLE_POINT.
DEMO_OFFERS: dict[str, list[tuple[str, str, tuple[int, ...], dict[str, Any]]]] = {
    "Café Tejo": [
        (
            "2-for-1 lattes",
            "Weekdays 7–10, bring a friend.",
            (0, 1),
            {"special": True, "schedule": WEEKDAY_MORNINGS, "priority": 80, "caps": {"per_device_per_day": 2}},
        ),
        ("Free refill with any cake", "All day, every day.", (0,), {"priority": 40, "caps": {"per_device_per_day": 3}}),
        ("Pastel de nata + bica for €2", "Just round the corner.", (2,), {"nearby_m": 300, "priority": 60}),
    ],
    "Padaria Lisboa": [
        (
            "Bread fresh from the oven",
            "Every morning until 11.",
            (0, 1),
            {"special": True, "schedule": [{"days": ["daily"], "start": "07:00", "end": "11:00"}], "nearby_m": 150},
        ),
        (
            "Croissant happy hour",
            "Half price, 16–18.",
            (0,),
            {"schedule": [{"days": ["daily"], "start": "16:00", "end": "18:00"}], "nearby_m": 200},
        ),
    ],
    "Ginásio Rossio": [
        (
            "Your first day is free",
            "Show this at the desk.",
            (0,),
            {
                "nearby_m": 500,
                "priority": 70,
                "caps": {"per_device_lifetime": 1},
                "schedule": [{"days": ["daily"], "start": "06:00", "end": "22:00"}],
            },
        ),
    ],
    "Livraria do Carmo": [
        (
            "10 % off any book",
            "Browse as long as you like.",
            (0,),
            {"nearby_m": 1500, "priority": 30, "caps": {"per_device_per_week": 2}},
        ),
    ],
    "Mercado do Cais": [
        (
            "Lunch menu €9.50",
            "Noon to three.",
            (0, 1),
            {"special": True, "schedule": [{"days": ["daily"], "start": "12:00", "end": "15:00"}], "nearby_m": 400},
        ),
    ],
}


def store_feature(store: Store) -> dict[str, Any]:

    properties: dict[str, Any] = {"name": store.name, "tags": list(store.tags), "timezone": "Europe/Lisbon"}
    if store.radius_m:
        properties["radius_m"] = store.radius_m
        return {
            "type": "Feature",
            "properties": properties,
            "geometry": {"type": "Point", "coordinates": [store.lon, store.lat]},
        }
    a = math.radians(store.bearing_deg)
    centre = LatLng(store.lat, store.lon)
    ring = []
    for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)):
        x, y = dx * store.width_m / 2, dy * store.depth_m / 2
        corner = moved(centre, north_m=x * math.sin(a) + y * math.cos(a), east_m=x * math.cos(a) - y * math.sin(a))
        ring.append([round(corner.lon, 7), round(corner.lat, 7)])
    return {
        "type": "Feature",
        "properties": properties,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def load_demo_city(
    repository: Repository, fences: FenceService, offers: OfferService, kept: Path | None = None
) -> dict[str, tuple[str, str]]:
    """Create the demo merchants, fences and offers once; return ``{merchant name: (merchant id, key)}`` plus an
    app key under ``"app"`` and an ad-ops key under ``"adops"``. The keys are kept in ``kept`` (readable by its
    owner only) and shown again at the next start while they still work: a restart no longer issues new ones."""
    known = _kept_keys(repository, kept)
    keys: dict[str, tuple[str, str]] = {}
    if repository.note(_NOTE):
        for name in DEMO_CITY:
            merchant = repository.merchant_named(name)
            if merchant is not None:
                keys[name] = known.get(name) or (merchant.id, accounts.issue_merchant_key(repository, merchant.id))
    else:
        for name, stores in DEMO_CITY.items():
            issued = accounts.create_merchant(repository, name, "Europe/Lisbon")
            results = fences.create_many(issued.id, [store_feature(s) for s in stores])
            fence_ids = [r.id for r in results]
            for title, body, at_stores, extra in DEMO_OFFERS.get(name, []):
                spec = {"title": title, "body": body, "geofence_ids": [fence_ids[i] for i in at_stores], **extra}
                offers.create(issued.id, OfferFields.model_validate(spec))
            keys[name] = (issued.id, issued.api_key)
        repository.set_note(_NOTE, "loaded")
    for role in ("app", "adops"):
        if role not in known:
            issued = accounts.create_app_key(repository, f"demo {role}", role)
            known[role] = (issued.id, issued.api_key)
        keys[role] = known[role]
    if kept is not None:
        kept.write_text(json.dumps(keys, indent=1) + "\n")
        kept.chmod(0o600)
    return keys


def _kept_keys(repository: Repository, kept: Path | None) -> dict[str, tuple[str, str]]:
    """The keys a previous start kept that still work (not revoked, expired or rotated away)."""
    try:
        saved = json.loads(kept.read_text()) if kept is not None and kept.exists() else {}
    except (OSError, ValueError):
        return {}
    now = datetime.now(UTC)
    working = {}
    for name, pair in saved.items() if isinstance(saved, dict) else ():
        readable = isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
        if readable and repository.keys.find(accounts.hash_key(pair[1]), now) is not None:
            working[name] = (pair[0], pair[1])
    return working
