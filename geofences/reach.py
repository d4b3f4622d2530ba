"""Reach covers: the cells that hold every point within ``metres`` of a fence, for offers shown nearby.

An offer with ``nearby_m > 0`` reaches the fence grown by that distance. Serving looks a ping's cells up in the
reach covers of every (offer, fence) pair, so the pairs a ping can see are found in a few dictionary-like
lookups, however many fences lie around it. A reach cover is deliberately coarse: a few cells across (at most
``CELLS_ACROSS``) of the box around the grown fence, at the finest resolution that keeps it that small. It is
conservative (every point within reach lies in one of its cells, kept by a margin); the distance that decides is
measured afterwards, only for pairs that can still make the answer.
"""

from __future__ import annotations

import math

from geofences import cells
from geofences.cells import Cell
from geofences.shapes import METRES_PER_DEGREE, CircleShape, Shape

__all__ = ["CELLS_ACROSS", "reach_bounds", "reach_cover"]

CELLS_ACROSS = 6
_RELATIVE_MARGIN = 0.01
_MARGIN_M = 1.0


def reach_bounds(shape: Shape, metres: float) -> tuple[float, float, float, float]:
    """A box (west, south, east, north) that holds every point within ``metres`` of ``shape`` by the distance
    ``shape.distance_m`` measures, with a margin."""
    grown = metres * (1 + _RELATIVE_MARGIN) + _MARGIN_M
    if isinstance(shape, CircleShape):
        return CircleShape(shape.center, shape.radius_m + grown).bounds
    west, south, east, north = shape.bounds
    # polygons measure in a flat frame scaled by cos(latitude of the box centre): see PolygonShape.distance_m
    k = max(math.cos(math.radians((south + north) / 2)), 1e-3)
    dlat, dlon = grown / METRES_PER_DEGREE, grown / (METRES_PER_DEGREE * k)
    return west - dlon, south - dlat, east + dlon, north + dlat


def reach_cover(shape: Shape, metres: float, finest_res: int) -> tuple[Cell, ...]:
    """Cells of one resolution covering the reach, at most about ``CELLS_ACROSS`` across, none finer than
    ``finest_res``. Not compacted: a point is looked up by the cell that holds it at that resolution
    (``cells.holding_keys``), which need not be a descendant of a parent cell that holds it.

    >>> from geofences import LatLng
    >>> cover = reach_cover(CircleShape(LatLng(38.71, -9.14), 20.0), 500.0, 10)
    >>> 1 <= len(cover) <= 80
    True
    """
    west, south, east, north = reach_bounds(shape, metres)
    k = math.cos(math.radians(min(max(abs(south), abs(north)), 89.0)))
    extent_m = max(north - south, (east - west) * k) * METRES_PER_DEGREE
    res = finest_res
    while res > 0 and extent_m > CELLS_ACROSS * cells.edge_length_m(res):
        res -= 1
    return tuple(sorted(cells.cells_overlapping_box(west, south, east, north, res)))
