"""Domain fences and cells as the GeoJSON the API shows: the one place a ``Fence`` becomes a Feature."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from geofences import cells
from geotarget.catalog.fences import FenceCells, FenceView
from geotarget.catalog.model import iso_utc


def feature_of(view: FenceView) -> dict[str, Any]:
    """The Feature of a stored fence; its id is ``Feature.id``, the merchant's own properties come first."""
    fence = view.fence
    properties: dict[str, Any] = {
        **fence.properties,
        "name": fence.name,
        "tags": list(fence.tags),
        "timezone": fence.timezone,
        "area_m2": round(fence.area_m2, 1),
        "version": fence.version,
        "created_at": iso_utc(fence.created_at),
        "updated_at": iso_utc(fence.updated_at),
    }
    if fence.radius_m is not None:
        properties["radius_m"] = fence.radius_m
    if fence.external_id is not None:
        properties["external_id"] = fence.external_id
    if view.h3 is not None:
        properties["h3"] = asdict(view.h3)
    if view.repaired:
        properties["repaired"] = view.repaired
    feature: dict[str, Any] = {"type": "Feature", "id": fence.id, "geometry": fence.geometry, "properties": properties}
    if view.warnings:
        feature["warnings"] = [asdict(w) for w in view.warnings]
    return feature


def collection_of(views: list[FenceView]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [feature_of(v) for v in views]}


def cells_collection(found: FenceCells) -> dict[str, Any]:
    """Each cell a Polygon Feature marked ``interior`` (no geometry test needed) or ``boundary``."""
    features = [
        {
            "type": "Feature",
            "id": cells.cell_to_str(cell),
            "geometry": cells.cell_to_geojson(cell),
            "properties": {"cell": cells.cell_to_str(cell), "kind": kind, "res": found.res},
        }
        for kind, group in (("interior", found.interior), ("boundary", found.boundary))
        for cell in group
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": {"fence_id": found.fence_id, "res": found.res},
    }
