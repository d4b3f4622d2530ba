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
from geofences.types import LatLng

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


def _table(keys: npt.NDArray[np.uint64], fences: IntArray, boundary: npt.NDArray[np.bool_]) -> _Table:
    order = np.lexsort((fences, keys))  # by cell, then fence: lookups come out sorted
    keys, fences, boundary = keys[order], fences[order], boundary[order]
    unique, first = np.unique(keys, return_index=True)
    starts = np.append(first, len(keys)).astype(np.int64)
    return _Table(pd.Index(unique, dtype=np.uint64), starts, fences, boundary)


# Keyed by the index object itself (weakly), never by id(): ids are reused once an index is collected.
_CACHE: weakref.WeakKeyDictionary[FenceIndex, _Packed] = weakref.WeakKeyDictionary()


def _packed(index: FenceIndex) -> _Packed:
    cached = _CACHE.get(index)
    if cached is not None and cached.version == index.version:
        return cached
    state = index.state()
    boundary, boundary_fences = state.tables["boundary"]
    interior, interior_fences = state.tables["interior"]
    coarse_res = index.res - EXPANDED_LEVELS
    res = (interior >> np.uint64(52)) & np.uint64(0xF)  # an H3 index keeps its resolution in bits 52-55
    near, far = res >= coarse_res, res < coarse_res
    expanded = [cells.uncompact_cells([Cell(c)], index.res) for c in interior[near].tolist()]
    sizes = np.fromiter((len(e) for e in expanded), dtype=np.int64, count=len(expanded))
    children = np.fromiter((c for e in expanded for c in e), dtype=np.uint64, count=int(sizes.sum()))
    at_res = _table(
        np.concatenate((boundary, children)),
        np.concatenate((boundary_fences, np.repeat(interior_fences[near], sizes))),
        np.concatenate((np.ones(len(boundary), dtype=bool), np.zeros(len(children), dtype=bool))),
    )
    coarse = _table(interior[far], interior_fences[far], np.zeros(int(far.sum()), dtype=bool))
    levels = tuple(sorted({int(r) for r in res[far].tolist()}))
    packed = _Packed(state.version, tuple(state.ids), ShapeArrays(state.shapes()), at_res, coarse, levels)
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
    index: FenceIndex,
    lats: npt.ArrayLike,
    lons: npt.ArrayLike,
    point_cells: npt.NDArray[np.uint64] | None = None,
    pack: bool | None = None,
) -> Matches:
    """All (point, fence) memberships for arrays of points (``point_cells``: their cells at the index
    resolution, when the caller has them already).

    Packing the index costs about one point's query per fence (every shape decoded and every cell copied), so
    by default (``pack=None``) a batch smaller than the index is answered point by point, unless this version
    of the index is packed already: a worker's stream consumer, resolving a few hundred pings against a
    million fences, used to decode all million shapes after every write (seconds holding the GIL, and every
    page of the snapshot read into the worker).

    >>> from geofences import CircleShape, LatLng
    >>> idx = FenceIndex(10)
    >>> _ = idx.add("kiosk", CircleShape(LatLng(60.17, 24.94), 50.0))
    >>> m = query_many(idx, [60.17, 61.0], [24.94, 24.94])
    >>> m.point.tolist(), [m.fence_ids[f] for f in m.fence]
    ([0], ['kiosk'])
    """
    lat = np.asarray(lats, dtype=np.float64)
    lon = np.asarray(lons, dtype=np.float64)
    if pack is None:
        cached = _CACHE.get(index)
        pack = len(lat) >= len(index) or (cached is not None and cached.version == index.version)
    if not pack:
        return _point_by_point(index, lat, lon)
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


def _point_by_point(index: FenceIndex, lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64]) -> Matches:
    """``query_many``'s answer from ``FenceIndex.query`` per point (fences numbered in id order)."""
    found = [sorted(index.query(LatLng(a, o))) for a, o in zip(lat.tolist(), lon.tolist(), strict=True)]
    fence_ids = tuple(sorted({f for inside in found for f in inside}))
    number = {f: n for n, f in enumerate(fence_ids)}
    point = np.fromiter((i for i, inside in enumerate(found) for _ in inside), dtype=np.int64)
    fence = np.fromiter((number[f] for inside in found for f in inside), dtype=np.int64)
    return Matches(point, fence, fence_ids)
