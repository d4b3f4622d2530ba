"""Covers kept beside their fence in SQL: a fence's H3 cover and the reach covers of the distances its offers
are shown at, each for the fence version it was computed from. Cells are packed as little-endian uint64, so a
worker reads 100,000 covers as bytes instead of covering 100,000 shapes again.

A cover stored for an older version of its fence, or for another resolution, is never handed out: the reader
computes it again and stores it (``Catalog``), which is also how fences stored before covers were kept get
theirs, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Delete, delete, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from geofences.cells import Cell
from geofences.index import Cover
from geotarget.store import models
from geotarget.store.database import transaction

log = logging.getLogger(__name__)

_Row = TypeVar("_Row", models.FenceCover, models.ReachCover)
_CHUNK = 1_000  # rows per statement or transaction: well under every database's parameter limit


@dataclass(frozen=True)
class FenceReach:
    """The cells within ``nearby_m`` of one version of a fence, made for an index at ``finest_res``."""

    fence_id: str
    fence_version: int
    nearby_m: float
    finest_res: int
    cells: tuple[Cell, ...]


CellArray = npt.NDArray[np.uint64]


def pack(cells: Sequence[int]) -> bytes:
    return np.asarray(cells, dtype="<u8").tobytes()


def unpack(blob: bytes) -> tuple[Cell, ...]:
    return tuple(np.frombuffer(blob, dtype="<u8").tolist())


def cover_values(fence_id: str, fence_version: int, cover: Cover) -> dict[str, object]:
    """A ``fence_covers`` row."""
    return {
        "fence_id": fence_id,
        "fence_version": fence_version,
        "res": cover.res,
        "interior": pack(cover.interior),
        "boundary": pack(cover.boundary),
    }


def forget_reaches(session: Session, fence_id: str) -> None:
    """A fence's shape changed: its reach covers are for a shape that is gone."""
    session.execute(delete(models.ReachCover).where(models.ReachCover.fence_id == fence_id))


class CoverTable:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def covers(self, res: int, ids: Sequence[str] | None = None) -> dict[str, Cover]:
        """Fence id -> cover, for the fences' current versions at ``res`` (of ``ids`` only, when given)."""
        c, g = models.FenceCover, models.Geofence
        query = select(c.fence_id, c.interior, c.boundary).join(g, g.id == c.fence_id)
        query = query.where(c.res == res, c.fence_version == g.version)
        found: dict[str, Cover] = {}
        with self._factory() as session:
            for part in _parts(ids):
                selected = query if part is None else query.where(c.fence_id.in_(part))
                for fence_id, interior, boundary in session.execute(selected):
                    found[fence_id] = Cover(res, unpack(interior), unpack(boundary))
        return found

    def reaches(self, finest_res: int, ids: Sequence[str] | None = None) -> dict[str, dict[float, CellArray]]:
        """Fence id -> nearby_m -> reach cells, for the fences' current versions (of ``ids`` only, when given).
        As arrays over the stored bytes: a worker keeps every reach for as long as it runs, and a tuple of Python
        ints takes five times the memory."""
        r, g = models.ReachCover, models.Geofence
        query = select(r.fence_id, r.nearby_m, r.cells).join(g, g.id == r.fence_id)
        query = query.where(r.finest_res == finest_res, r.fence_version == g.version)
        found: dict[str, dict[float, CellArray]] = {}
        with self._factory() as session:
            for part in _parts(ids):
                selected = query if part is None else query.where(r.fence_id.in_(part))
                for fence_id, nearby_m, cells in session.execute(selected):
                    found.setdefault(fence_id, {})[float(nearby_m)] = np.frombuffer(cells, dtype="<u8")
        return found

    def put_covers(self, covers: Sequence[tuple[str, int, Cover]]) -> None:
        """Store (fence id, fence version, cover) rows, replacing what each fence had."""
        rows = [models.FenceCover(**cover_values(fence_id, version, cover)) for fence_id, version, cover in covers]
        c = models.FenceCover
        self._replace(rows, lambda chunk: delete(c).where(c.fence_id.in_([row.fence_id for row in chunk])))

    def put_reaches(self, reaches: Sequence[FenceReach]) -> None:
        """Store reach covers, replacing what each (fence, nearby_m) had."""
        r = models.ReachCover
        rows = [
            r(
                fence_id=x.fence_id,
                nearby_m=x.nearby_m,
                fence_version=x.fence_version,
                finest_res=x.finest_res,
                cells=pack(x.cells),
            )
            for x in reaches
        ]
        self._replace(
            rows,
            lambda chunk: delete(r).where(
                tuple_(r.fence_id, r.nearby_m).in_([(row.fence_id, row.nearby_m) for row in chunk])
            ),
        )

    def _replace(self, rows: Sequence[_Row], clear: Callable[[Sequence[_Row]], Delete]) -> None:
        """Chunks of rows, each in its own transaction. A chunk that loses a race (another worker stored the
        same rows, or the fence was deleted meanwhile) is dropped: whoever needs it computes it again."""
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            try:
                with transaction(self._factory) as session:
                    session.execute(clear(chunk))
                    session.add_all(chunk)
            except IntegrityError:
                log.info("stored covers raced with another writer; %d left to be computed again", len(chunk))


def _parts(ids: Sequence[str] | None) -> list[list[str] | None]:
    if ids is None:
        return [None]
    unique = list(dict.fromkeys(ids))
    return [unique[i : i + _CHUNK] for i in range(0, len(unique), _CHUNK)]
