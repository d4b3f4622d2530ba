"""Fence files in and out: every format round-trips, foreign CRSs are reprojected, broken files say so."""

from __future__ import annotations

import io

import geopandas as gpd
import pytest
import shapely

from geofences import FenceError, parse_feature
from geofences.formats import FORMATS, read_features, write_features

BAKERY_IN_KALLIO = {
    "type": "Feature",
    "properties": {"name": "Leipomo Kallio", "tags": ["bakery", "kallio"]},
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [
                [24.9500, 60.1840],
                [24.9508, 60.1840],
                [24.9508, 60.1844],
                [24.9500, 60.1844],
                [24.9500, 60.1840],
            ]
        ],
    },
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_round_trips_name_tags_and_geometry(fmt):
    data = write_features([BAKERY_IN_KALLIO], fmt)
    [back] = read_features(data, f"fences.{ {'shapefile': 'zip'}.get(fmt, fmt) }")
    assert back["properties"]["name"] == "Leipomo Kallio"
    assert back["properties"]["tags"] == ["bakery", "kallio"]
    fence = parse_feature(back)
    original = shapely.geometry.shape(BAKERY_IN_KALLIO["geometry"])
    assert fence.shape.geometry.equals_exact(original, 1e-9) or fence.shape.geometry.equals(original)


def test_the_format_is_sniffed_when_the_file_has_no_name():
    for fmt in FORMATS:
        assert len(read_features(write_features([BAKERY_IN_KALLIO], fmt))) == 1


def test_a_finnish_national_grid_file_is_reprojected_to_wgs84():
    frame = gpd.GeoDataFrame.from_features([BAKERY_IN_KALLIO], crs="EPSG:4326").to_crs(3067)
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    [back] = read_features(buffer.getvalue(), "kallio.parquet")
    lon, lat = back["geometry"]["coordinates"][0][0]
    assert lon == pytest.approx(24.95, abs=1e-6) and lat == pytest.approx(60.184, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "data"), [("x.zip", b"PK\x03\x04garbage"), ("x.geojson", b"{not json"), ("x.bin", b"\x00\x01")]
)
def test_a_broken_file_is_a_fence_error(name, data):
    with pytest.raises(FenceError):
        read_features(data, name)
