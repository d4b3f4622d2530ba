"""The three cities of the serving benchmark, generated from a seed so geotarget and its peer get the same data.

- **downtown**: 2,000 shop fences in 6 km² of a city centre, two offers each, ``nearby_m`` 0 / 200 / 500;
- **city**: 10,000 fences in 150 km², the same offers;
- **country**: 100,000 fences, most around five dense centres and the rest spread over 300 km × 300 km,
  ``nearby_m`` up to 5,000 (a few offers reach 5 km).

Shops are the demo city's store shapes (circles and rotated rectangles) at random places and bearings.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.demo.city import DEMO_CITY, Store, store_feature
from geofences import LatLng
from geofences.shapes import moved

LISBON = LatLng(38.7139, -9.1394)  # Rossio
OTHER_CENTRES = (LatLng(38.5244, -8.8882), LatLng(39.2362, -8.6859), LatLng(38.5714, -7.9135), LatLng(39.7436, -8.8071))


@dataclass(frozen=True)
class DataSet:
    name: str
    fences: int
    half_side_m: float  # the uniform part is spread over a square this far from Lisbon each way
    dense_share: float  # the share of fences around the dense centres (Gaussian)
    dense_sigma_m: float
    nearby_m: tuple[tuple[float, int], ...]  # (metres, weight)
    merchants: int
    offers_per_fence: int = 2


DATA_SETS = {
    "downtown": DataSet("downtown", 2_000, math.sqrt(6e6) / 2, 0.0, 0.0, ((0, 1), (200, 1), (500, 1)), 400),
    "city": DataSet("city", 10_000, math.sqrt(150e6) / 2, 0.0, 0.0, ((0, 1), (200, 1), (500, 1)), 1_000),
    "country": DataSet(
        "country", 100_000, 150_000, 0.7, 2_500, ((0, 30), (200, 30), (500, 25), (1000, 10), (5000, 5)), 5_000
    ),
}


@dataclass(frozen=True)
class ShopOffer:
    title: str
    nearby_m: float
    priority: int
    special: bool
    always: bool  # no schedule; else a daily 00:00-24:00 window (so the schedule is evaluated)


@dataclass(frozen=True)
class Shop:
    merchant: int
    store: Store
    offers: tuple[ShopOffer, ...]

    def feature(self) -> dict[str, object]:
        return store_feature(self.store)


def shops(data: DataSet, seed: int = 7) -> Iterator[Shop]:
    rng = random.Random(seed)
    templates = [s for stores in DEMO_CITY.values() for s in stores]
    metres = [m for m, _ in data.nearby_m]
    weights = [w for _, w in data.nearby_m]
    for _ in range(data.fences):
        if rng.random() < data.dense_share:
            centre = rng.choice((LISBON, *OTHER_CENTRES))
            spot = moved(centre, rng.gauss(0, data.dense_sigma_m), rng.gauss(0, data.dense_sigma_m))
        else:
            spot = moved(LISBON, *(rng.uniform(-data.half_side_m, data.half_side_m) for _ in "ne"))
        t = rng.choice(templates)
        store = Store(t.name, spot.lat, spot.lon, t.width_m, t.depth_m, rng.uniform(0, 180), t.radius_m, t.tags)
        offers = tuple(
            ShopOffer(f"Offer {j}", rng.choices(metres, weights)[0], rng.randint(1, 100), j == 1, j == 0)
            for j in range(data.offers_per_fence)
        )
        yield Shop(rng.randrange(data.merchants), store, offers)
