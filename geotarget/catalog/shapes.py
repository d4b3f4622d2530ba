"""A stored fence's ``geofences`` shape: rebuilt from its GeoJSON without the write-time checks and limits."""

from __future__ import annotations

from geofences import CircleShape, LatLng, Shape
from geofences.shapes import stored_polygon
from geotarget.catalog.model import Fence


def shape_of(fence: Fence) -> Shape:
    """The shape of a stored fence (validated when it was written, so limits are not applied again)."""
    if fence.kind == "circle":
        lon, lat = fence.geometry["coordinates"][:2]
        return CircleShape(LatLng(lat=lat, lon=lon), float(fence.radius_m or 0))
    return stored_polygon(fence.geometry)
