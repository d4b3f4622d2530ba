"""Every rejection rule of a fence, each with a message that names the problem and a field that points at it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofences import FenceError, FenceLimits, parse_feature

ALFAMA_CAFE = [
    [-9.1305, 38.7110],
    [-9.1298, 38.7110],
    [-9.1298, 38.7115],
    [-9.1305, 38.7115],
    [-9.1305, 38.7110],
]


def feature(geometry: dict, **properties) -> dict:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def polygon(*rings) -> dict:
    return {"type": "Polygon", "coordinates": [list(r) for r in rings]}


def square(lon: float, lat: float, side_deg: float) -> list[list[float]]:
    return [
        [lon, lat],
        [lon + side_deg, lat],
        [lon + side_deg, lat + side_deg],
        [lon, lat + side_deg],
        [lon, lat],
    ]


def test_a_cafe_in_alfama_is_a_valid_polygon_fence():
    fence = parse_feature(feature(polygon(ALFAMA_CAFE), name="Café Alfama", tags=["cafe"]))
    assert fence.shape.kind == "polygon"
    assert fence.name == "Café Alfama"
    assert fence.tags == ("cafe",)
    assert 3_000 < fence.shape.area_m2 < 4_000


def test_a_kiosk_circle_needs_a_radius_between_5_m_and_5_km():
    fence = parse_feature(feature({"type": "Point", "coordinates": [24.94, 60.17]}, radius_m=40))
    assert fence.shape.kind == "circle"


BOW_TIE = [[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]


@pytest.mark.parametrize(
    ("geometry", "properties", "code", "field", "words"),
    [
        (None, {}, "missing_geometry", "geometry", "needs a geometry"),
        (
            {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
            {},
            "unsupported_geometry",
            "geometry.type",
            "LineString",
        ),
        (
            polygon([[0, 0], [1, 0], [float("nan"), 1], [0, 0]]),
            {},
            "not_finite",
            "geometry.coordinates[0][2]",
            "NaN",
        ),
        (
            polygon([[0, 0], [1, 0], [float("inf"), 1], [0, 0]]),
            {},
            "not_finite",
            "geometry.coordinates[0][2]",
            "finite",
        ),
        (
            polygon([[38.71, -9.13], [38.72, -9.13], [38.72, 181.0], [38.71, -9.13]]),
            {},
            "out_of_range",
            "geometry.coordinates[0][2]",
            "outside the world",
        ),
        (
            polygon([[10.0, 95.0], [10.1, 95.0], [10.1, 95.1], [10.0, 95.0]]),
            {},
            "out_of_range",
            "geometry.coordinates[0][0]",
            "looks like [lat, lon]",
        ),
        (polygon([[0, 0], [1, 0], [0, 0]]), {}, "ring_too_short", "geometry.coordinates[0]", "at least 4"),
        (
            polygon([[0, 0], [0.001, 0], [0.001, 0.001], [0, 0.001]]),
            {},
            "ring_not_closed",
            "geometry.coordinates[0][3]",
            "not closed",
        ),
        (
            polygon([[179.999, 0], [-179.999, 0], [-179.999, 0.001], [179.999, 0.001], [179.999, 0]]),
            {},
            "crosses_antimeridian",
            "geometry.coordinates[0][1]",
            "antimeridian",
        ),
        (
            polygon([[x / 1000, y / 1000] for x, y in BOW_TIE]),
            {},
            "invalid_geometry",
            "geometry.coordinates[0]",
            "ring 0 intersects itself near [0.0005, 0.0005]",
        ),
        (
            polygon(square(0, 0, 0.001), square(0.002, 0.002, 0.0001)),
            {},
            "invalid_geometry",
            "geometry.coordinates",
            "Hole lies outside shell",
        ),
        (polygon(square(0, 0, 0.45)), {}, "area_too_large", "geometry", "above the maximum of 25,000,000 m²"),
        (
            {"type": "Point", "coordinates": [24.94, 60.17]},
            {},
            "missing_radius",
            "properties.radius_m",
            "radius_m",
        ),
        (
            {"type": "Point", "coordinates": [24.94, 60.17]},
            {"radius_m": 2},
            "radius_out_of_range",
            "properties.radius_m",
            "between 5 and 5000",
        ),
        (
            {"type": "Point", "coordinates": [24.94, 60.17]},
            {"radius_m": 4000},
            "area_too_large",
            "properties.radius_m",
            "maximum",
        ),
        (
            {"type": "Point", "coordinates": [179.9999, 0]},
            {"radius_m": 100},
            "crosses_antimeridian",
            "geometry.coordinates",
            "antimeridian",
        ),
        (polygon(ALFAMA_CAFE), {"name": 7}, "bad_name", "properties.name", "string"),
        (polygon(ALFAMA_CAFE), {"tags": "cafe"}, "bad_tags", "properties.tags", "list"),
    ],
)
def test_bad_fences_are_rejected_with_a_precise_message(geometry, properties, code, field, words):
    with pytest.raises(FenceError) as caught:
        parse_feature(feature(geometry, **properties))
    assert caught.value.code == code
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_multipolygon_error_names_the_polygon_and_ring():
    geometry = {
        "type": "MultiPolygon",
        "coordinates": [[ALFAMA_CAFE], [[[x / 1000, y / 1000] for x, y in BOW_TIE]]],
    }
    with pytest.raises(FenceError) as caught:
        parse_feature(feature(geometry))
    assert caught.value.field == "geometry.coordinates[1][0]"
    assert "ring 0 of polygon 1" in caught.value.message


def test_repair_fixes_a_bow_tie_and_says_so():
    bow_tie = polygon([[x / 1000, y / 1000] for x, y in BOW_TIE])
    fence = parse_feature(feature(bow_tie), repair=True)
    assert fence.repaired is not None and "make_valid" in fence.repaired
    assert fence.shape.kind == "polygon"


def test_a_100k_vertex_ring_is_refused_fast_before_any_geometry_work():
    n = 100_000
    ring = [
        [24.9 + 0.01 * math.cos(2 * math.pi * i / n), 60.1 + 0.01 * math.sin(2 * math.pi * i / n)] for i in range(n)
    ]
    ring[-1] = ["not", "a position"]  # a ring that was parsed would be refused for this instead
    with pytest.raises(FenceError) as caught:
        parse_feature(feature(polygon(ring)))
    assert caught.value.code == "too_many_vertices"
    assert "10,000" in caught.value.message


def test_a_50_km_square_is_refused_by_area_before_any_h3_work():
    limits = FenceLimits(cover_res=15, max_cover_cells=None)  # covering it would take ~10^11 cells: hours
    with pytest.raises(FenceError) as caught:
        parse_feature(feature(polygon(square(24.5, 60.0, 0.9))), limits)
    assert caught.value.code == "area_too_large"


def test_the_area_limit_is_a_setting():
    with pytest.raises(FenceError):
        parse_feature(feature(polygon(ALFAMA_CAFE)), FenceLimits(max_area_m2=1_000))


json_numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1000, 1000))
hostile_positions = st.lists(st.lists(json_numbers, min_size=0, max_size=4), min_size=0, max_size=12)


@settings(max_examples=300, deadline=None)
@given(ring=hostile_positions, close=st.booleans(), kind=st.sampled_from(["Polygon", "Point", "MultiPolygon"]))
def test_hostile_geometry_is_either_a_fence_or_a_fence_error(ring, close, kind):
    if close and ring:
        ring = [*ring, ring[0]]
    coordinates = {"Polygon": [ring], "MultiPolygon": [[ring]], "Point": ring[0] if ring else []}[kind]
    try:
        parse_feature(feature({"type": kind, "coordinates": coordinates}, radius_m=50))
    except FenceError as error:
        assert error.message and error.code
