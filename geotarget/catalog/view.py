"""What serving reads: one immutable view of the catalog per request, and the builder that makes the next one.

Serving works on (offer, fence) *pairs*: every active offer on every one of its fences. A pair is found through
two ``CellTable``s:

- ``members``: the fence's own (compacted) cover, entries ``pair * 2 + kind``: ``INTERIOR`` cells lie inside
  the fence (the ping is inside, no geometry needed), ``BOUNDARY`` cells cross its outline (a point test
  decides). Looked up by the ping's index cell and its ancestors.
- ``reaches``: the cells of the pair's reach (the fence grown by the offer's ``nearby_m``; ``geofences.reach``),
  entries ``pair``. Looked up by the cells that hold the ping at each resolution present.

Per pair the view keeps, as columns, what ranking needs before any geometry: ``nearby_m``, the static part of
the score (priority and special), and the fence's box (a cheap lower bound of the distance). Columns are
appended by the one writer and never changed, so a view only needs how many rows it may read; which pairs are
alive is a per-view mask. A write makes a new table (sharing the packed part, see ``CellTable.adding``), a new
mask and a new view, and swaps it in with one assignment: a request never pairs a new index with old offers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from geofences import Shape
from geofences.cells import Cell
from geofences.celltable import CellTable
from geofences.index import Cover
from geofences.names import Names
from geofences.reach import reach_cover
from geofences.rows import Column
from geotarget.catalog.lazy import Rows
from geotarget.catalog.model import Offer
from geotarget.serving.ranking import static_score
from geotarget.serving.schedule import LiveNow, Schedule
from geotarget.serving.targeting import untargeted
from geotarget.store.covers import CellArray

INTERIOR, BOUNDARY = 0, 1
KINDS = 2  # a member entry is pair * KINDS + kind


@dataclass(frozen=True)
class FencePlace:
    """What a pair needs of its fence."""

    shape: Shape
    cover: Cover
    timezone: str
    version: int  # the fence's, which its reach covers are computed from


FenceLookup = Callable[[str], FencePlace | None]


class _Columns:
    """Per-pair rows, append-only. Rows of a snapshot are decoded when first read (``Rows``); its numeric
    columns stay the mapped arrays, rows added later go beside them (``Column``)."""

    def __init__(self, stored: StoredPairs | None = None) -> None:
        s = stored or StoredPairs.empty()
        self.offers, self.offer_ids, self.fence_ids = s.offers, s.offer_ids, s.fence_ids
        self.merchants, self.shapes, self.zones, self.schedules = s.merchants, s.shapes, s.zones, s.schedules
        self.nearby_m, self.static, self.bounds = Column(s.nearby_m), Column(s.static), Column(s.bounds)
        self.plain = Column(s.plain)
        self.alive = np.array(s.alive, dtype=bool)  # a private copy: writes mark rows dead

    def __len__(self) -> int:
        return len(self.offers)

    def append(self, offer: Offer, fence_id: str, place: FencePlace, schedule: int) -> int:
        row = len(self.offers)
        if row >= len(self.alive):
            self.alive = np.concatenate((self.alive, np.zeros(max(row, 1024), dtype=bool)))
        self.offers.append(offer)
        self.offer_ids.append(offer.id)
        self.fence_ids.append(fence_id)
        self.merchants.append(offer.merchant_id)
        self.shapes.append(place.shape)
        self.zones.append(place.timezone)
        self.schedules.append(schedule)
        self.nearby_m.set(row, offer.nearby_m)
        self.static.set(row, static_score(offer))
        self.bounds.set(row, place.shape.bounds)
        self.plain.set(row, plain(offer))
        self.alive[row] = True
        return row


@dataclass(frozen=True)
class StoredGroups:
    """A snapshot's rows grouped by the number of their offer (or fence): ``rows[at[n]:at[n + 1]]``."""

    names: Names
    rows: npt.NDArray[np.int64]
    at: npt.NDArray[np.int64]

    def of(self, key: str) -> list[int]:
        n = self.names.stored_number(key)
        return [] if n is None else self.rows[self.at[n] : self.at[n + 1]].tolist()


@dataclass(frozen=True)
class StoredReaches:
    """A snapshot's reach covers, grouped by fence number (``fence_at``), each with its ``nearby_m``."""

    fences: Names
    fence_at: npt.NDArray[np.int64]
    nearby_m: npt.NDArray[np.float64]
    cells: CellArray
    cells_at: npt.NDArray[np.int64]

    def of(self, fence_id: str) -> dict[float, CellArray]:
        n = self.fences.stored_number(fence_id)
        if n is None:
            return {}
        at = self.cells_at
        return {
            float(self.nearby_m[k]): self.cells[at[k] : at[k + 1]]
            for k in range(int(self.fence_at[n]), int(self.fence_at[n + 1]))
        }


class Reaches:
    """fence id -> nearby_m -> reach cover: a snapshot's, read per lookup, and what was computed or loaded since
    (fences changed since the snapshot no longer read it)."""

    def __init__(self, stored: StoredReaches | None = None, loaded: dict[str, dict[float, CellArray]] | None = None):
        self._stored = stored
        self._known: dict[str, dict[float, CellArray]] = loaded or {}
        self._dropped: set[str] = set()

    def of(self, fence_id: str) -> dict[float, CellArray]:
        """The reaches of one fence (a dict the caller may add to: it is kept)."""
        known = self._known.get(fence_id)
        if known is None:
            stored = self._stored.of(fence_id) if self._stored and fence_id not in self._dropped else {}
            known = self._known[fence_id] = stored
        return known

    def drop(self, fence_id: str) -> None:
        self._known.pop(fence_id, None)
        self._dropped.add(fence_id)

    def later(self) -> Callable[[], dict[str, dict[float, CellArray]]]:
        """Every reach as it is now (taken cheaply under the writer's lock), as a function to call after."""
        stored, dropped = self._stored, set(self._dropped)
        known = {f: dict(by_m) for f, by_m in self._known.items()}

        def every() -> dict[str, dict[float, CellArray]]:
            found: dict[str, dict[float, CellArray]] = {}
            if stored is not None:
                for n in np.flatnonzero(np.diff(stored.fence_at)).tolist():
                    fence_id = stored.fences.name(n)
                    if fence_id not in dropped:
                        found[fence_id] = stored.of(fence_id)
            return found | known

        return every


@dataclass(frozen=True)
class StoredPairs:
    """The pairs of a catalog snapshot (``catalog.frozen``): columns as arrays, objects decoded on demand."""

    offers: Rows[Offer]
    offer_ids: Rows[str]
    fence_ids: Rows[str]
    merchants: Rows[str]
    shapes: Rows[Shape]
    zones: Rows[str]
    schedules: Rows[int]
    nearby_m: npt.NDArray[np.float64]
    static: npt.NDArray[np.float64]
    bounds: npt.NDArray[np.float64]
    plain: npt.NDArray[np.bool_]
    alive: npt.NDArray[np.bool_]
    members: CellTable
    reaches: CellTable
    schedule_of: tuple[tuple[Schedule, str], ...]
    reach_covers: Reaches
    by_offer: StoredGroups
    by_fence: StoredGroups

    @classmethod
    def empty(cls) -> StoredPairs:
        none, no_rows = np.zeros(0), StoredGroups(Names(), np.zeros(0, np.int64), np.zeros(1, np.int64))
        return cls(
            Rows(), Rows(), Rows(), Rows(), Rows(), Rows(), Rows(),
            none, none, np.zeros((0, 4)), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool),
            CellTable.empty(), CellTable.empty(), (), Reaches(), no_rows, no_rows,
        )  # fmt: skip


@dataclass(frozen=True)
class CatalogView:
    """One consistent state of everything serving reads. Rows beyond ``count`` do not exist for this view."""

    members: CellTable
    reaches: CellTable
    count: int
    alive: npt.NDArray[np.bool_]
    nearby_m: Column
    static: Column
    bounds: Column
    plain: Column  # the offer neither targets nor is paced: ranking needs nothing of it but its id
    offers: Rows[Offer]
    offer_ids: Rows[str]
    fence_ids: Rows[str]
    merchants: Rows[str]  # the offer's: a merchant already given its share is passed over without reading it
    shapes: Rows[Shape]
    zones: Rows[str]
    schedules: Rows[int]
    schedule_of: tuple[tuple[Schedule, str], ...]  # interned (schedule, zone) by number
    live: LiveNow  # liveness of schedule_of, remembered for the minute
    merchant_caps: Mapping[str, int]
    res: int


def plain(offer: Offer) -> bool:
    """Whether ranking may take the offer without reading it: no targeting, no pacing (``serving.search``)."""
    return offer.pacing == "asap" and untargeted(offer.targeting)


def pullable(offer: Offer) -> bool:
    """Served when an app asks (``/v1/nearby``): active, and not kept for a trigger (those are only pushed)."""
    return offer.status == "active" and offer.trigger is None


class ViewBuilder:
    """Keeps the pairs equal to the catalog's fences and offers; the catalog calls it under its write lock."""

    def __init__(self, res: int, fence: FenceLookup, fences_of: Callable[[Offer], Iterable[str]]) -> None:
        self.res = res
        self._fence = fence
        self.fences_of = fences_of  # the fences an offer is on now (by id, by tag, or all of its merchant's)
        self._rows = _Columns()
        self._members = CellTable.empty()
        self._reaches_table = CellTable.empty()
        self._stored = StoredPairs.empty()
        self._by_offer: dict[str, list[int]] = {}  # rows added since the snapshot (its own: _stored.by_offer)
        self._by_fence: dict[str, list[int]] = {}
        self._reaches = Reaches()
        self._computed: list[tuple[str, int, float, tuple[Cell, ...]]] = []  # reaches not stored yet
        self._schedules: dict[tuple[Schedule, str], int] = {}

    def restore(self, stored: StoredPairs) -> None:
        """Start from a snapshot's pairs (worker start): nothing is computed or decoded here."""
        self._rows, self._stored = _Columns(stored), stored
        self._members, self._reaches_table, self._reaches = stored.members, stored.reaches, stored.reach_covers
        self._schedules = {pair: n for n, pair in enumerate(stored.schedule_of)}
        self._by_offer, self._by_fence = {}, {}

    def live_pairs(self) -> list[tuple[int, str, str]]:
        """(row, offer id, fence id) of every pair served now, in row order (what a snapshot keeps)."""
        rows = self._rows
        return [(r, rows.offer_ids[r], rows.fence_ids[r]) for r in np.flatnonzero(rows.alive[: len(rows)]).tolist()]

    def columns(self) -> tuple[Column, Column, Column, Column, Rows[int]]:
        """(nearby_m, static, bounds, plain, schedule numbers) by row; the interned schedules are ``schedule_of``."""
        r = self._rows
        return r.nearby_m, r.static, r.bounds, r.plain, r.schedules

    @property
    def schedule_of(self) -> tuple[tuple[Schedule, str], ...]:
        return tuple(self._schedules)

    def reach_covers(self) -> Reaches:
        return self._reaches

    def rebuild(self, offers: Iterable[Offer], stored: dict[str, dict[float, CellArray]]) -> None:
        """Start over from every offer (worker start): one packed table, no overlay. ``stored``: the reach covers
        kept in SQL (fence id -> nearby_m -> cells) for the fences' current versions."""
        self._rows, self._stored = _Columns(), StoredPairs.empty()
        self._by_offer, self._by_fence, self._reaches = {}, {}, Reaches(loaded=stored)
        members: list[tuple[int, int]] = []
        reaches: list[tuple[int, int]] = []
        for offer in offers:
            self._add_offer(offer, members, reaches)
        self._members, self._reaches_table = CellTable.pack(members), CellTable.pack(reaches)

    def set_offer(self, offer_id: str, offer: Offer | None) -> None:
        """The offer changed (or is gone: ``None``)."""
        self._kill(self._stored.by_offer.of(offer_id) + self._by_offer.pop(offer_id, []))
        if offer is not None:
            members: list[tuple[int, int]] = []
            reaches: list[tuple[int, int]] = []
            self._add_offer(offer, members, reaches)
            self._add_rows(members, reaches)

    def set_fence(self, fence_id: str, offers: Iterable[Offer]) -> None:
        """The fence changed or is gone; ``offers`` are the offers on it now."""
        self._kill(self._stored.by_fence.of(fence_id) + self._by_fence.pop(fence_id, []))
        self._reaches.drop(fence_id)
        members: list[tuple[int, int]] = []
        reaches: list[tuple[int, int]] = []
        for offer in offers:
            self._add_pair(offer, fence_id, members, reaches)
        self._add_rows(members, reaches)

    def take_computed(self) -> list[tuple[str, int, float, tuple[Cell, ...]]]:
        """(fence id, fence version, nearby_m, cells) of every reach cover computed here since the last call."""
        computed, self._computed = self._computed, []
        return computed

    def view(self, merchant_caps: Mapping[str, int]) -> CatalogView:
        r = self._rows
        n = len(r)
        return CatalogView(
            members=self._members,
            reaches=self._reaches_table,
            count=n,
            alive=r.alive[:n].copy(),
            nearby_m=r.nearby_m,
            static=r.static,
            bounds=r.bounds,
            plain=r.plain,
            offers=r.offers,
            offer_ids=r.offer_ids,
            fence_ids=r.fence_ids,
            merchants=r.merchants,
            shapes=r.shapes,
            zones=r.zones,
            schedules=r.schedules,
            schedule_of=tuple(self._schedules),
            live=LiveNow(tuple(self._schedules)),
            merchant_caps=dict(merchant_caps),
            res=self.res,
        )

    def _add_rows(self, members: list[tuple[int, int]], reaches: list[tuple[int, int]]) -> None:
        alive = self._rows.alive
        self._members = self._members.adding(members, lambda entries: alive[entries // KINDS])
        self._reaches_table = self._reaches_table.adding(reaches, lambda entries: alive[entries])

    def _kill(self, rows: list[int]) -> None:
        for row in rows:
            if not self._rows.alive[row]:
                continue  # a snapshot's row killed before (the snapshot's groups still list it)
            self._rows.alive[row] = False
            fence_rows = self._by_fence.get(self._rows.fence_ids[row])
            if fence_rows is not None and row in fence_rows:
                fence_rows.remove(row)
            offer_rows = self._by_offer.get(self._rows.offer_ids[row])
            if offer_rows is not None and row in offer_rows:
                offer_rows.remove(row)

    def _add_offer(self, offer: Offer, members: list[tuple[int, int]], reaches: list[tuple[int, int]]) -> None:
        if pullable(offer):
            for fence_id in self.fences_of(offer):
                self._add_pair(offer, fence_id, members, reaches)

    def _add_pair(
        self, offer: Offer, fence_id: str, members: list[tuple[int, int]], reaches: list[tuple[int, int]]
    ) -> None:
        place = self._fence(fence_id)
        if place is None or not pullable(offer):
            return
        schedule = -1
        if offer.schedule is not None:
            schedule = self._schedules.setdefault((offer.schedule, place.timezone), len(self._schedules))
        row = self._rows.append(offer, fence_id, place, schedule)
        self._by_offer.setdefault(offer.id, []).append(row)
        self._by_fence.setdefault(fence_id, []).append(row)
        members += [(int(c), row * KINDS + INTERIOR) for c in place.cover.interior]
        members += [(int(c), row * KINDS + BOUNDARY) for c in place.cover.boundary]
        if offer.nearby_m > 0:
            known = self._reaches.of(fence_id)
            reach = known.get(offer.nearby_m)
            if reach is None:
                computed = reach_cover(place.shape, offer.nearby_m, self.res)
                self._computed.append((fence_id, place.version, offer.nearby_m, computed))
                reach = known[offer.nearby_m] = np.array(computed, dtype=np.uint64)
            reaches += zip(reach.tolist(), repeat(row))
