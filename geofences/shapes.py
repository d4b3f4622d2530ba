"""Fence shapes and the exact answers about them: membership, distance, area, and how a cell relates to a fence.

The only module that imports shapely. Membership is the contract of the whole product:

- a polygon covers a point iff ``shapely.covers(geometry, Point(lon, lat))`` (planar in degrees, boundary inside);
- a circle covers a point iff the great-circle distance to its centre is at most ``radius_m``.

Cell classification is conservative: a cell outline is grown by ``CELL_MARGIN_M`` before it is compared with a
fence, which absorbs the millimetre difference between H3's geodesic cell edges and straight edges in degrees.
A cell may therefore be called *boundary* when it is in fact interior (a little slower), never the reverse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod
from shapely import affinity
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geofences.types import LatLng

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180
CELL_MARGIN_M = 0.5
OUTSIDE, BOUNDARY, INTERIOR = 0, 1, 2
_GEOD = Geod(ellps="WGS84")

__all__ = [
    "BOUNDARY",
    "INTERIOR",
    "OUTSIDE",
    "CircleShape",
    "PolygonShape",
    "Shape",
    "ShapeArrays",
    "box_distance_floor_m",
    "box_distance_floors_m",
    "degrees_around",
    "geodesic_area_m2",
    "haversine_m",
    "haversines_m",
    "make_valid_polygonal",
    "moved",
    "polygon_from_parts",
    "ring_self_intersection",
    "stored_polygon",
    "validity_problem",
]

Position = tuple[float, float]  # (lon, lat), GeoJSON order, only inside this module and validate
FloatArray = npt.NDArray[np.float64]


def haversine_m(a: LatLng, b: LatLng) -> float:
    """Great-circle distance in metres on the mean-radius sphere (the circle-fence rule).

    >>> round(haversine_m(LatLng(60.0, 25.0), LatLng(60.0, 25.001)), 2)
    55.6
    """
    phi0, phi = math.radians(a.lat), math.radians(b.lat)
    h = (
        math.sin((phi - phi0) / 2) ** 2
        + math.cos(phi0) * math.cos(phi) * math.sin(math.radians(b.lon - a.lon) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(max(h, 0.0), 1.0)))


def box_distance_floor_m(point: LatLng, bounds: tuple[float, float, float, float]) -> float:
    """A lower bound of the distance from ``point`` to anything inside ``bounds`` (min_lon, min_lat, max_lon,
    max_lat): cheap, for discarding far fences before the exact distance. The formula of
    ``box_distance_floors_m`` in plain floats: for one box that is ten times faster than numpy."""
    west, south, east, north = bounds
    lat, lon = point.lat, point.lon
    dlat = max(south - lat, 0.0, lat - north)
    dlon = max(west - lon, 0.0, lon - east)
    widest = min(max(abs(south), abs(north), abs(lat)), 90.0)
    return 0.99 * METRES_PER_DEGREE * math.hypot(dlat, dlon * math.cos(math.radians(widest)))


def box_distance_floors_m(lat: float, lon: float, bounds: FloatArray) -> FloatArray:
    """``box_distance_floor_m`` from one point to many boxes (rows of ``bounds``). It measures longitude at the
    highest latitude involved (where degrees are shortest) and keeps a 1 % margin for the sphere."""
    west, south, east, north = bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3]
    dlat = np.maximum(np.maximum(south - lat, 0.0), lat - north)
    dlon = np.maximum(np.maximum(west - lon, 0.0), lon - east)
    widest = np.minimum(np.maximum(np.maximum(np.abs(south), np.abs(north)), abs(lat)), 90.0)
    return 0.99 * METRES_PER_DEGREE * np.hypot(dlat, dlon * np.cos(np.radians(widest)))  # type: ignore[no-any-return]


def haversines_m(lat0: Any, lon0: Any, lats: Any, lons: Any) -> Any:
    """``haversine_m`` over arrays: from one centre to many points, or pair by pair (numpy broadcasting)."""
    phi0, phi = np.radians(lat0), np.radians(lats)
    dlmb = np.radians(lons) - np.radians(lon0)
    h = np.sin((phi - phi0) / 2) ** 2 + np.cos(phi0) * np.cos(phi) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def degrees_around(abs_lat: float, metres: float) -> tuple[float, float]:
    """(latitude, longitude) degrees that span at least ``metres`` at latitudes up to ``abs_lat``."""
    return metres / METRES_PER_DEGREE, _lon_margin_deg(metres, abs_lat)


def moved(point: LatLng, north_m: float, east_m: float) -> LatLng:
    """``point`` moved by a few metres (a local flat approximation, fine below a few kilometres).

    >>> moved(LatLng(0.0, 0.0), 111.19508, 0.0).lat
    0.001
    """
    lat = point.lat + north_m / METRES_PER_DEGREE
    return LatLng(round(lat, 9), round(point.lon + east_m / (METRES_PER_DEGREE * math.cos(math.radians(point.lat))), 9))


def _ring_arrays(rings: Sequence[Sequence[LatLng]]) -> tuple[FloatArray, FloatArray, npt.NDArray[np.intp]]:
    """Every vertex of every ring as flat latitude and longitude arrays, and the ring each one belongs to."""
    counts = [len(ring) for ring in rings]
    total = sum(counts)
    lats = np.fromiter((p.lat for ring in rings for p in ring), dtype=np.float64, count=total)
    lons = np.fromiter((p.lon for ring in rings for p in ring), dtype=np.float64, count=total)
    return lats, lons, np.repeat(np.arange(len(rings)), counts)


def _polygons(xs: FloatArray, ys: FloatArray, ring_of: npt.NDArray[np.intp]) -> npt.NDArray[np.object_]:
    """One polygon per ring, made in one vectorised call (a shapely.Polygon per cell cost 45 us each)."""
    return shapely.polygons(shapely.linearrings(np.column_stack((xs, ys)), indices=ring_of))  # type: ignore[no-any-return]


def _cell_polygons(rings: Sequence[Sequence[LatLng]], margin_deg: float) -> npt.NDArray[np.object_]:
    lats, lons, ring_of = _ring_arrays(rings)
    return shapely.buffer(_polygons(lons, lats, ring_of), margin_deg, quad_segs=2)  # type: ignore[no-any-return]


def _lon_margin_deg(margin_m: float, max_abs_lat: float) -> float:
    """Degrees that are at least ``margin_m`` along both axes at latitudes up to ``max_abs_lat``."""
    return margin_m / (METRES_PER_DEGREE * max(math.cos(math.radians(min(max_abs_lat, 89.9))), 1e-3))


@dataclass(frozen=True, eq=False)
class PolygonShape:
    """A valid Polygon or MultiPolygon in (lon, lat) degrees, prepared for repeated point tests."""

    geometry: BaseGeometry
    kind: str = field(default="polygon", init=False)

    def __post_init__(self) -> None:
        shapely.prepare(self.geometry)

    def __reduce__(self) -> tuple[type[PolygonShape], tuple[BaseGeometry]]:
        """Pickled as its geometry, so a copy from a worker process is prepared again on arrival."""
        return (PolygonShape, (self.geometry,))

    def covers(self, point: LatLng) -> bool:
        # For a point, covers == intersects; intersects_xy avoids building a Point.
        return bool(shapely.intersects_xy(self.geometry, point.lon, point.lat))

    def covers_many(self, lats: FloatArray, lons: FloatArray) -> npt.NDArray[np.bool_]:
        return np.asarray(shapely.intersects_xy(self.geometry, lons, lats), dtype=bool)

    def distance_m(self, point: LatLng) -> float:
        """Metres to the nearest fence point, in a local equirectangular frame around the fence (made once per
        fence): within 0.5 % out to 5 km up to about 80° of latitude. The frame is affine, so a covered point
        measures 0 (up to rounding on the outline: membership itself is always ``covers``)."""
        lat0, lon0, k, local = self._local_frame
        x, y = (point.lon - lon0) * k, point.lat - lat0
        return float(shapely.distance(local, shapely.Point(x, y))) * METRES_PER_DEGREE

    @cached_property
    def _local_frame(self) -> tuple[float, float, float, BaseGeometry]:
        west, south, east, north = self.bounds
        lat0, lon0 = (south + north) / 2, (west + east) / 2
        k = math.cos(math.radians(lat0))
        local = affinity.affine_transform(self.geometry, [k, 0, 0, 1, -k * lon0, -lat0])
        shapely.prepare(local)
        return lat0, lon0, k, local

    @cached_property
    def area_m2(self) -> float:
        return geodesic_area_m2(self.geometry)

    @cached_property
    def perimeter_m(self) -> float:
        """Geodesic length of every ring, holes included: what the H3 cover's boundary cells follow."""
        return float(_GEOD.geometry_length(self.geometry))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min_lon, min_lat, max_lon, max_lat)."""
        b = self.geometry.bounds
        return (b[0], b[1], b[2], b[3])

    @property
    def vertex_count(self) -> int:
        return int(shapely.get_num_coordinates(self.geometry))

    def seeds(self) -> list[LatLng]:
        """One point on every part's outer ring: flood fills of the cover start from these."""
        parts = getattr(self.geometry, "geoms", [self.geometry])
        return [LatLng(lat=part.exterior.coords[0][1], lon=part.exterior.coords[0][0]) for part in parts]

    def classify_cells(self, rings: Sequence[Sequence[LatLng]]) -> npt.NDArray[np.int8]:
        """OUTSIDE, BOUNDARY or INTERIOR for each cell outline (conservative, see module docstring)."""
        margin_deg = _lon_margin_deg(CELL_MARGIN_M, max(abs(self.bounds[1]), abs(self.bounds[3])) + 0.1)
        grown = _cell_polygons(rings, margin_deg)
        touches = shapely.intersects(self.geometry, grown)
        inside = shapely.covers(self.geometry, grown)
        return np.where(inside, INTERIOR, np.where(touches, BOUNDARY, OUTSIDE)).astype(np.int8)

    def to_geojson(self) -> dict[str, Any]:
        return dict(mapping(self.geometry))

    def outline_geojson(self) -> dict[str, Any]:
        return self.to_geojson()


@dataclass(frozen=True, eq=False)
class CircleShape:
    """A circle of ``radius_m`` metres (great-circle distance) around ``center``."""

    center: LatLng
    radius_m: float
    kind: str = field(default="circle", init=False)

    def covers(self, point: LatLng) -> bool:
        return haversine_m(self.center, point) <= self.radius_m

    def covers_many(self, lats: FloatArray, lons: FloatArray) -> npt.NDArray[np.bool_]:
        return np.asarray(haversines_m(self.center.lat, self.center.lon, lats, lons) <= self.radius_m)

    def distance_m(self, point: LatLng) -> float:
        return max(0.0, haversine_m(self.center, point) - self.radius_m)

    @property
    def area_m2(self) -> float:
        cap_angle = self.radius_m / EARTH_RADIUS_M
        return 2 * math.pi * EARTH_RADIUS_M**2 * (1 - math.cos(cap_angle))

    @property
    def perimeter_m(self) -> float:
        return 2 * math.pi * EARTH_RADIUS_M * math.sin(self.radius_m / EARTH_RADIUS_M)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """A box that surely holds the circle (padded against rounding), used for quick rejections."""
        dlat = self.radius_m / METRES_PER_DEGREE * (1 + 1e-9) + 1e-9
        dlon = _lon_margin_deg(self.radius_m, abs(self.center.lat) + dlat) + 1e-9
        c = self.center
        return (c.lon - dlon, c.lat - dlat, c.lon + dlon, c.lat + dlat)

    @property
    def vertex_count(self) -> int:
        return 1

    def seeds(self) -> list[LatLng]:
        return [self.center]

    def classify_cells(self, rings: Sequence[Sequence[LatLng]]) -> npt.NDArray[np.int8]:
        """Interior when every vertex lies within the radius; outside when the nearest edge is clearly beyond it.

        Great-circle distance along a cell edge peaks at a vertex, so the vertex test is exact (plus the margin).
        The nearest-edge test runs in a local frame scaled by cos(lat), so it gets a generous relative slack.
        """
        result = np.full(len(rings), BOUNDARY, dtype=np.int8)
        if not rings:
            return result
        c = self.center
        k = math.cos(math.radians(c.lat))
        slack = 1.02 + 4 * math.tan(math.radians(min(abs(c.lat) + 1, 89.0))) * self.radius_m / EARTH_RADIUS_M
        lats, lons, ring_of = _ring_arrays(rings)
        starts = np.flatnonzero(np.r_[True, ring_of[1:] != ring_of[:-1]])
        farthest = np.maximum.reduceat(haversines_m(c.lat, c.lon, lats, lons), starts)
        interior = farthest + CELL_MARGIN_M <= self.radius_m
        result[interior] = INTERIOR
        rest = np.flatnonzero(~interior)
        if len(rest):
            vertices = ~interior[ring_of]
            local = _polygons(
                (lons[vertices] - c.lon) * k * METRES_PER_DEGREE,
                (lats[vertices] - c.lat) * METRES_PER_DEGREE,
                np.searchsorted(rest, ring_of[vertices]),
            )
            away = shapely.distance(local, shapely.Point(0.0, 0.0)) > (self.radius_m + CELL_MARGIN_M) * slack
            result[rest[away]] = OUTSIDE
        return result

    def to_geojson(self) -> dict[str, Any]:
        return {"type": "Point", "coordinates": self.center.as_geojson()}

    def outline_geojson(self, vertices: int = 64) -> dict[str, Any]:
        """A polygon tracing the circle, for maps and file export."""
        lons, lats, _ = _GEOD.fwd(
            np.full(vertices, self.center.lon),
            np.full(vertices, self.center.lat),
            np.linspace(0.0, 360.0, vertices, endpoint=False),
            np.full(vertices, self.radius_m),
        )
        ring = [[float(x), float(y)] for x, y in zip(lons, lats, strict=True)]
        return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


Shape = PolygonShape | CircleShape


class ShapeArrays:
    """Many shapes as arrays, to decide many (shape, point) pairs in two vectorised calls."""

    def __init__(self, shapes: Sequence[Shape]) -> None:
        self.is_circle = np.array([isinstance(s, CircleShape) for s in shapes], dtype=bool)
        self.geometry = np.array([None if isinstance(s, CircleShape) else s.geometry for s in shapes], dtype=object)
        self.lat = np.array([s.center.lat if isinstance(s, CircleShape) else np.nan for s in shapes])
        self.lon = np.array([s.center.lon if isinstance(s, CircleShape) else np.nan for s in shapes])
        self.radius_m = np.array([s.radius_m if isinstance(s, CircleShape) else np.nan for s in shapes])
        self.bounds = np.array([s.bounds for s in shapes], dtype=np.float64).reshape(len(shapes), 4)
        self.west, self.south, self.east, self.north = (np.ascontiguousarray(self.bounds[:, i]) for i in range(4))

    def covers(self, shape: npt.NDArray[np.int64], lats: FloatArray, lons: FloatArray) -> npt.NDArray[np.bool_]:
        """``shapes[shape[k]].covers(point k)`` for every k, by the same rules as the scalar methods. Only
        pairs inside the shape's box reach the exact tests (in bulk files, most pairs from a cell are not)."""
        result = np.zeros(len(shape), dtype=bool)
        in_lon = (self.west[shape] <= lons) & (lons <= self.east[shape])
        near = np.flatnonzero(in_lon & (self.south[shape] <= lats) & (lats <= self.north[shape]))
        s, lat, lon = shape[near], lats[near], lons[near]
        round_ = self.is_circle[s]
        polygon = np.flatnonzero(~round_)
        if len(polygon):
            result[near[polygon]] = shapely.intersects_xy(self.geometry[s[polygon]], lon[polygon], lat[polygon])
        circle = np.flatnonzero(round_)
        if len(circle):
            c = s[circle]
            result[near[circle]] = haversines_m(self.lat[c], self.lon[c], lat[circle], lon[circle]) <= self.radius_m[c]
        return result


def stored_polygon(geometry: Any) -> PolygonShape:
    """The shape of a GeoJSON Polygon or MultiPolygon validated when it was stored: rebuilt without checking it
    again (a worker's start rebuilds every fence; the checks cost it more than the building)."""
    return PolygonShape(shapely.geometry.shape(geometry))


def polygon_from_parts(parts: Sequence[Sequence[Sequence[Position]]]) -> BaseGeometry:
    """Polygon for one part, MultiPolygon for several; parts are [shell, *holes] of (lon, lat) rings."""
    polygons = [shapely.Polygon(rings[0], rings[1:]) for rings in parts]
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)


def ring_self_intersection(ring: Sequence[Position]) -> Position | None:
    """Where a closed ring crosses or touches itself, or None when it is simple."""
    line = shapely.LinearRing(ring)
    if shapely.is_simple(line):
        return None
    nodes = shapely.node(shapely.LineString(ring))
    counts: dict[Position, int] = {}
    for x, y in shapely.get_coordinates(nodes):
        counts[(float(x), float(y))] = counts.get((float(x), float(y)), 0) + 1
    start = (float(ring[0][0]), float(ring[0][1]))
    repeated = [p for p, n in counts.items() if n > (3 if p == start else 1)]
    return repeated[0] if repeated else start


def validity_problem(geometry: BaseGeometry) -> str | None:
    """GEOS's reason a geometry is invalid (``"Self-intersection[24.9 60.1]"``), or None when it is valid."""
    reason = str(shapely.is_valid_reason(geometry))
    return None if reason == "Valid Geometry" else reason


def make_valid_polygonal(geometry: BaseGeometry) -> BaseGeometry | None:
    """``make_valid`` keeping only the areal result; None when nothing with an area is left."""
    fixed = shapely.make_valid(geometry)
    polygons = [g for g in shapely.get_parts(fixed) if g.geom_type in ("Polygon", "MultiPolygon")]
    flat = [p for g in polygons for p in shapely.get_parts(g)]
    flat = [p for p in flat if p.area > 0]
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else shapely.MultiPolygon(flat)


def geodesic_area_m2(geometry: BaseGeometry) -> float:
    """Area on the WGS84 ellipsoid, independent of winding order."""
    area, _ = _GEOD.geometry_area_perimeter(geometry)
    return abs(float(area))
