"""H3 cells: the only module that imports h3 (and h3ronpy, its vectorised form), and the one place where
(lat, lng) order is spoken.

Cells are plain ``int`` H3 indexes internally (fast dict keys) and hex strings at the edges (``cell_to_str``).
Cell outlines are returned as lists of ``LatLng`` with longitudes unwrapped around the first vertex, so a cell
next to the antimeridian is still one simple ring.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NewType

import h3.api.basic_int as h3
import numpy as np
import numpy.typing as npt
from h3ronpy.vector import coordinates_to_cells

from geofences.types import LatLng

Cell = NewType("Cell", int)

MIN_RES = 0
MAX_RES = 15

__all__ = [
    "MAX_RES",
    "MIN_RES",
    "Cell",
    "ancestor_keys",
    "cell_area_m2",
    "cell_centre",
    "cell_to_geojson",
    "cell_to_parent",
    "cell_to_res",
    "cell_to_ring",
    "cell_to_str",
    "cells_at_res",
    "cells_overlapping_box",
    "cells_to_parents",
    "compact_cells",
    "edge_length_m",
    "estimate_cover_cells",
    "grid_disk",
    "holding_keys",
    "latlng_to_cell",
    "latlngs_to_cells",
    "neighbours",
    "str_to_cell",
    "uncompact_cells",
]


def latlng_to_cell(point: LatLng, res: int) -> Cell:
    """The cell that contains ``point`` at ``res`` (H3's own point-to-cell rule)."""
    return Cell(h3.latlng_to_cell(point.lat, point.lon, res))


def cell_centre(cell: Cell) -> LatLng:
    """The cell's centre: where a position known only to the cell is put (a coarsened one, say)."""
    lat, lng = h3.cell_to_latlng(cell)
    return LatLng(lat=lat, lon=lng)


def cell_to_ring(cell: Cell) -> list[LatLng]:
    """The cell's outline (5 to 10 vertices), longitudes unwrapped to stay within 180° of the first vertex."""
    ring: list[LatLng] = []
    first_lon: float | None = None
    for lat, lng in h3.cell_to_boundary(cell):
        if first_lon is None:
            first_lon = lng
        elif lng - first_lon > 180:
            lng -= 360
        elif lng - first_lon < -180:
            lng += 360
        ring.append(LatLng(lat=lat, lon=lng))
    return ring


def cell_to_geojson(cell: Cell) -> dict[str, Any]:
    """The cell as a closed GeoJSON Polygon ([lon, lat] order)."""
    ring = [p.as_geojson() for p in cell_to_ring(cell)]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def ancestor_keys(point: LatLng, res: int, resolutions: Sequence[int]) -> npt.NDArray[np.uint64]:
    """The cell holding ``point`` at ``res`` and its ancestors at ``resolutions`` (none finer than ``res``): the
    keys of compacted covers. An ancestor is not always the cell that holds the point geometrically at its own
    resolution (children stick out of their parents a little)."""
    cell = h3.latlng_to_cell(point.lat, point.lon, res)
    parent = h3.cell_to_parent
    return np.array([parent(cell, r) for r in resolutions], dtype=np.uint64)


def holding_keys(point: LatLng, resolutions: Sequence[int]) -> npt.NDArray[np.uint64]:
    """The cell holding ``point`` at each of ``resolutions``, each found geometrically."""
    to_cell = h3.latlng_to_cell
    return np.array([to_cell(point.lat, point.lon, r) for r in resolutions], dtype=np.uint64)


def cells_overlapping_box(west: float, south: float, east: float, north: float, res: int) -> list[Cell]:
    """Every cell at ``res`` that overlaps the box (degrees); a box over the antimeridian is split in two."""
    south, north = max(south, -89.99), min(north, 89.99)
    if east - west >= 360:
        west, east = -180.0, 180.0
    if west < -180:
        return cells_overlapping_box(west + 360, south, 180.0, north, res) + cells_overlapping_box(
            -180.0, south, east, north, res
        )
    if east > 180:
        return cells_overlapping_box(west, south, 180.0, north, res) + cells_overlapping_box(
            -180.0, south, east - 360, north, res
        )
    box = h3.LatLngPoly([(south, west), (south, east), (north, east), (north, west)])
    return [Cell(c) for c in h3.h3shape_to_cells_experimental(box, res, contain="overlap")]


def cells_at_res(cells: Iterable[Cell], res: int) -> int:
    """How many cells at ``res`` the (compacted) ``cells`` stand for; exact, pentagons included."""
    return sum(int(h3.cell_to_children_size(c, res)) for c in cells)


def neighbours(cell: Cell) -> list[Cell]:
    """The cells sharing an edge with ``cell`` (5 for a pentagon, else 6)."""
    return [Cell(c) for c in h3.grid_disk(cell, 1) if c != cell]


def grid_disk(cell: Cell, k: int) -> list[Cell]:
    return [Cell(c) for c in h3.grid_disk(cell, k)]


def cell_to_parent(cell: Cell, res: int) -> Cell:
    return Cell(h3.cell_to_parent(cell, res))


def cell_to_res(cell: Cell) -> int:
    return int(h3.get_resolution(cell))


def compact_cells(cells: Iterable[Cell]) -> list[Cell]:
    """Replace every complete set of siblings by its parent, recursively (fewer keys, same answers)."""
    return [Cell(c) for c in h3.compact_cells(list(cells))]


def uncompact_cells(cells: Iterable[Cell], res: int) -> list[Cell]:
    return [Cell(c) for c in h3.uncompact_cells(list(cells), res)]


def edge_length_m(res: int) -> float:
    """Average hexagon edge length at ``res``; real edges vary by about a factor 2 over the globe."""
    return float(h3.average_hexagon_edge_length(res, unit="m"))


def cell_to_str(cell: Cell) -> str:
    return str(h3.int_to_str(cell))


def str_to_cell(text: str) -> Cell:
    """Parse a hex cell id; raises ``ValueError`` for anything that is not a valid cell."""
    value = h3.str_to_int(text)
    if not h3.is_valid_cell(value):
        raise ValueError(f"{text!r} is not an H3 cell")
    return Cell(value)


def estimate_cover_cells(area_m2: float, perimeter_m: float, res: int) -> int:
    """An upper estimate of how many cells at ``res`` cover a shape: its area in cells, plus one cell per edge
    length of outline (a line crosses about one hexagon per 1.5 edge lengths). It comes from the shape's extent,
    so a long thin strip of almost no area is priced at what covering it really costs.

    >>> estimate_cover_cells(0.0, 111_000.0, 15) > 50_000
    True
    """
    return int(area_m2 / cell_area_m2(res) + perimeter_m / edge_length_m(res)) + 1


def cell_area_m2(res: int) -> float:
    """Average hexagon area at ``res``."""
    return float(h3.average_hexagon_area(res, unit="m^2"))


_RES_SHIFT = 52
_RES_MASK = 0xF << _RES_SHIFT


def latlngs_to_cells(lats: npt.NDArray[np.float64], lons: npt.NDArray[np.float64], res: int) -> npt.NDArray[np.uint64]:
    """Cells for arrays of (valid) points, in Rust (h3ronpy, the same H3 C library underneath): ~0.1 µs a point
    where a loop over h3-py takes ~0.5 µs."""
    if not len(lats):
        return np.empty(0, dtype=np.uint64)
    found = coordinates_to_cells(np.ascontiguousarray(lats, np.float64), np.ascontiguousarray(lons, np.float64), res)
    return np.asarray(found, dtype=np.uint64)


def cells_to_parents(cells: npt.NDArray[np.uint64], res: int) -> npt.NDArray[np.uint64]:
    """``cell_to_parent`` for an array of cells of one finer resolution, by bit arithmetic on the H3 index:
    write ``res`` into the resolution field and set every finer digit to 7 (unused)."""
    unused_digits = np.uint64((1 << (3 * (MAX_RES - res))) - 1)
    cleared = cells & np.uint64(~_RES_MASK & 0xFFFFFFFFFFFFFFFF)
    return cleared | np.uint64(res << _RES_SHIFT) | unused_digits
