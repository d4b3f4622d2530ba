"""Where: fence geometry, validation, the H3 fence index and geospatial file formats.

This package is pure: it never talks to Redis, SQL or HTTP, and it never imports ``geotarget`` or ``api``.
Only ``cells`` imports h3 and only ``shapes`` imports shapely, so each coordinate order is converted in one place.
"""

from geofences.errors import FenceError
from geofences.index import Cover, FenceIndex, Proximity
from geofences.shapes import CircleShape, PolygonShape, Shape
from geofences.types import LatLng
from geofences.validate import FenceLimits, ValidFence, parse_feature, parse_geometry

__all__ = [
    "CircleShape",
    "Cover",
    "FenceError",
    "FenceIndex",
    "FenceLimits",
    "LatLng",
    "PolygonShape",
    "Proximity",
    "Shape",
    "ValidFence",
    "parse_feature",
    "parse_geometry",
]
