"""The index must give exactly the membership rule's answer, for every point — hypothesis searches for one where
it does not: random points, points within 1 cm of an edge, vertices, holes, multipolygon parts, circle edges,
and fences at high latitude."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofences import CircleShape, FenceIndex, LatLng, PolygonShape, bulk, cells
from geofences.bulk import query_many
from geofences.shapes import haversine_m

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def star_ring(lat: float, lon: float, radii_m: list[float], turn: float) -> list[tuple[float, float]]:
    """A simple (star-shaped) ring around (lat, lon), radii in metres — store-sized, any latitude."""
    k = math.cos(math.radians(lat))
    ring = []
    for i, r in enumerate(radii_m):
        a = turn + 2 * math.pi * i / len(radii_m)
        ring.append((lon + r * math.cos(a) / (111_195 * k), lat + r * math.sin(a) / 111_195))
    return [*ring, ring[0]]


latitudes = st.one_of(st.floats(-60, 60), st.floats(65, 84), st.floats(-84, -65))
longitudes = st.floats(-179, 179)
radii = st.lists(st.floats(20, 400), min_size=3, max_size=24)
turns = st.floats(0, 2 * math.pi)


@st.composite
def polygons(draw: st.DrawFn) -> PolygonShape:
    lat, lon = draw(latitudes), draw(longitudes)
    shell = star_ring(lat, lon, draw(radii), draw(turns))
    geometry = shapely.Polygon(shell)
    if draw(st.booleans()):  # a hole around the centre, smaller than every radius
        hole = star_ring(lat, lon, [10.0] * draw(st.integers(3, 8)), draw(turns))
        geometry = shapely.Polygon(shell, [hole])
    if draw(st.booleans()):  # a second part 1.5 km east
        other = shapely.Polygon(
            star_ring(lat, lon + 1500 / (111_195 * math.cos(math.radians(lat))), draw(radii), draw(turns))
        )
        geometry = shapely.MultiPolygon([geometry, other])
    return PolygonShape(geometry)


@st.composite
def circles(draw: st.DrawFn) -> CircleShape:
    return CircleShape(LatLng(draw(latitudes), draw(longitudes)), draw(st.floats(5, 600)))


def truth(shape: PolygonShape | CircleShape, point: LatLng) -> bool:
    if isinstance(shape, CircleShape):
        return haversine_m(shape.center, point) <= shape.radius_m
    return bool(shapely.covers(shape.geometry, shapely.Point(point.lon, point.lat)))


def probe_points(shape: PolygonShape | CircleShape, fractions: list[float], offsets_m: list[float]) -> list[LatLng]:
    """Points on and within a centimetre of every edge, every vertex, and random points around the fence."""
    points: list[LatLng] = []
    if isinstance(shape, CircleShape):
        c, r = shape.center, shape.radius_m
        k = math.cos(math.radians(c.lat))
        for f, d in zip(fractions, offsets_m, strict=False):
            a = 2 * math.pi * f
            dist = r + d
            points.append(LatLng(c.lat + dist * math.sin(a) / 111_195, c.lon + dist * math.cos(a) / (111_195 * k)))
        return points
    rings = [g.exterior for g in shapely.get_parts(shape.geometry)]
    rings += [i for g in shapely.get_parts(shape.geometry) for i in g.interiors]
    for ring in rings:
        coords = list(ring.coords)
        points += [LatLng(lat=y, lon=x) for x, y in coords]
        for (x0, y0), (x1, y1), f, d in zip(coords, coords[1:], fractions, offsets_m, strict=False):
            x, y = x0 + f * (x1 - x0), y0 + f * (y1 - y0)
            points.append(LatLng(lat=y, lon=x))
            k = math.cos(math.radians(y))
            points.append(LatLng(lat=y + d / 111_195, lon=x + d / (111_195 * k)))
    west, south, east, north = shape.bounds
    for f, g in zip(fractions, reversed(fractions), strict=False):
        points.append(LatLng(lat=south + f * (north - south), lon=west + g * (east - west)))
    return points


fractions = st.lists(st.floats(0, 1), min_size=30, max_size=30)
centimetre_offsets = st.lists(st.floats(-0.01, 0.01), min_size=30, max_size=30)


@PROPERTY_SETTINGS
@given(
    shape=st.one_of(polygons(), circles()),
    fs=fractions,
    ds=centimetre_offsets,
    res=st.sampled_from([9, 10, 11]),
)
def test_index_answers_exactly_like_the_membership_rule(shape, fs, ds, res):
    index = FenceIndex(res)
    index.add("fence", shape)
    for point in probe_points(shape, fs, ds):
        assert ("fence" in index.query(point)) == truth(shape, point), point


def reference_distance_m(shape: PolygonShape | CircleShape, point: LatLng) -> float:
    """Brute force: great-circle distance to the nearest vertex of the boundary densified to ~0.1 m steps."""
    if isinstance(shape, CircleShape):
        return max(0.0, haversine_m(shape.center, point) - shape.radius_m)
    dense = shapely.segmentize(shapely.boundary(shape.geometry), 1e-6)
    xy = shapely.get_coordinates(dense)
    return min(haversine_m(point, LatLng(lat=y, lon=x)) for x, y in xy)


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(
    shape=st.one_of(polygons(), circles()),
    fs=fractions,
    ds=st.lists(st.floats(-300, 300), min_size=30, max_size=30),
)
def test_nearby_distance_is_zero_inside_and_geodesic_within_half_a_percent_outside(shape, fs, ds):
    index = FenceIndex(10)
    index.add("fence", shape)
    for point in probe_points(shape, fs, ds)[:40]:
        found = {p.fence_id: p for p in index.nearby(point, 500)}
        if truth(shape, point):
            assert found["fence"].inside and found["fence"].distance_m == 0
            continue
        expected = reference_distance_m(shape, point)
        if expected < 499:
            assert not found["fence"].inside
            assert abs(found["fence"].distance_m - expected) <= 0.005 * expected + 0.2, point
        elif expected > 501:
            assert "fence" not in found


@PROPERTY_SETTINGS
@given(a=polygons(), b=circles())
def test_replacing_and_removing_a_fence_leaves_no_trace(a, b):
    index = FenceIndex(10)
    index.add("x", a)
    index.add("x", b)  # replace, no rebuild
    centre = b.center
    assert index.query(centre) == ["x"]
    index.remove("x")
    assert index.query(centre) == []
    assert index.nearby(centre, 5000) == []
    assert len(index) == 0


@PROPERTY_SETTINGS
@given(shapes=st.lists(st.one_of(polygons(), circles()), min_size=1, max_size=6), res=st.sampled_from([9, 10]))
def test_an_index_built_in_bulk_equals_one_built_fence_by_fence(shapes, res):
    """A worker's start builds its index in one go (``replace_all``): every table the same as adding one by one
    (neighbouring fences share cells; the last of a repeated id wins)."""
    fences = [(f"f{i % 4}", shape, None) for i, shape in enumerate(shapes)]
    one_by_one, bulk = FenceIndex(res), FenceIndex(res)
    for fence_id, shape, _ in fences:
        one_by_one.add(fence_id, shape)
    bulk.add("gone", shapes[0])  # replaced whole
    bulk.replace_all(fences)
    assert _contents(bulk) == _contents(one_by_one)


def _contents(index: FenceIndex) -> dict[str, object]:
    """What an index holds, free of slot numbers and order: each fence's shape, cover and box, and every cell
    table as cell -> the set of its live fences."""
    state = index.state()
    contents: dict[str, object] = {
        "fences": {f: (s, c, s.bounds) for f, s, c in zip(state.ids, state.shapes(), state.covers(), strict=True)}
    }
    for name, (keys, positions) in state.tables.items():
        table: dict[int, set[str]] = {}
        for key, position in zip(keys.tolist(), positions.tolist(), strict=True):
            table.setdefault(key, set()).add(state.ids[position])
        contents[name] = table
    return contents


@PROPERTY_SETTINGS
@given(
    shapes=st.lists(st.one_of(polygons(), circles()), min_size=1, max_size=5),
    fs=fractions,
    ds=centimetre_offsets,
    res=st.sampled_from([9, 10]),
)
def test_query_many_gives_the_same_pairs_as_query_point_by_point(shapes, fs, ds, res):
    index = FenceIndex(res)
    for i, shape in enumerate(shapes):
        index.add(f"f{i}", shape)
    points = [p for shape in shapes for p in probe_points(shape, fs, ds)]
    expected = {(i, fence_id) for i, point in enumerate(points) for fence_id in index.query(point)}
    for pack in (True, False):  # the packed tables, and point by point (a small batch, a big index)
        matches = query_many(index, [p.lat for p in points], [p.lon for p in points], pack=pack)
        pairs = {(int(p), matches.fence_ids[int(f)]) for p, f in zip(matches.point, matches.fence, strict=True)}
        assert pairs == expected


def test_a_batch_smaller_than_the_index_is_answered_without_packing_it():
    """Packing decodes every shape: a stream consumer's few pings against a million fences must not pay it."""
    index = FenceIndex(10)
    for i in range(300):
        index.add(f"shop{i:03d}", CircleShape(LatLng(60.17 + i * 0.0005, 24.94), 20.0))
    matches = query_many(index, [60.17, 60.1705, 61.0], [24.94, 24.94, 24.94])
    assert [(int(p), matches.fence_ids[int(f)]) for p, f in zip(matches.point, matches.fence, strict=True)] == [
        (0, "shop000"),
        (1, "shop001"),
    ]
    assert bulk._CACHE.get(index) is None
    query_many(index, np.full(300, 60.17), np.full(300, 24.94))  # as many points as fences: packed
    assert bulk._CACHE.get(index) is not None


@given(lat=st.floats(-89, 89), lon=st.floats(-179.9, 179.9), res=st.integers(5, 15), up=st.integers(0, 5))
def test_vectorised_parents_equal_h3s_own(lat, lon, res, up):
    parent_res = max(0, res - up)
    cell = cells.latlng_to_cell(LatLng(lat, lon), res)
    got = cells.cells_to_parents(np.array([cell], dtype=np.uint64), parent_res)
    assert int(got[0]) == cells.cell_to_parent(cell, parent_res)


def test_query_many_never_answers_from_another_index_packed_earlier():
    kiosk = CircleShape(LatLng(60.17, 24.94), 50.0)
    for res in (9, 10, 11):  # each index is collected before the next is built, as in a benchmark loop
        index = FenceIndex(res)
        index.add(f"kiosk-{res}", kiosk)
        matches = query_many(index, [60.17], [24.94])
        assert [matches.fence_ids[f] for f in matches.fence] == [f"kiosk-{res}"]
        del index


def test_query_many_reads_coarse_interior_cells_and_returns_pairs_in_point_then_fence_order():
    """A park-sized fence is stored as compacted cells several levels coarser than the index (looked up by
    parent), small shops overlap it (one table at the index resolution): every pair found, in order."""
    index = FenceIndex(11)
    index.add("park", CircleShape(LatLng(60.17, 24.94), 3_000.0))
    for i in range(30):
        index.add(f"shop{i:02d}", CircleShape(LatLng(60.17 + (i - 15) * 0.001, 24.94 + (i % 5) * 0.002), 60.0))
    assert any(cells.cell_to_res(c) < 11 - 2 for c in index.cover("park").interior)
    rng = np.random.default_rng(3)
    lats = 60.17 + rng.uniform(-0.035, 0.035, 5_000)
    lons = 24.94 + rng.uniform(-0.06, 0.06, 5_000)
    matches = query_many(index, lats, lons)
    got = [(int(p), matches.fence_ids[int(f)]) for p, f in zip(matches.point, matches.fence, strict=True)]
    expected = [
        (i, fence_id)
        for i in range(len(lats))
        for fence_id in sorted(index.query(LatLng(float(lats[i]), float(lons[i]))), key=matches.fence_ids.index)
    ]
    assert got == expected
    found = {f for _, f in got}
    assert "park" in found and len(found) > 10  # the coarse lookup and the shared table both answered


@given(
    st.floats(-85, 85),
    st.floats(-179, 179),
    st.floats(-85, 85),
    st.floats(-179, 179),
    st.floats(0, 0.05),
    st.floats(0, 0.05),
)
@PROPERTY_SETTINGS
def test_the_one_box_floor_equals_the_vectorised_one(lat, lon, south, west, tall, wide):
    from geofences.shapes import box_distance_floor_m, box_distance_floors_m

    box = (west, south, west + wide, min(south + tall, 89.0))
    one = box_distance_floor_m(LatLng(lat, lon), box)
    many = float(box_distance_floors_m(lat, lon, np.array([box]))[0])
    assert math.isclose(one, many, rel_tol=1e-12, abs_tol=1e-6)


def test_nearby_sees_a_fence_added_after_it_answered_for_the_same_place():
    """``nearby`` remembers candidates per cell; a write must make it look again."""
    index = FenceIndex(10)
    here = LatLng(38.7139, -9.1394)
    index.add("a", CircleShape(LatLng(38.7145, -9.1394), 30))
    assert [p.fence_id for p in index.nearby(here, 50)] == ["a"]
    index.add("b", CircleShape(LatLng(38.7134, -9.1394), 30))
    assert sorted(p.fence_id for p in index.nearby(here, 50)) == ["a", "b"]
    index.remove("a")
    assert [p.fence_id for p in index.nearby(here, 50)] == ["b"]
