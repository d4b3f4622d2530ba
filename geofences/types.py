"""Value types shared by every layer: a named point, so (lat, lon) order never travels as a bare tuple."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LatLng:
    """A WGS84 position in degrees.

    >>> LatLng(lat=38.7118, lon=-9.1300).as_geojson()
    [-9.13, 38.7118]
    """

    lat: float
    lon: float

    def as_geojson(self) -> list[float]:
        return [self.lon, self.lat]
