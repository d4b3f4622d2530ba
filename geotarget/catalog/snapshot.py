"""The catalog of one worker: the in-memory ``FenceIndex``, who owns each fence, and the offers on each fence,
kept equal to SQL.

SQL is the source of truth; the ``changes`` table is its ordered log. ``sync()`` applies what this worker has not
seen yet, so a missed Redis notification only delays a change, it never loses it.

The index lives as long as the process, and Python's cyclic collector would rescan all of it in every full
collection: with 20,000 fences each took 130-250 ms, holding the GIL, so every request of the worker stalled
that long a few times per bulk upload. Large changes are therefore made with the collector paused and then
frozen out of its sight (``gc.freeze``). A collection of the young generations before freezing was measured to
free nothing after a 5,000-fence bulk while pausing everyone for 20 ms, so there is none.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from geofences import FenceIndex, LatLng, Proximity, Shape
from geofences.index import Cover
from geotarget.catalog.offer_rules import rule_of
from geotarget.catalog.shapes import shape_of
from geotarget.serving.types import OfferRule
from geotarget.store import repository
from geotarget.store.models import Change, Geofence, Offer


@dataclass(frozen=True)
class FenceMeta:
    merchant_id: str
    name: str
    timezone: str
    version: int


class Catalog:
    def __init__(self, res: int) -> None:
        self.index = FenceIndex(res)
        self._meta: dict[str, FenceMeta] = {}
        self._offers: dict[str, tuple[OfferRule, int]] = {}  # id -> (rule, version)
        self._by_fence: dict[str, tuple[OfferRule, ...]] = {}
        self.timezones: dict[str, str] = {}  # fence id -> IANA zone, for schedules
        self.max_nearby_m = 0.0
        self._seq = 0
        self._lock = threading.RLock()

    @property
    def seq(self) -> int:
        return self._seq

    def close(self) -> None:
        """Hand frozen objects back to the collector (the process is done with this catalog)."""
        gc.unfreeze()

    def meta(self, fence_id: str) -> FenceMeta | None:
        return self._meta.get(fence_id)

    @property
    def offers_by_fence(self) -> Mapping[str, tuple[OfferRule, ...]]:
        return self._by_fence

    # -- fences -----------------------------------------------------------------------------------------------

    @contextmanager
    def writing(self, fences: int) -> Iterator[None]:
        """Hold while committing ``fences`` fences and indexing them: a concurrent ``sync`` then waits and finds
        them indexed instead of covering them a second time. Many fences are made out of the collector's sight."""
        with self._lock, _long_lived(fences >= LARGE_CHANGE):
            yield

    def _indexed_at(self, fence_id: str, version: int | None) -> bool:
        """Already indexed at this version (e.g. by the writer in this process): nothing to load or cover."""
        meta = self._meta.get(fence_id)
        return version is not None and meta is not None and meta.version >= version and fence_id in self.index

    def put_fence(self, row: Geofence, shape: Shape, cover: Cover | None = None) -> Cover:
        """Index a stored fence (skipped when this version is already indexed)."""
        with self._lock:
            existing = self.index.cover(row.id)
            if self._indexed_at(row.id, row.version) and existing is not None:
                return existing
            cover = self.index.add(row.id, shape, cover)
            self._meta[row.id] = FenceMeta(row.merchant_id, row.name, row.timezone, row.version)
            self.timezones[row.id] = row.timezone
            return cover

    def drop_fence(self, fence_id: str) -> None:
        with self._lock:
            self.index.remove(fence_id)
            self._meta.pop(fence_id, None)
            self.timezones.pop(fence_id, None)

    def nearby_for(self, merchant_id: str, point: LatLng, within_m: float) -> list[Proximity]:
        """Like ``FenceIndex.nearby``, keeping only one merchant's fences."""
        return [
            p
            for p in self.index.nearby(point, within_m)
            if (m := self._meta.get(p.fence_id)) is not None and m.merchant_id == merchant_id
        ]

    # -- offers -----------------------------------------------------------------------------------------------

    def put_offer(self, rule: OfferRule, version: int) -> None:
        with self._lock:
            current = self._offers.get(rule.id)
            if current is not None and current[1] >= version:
                return
            self._offers[rule.id] = (rule, version)
            self._rebuild_offer_tables()

    def drop_offer(self, offer_id: str) -> None:
        with self._lock:
            if self._offers.pop(offer_id, None) is not None:
                self._rebuild_offer_tables()

    def _rebuild_offer_tables(self) -> None:
        by_fence: dict[str, list[OfferRule]] = {}
        for rule, _ in self._offers.values():
            for fence_id in rule.fence_ids:
                by_fence.setdefault(fence_id, []).append(rule)
        self._by_fence = {k: tuple(v) for k, v in by_fence.items()}
        active = [r.nearby_m for r, _ in self._offers.values() if r.status == "active"]
        self.max_nearby_m = max(active, default=0.0)

    # -- loading ----------------------------------------------------------------------------------------------

    def load_all(self, factory: sessionmaker[Session]) -> None:
        """Rebuild from SQL (worker start)."""
        with self.writing(LARGE_CHANGE), factory() as session:
            seq = repository.latest_change(session)
            rows = repository.all_fences(session)
            self.index.replace_all((row.id, shape_of(row)) for row in rows)
            self._meta = {r.id: FenceMeta(r.merchant_id, r.name, r.timezone, r.version) for r in rows}
            self.timezones = {r.id: r.timezone for r in rows}
            self._load_offers(session, repository.all_offers(session), replace=True)
            self._seq = seq

    def sync(self, factory: sessionmaker[Session]) -> int:
        """Apply every change logged since the last sync; returns how many were applied."""
        with self._lock, factory() as session:
            changes = repository.changes_since(session, self._seq)
            if not changes:
                return 0
            with _long_lived(len(changes) >= LARGE_CHANGE):
                self._apply(session, changes)
            return len(changes)

    def _apply(self, session: Session, changes: Sequence[Change]) -> None:
        newest: dict[str, int | None] = {c.entity_id: c.version for c in changes if c.kind == "fence"}
        fence_ids = [f for f, version in newest.items() if not self._indexed_at(f, version)]
        offer_ids = list(dict.fromkeys(c.entity_id for c in changes if c.kind == "offer"))
        fences = {r.id: r for r in repository.fences_by_ids(session, fence_ids)} if fence_ids else {}
        for fence_id in fence_ids:
            row = fences.get(fence_id)
            if row is None:
                self.drop_fence(fence_id)
            elif not self._indexed_at(row.id, row.version):
                self.put_fence(row, shape_of(row))
        if offer_ids:
            offers = repository.offers_by_ids(session, offer_ids)
            for gone in set(offer_ids) - {o.id for o in offers}:
                self._offers.pop(gone, None)
            self._load_offers(session, offers, replace=False)
        self._seq = max(self._seq, changes[-1].seq)

    def _load_offers(self, session: Session, rows: Iterable[Offer], *, replace: bool) -> None:
        rows = list(rows)
        caps = repository.merchant_caps(session, {r.merchant_id for r in rows})
        loaded = {r.id: (rule_of(r, caps.get(r.merchant_id)), r.version) for r in rows}
        if replace:
            self._offers = loaded
        else:
            for offer_id, (rule, version) in loaded.items():
                current = self._offers.get(offer_id)
                if current is None or current[1] < version:
                    self._offers[offer_id] = (rule, version)
        self._rebuild_offer_tables()


LARGE_CHANGE = 500  # fences; smaller changes leave the collector alone
_pauses = 0
_pauses_lock = threading.Lock()


@contextmanager
def _long_lived(large: bool) -> Iterator[None]:
    """Pause the cyclic collector while long-lived objects are made, then freeze what is alive."""
    global _pauses
    if not large:
        yield
        return
    with _pauses_lock:
        _pauses += 1
        gc.disable()
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0:
                gc.freeze()
                gc.enable()
