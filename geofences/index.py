"""FenceIndex: H3 cells find candidate fences, an exact test decides (the Tile38 pattern).

Each fence is covered at the index resolution by every cell that can hold one of its points. *Interior* cells
answer without geometry (stored compacted, looked up through the point cell's parents); *boundary* cells keep a
short list of fences to test exactly. The cover is a flood fill from a point on each outer ring through cell
neighbours, classified conservatively by ``shapes`` — it does not rely on h3's polygon fill, whose default mode
misses edge cells. ``query`` therefore gives exactly the membership rule's answer for every point.

``nearby`` looks through a coarse-resolution map of boundary cells, then measures each candidate exactly.

Writers (add/remove) hold a lock and replace tuples; readers take no lock: every read is a single dict lookup
of an immutable tuple, so a query never sees half a fence.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geofences import cells
from geofences.cells import Cell
from geofences.errors import FenceError
from geofences.shapes import BOUNDARY, INTERIOR, Shape, box_distance_floors_m
from geofences.types import LatLng

__all__ = ["DEFAULT_RES", "Cover", "FenceIndex", "Proximity", "cover_shape"]

DEFAULT_RES = 10
_NEAR_LEVELS = 5  # nearby maps at the index resolution and the 4 coarser ones
_NO_BOXES = np.empty((0, 4))
_NEAR_CACHE_CELLS = 200_000  # cells whose nearby candidates are remembered (until the index changes)
_MAX_RINGS = 10  # nearby searches the finest level it can cover within this many rings
_NOWHERE = (math.inf, math.inf, -math.inf, -math.inf)


@dataclass(frozen=True)
class Cover:
    """A fence's cells at one resolution; ``interior`` may be compacted (coarser cells)."""

    res: int
    interior: tuple[Cell, ...]
    boundary: tuple[Cell, ...]


@dataclass(frozen=True)
class Proximity:
    fence_id: str
    inside: bool
    distance_m: float


def cover_shape(shape: Shape, res: int, *, compact: bool = True, max_cells: int | None = None) -> Cover:
    """Every cell at ``res`` that can hold a point of ``shape``, split into interior and boundary; stops with a
    ``FenceError`` once more than ``max_cells`` are found (a hard stop behind the estimate that validation makes).

    >>> from geofences.shapes import CircleShape
    >>> c = cover_shape(CircleShape(LatLng(60.17, 24.94), 100.0), 10)
    >>> len(c.boundary) > 0
    True
    """
    seen: set[Cell] = set()
    interior: list[Cell] = []
    boundary: list[Cell] = []
    frontier = {cells.latlng_to_cell(p, res) for p in shape.seeds()}
    while frontier:
        wave = sorted(frontier)
        seen.update(wave)
        kinds = shape.classify_cells([cells.cell_to_ring(c) for c in wave])
        frontier = set()
        for cell, kind in zip(wave, kinds, strict=True):
            if kind == INTERIOR:
                interior.append(cell)
            elif kind == BOUNDARY:
                boundary.append(cell)
            else:
                continue
            frontier.update(n for n in cells.neighbours(cell) if n not in seen)
        if max_cells is not None and len(interior) + len(boundary) > max_cells:
            raise FenceError(
                "too_many_cells", f"covering the fence at resolution {res} takes more than {max_cells:,} cells"
            )
    packed = cells.compact_cells(interior) if compact and interior else interior
    return Cover(res, tuple(sorted(packed)), tuple(sorted(boundary)))


@dataclass(frozen=True)
class CoverCells:
    """Every fence's cover as flat arrays: the cells, and for each the position of its fence in ``ids``."""

    ids: list[str]
    interior: npt.NDArray[np.uint64]
    interior_owners: npt.NDArray[np.int64]
    boundary: npt.NDArray[np.uint64]
    boundary_owners: npt.NDArray[np.int64]

    @classmethod
    def of(cls, covers: Mapping[str, Cover]) -> CoverCells:
        interior, interior_owners = _flattened([c.interior for c in covers.values()])
        boundary, boundary_owners = _flattened([c.boundary for c in covers.values()])
        return cls(list(covers), interior, interior_owners, boundary, boundary_owners)


class FenceIndex:
    """In-memory index of fences by H3 cell; safe for many readers and one writer at a time."""

    def __init__(self, res: int = DEFAULT_RES) -> None:
        if not 1 <= res <= cells.MAX_RES:
            raise ValueError(f"index resolution must be between 1 and {cells.MAX_RES}")
        self.res = res
        self.near_levels = tuple(range(res, max(res - _NEAR_LEVELS, 0), -1))
        self._shapes: MutableMapping[str, Shape] = {}
        self._bounds: MutableMapping[str, tuple[float, float, float, float]] = {}
        self._covers: MutableMapping[str, Cover] = {}
        self._interior: dict[Cell, tuple[str, ...]] = {}
        self._boundary: dict[Cell, tuple[str, ...]] = {}
        # res -> boundary cells' parents at that res -> fences; the index level is the boundary map itself
        self._near: dict[int, dict[Cell, tuple[str, ...]]] = {r: {} for r in self.near_levels[1:]}
        self._interior_res: Counter[int] = Counter()
        self._parent_res: tuple[int, ...] = ()
        self._lock = threading.Lock()
        self._near_cache: tuple[int, dict[tuple[Cell, int], tuple[tuple[str, ...], npt.NDArray[np.float64]]]] = (-1, {})
        self.version = 0  # bumped by every write, so packed copies (see ``bulk``) know they are stale

    def __len__(self) -> int:
        return len(self._shapes)

    def __contains__(self, fence_id: object) -> bool:
        return fence_id in self._shapes

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._shapes))

    def shape(self, fence_id: str) -> Shape | None:
        return self._shapes.get(fence_id)

    def cover(self, fence_id: str) -> Cover | None:
        return self._covers.get(fence_id)

    def add(self, fence_id: str, shape: Shape, cover: Cover | None = None) -> Cover:
        """Insert or replace one fence; the cover is computed outside the lock unless given."""
        cover = cover or cover_shape(shape, self.res)
        if cover.res != self.res:
            raise ValueError(f"cover is at res {cover.res}, the index at {self.res}")
        with self._lock:
            self._remove_locked(fence_id)
            self._shapes[fence_id] = shape
            self._bounds[fence_id] = shape.bounds
            self._covers[fence_id] = cover
            for cell in cover.interior:
                self._interior[cell] = (*self._interior.get(cell, ()), fence_id)
                self._interior_res[cells.cell_to_res(cell)] += 1
            for cell in cover.boundary:
                self._boundary[cell] = (*self._boundary.get(cell, ()), fence_id)
            for level, table in self._near.items():
                for cell in {cells.cell_to_parent(c, level) for c in cover.boundary}:
                    table[cell] = (*table.get(cell, ()), fence_id)
            self._refresh_parent_res()
            self.version += 1
        return cover

    def remove(self, fence_id: str) -> bool:
        with self._lock:
            found = self._remove_locked(fence_id)
            self._refresh_parent_res()
            self.version += 1
        return found

    def replace_all(self, fences: Iterable[tuple[str, Shape, Cover | None]]) -> None:
        """Swap in a complete new set (a worker's start, or a resynchronisation from storage); a cover not given is
        computed. Built in bulk: adding 100,000 fences one by one grows each shared cell's tuple again per fence
        (a coarse cell of a dense city holds thousands) and asks h3 for every parent of every boundary cell."""
        latest: dict[str, tuple[Shape, Cover]] = {}
        for fence_id, shape, cover in fences:
            cover = cover or cover_shape(shape, self.res)
            if cover.res != self.res:
                raise ValueError(f"cover is at res {cover.res}, the index at {self.res}")
            latest[fence_id] = (shape, cover)
        covers = {f: cover for f, (_, cover) in latest.items()}
        self.restore(
            CoverCells.of(covers),
            covers,
            {f: shape.bounds for f, (shape, _) in latest.items()},
            {f: shape for f, (shape, _) in latest.items()},
        )

    def restore(
        self,
        flat: CoverCells,
        covers: MutableMapping[str, Cover],
        bounds: MutableMapping[str, tuple[float, float, float, float]],
        shapes: MutableMapping[str, Shape],
    ) -> None:
        """Swap in fences whose cells, covers and boxes are known; ``covers`` and ``shapes`` may make each one on
        first use (a catalog snapshot), since a request only ever tests the few fences around it."""
        ids = flat.ids
        interior, interior_owners = flat.interior, flat.interior_owners
        boundary, boundary_owners = flat.boundary, flat.boundary_owners
        near = {
            level: _grouped(cells.cells_to_parents(boundary, level), boundary_owners, ids)
            for level in self.near_levels[1:]
        }
        resolutions, counts = np.unique((interior >> np.uint64(52)) & np.uint64(0xF), return_counts=True)
        with self._lock:
            self._shapes, self._bounds, self._covers = shapes, bounds, covers
            self._interior = _grouped(interior, interior_owners, ids)
            self._boundary = _grouped(boundary, boundary_owners, ids)
            self._near = near
            self._interior_res = Counter(dict(zip(resolutions.tolist(), counts.tolist(), strict=True)))
            self._refresh_parent_res()
            self.version += 1

    def shapes(self) -> MutableMapping[str, Shape]:
        """The mapping of shapes itself (for a caller that holds off writers; ``restore`` may have given it)."""
        return self._shapes

    def covers(self) -> MutableMapping[str, Cover]:
        """The mapping of covers itself (as ``shapes``)."""
        return self._covers

    def tables(
        self,
    ) -> tuple[dict[str, Shape], dict[Cell, tuple[str, ...]], dict[Cell, tuple[str, ...]], tuple[int, ...], int]:
        """A consistent copy of (shapes, interior, boundary, parent resolutions, version) for bulk packing."""
        with self._lock:
            return (dict(self._shapes), dict(self._interior), dict(self._boundary), self._parent_res, self.version)

    def query(self, point: LatLng) -> list[str]:
        """Ids of the fences that cover ``point``, exactly as the membership rule says."""
        cell = cells.latlng_to_cell(point, self.res)
        found = list(self._interior.get(cell, ()))
        for res in self._parent_res:
            found.extend(self._interior.get(cells.cell_to_parent(cell, res), ()))
        for fence_id in self._boundary.get(cell, ()):
            # A bounding-box look first: most fences through a boundary cell are nowhere near the point.
            west, south, east, north = self._bounds.get(fence_id, _NOWHERE)
            if not (west <= point.lon <= east and south <= point.lat <= north):
                continue
            shape = self._shapes.get(fence_id)
            if shape is not None and shape.covers(point):
                found.append(fence_id)
        return found

    def nearby(self, point: LatLng, within_m: float) -> list[Proximity]:
        """Fences that cover ``point`` or lie within ``within_m`` metres of it, nearest first."""
        inside = set(self.query(point))
        result = [Proximity(fence_id, True, 0.0) for fence_id in sorted(inside)]
        ids, boxes = self._near_boxes(point, within_m) if within_m > 0 else ((), _NO_BOXES)
        if ids:
            near = np.flatnonzero(box_distance_floors_m(point.lat, point.lon, boxes) <= within_m).tolist()
            for i in near:
                shape = self._shapes.get(ids[i])
                if shape is None or ids[i] in inside:
                    continue
                distance = shape.distance_m(point)
                if distance <= within_m:
                    result.append(Proximity(ids[i], False, distance))
        result.sort(key=lambda p: (p.distance_m, p.fence_id))
        return result

    def _near_boxes(self, point: LatLng, within_m: float) -> tuple[tuple[str, ...], npt.NDArray[np.float64]]:
        """The fences with a boundary cell within reach of the point's cell, and their boxes as one array.
        Remembered per cell until the index changes: devices keep pinging around the same places."""
        level, k = self._near_level(within_m)
        origin = cells.latlng_to_cell(point, level)
        version, remembered = self._near_cache
        if version != self.version:
            version, remembered = self.version, {}
            self._near_cache = (version, remembered)
        found = remembered.get((origin, k))
        if found is None:
            table = self._boundary if level == self.res else self._near[level]
            ids = tuple(sorted({f for cell in cells.grid_disk(origin, k) for f in table.get(cell, ())}))
            boxes = np.array([self._bounds.get(f, _NOWHERE) for f in ids], dtype=np.float64).reshape(-1, 4)
            found = (ids, boxes)
            if len(remembered) < _NEAR_CACHE_CELLS:
                remembered[(origin, k)] = found
        return found

    def _near_level(self, within_m: float) -> tuple[int, int]:
        """The finest level whose disk of rings reaches ``within_m``, and how many rings that takes.

        Cells vary in size by about 2x over the globe, and children stick out of their parent a little:
        half the average edge per ring, plus two rings, is a safe reach."""
        for level in self.near_levels:
            k = math.ceil(within_m / (cells.edge_length_m(level) / 2)) + 2
            if k <= _MAX_RINGS or level == self.near_levels[-1]:
                return level, k
        raise AssertionError("unreachable")

    def _remove_locked(self, fence_id: str) -> bool:
        cover = self._covers.pop(fence_id, None)
        self._shapes.pop(fence_id, None)
        self._bounds.pop(fence_id, None)
        if cover is None:
            return False
        for cell in cover.interior:
            _drop(self._interior, cell, fence_id)
            self._interior_res[cells.cell_to_res(cell)] -= 1
        for cell in cover.boundary:
            _drop(self._boundary, cell, fence_id)
        for level, table in self._near.items():
            for cell in {cells.cell_to_parent(c, level) for c in cover.boundary}:
                _drop(table, cell, fence_id)
        return True

    def _refresh_parent_res(self) -> None:
        self._parent_res = tuple(
            sorted((r for r, n in self._interior_res.items() if n > 0 and r != self.res), reverse=True)
        )


def _flattened(groups: list[tuple[Cell, ...]]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Every cell of every group in one array, with the position of the group it came from."""
    sizes = np.fromiter((len(g) for g in groups), dtype=np.int64, count=len(groups))
    flat = np.fromiter((c for g in groups for c in g), dtype=np.uint64, count=int(sizes.sum()))
    return flat, np.repeat(np.arange(len(groups), dtype=np.int64), sizes)


def _grouped(
    keys: npt.NDArray[np.uint64], owners: npt.NDArray[np.int64], ids: list[str]
) -> dict[Cell, tuple[str, ...]]:
    """cell -> the ids of its owners (each once, in the owners' order), from parallel arrays of cells and owners."""
    if not len(keys):
        return {}
    order = np.lexsort((owners, keys))
    keys, owners = keys[order], owners[order]
    fresh = np.ones(len(keys), dtype=bool)
    fresh[1:] = (keys[1:] != keys[:-1]) | (owners[1:] != owners[:-1])
    keys, owners = keys[fresh], owners[fresh]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    ends = np.append(starts[1:], len(keys))
    named = [ids[o] for o in owners.tolist()]
    return {
        Cell(cell): tuple(named[a:b])
        for cell, a, b in zip(keys[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)
    }


def _drop(table: dict[Cell, tuple[str, ...]], cell: Cell, fence_id: str) -> None:
    rest = tuple(f for f in table.get(cell, ()) if f != fence_id)
    if rest:
        table[cell] = rest
    else:
        table.pop(cell, None)
