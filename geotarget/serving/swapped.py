"""A ping near no fence whose coordinates, swapped, fall near one: most likely an app that sent lat and lon the
wrong way round (GeoJSON and many map libraries order them longitude first). Checked only for an empty answer,
the swapped point first: it lies in open sea or desert for almost every real ping, where the index finds
nothing at once."""

from __future__ import annotations

from geofences import FenceIndex, LatLng

SWAP_REACH_M = 2_000.0  # "near": a fence within this distance


def swapped_hint(index: FenceIndex, point: LatLng) -> str | None:
    """What to tell the app, or None when the point is not suspicious."""
    if abs(point.lon) > 90 or point.lat == point.lon:
        return None  # swapped, it would not be a place (or would be the same one)
    swapped = LatLng(lat=point.lon, lon=point.lat)
    if not index.nearby(swapped, SWAP_REACH_M) or index.nearby(point, SWAP_REACH_M):
        return None
    return (
        f"no fence lies within {SWAP_REACH_M:,.0f} m of lat={point.lat}, lon={point.lon}, but some lie near "
        f"lat={swapped.lat}, lon={swapped.lon}: are lat and lon swapped?"
    )
