"""A stored fence's ``geofences`` shape: rebuilt from its GeoJSON without the write-time limits."""

from __future__ import annotations

from geofences import CircleShape, FenceLimits, LatLng, Shape, parse_geometry
from geotarget.catalog.model import Fence

_TRUSTED = FenceLimits(
    max_vertices=10**9, max_area_m2=float("inf"), max_radius_m=float("inf"), min_radius_m=0, max_cover_cells=None
)


def shape_of(fence: Fence) -> Shape:
    """The shape of a stored fence (validated when it was written, so limits are not applied again)."""
    if fence.kind == "circle":
        lon, lat = fence.geometry["coordinates"][:2]
        return CircleShape(LatLng(lat=lat, lon=lon), float(fence.radius_m or 0))
    shape, _ = parse_geometry(fence.geometry, None, _TRUSTED)
    return shape
