"""Named literal fences used across the API tests."""

from __future__ import annotations

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
