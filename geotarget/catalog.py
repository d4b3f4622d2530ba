"""The fence catalog of one worker: the in-memory ``FenceIndex`` plus who owns each fence, kept equal to SQL.

SQL is the source of truth; ``fence_changes`` is its ordered log. ``sync()`` applies what this worker has not
seen yet, so a missed Redis notification only delays a change, it never loses it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from geofences import FenceIndex, LatLng, Proximity, Shape
from geofences.index import Cover
from geotarget.shapes import shape_of
from geotarget.store import repository
from geotarget.store.models import Geofence


@dataclass(frozen=True)
class FenceMeta:
    merchant_id: str
    name: str
    timezone: str
    version: int


class FenceCatalog:
    def __init__(self, res: int) -> None:
        self.index = FenceIndex(res)
        self._meta: dict[str, FenceMeta] = {}
        self._seq = 0
        self._lock = threading.Lock()

    @property
    def seq(self) -> int:
        return self._seq

    def meta(self, fence_id: str) -> FenceMeta | None:
        return self._meta.get(fence_id)

    def put(self, row: Geofence, shape: Shape, cover: Cover | None = None) -> Cover:
        """Index a stored fence (skipped when this version is already indexed)."""
        current = self._meta.get(row.id)
        if current is not None and current.version >= row.version:
            existing = self.index.cover(row.id)
            if existing is not None:
                return existing
        cover = self.index.add(row.id, shape, cover)
        self._meta[row.id] = FenceMeta(row.merchant_id, row.name, row.timezone, row.version)
        return cover

    def drop(self, fence_id: str) -> None:
        self.index.remove(fence_id)
        self._meta.pop(fence_id, None)

    def load_all(self, factory: sessionmaker[Session]) -> None:
        """Rebuild from SQL (worker start)."""
        with self._lock, factory() as session:
            seq = repository.latest_change(session)
            rows = repository.all_fences(session)
            self.index.replace_all((row.id, shape_of(row)) for row in rows)
            self._meta = {r.id: FenceMeta(r.merchant_id, r.name, r.timezone, r.version) for r in rows}
            self._seq = seq

    def sync(self, factory: sessionmaker[Session]) -> int:
        """Apply every change logged since the last sync; returns how many were applied."""
        with self._lock, factory() as session:
            changes = repository.changes_since(session, self._seq)
            if not changes:
                return 0
            wanted = {c.fence_id for c in changes if c.version is not None}
            rows = {r.id: r for r in repository.fences_by_ids(session, sorted(wanted))} if wanted else {}
            for fence_id in dict.fromkeys(c.fence_id for c in changes):
                row = rows.get(fence_id)
                if row is None:
                    self.drop(fence_id)
                else:
                    self.put(row, shape_of(row))
            self._seq = max(self._seq, changes[-1].seq)
            return len(changes)

    def nearby_for(self, merchant_id: str, point: LatLng, within_m: float) -> list[Proximity]:
        """Like ``FenceIndex.nearby``, keeping only one merchant's fences."""
        return [
            p
            for p in self.index.nearby(point, within_m)
            if (m := self._meta.get(p.fence_id)) is not None and m.merchant_id == merchant_id
        ]
