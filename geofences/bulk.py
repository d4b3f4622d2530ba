"""Vectorised membership for many points at once: which fences cover each point (bulk ping files, benchmarks).

The index's cell tables are packed into numpy arrays (rebuilt lazily after a change): one table at the index
resolution holds the boundary cells and the interior cells, those up to ``EXPANDED_LEVELS`` coarser expanded to
their children, so most points need a single hashed lookup (``pandas.Index``); coarser interior cells get one
lookup per resolution. Boundary candidates are decided in one ``shapely.intersects_xy`` call for polygons and one
haversine over arrays for circles. Same answers as ``FenceIndex.query``, point for point.
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
EXPANDED_LEVELS = 2  # an interior cell this many levels coarser becomes at most 49 keys


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
    boundary: npt.NDArray[np.bool_]  # per entry of ``fences``: the cell is on that fence's boundary


@dataclass(frozen=True)
class _Packed:
    version: int
    fence_ids: tuple[str, ...]
    shapes: ShapeArrays
    at_res: _Table  # boundary cells and interior cells at (or expanded to) the index resolution
    coarse: _Table  # interior cells coarser than that
    coarse_res: tuple[int, ...]


def _table(rows: dict[Cell, list[tuple[int, bool]]]) -> _Table:
    keys = np.array(sorted(rows), dtype=np.uint64)
    entries = [entry for k in keys for entry in sorted(rows[Cell(int(k))])]  # by fence: lookups come out sorted
    counts = np.array([len(rows[Cell(int(k))]) for k in keys], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    fences = np.fromiter((f for f, _ in entries), dtype=np.int64, count=len(entries))
    boundary = np.fromiter((b for _, b in entries), dtype=bool, count=len(entries))
    return _Table(pd.Index(keys, dtype=np.uint64), starts, fences, boundary)


# Keyed by the index object itself (weakly), never by id(): ids are reused once an index is collected.
_CACHE: weakref.WeakKeyDictionary[FenceIndex, _Packed] = weakref.WeakKeyDictionary()


def _packed(index: FenceIndex) -> _Packed:
    cached = _CACHE.get(index)
    if cached is not None and cached.version == index.version:
        return cached
    shapes, interior, boundary, _, version = index.tables()
    fence_ids = tuple(shapes)
    number = {f: i for i, f in enumerate(fence_ids)}
    at_res: dict[Cell, list[tuple[int, bool]]] = {}
    coarse: dict[Cell, list[tuple[int, bool]]] = {}
    for cell, ids in boundary.items():
        at_res.setdefault(cell, []).extend((number[f], True) for f in ids)
    for cell, ids in interior.items():
        res = cells.cell_to_res(cell)
        if index.res - res > EXPANDED_LEVELS:
            coarse.setdefault(cell, []).extend((number[f], False) for f in ids)
            continue
        for child in cells.uncompact_cells([cell], index.res):
            at_res.setdefault(child, []).extend((number[f], False) for f in ids)
    coarse_res = tuple(sorted({cells.cell_to_res(c) for c in coarse}))
    packed = _Packed(version, fence_ids, ShapeArrays(list(shapes.values())), _table(at_res), _table(coarse), coarse_res)
    _CACHE[index] = packed
    return packed


def _lookup(table: _Table, point_cells: npt.NDArray[np.uint64]) -> tuple[IntArray, IntArray]:
    """Every (point, entry of ``table.fences``) pair whose point cell is a key of ``table``."""
    if len(table.keys) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    slot = table.keys.get_indexer(point_cells)
    points = np.flatnonzero(slot >= 0)
    starts = table.starts[slot[points]]
    counts = table.starts[slot[points] + 1] - starts
    if not np.any(counts > 1):  # the usual case: one fence per cell
        return points, starts
    shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)  # entry k of the flat run is k + shift
    return np.repeat(points, counts), np.arange(len(shift), dtype=np.int64) + shift


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
    p, entry = _lookup(packed.at_res, point_cells)
    f = packed.at_res.fences[entry]
    keep = ~packed.at_res.boundary[entry]
    tested = np.flatnonzero(~keep)
    keep[tested] = packed.shapes.covers(f[tested], lat[p[tested]], lon[p[tested]])
    found_p, found_f = [p[keep]], [f[keep]]
    for res in packed.coarse_res:
        p, entry = _lookup(packed.coarse, cells.cells_to_parents(point_cells, res))
        found_p.append(p)
        found_f.append(packed.coarse.fences[entry])
    if len(found_p) == 1:  # one lookup: already in (point, fence) order
        return Matches(found_p[0], found_f[0], packed.fence_ids)
    width = max(len(packed.fence_ids), 1)
    pairs = np.concatenate(found_p) * width + np.concatenate(found_f)  # one int64 key: one sort, not a lexsort
    pairs.sort()
    return Matches(pairs // width, pairs % width, packed.fence_ids)
