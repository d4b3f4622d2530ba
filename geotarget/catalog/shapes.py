"""From stored rows back to ``geofences`` shapes, and from shapes to the Feature the API shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from geofences import CircleShape, FenceLimits, LatLng, Shape, parse_geometry
from geotarget.store.models import Geofence

_TRUSTED = FenceLimits(
    max_vertices=10**9, max_area_m2=float("inf"), max_radius_m=float("inf"), min_radius_m=0, max_cover_cells=None
)


def shape_of(row: Geofence) -> Shape:
    """The shape of a stored fence (already validated when it was written, so limits are not re-applied)."""
    if row.kind == "circle":
        lon, lat = row.geometry["coordinates"][:2]
        return CircleShape(LatLng(lat=lat, lon=lon), float(row.radius_m or 0))
    shape, _ = parse_geometry(row.geometry, None, _TRUSTED)
    return shape


def feature_of(row: Geofence, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The GeoJSON Feature for a stored fence; the id lives in ``Feature.id``."""
    properties: dict[str, Any] = {
        **(row.properties or {}),
        "name": row.name,
        "tags": list(row.tags or []),
        "timezone": row.timezone,
        "area_m2": round(row.area_m2, 1),
        "version": row.version,
        "created_at": iso_utc(row.created_at),
        "updated_at": iso_utc(row.updated_at),
    }
    if row.radius_m is not None:
        properties["radius_m"] = row.radius_m
    if extra:
        properties.update(extra)
    return {"type": "Feature", "id": row.id, "geometry": row.geometry, "properties": properties}


def iso_utc(moment: datetime) -> str:
    """ISO 8601 with ``Z``; SQLite hands timestamps back without a zone, and they were written in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plain_geometry(geometry: dict[str, Any]) -> dict[str, Any]:
    """A JSON round trip: tuples to lists, numpy floats to floats, so the stored document is plain JSON."""
    parsed: dict[str, Any] = orjson.loads(orjson.dumps(geometry, option=orjson.OPT_SERIALIZE_NUMPY))
    return parsed
