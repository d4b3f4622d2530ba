"""Vectorised membership for many points at once: which fences cover each point (bulk ping files, benchmarks).

The index's cell tables are packed into numpy arrays (rebuilt lazily after a change); point cells are matched
through a hashed ``pandas.Index``, boundary candidates are decided in one ``shapely.intersects_xy`` call for
polygons and one haversine over arrays for circles. Same answers as ``FenceIndex.query``, point for point.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from geofences import cells
from geofences.cells import Cell
from geofences.index import FenceIndex
from geofences.shapes import ShapeArrays

__all__ = ["Matches", "query_many"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Matches:
    """Pairs (point, fence): ``fence_ids[fence[k]]`` covers point ``point[k]``, sorted by point then fence."""

    point: IntArray
    fence: IntArray
    fence_ids: tuple[str, ...]


@dataclass(frozen=True)
class _Table:
    keys: pd.Index  # unique cells, hashed: 4x faster than searchsorted for a million scattered points
    starts: IntArray
    fences: IntArray  # fence numbers, grouped by key


@dataclass(frozen=True)
class _Packed:
    version: int
    fence_ids: tuple[str, ...]
    shapes: ShapeArrays
    interior: _Table
    boundary: _Table
    parent_res: tuple[int, ...]


def _table(rows: dict[Cell, tuple[str, ...]], number: dict[str, int]) -> _Table:
    keys = np.array(sorted(rows), dtype=np.uint64)
    groups = [[number[f] for f in rows[Cell(int(k))]] for k in keys]
    counts = np.array([len(g) for g in groups], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    flat = np.fromiter((f for g in groups for f in g), dtype=np.int64, count=int(counts.sum()))
    return _Table(pd.Index(keys, dtype=np.uint64), starts, flat)


# Keyed by the index object itself (weakly), never by id(): ids are reused once an index is collected.
_CACHE: weakref.WeakKeyDictionary[FenceIndex, _Packed] = weakref.WeakKeyDictionary()


def _packed(index: FenceIndex) -> _Packed:
    cached = _CACHE.get(index)
    if cached is not None and cached.version == index.version:
        return cached
    shapes, interior, boundary, parent_res, version = index.tables()
    fence_ids = tuple(shapes)
    number = {f: i for i, f in enumerate(fence_ids)}
    packed = _Packed(
        version,
        fence_ids,
        ShapeArrays(list(shapes.values())),
        _table(interior, number),
        _table(boundary, number),
        parent_res,
    )
    _CACHE[index] = packed
    return packed


def _lookup(table: _Table, point_cells: npt.NDArray[np.uint64]) -> tuple[IntArray, IntArray]:
    """Every (point, fence) pair whose point cell is a key of ``table``."""
    if len(table.keys) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    slot = table.keys.get_indexer(point_cells)
    hit = slot >= 0
    points = np.nonzero(hit)[0].astype(np.int64)
    starts = table.starts[slot[hit]]
    counts = table.starts[slot[hit] + 1] - starts
    point_rep = np.repeat(points, counts)
    offsets = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return point_rep, table.fences[np.repeat(starts, counts) + offsets]


def query_many(
    index: FenceIndex, lats: npt.ArrayLike, lons: npt.ArrayLike, point_cells: npt.NDArray[np.uint64] | None = None
) -> Matches:
    """All (point, fence) memberships for arrays of points (``point_cells``: their cells at the index
    resolution, when the caller has them already).

    >>> from geofences import CircleShape, LatLng
    >>> idx = FenceIndex(10)
    >>> _ = idx.add("kiosk", CircleShape(LatLng(60.17, 24.94), 50.0))
    >>> m = query_many(idx, [60.17, 61.0], [24.94, 24.94])
    >>> m.point.tolist(), [m.fence_ids[f] for f in m.fence]
    ([0], ['kiosk'])
    """
    lat = np.asarray(lats, dtype=np.float64)
    lon = np.asarray(lons, dtype=np.float64)
    packed = _packed(index)
    if point_cells is None:
        point_cells = cells.latlngs_to_cells(lat, lon, index.res)
    found_p, found_f = [], []

    p, f = _lookup(packed.interior, point_cells)
    found_p.append(p)
    found_f.append(f)
    for res in packed.parent_res:
        p, f = _lookup(packed.interior, cells.cells_to_parents(point_cells, res))
        found_p.append(p)
        found_f.append(f)
    p, f = _lookup(packed.boundary, point_cells)
    keep = packed.shapes.covers(f, lat[p], lon[p])
    found_p.append(p[keep])
    found_f.append(f[keep])
    width = max(len(packed.fence_ids), 1)
    pairs = np.concatenate(found_p) * width + np.concatenate(found_f)  # one int64 key: one sort, not a lexsort
    pairs.sort()
    return Matches(pairs // width, pairs % width, packed.fence_ids)
