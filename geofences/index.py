"""FenceIndex: H3 cells find candidate fences, an exact test decides (the Tile38 pattern).

Each fence is covered at the index resolution by every cell that can hold one of its points. *Interior* cells
answer without geometry (stored compacted, looked up through the point cell's parents); *boundary* cells keep a
short list of fences to test exactly. The cover is a flood fill from a point on each outer ring through cell
neighbours, classified conservatively by ``shapes`` — it does not rely on h3's polygon fill, whose default mode
misses edge cells. ``query`` therefore gives exactly the membership rule's answer for every point.

``nearby`` looks through a coarse-resolution map of boundary cells, then measures each candidate exactly.

Fences live in *slots*: a fence added again (moved) takes a new slot and its old one is marked dead, so the
packed cell tables (``CellTable``s, entries are slots) never change; a dead slot is filtered out when found. A
worker started from a catalog snapshot maps the tables, boxes and ids of its fences (``IndexParts``) and makes
a fence's shape or cover only when a lookup needs it.

Writers (add/remove) hold a lock; what they add goes to a small dict per table beside the packed arrays, each
cell's tuple of slots replaced whole, after the slot's box and liveness are stored. Readers take no lock: a slot
they find has its arrays in place. The dicts hold what was written since the worker started, until a snapshot
written at the next compaction packs them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import numpy.typing as npt

from geofences import cells, flat
from geofences.cells import Cell
from geofences.celltable import CellTable
from geofences.errors import FenceError
from geofences.names import Names
from geofences.rows import Rows
from geofences.shapes import BOUNDARY, INTERIOR, Shape, box_distance_floors_m
from geofences.types import LatLng

__all__ = ["DEFAULT_RES", "Cover", "FenceIndex", "IndexParts", "Proximity", "cover_shape", "index_tables"]

DEFAULT_RES = 10
_NEAR_LEVELS = 5  # nearby maps at the index resolution and the 4 coarser ones
_NO_BOXES = np.empty((0, 4))
_NEAR_CACHE_CELLS = 200_000  # cells whose nearby candidates are remembered (until the index changes)
_MAX_RINGS = 10  # nearby searches the finest level it can cover within this many rings
_NOWHERE = (math.inf, math.inf, -math.inf, -math.inf)
IntArray = npt.NDArray[np.int64]
CellArray = npt.NDArray[np.uint64]


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


def near_levels(res: int) -> tuple[int, ...]:
    """The resolutions ``nearby`` looks at: the index's own and the coarser ones, finest first."""
    return tuple(range(res, max(res - _NEAR_LEVELS, 0), -1))


def index_tables(
    res: int, interior: CellArray, interior_slots: IntArray, boundary: CellArray, boundary_slots: IntArray
) -> dict[str, CellTable]:
    """The cell tables of fences whose covers are laid end to end (each cell with the slot of its fence):
    "interior", "boundary" and one "near<level>" per coarser level (the boundary cells' parents)."""
    tables = {"interior": CellTable.from_pairs(interior, interior_slots)}
    tables["boundary"] = CellTable.from_pairs(boundary, boundary_slots)
    for level in near_levels(res)[1:]:
        parents, slots = _unique_pairs(cells.cells_to_parents(boundary, level), boundary_slots)
        tables[f"near{level}"] = CellTable.from_pairs(parents, slots)
    return tables


@dataclass(frozen=True)
class IndexParts:
    """Every fence of an index by slot: ids, boxes, how to make a shape or cover, and the cell tables."""

    names: Names
    bounds: npt.NDArray[np.float64]  # (slots, 4): west, south, east, north
    shapes: Callable[[int], Shape]
    covers: Callable[[int], Cover]
    tables: dict[str, CellTable]

    @classmethod
    def of(cls, res: int, fences: Iterable[tuple[str, Shape, Cover]]) -> IndexParts:
        """Parts of fences in memory (a worker reading SQL); the last of a repeated id wins."""
        latest = {fence_id: (shape, cover) for fence_id, shape, cover in fences}
        ids = list(latest)
        shapes = [shape for shape, _ in latest.values()]
        covers = [cover for _, cover in latest.values()]
        interior, interior_at = flat.cells([c.interior for c in covers])
        boundary, boundary_at = flat.cells([c.boundary for c in covers])
        interior_slots, boundary_slots = flat.owners(interior_at), flat.owners(boundary_at)
        bounds = np.array([s.bounds for s in shapes], dtype=np.float64).reshape(-1, 4)
        tables = index_tables(res, interior, interior_slots, boundary, boundary_slots)
        return cls(Names(*Names.arrays(ids)), bounds, shapes.__getitem__, covers.__getitem__, tables)


@dataclass(frozen=True)
class IndexState:
    """One consistent state of an index: its live fences (ids, shapes, covers made when called) and every
    cell table as (cells, positions in ``ids``)."""

    version: int
    ids: list[str]
    shapes: Callable[[], list[Shape]]
    covers: Callable[[], list[Cover]]
    tables: dict[str, tuple[CellArray, IntArray]]


class FenceIndex:
    """In-memory index of fences by H3 cell; safe for many readers and one writer at a time."""

    def __init__(self, res: int = DEFAULT_RES) -> None:
        if not 1 <= res <= cells.MAX_RES:
            raise ValueError(f"index resolution must be between 1 and {cells.MAX_RES}")
        self.res = res
        self.near_levels = near_levels(res)
        self._lock = threading.Lock()
        self._near_cache: tuple[int, dict[tuple[Cell, int], tuple[IntArray, npt.NDArray[np.float64]]]] = (-1, {})
        self.version = 0  # bumped by every write, so packed copies (see ``bulk``) know they are stale
        empty = index_tables(res, *(np.zeros(0, np.uint64), np.zeros(0, np.int64)) * 2)
        self._take(IndexParts(Names(), np.zeros((0, 4)), _none, _none, empty))

    def _take(self, parts: IndexParts) -> None:
        with self._lock:
            stored = parts.names.stored
            self._names = parts.names
            self._alive = np.ones(stored, dtype=bool)  # by slot; a private copy: writes mark slots dead
            self._bounds = parts.bounds  # by slot; copied (and grown) by the first write
            self._shapes: Rows[Shape] = Rows(parts.shapes, stored)
            self._covers: Rows[Cover] = Rows(parts.covers, stored)
            self._tables = dict(parts.tables)  # packed, never changed
            # cell -> slots added since, per table: each cell's tuple replaced whole, so a reader sees one state
            self._added: dict[str, dict[int, tuple[int, ...]]] = {name: {} for name in self._tables}
            self._added_res: set[int] = set()  # resolutions of the interior cells added since
            self._count = stored
            self.version += 1

    def __len__(self) -> int:
        return self._count

    def __contains__(self, fence_id: object) -> bool:
        return isinstance(fence_id, str) and self._slot(fence_id) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.names(np.flatnonzero(self._alive[: len(self._names)])))

    def _slot(self, fence_id: str) -> int | None:
        """The live slot of a fence."""
        slot = self._names.number(fence_id)
        return slot if slot is not None and slot < len(self._alive) and self._alive[slot] else None

    def shape(self, fence_id: str) -> Shape | None:
        slot = self._slot(fence_id)
        return None if slot is None else self._shapes[slot]

    def cover(self, fence_id: str) -> Cover | None:
        slot = self._slot(fence_id)
        return None if slot is None else self._covers[slot]

    def add(self, fence_id: str, shape: Shape, cover: Cover | None = None) -> Cover:
        """Insert or replace one fence; the cover is computed outside the lock unless given."""
        cover = cover or cover_shape(shape, self.res)
        if cover.res != self.res:
            raise ValueError(f"cover is at res {cover.res}, the index at {self.res}")
        rows = {"interior": [int(c) for c in cover.interior], "boundary": [int(c) for c in cover.boundary]}
        for level in self.near_levels[1:]:
            rows[f"near{level}"] = [int(c) for c in {cells.cell_to_parent(c, level) for c in cover.boundary}]
        with self._lock:
            self._kill(fence_id)
            slot = self._names.append(fence_id)
            self._grow(slot)
            self._bounds[slot] = shape.bounds
            self._alive[slot] = True
            self._shapes.append(shape)
            self._covers.append(cover)
            self._count += 1
            self._added_res.update(cells.cell_to_res(c) for c in cover.interior)
            for name, keys in rows.items():
                added = self._added[name]
                for key in keys:
                    added[key] = (*added.get(key, ()), slot)
            self.version += 1
        return cover

    def remove(self, fence_id: str) -> bool:
        with self._lock:
            found = self._kill(fence_id)
            self.version += 1
        return found

    def replace_all(self, fences: Iterable[tuple[str, Shape, Cover | None]]) -> None:
        """Swap in a complete new set (a worker reading SQL); a cover not given is computed."""
        covered = []
        for fence_id, shape, cover in fences:
            cover = cover or cover_shape(shape, self.res)
            if cover.res != self.res:
                raise ValueError(f"cover is at res {cover.res}, the index at {self.res}")
            covered.append((fence_id, shape, cover))
        self._take(IndexParts.of(self.res, covered))

    def restore(self, parts: IndexParts) -> None:
        """Swap in fences whose tables and boxes are known (a catalog snapshot): nothing is made per fence."""
        self._take(parts)

    def state(self) -> IndexState:
        """The index now, taken under the writers' lock in a few array copies (``IndexState``)."""
        with self._lock:
            names, shapes, covers = self._names, self._shapes, self._covers
            live = np.flatnonzero(self._alive[: len(names)])
            tables = {name: (table, dict(self._added[name])) for name, table in self._tables.items()}
            version = self.version
        position = np.full(len(names), -1, dtype=np.int64)
        position[live] = np.arange(len(live))
        flat = {}
        for name, (table, added) in tables.items():
            keys, slots = table.rows([(key, slot) for key, group in added.items() for slot in group])
            kept = position[slots] >= 0
            flat[name] = (keys[kept], position[slots[kept]])
        taken = live.tolist()
        return IndexState(
            version, names.names(live), lambda: [shapes[s] for s in taken], lambda: [covers[s] for s in taken], flat
        )

    def query(self, point: LatLng) -> list[str]:
        """Ids of the fences that cover ``point``, exactly as the membership rule says."""
        cell = cells.latlng_to_cell(point, self.res)
        coarser = set(self._tables["interior"].resolutions) | self._added_res
        keys = [cell, *(cells.cell_to_parent(cell, r) for r in sorted(coarser, reverse=True) if r < self.res)]
        found = self._lookup("interior", keys)
        tested = self._lookup("boundary", [cell])
        alive, bounds = self._alive, self._bounds  # after the lookups: a slot found has its arrays in place
        hits = found[alive[found]].tolist()
        tested = tested[alive[tested]]
        if len(tested):
            box = bounds[tested]
            lat, lon = point.lat, point.lon
            near = (box[:, 0] <= lon) & (lon <= box[:, 2]) & (box[:, 1] <= lat) & (lat <= box[:, 3])
            hits += [s for s in tested[near].tolist() if self._shapes[s].covers(point)]
        return [self._names.name(s) for s in hits]

    def _lookup(self, name: str, keys: list[Cell]) -> IntArray:
        """The slots stored under any of ``keys`` in one table, packed or added since (dead ones too)."""
        found = self._tables[name].lookup(np.array(keys, dtype=np.uint64))
        added = self._added[name]
        extra = [s for key in keys for s in added.get(key, ())] if added else []
        return np.concatenate((found, np.array(extra, dtype=np.int64))) if extra else found

    def nearby(self, point: LatLng, within_m: float) -> list[Proximity]:
        """Fences that cover ``point`` or lie within ``within_m`` metres of it, nearest first."""
        inside = set(self.query(point))
        result = [Proximity(fence_id, True, 0.0) for fence_id in sorted(inside)]
        if within_m > 0:
            slots, boxes = self._near_boxes(point, within_m)
            for s in slots[box_distance_floors_m(point.lat, point.lon, boxes) <= within_m].tolist():
                fence_id = self._names.name(s)
                if fence_id in inside:
                    continue
                distance = self._shapes[s].distance_m(point)
                if distance <= within_m:
                    result.append(Proximity(fence_id, False, distance))
        result.sort(key=lambda p: (p.distance_m, p.fence_id))
        return result

    def _near_boxes(self, point: LatLng, within_m: float) -> tuple[IntArray, npt.NDArray[np.float64]]:
        """The live fences with a boundary cell within reach of the point's cell, and their boxes. Remembered
        per cell until the index changes: devices keep pinging around the same places."""
        level, k = self._near_level(within_m)
        origin = cells.latlng_to_cell(point, level)
        version, remembered = self._near_cache
        if version != self.version:
            version, remembered = self.version, {}
            self._near_cache = (version, remembered)
        found = remembered.get((origin, k))
        if found is None:
            slots = np.unique(
                self._lookup("boundary" if level == self.res else f"near{level}", cells.grid_disk(origin, k))
            )
            slots = slots[self._alive[slots]]
            found = (slots, self._bounds[slots].reshape(-1, 4))
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

    def _kill(self, fence_id: str) -> bool:
        slot = self._slot(fence_id)
        if slot is None:
            return False
        self._alive[slot] = False
        self._count -= 1
        return True

    def _grow(self, slot: int) -> None:
        """Room for ``slot`` in the per-slot arrays (new arrays: a snapshot's are read-only, readers keep theirs)."""
        if slot < len(self._alive) and slot < len(self._bounds):
            return
        more = max(slot, 1024)
        self._bounds = np.concatenate((self._bounds, np.tile(np.array(_NOWHERE), (more, 1))))
        self._alive = np.concatenate((self._alive, np.zeros(more, dtype=bool)))


def _none(slot: int) -> NoReturn:
    raise IndexError(slot)


def _unique_pairs(keys: CellArray, owners: IntArray) -> tuple[CellArray, IntArray]:
    """Parallel arrays with each (key, owner) pair once."""
    if not len(keys):
        return keys, owners
    order = np.lexsort((owners, keys))
    keys, owners = keys[order], owners[order]
    fresh = np.ones(len(keys), dtype=bool)
    fresh[1:] = (keys[1:] != keys[:-1]) | (owners[1:] != owners[:-1])
    return keys[fresh], owners[fresh]
