"""The fast serving path gives exactly the answers of the reference rule: every offer, every fence, exact distance,
the documented ranking (``matcher.match``), on 10,000 random requests, before and after a round of writes."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
import shapely

from geofences import CircleShape, FenceIndex, LatLng, PolygonShape, Proximity, Shape
from geofences.shapes import METRES_PER_DEGREE, moved
from geotarget.catalog.frozen import FenceMeta, capture, freeze, thaw
from geotarget.catalog.model import Offer
from geotarget.catalog.offer_fences import FencePlacing
from geotarget.catalog.view import CatalogView, FencePlace, ViewBuilder
from geotarget.serving import search
from geotarget.serving.matcher import MatchRequest, match
from geotarget.serving.types import Attributes

# Places with DST changes in 2026 (Lord Howe moves by half an hour; Kathmandu is +05:45 all year).
TOWNS = (
    (LatLng(38.7139, -9.1394), "Europe/Lisbon", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    (LatLng(40.7306, -73.9866), "America/New_York", datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
    (LatLng(-31.5553, 159.0821), "Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),
    (LatLng(27.7172, 85.3240), "Asia/Kathmandu", datetime(2026, 6, 1, 0, 0, tzinfo=UTC)),
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class World:
    """Fences and offers kept twice: as the reference sees them and through the view builder."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.index = FenceIndex(10)
        self.zones: dict[str, str] = {}
        self.offers: dict[str, Offer] = {}
        self.builder = ViewBuilder(10, self._place, lambda offer: offer.geofence_ids)
        self.merchants = [f"m{i}" for i in range(12)]

    def _place(self, fence_id: str) -> FencePlace | None:
        shape, cover = self.index.shape(fence_id), self.index.cover(fence_id)
        return None if shape is None or cover is None else FencePlace(shape, cover, self.zones[fence_id], 1)

    def offers_on(self, fence_id: str) -> list[Offer]:
        return [o for o in self.offers.values() if fence_id in o.geofence_ids]

    def put_fence(self, fence_id: str) -> None:
        centre, zone, _ = self.rng.choice(TOWNS)
        spot = moved(centre, self.rng.gauss(0, 1500), self.rng.gauss(0, 1500))
        self.index.add(fence_id, random_shape(self.rng, spot))
        self.zones[fence_id] = zone
        self.builder.set_fence(fence_id, self.offers_on(fence_id))

    def drop_fence(self, fence_id: str) -> None:
        self.index.remove(fence_id)
        self.builder.set_fence(fence_id, ())

    def put_offer(self, offer_id: str) -> None:
        offer = random_offer(self.rng, offer_id, self.rng.choice(self.merchants), list(self.zones))
        self.offers[offer_id] = offer
        self.builder.set_offer(offer_id, offer)

    def reference(self, point: LatLng, request: MatchRequest) -> list[tuple[str, str, bool, float, float]]:
        proximities = []
        for fence_id in self.index:
            shape = self.index.shape(fence_id)
            assert shape is not None
            inside = shape.covers(point)
            proximities.append(Proximity(fence_id, inside, 0.0 if inside else shape.distance_m(point)))
        proximities.sort(key=lambda p: (p.distance_m, p.fence_id))
        by_fence = {f: self.offers_on(f) for f in self.index}
        return summary(match(request, proximities, by_fence, self.zones))


def summary(candidates: object) -> list[tuple[str, str, bool, float, float]]:
    return [(c.offer.id, c.fence_id, c.inside, c.distance_m, c.score) for c in candidates]  # type: ignore[attr-defined]


def random_shape(rng: random.Random, spot: LatLng) -> Shape:
    kind = rng.choice(("circle", "box", "holed", "multi"))
    if kind == "circle":
        return CircleShape(spot, rng.uniform(5, 300))
    k = METRES_PER_DEGREE * math.cos(math.radians(spot.lat))

    def box(east_m: float, north_m: float, w: float, h: float) -> shapely.Polygon:
        x, y = spot.lon + east_m / k, spot.lat + north_m / METRES_PER_DEGREE
        return shapely.box(x - w / k, y - h / METRES_PER_DEGREE, x + w / k, y + h / METRES_PER_DEGREE)

    w, h = rng.uniform(10, 400), rng.uniform(10, 400)
    if kind == "box":
        return PolygonShape(shapely.affinity.rotate(box(0, 0, w, h), rng.uniform(0, 90)))
    if kind == "holed":
        return PolygonShape(box(0, 0, w, h).difference(box(0, 0, w / 2, h / 2)))
    return PolygonShape(shapely.MultiPolygon([box(0, 0, w, h), box(3 * w + 50, 0, w / 2, h / 2)]))


def random_offer(rng: random.Random, offer_id: str, merchant: str, fences: list[str]) -> Offer:
    windows = [
        {"days": rng.sample(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], 3), "start": start, "end": end}
        for start, end in rng.sample(
            [("07:00", "10:00"), ("22:00", "02:00"), ("01:30", "03:15"), ("00:00", "24:00")], 2
        )
    ]
    schedule = rng.choice(
        [
            None,
            None,
            {"windows": windows},
            {"windows": windows[:1], "blackout_dates": ["2026-03-29", "2026-03-08"]},
            {"valid_from": "2026-03-08", "valid_to": "2026-04-04"},
        ]
    )
    targeting = rng.choice([{}, {}, {"age_range": [18, 35]}, {"language": ["pt", "en"]}, {"os": ["ios"]}])
    return Offer(
        id=offer_id,
        merchant_id=merchant,
        title=offer_id,
        geofence_ids=tuple(rng.sample(fences, rng.choice((1, 1, 1, 2, 3)))),
        nearby_m=rng.choice((0, 0, 50, 200, 500, 1000, 5000, rng.uniform(0, 5000))),
        schedule=schedule,
        special=rng.random() < 0.2,
        priority=rng.choice((10, 50, 50, 90, rng.randint(1, 100))),
        targeting=targeting,
        status=rng.choice(("active",) * 9 + ("paused",)),
        timezone="UTC",
        created_at=NOW,
        updated_at=NOW,
    )


def random_request(rng: random.Random, world: World) -> tuple[LatLng, MatchRequest]:
    centre, _, change = rng.choice(TOWNS)
    if rng.random() < 0.5:  # near a fence, often inside it
        shape = world.index.shape(rng.choice(list(world.index)))
        assert shape is not None
        west, south, east, north = shape.bounds
        centre = LatLng((south + north) / 2, (west + east) / 2)
        point = moved(centre, rng.gauss(0, 150), rng.gauss(0, 150))
    else:
        point = moved(centre, rng.gauss(0, 3000), rng.gauss(0, 3000))
    at = change + timedelta(minutes=rng.randint(-3 * 24 * 60, 3 * 24 * 60))
    attributes = Attributes(
        age=rng.choice((None, 25, 60)), os=rng.choice((None, "ios", "android")), language=rng.choice((None, "pt-PT"))
    )
    accuracy = rng.choice((None, 10.0, 500.0))
    return point, MatchRequest(at, accuracy, attributes, 200.0, rng.choice((1, 2, 3)))


def populated(rng: random.Random, fences: int, offers: int) -> World:
    world = World(rng)
    width = len(str(offers - 1))
    for i in range(fences):
        world.put_fence(f"f{i:0{width}d}")
    for i in range(offers):
        world.put_offer(f"o{i:0{width}d}")
    return world


def a_round_of_writes(world: World, rng: random.Random) -> None:
    """Of a world of 160 fences and 320 offers: fences moved and reshaped, dropped and added, offers changed and
    added."""
    for i in rng.sample(range(160), 20):
        world.put_fence(f"f{i:03d}")
    for i in rng.sample(range(160), 10):
        world.drop_fence(f"f{i:03d}")
    for i in range(160, 180):
        world.put_fence(f"f{i:03d}")
    for i in [*rng.sample(range(320), 60), *range(320, 360)]:
        world.put_offer(f"o{i:03d}")


def agree(world: World, view: CatalogView, rng: random.Random, requests: int) -> int:
    answered = 0
    for _ in range(requests):
        point, request = random_request(rng, world)
        expected = world.reference(point, request)
        assert summary(search.ranked(view, point, request)) == expected, (point, request)
        answered += bool(expected)
    return answered


@pytest.mark.slow
def test_fast_path_ranks_exactly_like_the_reference_before_and_after_writes() -> None:
    rng = random.Random(20261124)
    world = populated(rng, 160, 320)
    before = world.builder.view({})
    answered = agree(world, before, rng, 5_000)

    a_round_of_writes(world, rng)
    answered += agree(world, world.builder.view({}), rng, 5_000)
    assert answered > 3_000  # most requests have offers to rank, so the comparison says something


def test_a_view_taken_before_writes_keeps_answering_as_before() -> None:
    rng = random.Random(7)
    world = populated(rng, 40, 80)
    old = world.builder.view({})
    requests = [random_request(rng, world) for _ in range(300)]
    expected = [world.reference(p, r) for p, r in requests]
    for i in range(40):
        world.put_fence(f"f{i:02d}")
    for i in range(80):
        world.put_offer(f"o{i:02d}")
    assert [summary(search.ranked(old, p, r)) for p, r in requests] == expected
    assert date(2026, 1, 1) == NOW.date()


def through_a_snapshot(world: World) -> None:
    """Give the world the index and pairs a worker gets from a catalog snapshot of it (``catalog.frozen``)."""
    ids = list(world.index)
    meta = {f: FenceMeta("m", f, world.zones[f], 1) for f in ids}
    placing = [FencePlacing(f, "m", (), False) for f in ids]
    arrays, stored = freeze(capture(world.index, meta, placing, world.offers, world.builder))
    thawed = thaw(arrays, orjson.loads(orjson.dumps(stored)), 10)  # the JSON goes through a file too
    world.index = FenceIndex(10)
    world.index.restore(thawed.index)
    world.builder = ViewBuilder(10, world._place, lambda offer: offer.geofence_ids)
    world.builder.restore(thawed.pairs)
    assert sorted(o.id for o in thawed.offers.values()) == sorted(world.offers)  # numbered by place, not age


@pytest.mark.slow
def test_fast_path_ranks_exactly_like_the_reference_through_snapshot_overlay_and_compaction() -> None:
    rng = random.Random(20261204)
    world = populated(rng, 160, 320)
    through_a_snapshot(world)
    answered = agree(world, world.builder.view({}), rng, 3_000)  # the snapshot as it was written

    a_round_of_writes(world, rng)  # after the snapshot: the overlay
    answered += agree(world, world.builder.view({}), rng, 4_000)

    through_a_snapshot(world)  # compaction: snapshot and overlay written as one new snapshot
    world.put_fence("f180")
    world.put_offer("o360")
    answered += agree(world, world.builder.view({}), rng, 3_000)
    assert answered > 6_000
