"""Turn submitted GeoJSON into a fence shape, or say precisely why not.

Rules run cheapest first, so hostile input is refused before any expensive work: structure, property size and
depth, numbers, coordinate ranges, vertex count, antimeridian, ring closure, self-intersection and validity, then
area and the cell budget. Both come before any H3 work (the index only ever sees shapes that passed here): the
budget prices a shape by its outline as well as its area, so a 20°-long strip of a few square metres is refused
as what it would cost to cover, not waved through for what it encloses.

Every rejection is a ``FenceError`` whose ``field`` is a JSON path such as ``geometry.coordinates[0][1][4]``
(polygon 0 of a MultiPolygon, ring 1, vertex 4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from geofences.cells import estimate_cover_cells
from geofences.errors import FenceError
from geofences.shapes import (
    CircleShape,
    PolygonShape,
    Position,
    Shape,
    make_valid_polygonal,
    polygon_from_parts,
    ring_self_intersection,
    validity_problem,
)
from geofences.types import LatLng

__all__ = ["FenceLimits", "ValidFence", "parse_feature", "parse_geometry"]


@dataclass(frozen=True)
class FenceLimits:
    max_vertices: int = 10_000
    max_area_m2: float = 25_000_000.0
    min_radius_m: float = 5.0
    max_radius_m: float = 5_000.0
    max_name_length: int = 200
    max_tags: int = 50
    max_tag_length: int = 100
    max_properties_bytes: int = 16 * 1024
    max_properties_depth: int = 8
    cover_res: int = 10
    max_cover_cells: int | None = 10_000  # None: stored fences, already checked when they were written


PURPOSES = ("serve", "audience")


@dataclass(frozen=True)
class ValidFence:
    shape: Shape
    name: str
    tags: tuple[str, ...]
    timezone: str | None
    repaired: str | None
    properties: dict[str, Any]
    external_id: str | None = None  # the merchant's own id for the store: a re-import finds it by this


MAX_EXTERNAL_ID_LENGTH = 128


def parse_feature(
    feature: Any, limits: FenceLimits | None = None, *, repair: bool = False, path: str = ""
) -> ValidFence:
    """Validate a GeoJSON Feature (Polygon, MultiPolygon, or Point with ``properties.radius_m``).

    >>> f = parse_feature({"type": "Feature", "properties": {"name": "Kiosk", "radius_m": 30},
    ...                    "geometry": {"type": "Point", "coordinates": [24.94, 60.17]}})
    >>> f.shape.kind, f.name
    ('circle', 'Kiosk')
    """
    limits = limits or FenceLimits()
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        raise FenceError("not_a_feature", "expected a GeoJSON Feature object", path.rstrip(".") or None)
    properties = feature.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise FenceError("bad_properties", "properties must be an object", f"{path}properties")
    _check_size(properties, limits, f"{path}properties")
    name = properties.get("name", "")
    if not isinstance(name, str) or len(name) > limits.max_name_length:
        raise FenceError(
            "bad_name",
            f"name must be a string of at most {limits.max_name_length} characters",
            f"{path}properties.name",
        )
    tags = properties.get("tags", [])
    if (
        not isinstance(tags, list)
        or len(tags) > limits.max_tags
        or not all(isinstance(t, str) and len(t) <= limits.max_tag_length for t in tags)
    ):
        raise FenceError(
            "bad_tags",
            f"tags must be a list of at most {limits.max_tags} strings of at most {limits.max_tag_length} characters",
            f"{path}properties.tags",
        )
    timezone = properties.get("timezone")
    if timezone is not None and not isinstance(timezone, str):
        raise FenceError(
            "bad_timezone",
            "timezone must be an IANA name such as Europe/Lisbon",
            f"{path}properties.timezone",
        )
    purpose = properties.get("purpose", "serve")
    if purpose not in PURPOSES:
        raise FenceError(
            "bad_purpose",
            "purpose must be 'serve' (offers are shown in it) or 'audience' (it only feeds audiences)",
            f"{path}properties.purpose",
        )
    external_id = properties.get("external_id")
    if external_id is not None and (
        not isinstance(external_id, str)
        or not 1 <= len(external_id) <= MAX_EXTERNAL_ID_LENGTH
        or not external_id.isprintable()
    ):
        raise FenceError(
            "bad_external_id",
            f"external_id must be a printable string of 1 to {MAX_EXTERNAL_ID_LENGTH} characters (your id for it)",
            f"{path}properties.external_id",
        )
    shape, repaired = parse_geometry(
        feature.get("geometry"), properties.get("radius_m"), limits, repair=repair, path=f"{path}geometry"
    )
    return ValidFence(shape, name, tuple(tags), timezone, repaired, dict(properties), external_id)


def _check_size(properties: Mapping[str, Any], limits: FenceLimits, field: str) -> None:
    """Bounded depth (walked without recursion) and bounded size: every list call returns these."""
    stack: list[tuple[Any, int]] = [(properties, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limits.max_properties_depth:
            raise FenceError(
                "properties_too_deep", f"properties nest deeper than {limits.max_properties_depth} levels", field
            )
        if isinstance(value, Mapping):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)
    try:
        size = len(orjson.dumps(properties, option=orjson.OPT_NON_STR_KEYS))
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise FenceError("bad_properties", f"properties must be plain JSON values ({exc})", field) from None
    if size > limits.max_properties_bytes:
        raise FenceError(
            "properties_too_large",
            f"properties take {size:,} bytes as JSON; at most {limits.max_properties_bytes:,}",
            field,
        )


def parse_geometry(
    geometry: Any, radius_m: Any, limits: FenceLimits, *, repair: bool = False, path: str = "geometry"
) -> tuple[Shape, str | None]:
    """Validate a geometry; returns the shape and, when ``repair`` changed it, a note saying how."""
    if not isinstance(geometry, Mapping):
        raise FenceError("missing_geometry", "a fence needs a geometry object", path)
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind == "Point":
        return _circle(coordinates, radius_m, limits, path), None
    if kind == "Polygon":
        parts = [_rings(coordinates, f"{path}.coordinates", _Counter(limits.max_vertices))]
        return _polygon(parts, limits, repair, path, multi=False)
    if kind == "MultiPolygon":
        if not isinstance(coordinates, list) or not coordinates:
            raise FenceError(
                "bad_coordinates", "a MultiPolygon needs a non-empty list of polygons", f"{path}.coordinates"
            )
        counter = _Counter(limits.max_vertices)
        parts = [_rings(p, f"{path}.coordinates[{i}]", counter) for i, p in enumerate(coordinates)]
        return _polygon(parts, limits, repair, path, multi=True)
    raise FenceError(
        "unsupported_geometry",
        f"geometry type {kind!r} cannot be a fence: use Polygon, MultiPolygon, or Point with properties.radius_m",
        f"{path}.type",
    )


class _Counter:
    """Counts vertices while parsing, so a 100k-vertex ring is refused before it is even fully read."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0

    def add(self, n: int, field: str) -> None:
        self.seen += n
        if self.seen > self.limit:
            raise FenceError(
                "too_many_vertices",
                f"the fence has more than {self.limit:,} vertices; simplify it first",
                field,
            )


def _position(value: Any, field: str) -> Position:
    if (
        not isinstance(value, list | tuple)
        or len(value) not in (2, 3)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise FenceError("bad_position", "a position must be [lon, lat] (numbers)", field)
    if any(isinstance(v, int) and abs(v) > 360 for v in value[:2]):  # also too large for a float
        raise FenceError("out_of_range", "a position is outside the world: lon within ±180, lat within ±90", field)
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise FenceError("not_finite", "coordinates must be finite numbers (no NaN or Infinity)", field)
    if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 180.0:
        hint = ""
        if abs(lat) > 90.0 and abs(lon) <= 90.0:
            hint = f"; it looks like [lat, lon] — GeoJSON order is [lon, lat], did you mean [{lat}, {lon}]?"
        raise FenceError(
            "out_of_range",
            f"[{lon}, {lat}] is outside the world: lon must be within ±180 and lat within ±90{hint}",
            field,
        )
    return (lon, lat)


def _rings(polygon: Any, field: str, counter: _Counter) -> list[list[Position]]:
    if not isinstance(polygon, list) or not polygon:
        raise FenceError("bad_coordinates", "a polygon needs a list of rings (outer ring first)", field)
    rings: list[list[Position]] = []
    for r, raw_ring in enumerate(polygon):
        ring_field = f"{field}[{r}]"
        if not isinstance(raw_ring, list):
            raise FenceError("bad_coordinates", "a ring must be a list of positions", ring_field)
        counter.add(len(raw_ring), ring_field)
        ring = [_position(v, f"{ring_field}[{i}]") for i, v in enumerate(raw_ring)]
        if len(ring) < 4:
            raise FenceError(
                "ring_too_short",
                f"ring {r} has {len(ring)} positions; a closed ring needs at least 4",
                ring_field,
            )
        if ring[0] != ring[-1]:
            raise FenceError(
                "ring_not_closed",
                f"ring {r} is not closed: its last position {list(ring[-1])} must repeat the first {list(ring[0])}",
                f"{ring_field}[{len(ring) - 1}]",
            )
        for i in range(1, len(ring)):
            if abs(ring[i][0] - ring[i - 1][0]) > 180.0:
                raise FenceError(
                    "crosses_antimeridian",
                    f"ring {r} crosses the antimeridian between vertices {i - 1} and {i}; "
                    "split the fence into one polygon on each side of ±180°",
                    f"{ring_field}[{i}]",
                )
        rings.append(ring)
    return rings


def _polygon(
    parts: list[list[list[Position]]], limits: FenceLimits, repair: bool, path: str, *, multi: bool
) -> tuple[Shape, str | None]:
    repaired: str | None = None
    crossing = _first_self_intersection(parts, path, multi)
    geometry = polygon_from_parts(parts)
    problem = validity_problem(geometry)
    if crossing or problem:
        message, field = crossing or (f"invalid geometry: {problem}", f"{path}.coordinates")
        if not repair:
            raise FenceError("invalid_geometry", f"{message} (send ?repair=true to fix it with make_valid)", field)
        fixed = make_valid_polygonal(geometry)
        if fixed is None:
            raise FenceError("invalid_geometry", f"{message}, and repairing it leaves no area", field)
        parts_after = len(getattr(fixed, "geoms", [fixed]))
        repaired = f"{message}; repaired with make_valid into {parts_after} polygon(s)"
        geometry = fixed
    shape = PolygonShape(geometry)
    if math.isfinite(limits.max_area_m2) and shape.area_m2 > limits.max_area_m2:
        raise FenceError(
            "area_too_large",
            f"the fence covers {shape.area_m2:,.0f} m², above the maximum of {limits.max_area_m2:,.0f} m²",
            path,
        )
    _check_cell_budget(shape, limits, path)
    return shape, repaired


def _check_cell_budget(shape: Shape, limits: FenceLimits, path: str) -> None:
    if limits.max_cover_cells is None:
        return
    cells = estimate_cover_cells(shape.area_m2, shape.perimeter_m, limits.cover_res)
    if cells > limits.max_cover_cells:
        raise FenceError(
            "too_many_cells",
            f"the fence's outline is {shape.perimeter_m / 1000:,.1f} km long: covering it would take about "
            f"{cells:,} H3 cells at resolution {limits.cover_res}, above the maximum of {limits.max_cover_cells:,}; "
            "draw a more compact shape or split it",
            path,
        )


def _first_self_intersection(parts: list[list[list[Position]]], path: str, multi: bool) -> tuple[str, str] | None:
    for p, rings in enumerate(parts):
        for r, ring in enumerate(rings):
            where = ring_self_intersection(ring)
            if where is not None:
                prefix = f"{path}.coordinates[{p}]" if multi else f"{path}.coordinates"
                label = f"ring {r}" + (f" of polygon {p}" if multi else "")
                return f"{label} intersects itself near [{where[0]}, {where[1]}]", f"{prefix}[{r}]"
    return None


def _circle(coordinates: Any, radius_m: Any, limits: FenceLimits, path: str) -> CircleShape:
    lon, lat = _position(coordinates, f"{path}.coordinates")
    radius_field = f"{path.removesuffix('geometry')}properties.radius_m"  # a bulk row's own path, as for its name
    if radius_m is None:
        raise FenceError("missing_radius", "a Point fence needs properties.radius_m (metres)", radius_field)
    if isinstance(radius_m, bool) or not isinstance(radius_m, int | float) or not math.isfinite(radius_m):
        raise FenceError("bad_radius", "radius_m must be a number of metres", radius_field)
    if not limits.min_radius_m <= radius_m <= limits.max_radius_m:
        raise FenceError(
            "radius_out_of_range",
            f"radius_m is {radius_m}; it must be between {limits.min_radius_m:g} and {limits.max_radius_m:g} m",
            radius_field,
        )
    circle = CircleShape(LatLng(lat=lat, lon=lon), float(radius_m))
    west, south, east, north = circle.bounds
    if west < -180.0 or east > 180.0:
        raise FenceError("crosses_antimeridian", "the circle crosses the antimeridian", f"{path}.coordinates")
    if south < -90.0 or north > 90.0:
        raise FenceError("covers_pole", "the circle reaches over a pole", f"{path}.coordinates")
    if circle.area_m2 > limits.max_area_m2:
        raise FenceError(
            "area_too_large",
            f"the circle covers {circle.area_m2:,.0f} m², above the maximum of {limits.max_area_m2:,.0f} m²",
            radius_field,
        )
    _check_cell_budget(circle, limits, path)
    return circle
