"""A reach cover must hold every point within ``nearby_m`` of its fence (by the fence's own distance), at any
latitude and reach: hypothesis looks for a point just inside the reach whose cell the cover lacks."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from geofences import CircleShape, LatLng, PolygonShape, cells
from geofences.reach import reach_bounds, reach_cover
from tests.test_fence_index_properties import PROPERTY_SETTINGS, latitudes, longitudes, polygons, star_ring

reaches = st.one_of(st.floats(1, 300), st.floats(300, 5000))
bearings = st.floats(0, 2 * math.pi)


def just_within(shape: CircleShape | PolygonShape, metres: float, bearing: float) -> LatLng | None:
    """A point in direction ``bearing`` from the fence, as far out as the reach allows (bisection on the
    fence's own distance)."""
    west, south, east, north = shape.bounds
    centre = LatLng((south + north) / 2, (west + east) / 2)
    k = math.cos(math.radians(centre.lat))

    def at(m: float) -> LatLng:
        return LatLng(centre.lat + m * math.sin(bearing) / 111_195, centre.lon + m * math.cos(bearing) / (111_195 * k))

    low, high = 0.0, 20_000.0
    for _ in range(60):
        mid = (low + high) / 2
        if shape.distance_m(at(mid)) <= metres:
            low = mid
        else:
            high = mid
    point = at(low)
    return point if shape.distance_m(point) <= metres and abs(point.lon) < 180 else None


def assert_within_reach(shape: CircleShape | PolygonShape, metres: float, point: LatLng | None) -> None:
    if point is None:
        return
    west, south, east, north = reach_bounds(shape, metres)
    assert west <= point.lon <= east and south <= point.lat <= north
    cover = set(reach_cover(shape, metres, 10))
    assert cells.latlng_to_cell(point, cells.cell_to_res(next(iter(cover)))) in cover


@PROPERTY_SETTINGS
@given(polygons(), reaches, bearings)
def test_polygon_reach_holds_every_point_within_reach(shape: PolygonShape, metres: float, bearing: float) -> None:
    point = just_within(shape, metres, bearing)
    assert_within_reach(shape, metres, point)


@PROPERTY_SETTINGS
@given(latitudes, longitudes, st.floats(5, 400), reaches, bearings)
def test_circle_reach_holds_every_point_within_reach(
    lat: float, lon: float, radius: float, metres: float, bearing: float
) -> None:
    shape = CircleShape(LatLng(lat, lon), radius)
    point = just_within(shape, metres, bearing)
    assert_within_reach(shape, metres, point)


def test_a_reach_cover_is_a_few_cells_whatever_the_reach() -> None:
    shop = PolygonShape(__import__("shapely").Polygon(star_ring(38.71, -9.14, [30, 40, 30, 40], 0.3)))
    for metres in (10, 200, 1000, 5000):
        assert len(reach_cover(shop, metres, 10)) <= 100
