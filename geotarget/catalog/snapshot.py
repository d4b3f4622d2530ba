"""The catalog of one worker: the in-memory ``FenceIndex``, who owns each fence, and the offers on each fence,
kept equal to SQL; and ``view``, the immutable ``CatalogView`` serving reads, replaced whole when the outermost
write block (a fence write, a sync, a load) ends.

SQL is the source of truth; the ``changes`` table is its ordered log. ``sync()`` applies what this worker has not
seen yet, so a missed Redis notification only delays a change, it never loses it. A worker usually starts from
its machine's catalog snapshot (``restore``; ``starting`` picks it, ``frozen`` reads it): its fences, offers and
pairs then stay arrays, and what changes after it is kept beside them. Read from SQL instead (``load_all``),
covers and reach covers come from SQL too (stored when the fence or offer was written); one that is missing or
stale is computed here and stored, so the next worker to start finds it.

The index lives as long as the process, and Python's cyclic collector would rescan all of it in every full
collection: with 20,000 fences each took 130-250 ms, holding the GIL, so every request of the worker stalled
that long a few times per bulk upload. Large changes are therefore made with the collector paused and then
frozen out of its sight (``gc.freeze``). A collection of the young generations before freezing was measured to
free nothing after a 5,000-fence bulk while pausing everyone for 20 ms, so there is none.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from geofences import FenceIndex, LatLng, Proximity, Shape
from geofences.index import Cover, cover_shape
from geotarget.catalog.frozen import Arrays, FenceMeta, Thawed, capture, freeze
from geotarget.catalog.keys import KeyCache
from geotarget.catalog.lazy import LazyMap
from geotarget.catalog.model import Fence, Offer
from geotarget.catalog.offer_fences import FencePlacing, OfferFences, Placement
from geotarget.catalog.shapes import shape_of
from geotarget.catalog.view import CatalogView, FencePlace, ViewBuilder
from geotarget.store.covers import FenceReach
from geotarget.store.repository import EVERYONE, Change, Repository
from geotarget.triggers.presence import DEFAULT_DWELL_S

log = logging.getLogger(__name__)


class Catalog:
    def __init__(self, res: int) -> None:
        self.index = FenceIndex(res)
        self._meta: MutableMapping[str, FenceMeta] = {}  # LazyMaps when started from a snapshot (also timezones)
        self._offers: MutableMapping[str, Offer] = {}  # a LazyMap when started from a snapshot
        self._placing = OfferFences()  # which offers are on which fences (by id, by tag, or all of them)
        self._marked: dict[str, list[int]] = {}  # a snapshot's offers that the pacing and rotation loops want
        self._farthest_stored = 0.0  # the largest nearby_m of a snapshot's offers
        self.triggered: dict[str, tuple[Offer, ...]] = {}  # fence id -> offers with a trigger (tuples: never mutated)
        self.dwell_thresholds: dict[str, tuple[int, ...]] = {}  # fence id -> dwell times, where not just the default
        self.timezones: MutableMapping[str, str] = {}  # fence id -> IANA zone, for schedules
        self.merchant_caps: dict[str, int] = {}  # merchant id -> impressions per device per day, where set
        # replaced whole on change, so a request reads one state: audience id -> its live generation (only
        # audiences with published members), and the fences drawn only to feed audiences
        self.live_audiences: dict[str, int] = {}
        self.audience_fences: frozenset[str] = frozenset()
        self.webhooks_version = 0  # moves on when another worker's webhook subscriptions changed
        self.keys = KeyCache()  # the API keys this worker has seen; a key's change makes it forget that key
        self.applied_at: datetime | None = None  # when the newest change applied here was committed
        self._seq = 0
        self._farthest = (-1, 0.0)  # (catalog seq, largest nearby_m)
        self._lock = threading.RLock()
        self._storing = threading.Lock()  # see _store_reaches
        self._builder = ViewBuilder(res, self._place, self._fences_of)
        self._held = 0  # nested write blocks; the view is published when the outermost ends
        self.view: CatalogView = self._builder.view(self.merchant_caps)

    @property
    def seq(self) -> int:
        return self._seq

    def close(self) -> None:
        """Hand frozen objects back to the collector (the process is done with this catalog)."""
        gc.unfreeze()

    def meta(self, fence_id: str) -> FenceMeta | None:
        return self._meta.get(fence_id)

    def _place(self, fence_id: str) -> FencePlace | None:
        """Where a fence's offers are served; None for an audience-only fence (it is never served)."""
        if fence_id in self.audience_fences:
            return None
        shape, cover, zone = self.index.shape(fence_id), self.index.cover(fence_id), self.timezones.get(fence_id)
        meta = self._meta.get(fence_id)
        if shape is None or cover is None or zone is None or meta is None:
            return None
        return FencePlace(shape, cover, zone, meta.version)

    @contextmanager
    def _publishing(self) -> Iterator[None]:
        """Hold the write lock; when the outermost block ends, swap in a new view (one assignment)."""
        with self._lock:
            self._held += 1
            try:
                yield
            finally:
                self._held -= 1
                if self._held == 0:
                    self.view = self._builder.view(self.merchant_caps)

    # -- fences -----------------------------------------------------------------------------------------------

    @contextmanager
    def writing(self, fences: int) -> Iterator[None]:
        """Hold while committing ``fences`` fences and indexing them: a concurrent ``sync`` then waits and finds
        them indexed instead of covering them a second time. Many fences are made out of the collector's sight."""
        with self._publishing(), _long_lived(fences >= LARGE_CHANGE):
            yield

    def _indexed_at(self, fence_id: str, version: int | None) -> bool:
        """Already indexed at this version (e.g. by the writer in this process): nothing to load or cover."""
        meta = self._meta.get(fence_id)
        return version is not None and meta is not None and meta.version >= version and fence_id in self.index

    def put_fence(self, fence: Fence, shape: Shape, cover: Cover | None = None) -> Cover:
        """Index a stored fence (skipped when this version is already indexed)."""
        with self._publishing():
            existing = self.index.cover(fence.id)
            if self._indexed_at(fence.id, fence.version) and existing is not None:
                return existing
            cover = self.index.add(fence.id, shape, cover)
            self._meta[fence.id] = FenceMeta.of(fence)
            self.timezones[fence.id] = fence.timezone
            self._set_audience_fence(fence.id, fence.audience_only)
            self._placing.put_fence(FencePlacing.of(fence))
            self._builder.set_fence(fence.id, self.offers_on(fence.id))
            self._index_triggers([fence.id])  # a new store with the chain's tag gets its triggered offers too
            return cover

    def drop_fence(self, fence_id: str) -> None:
        with self._publishing():
            self.index.remove(fence_id)
            self._meta.pop(fence_id, None)
            self.timezones.pop(fence_id, None)
            self._set_audience_fence(fence_id, False)
            self._placing.drop_fence(fence_id)
            self._builder.set_fence(fence_id, ())
            self._index_triggers([fence_id])

    def _set_audience_fence(self, fence_id: str, audience_only: bool) -> None:
        if audience_only != (fence_id in self.audience_fences):
            self.audience_fences = self.audience_fences ^ {fence_id}

    def farthest_reach_m(self) -> float:
        """The largest ``nearby_m`` of any offer (the explainer looks that far), remembered per catalog version."""
        if self._farthest[0] != self._seq:
            known = self._offers.known() if isinstance(self._offers, LazyMap) else list(self._offers.values())
            farthest = max((o.nearby_m for o in known), default=0.0)  # with a snapshot's: an upper bound
            self._farthest = (self._seq, max(farthest, self._farthest_stored))
        return self._farthest[1]

    def optimized_offers(self) -> list[Offer]:
        """Offers whose variants rotate by clicks (``serving.variants``)."""
        return [o for o in self._marked_offers("optimized") if o.rotation == "optimized" and o.variants]

    def paced_offers(self) -> list[Offer]:
        """Offers whose daily budget or goal is paced (``serving.pacing``)."""
        return [o for o in self._marked_offers("paced") if o.pacing != "asap" and (o.daily_budget or o.goal)]

    def _marked_offers(self, mark: str) -> list[Offer]:
        """Every offer that may have ``mark``: of a snapshot's, only those it marked (the others are decoded
        only when a request or write needs them)."""
        with self._lock:
            if isinstance(self._offers, LazyMap):
                return self._offers.among(self._marked.get(mark, ()))
            return list(self._offers.values())

    def offers_on(self, fence_id: str) -> list[Offer]:
        """The offers on a fence now (by id, by tag or over all the merchant's fences)."""
        found = [self._offers.get(p.id) for p in self._placing.offers_on(fence_id)]  # may race a write: no lock
        return [o for o in found if o is not None]

    def _fences_of(self, offer: Offer) -> list[str]:
        return self._placing.fences_of(Placement.of(offer))

    def nearby_for(self, merchant_id: str, point: LatLng, within_m: float) -> list[Proximity]:
        """Like ``FenceIndex.nearby``, keeping only one merchant's fences."""
        return [
            p
            for p in self.index.nearby(point, within_m)
            if (m := self._meta.get(p.fence_id)) is not None and m.merchant_id == merchant_id
        ]

    # -- offers -----------------------------------------------------------------------------------------------

    def _put_offers(self, offers: Sequence[Offer]) -> None:
        for offer in offers:
            current = self._offers.get(offer.id)
            if current is None or current.version < offer.version:
                self._set_offer(offer.id, offer)

    def _set_offer(self, offer_id: str, offer: Offer | None) -> None:
        old = self._offers.pop(offer_id, None)
        touched = self._fences_of(old) if old else []
        if old is not None:
            self._placing.drop_offer(Placement.of(old))
        if offer is not None:
            self._offers[offer_id] = offer
            self._placing.put_offer(Placement.of(offer))
            touched += self._fences_of(offer)
        self._index_triggers(touched)
        self._builder.set_offer(offer_id, offer)

    def _index_triggers(self, fence_ids: Iterable[str]) -> None:
        """Keep ``triggered`` and ``dwell_thresholds`` for these fences (each entry replaced in one assignment)."""
        for fence_id in fence_ids:
            offers = tuple(self._offers[p.id] for p in self._placing.offers_on(fence_id) if p.triggered)
            waits = {t for o in offers if o.trigger and (t := o.trigger.threshold_s) is not None}
            if offers:
                self.triggered[fence_id] = offers
            else:
                self.triggered.pop(fence_id, None)
            if waits - {DEFAULT_DWELL_S}:
                self.dwell_thresholds[fence_id] = tuple(sorted(waits | {DEFAULT_DWELL_S}))
            else:
                self.dwell_thresholds.pop(fence_id, None)

    # -- loading ----------------------------------------------------------------------------------------------

    def load_all(self, repository: Repository) -> None:
        """Rebuild from SQL (worker start)."""
        with self.writing(LARGE_CHANGE):
            seq = repository.latest_change()
            fences = repository.fences(EVERYONE)
            covers = repository.covers.covers(self.index.res)
            shapes = {f.id: shape_of(f) for f in fences}
            computed = [
                (f.id, f.version, cover_shape(shapes[f.id], self.index.res)) for f in fences if f.id not in covers
            ]
            covers.update((fence_id, cover) for fence_id, _, cover in computed)
            self.index.replace_all((f.id, shapes[f.id], covers[f.id]) for f in fences)
            del shapes, covers
            self._meta = {f.id: FenceMeta.of(f) for f in fences}
            self.timezones = {f.id: f.timezone for f in fences}
            self.audience_fences = frozenset(f.id for f in fences if f.audience_only)
            offers = repository.offers(EVERYONE)
            self._offers = {o.id: o for o in offers}
            self._placing = placing = OfferFences()
            for fence in fences:
                placing.put_fence(FencePlacing.of(fence))
            for offer in offers:
                placing.put_offer(Placement.of(offer))
            self._marked, self._farthest_stored = {}, 0.0
            self.triggered, self.dwell_thresholds = {}, {}
            self._index_triggers(placing.fences_with_offers(triggered=True))
            self._builder.rebuild(offers, repository.covers.reaches(self.index.res))
            self._put_merchants(repository, None)
            self._put_audiences(repository, None)
            self._seq = seq
        if computed:
            log.info("stored the covers of %d fences stored without one", len(computed))
            repository.covers.put_covers(computed)
        self._store_reaches(repository)

    def restore(self, thawed: Thawed, seq: int, repository: Repository) -> None:
        """Take a snapshot's state, written once every change up to ``seq`` was applied (worker start); what
        changed after it is applied by the ``sync`` that follows."""
        with self.writing(LARGE_CHANGE):
            t = thawed
            self.index.restore(t.index)
            self._meta, self.timezones, self.audience_fences = t.meta, t.timezones, t.audience_fences
            self._offers, self._marked, self._farthest_stored = t.offers, t.marked, t.farthest_m
            self._placing = placing = OfferFences(t.placing)
            self.triggered, self.dwell_thresholds = {}, {}
            self._index_triggers(placing.fences_with_offers(triggered=True))
            self._builder.restore(t.pairs)
            self._put_merchants(repository, None)
            self._put_audiences(repository, None)
            self._seq = seq

    def frozen(self) -> tuple[int, Arrays, dict[str, Any]]:
        """(seq, arrays, JSON) of a snapshot of the catalog now (``catalog.frozen``)."""
        with self._lock:
            fences = [
                FencePlacing(f, m.merchant_id, self._placing.tags_of(f), f in self.audience_fences)
                for f, m in self._meta.items()
            ]
            seq, state = self._seq, capture(self.index, self._meta, fences, self._offers, self._builder)
        return (seq, *freeze(state))

    def _store_reaches(self, repository: Repository) -> None:
        """Store the reach covers computed since the last call (new offers, changed fences, or none stored).
        One call at a time, so a call returns only once every reach computed before it is stored, also those
        another thread took first (never called holding ``_lock``: the order is ``_storing``, then ``_lock``)."""
        with self._storing:
            with self._lock:
                res = self.index.res
                fresh = [FenceReach(f, v, m, res, cells) for f, v, m, cells in self._builder.take_computed()]
            if fresh:
                repository.covers.put_reaches(fresh)

    def sync(self, repository: Repository) -> int:
        """Apply every change logged since the last sync; returns how many were applied. A writer's own sync
        returns once the reaches of its change are stored, also when the follower's sync applied it first."""
        with self._publishing():
            changes = repository.changes_since(self._seq)
            if changes:
                with _long_lived(len(changes) >= LARGE_CHANGE):
                    self._apply(repository, changes)
        self._store_reaches(repository)
        return len(changes)

    def _apply(self, repository: Repository, changes: Sequence[Change]) -> None:
        newest: dict[str, int | None] = {c.entity_id: c.version for c in changes if c.kind == "fence"}
        fence_ids = [f for f, version in newest.items() if not self._indexed_at(f, version)]
        offer_ids = list(dict.fromkeys(c.entity_id for c in changes if c.kind == "offer"))
        merchant_ids = list(dict.fromkeys(c.entity_id for c in changes if c.kind == "merchant"))
        audience_ids = list(dict.fromkeys(c.entity_id for c in changes if c.kind == "audience"))
        fences = {f.id: f for f in repository.fences(EVERYONE, fence_ids)} if fence_ids else {}
        covers = repository.covers.covers(self.index.res, list(fences)) if fences else {}
        for fence_id in fence_ids:
            fence = fences.get(fence_id)
            if fence is None:
                self.drop_fence(fence_id)
            elif not self._indexed_at(fence.id, fence.version):
                self.put_fence(fence, shape_of(fence), covers.get(fence.id))
        if offer_ids:
            offers = repository.offers(EVERYONE, offer_ids)
            for gone in set(offer_ids) - {o.id for o in offers}:
                self._set_offer(gone, None)
            self._put_offers(offers)
        if merchant_ids:
            self._put_merchants(repository, merchant_ids)
        if audience_ids:
            self._put_audiences(repository, audience_ids)
        self.keys.forget(c.entity_id for c in changes if c.kind == "key")
        if any(c.kind == "webhook" for c in changes):
            self.webhooks_version += 1  # who listens to presence is read again (trigger_loops.TriggerLoops.listen)
        self._seq = max(self._seq, changes[-1].seq)
        self.applied_at = changes[-1].at

    def _put_merchants(self, repository: Repository, ids: Sequence[str] | None) -> None:
        for merchant in repository.merchants(EVERYONE, ids):
            if merchant.cap_per_device_per_day is None:
                self.merchant_caps.pop(merchant.id, None)
            else:
                self.merchant_caps[merchant.id] = merchant.cap_per_device_per_day

    def _put_audiences(self, repository: Repository, ids: Sequence[str] | None) -> None:
        live = {} if ids is None else {a: g for a, g in self.live_audiences.items() if a not in ids}
        for audience in repository.audiences.owned(None, ids):
            if audience.token is not None:
                live[audience.id] = audience.generation
        self.live_audiences = live


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
