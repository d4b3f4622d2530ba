"""Which fences an offer is on, and which offers are on a fence: named by id, by tag (``geofence_tags``, any of
them), or all of a merchant's fences (``all_geofences``). A chain's offer by tag is resolved here, in memory, so
a store opened with the tag is served the chain's offers at once, and an offer over 10,000 stores is 10,000
(offer, fence) pairs like any other: a request pays for the pairs around it, never for the offer's size.

It holds each offer's ``Placement``, not the offer: a catalog started from a snapshot decodes an offer only
when something asks for it. A snapshot's fences and offers stay columns (``StoredPlacing``), read per lookup;
what was written since is kept beside them in dicts. The catalog keeps one of these under its write lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from geofences.names import Names
from geotarget.catalog.model import Fence, Offer

IntArray = npt.NDArray[np.int64]


class Placement(NamedTuple):
    """Where an offer is (its fences by id, by tag or all of them), and whether it waits for a trigger."""

    id: str
    merchant_id: str
    geofence_ids: tuple[str, ...]
    geofence_tags: tuple[str, ...]
    all_geofences: bool
    triggered: bool

    @classmethod
    def of(cls, offer: Offer) -> Placement:
        o = offer
        return cls(o.id, o.merchant_id, o.geofence_ids, o.geofence_tags, o.all_geofences, o.trigger is not None)


class FencePlacing(NamedTuple):
    """What placing needs of a fence."""

    id: str
    merchant_id: str
    tags: tuple[str, ...]
    audience_only: bool

    @classmethod
    def of(cls, fence: Fence) -> FencePlacing:
        return cls(fence.id, fence.merchant_id, tuple(fence.tags), fence.audience_only)


@dataclass(frozen=True)
class StoredPlacing:
    """A snapshot's fences and offers as columns; ``*_at`` arrays say where each one's group starts in the
    array before them (one more than there are fences or offers). An offer's fence ids that named no fence of
    the snapshot are not kept: ids are never used again, so such a fence is gone for good."""

    fences: Names
    fence_merchant: IntArray  # into merchants
    fence_tags: IntArray  # into tag_sets
    fence_audience: npt.NDArray[np.bool_]
    fence_offers: IntArray  # the offers naming each fence by id, grouped by fence (fence_offers_at)
    fence_offers_at: IntArray
    offers: Names
    offer_merchant: IntArray
    offer_tags: IntArray
    offer_all: npt.NDArray[np.bool_]
    offer_triggered: npt.NDArray[np.bool_]
    offer_fences: IntArray  # each offer's fence numbers, in its order (offer_fences_at)
    offer_fences_at: IntArray
    merchants: tuple[str, ...]
    tag_sets: tuple[tuple[str, ...], ...]

    def placement(self, n: int) -> Placement:
        fences = self.offer_fences[self.offer_fences_at[n] : self.offer_fences_at[n + 1]]
        return Placement(
            self.offers.name(n),
            self.merchants[self.offer_merchant[n]],
            tuple(self.fences.names(fences)),
            self.tag_sets[self.offer_tags[n]],
            bool(self.offer_all[n]),
            bool(self.offer_triggered[n]),
        )

    def fence(self, n: int) -> tuple[str, frozenset[str]] | None:
        """(merchant id, tags) of a fence offers may be placed on; None for an audience-only one."""
        if self.fence_audience[n]:
            return None
        return self.merchants[self.fence_merchant[n]], frozenset(self.tag_sets[self.fence_tags[n]])


class OfferFences:
    def __init__(self, stored: StoredPlacing | None = None) -> None:
        self._stored = stored
        self._fences_gone: set[int] = set()  # stored fences dropped or put again since
        self._offers_gone: set[int] = set()  # stored offers dropped or put again since
        self._by_id: dict[str, dict[str, Placement]] = {}  # fence id -> offers naming it by id
        self._wide: dict[str, dict[str, Placement]] = {}  # merchant id -> offers by tag or over all its fences
        self._fences: dict[str, tuple[str, frozenset[str]]] = {}  # fence id -> (merchant id, tags)
        self._of_merchant: dict[str, dict[str, None]] = {}  # merchant id -> its fence ids, in the order put
        self._tagged: dict[tuple[str, str], dict[str, None]] = {}  # (merchant id, tag) -> fence ids
        if stored is not None:  # the few offers by tag or over all fences are kept as placements at once
            for n in np.flatnonzero(stored.offer_all | (stored.offer_tags > 0)).tolist():
                placement = stored.placement(n)
                self._wide.setdefault(placement.merchant_id, {})[placement.id] = placement

    def put_fence(self, fence: FencePlacing) -> None:
        """An audience-only fence is never reached by a tag or by ``all``: no offer is served or pushed there."""
        self.drop_fence(fence.id)
        if fence.audience_only:
            return
        fence_id, merchant_id, tags = fence.id, fence.merchant_id, fence.tags
        self._fences[fence_id] = (merchant_id, frozenset(tags))
        self._of_merchant.setdefault(merchant_id, {})[fence_id] = None
        for tag in tags:
            self._tagged.setdefault((merchant_id, tag), {})[fence_id] = None

    def drop_fence(self, fence_id: str) -> None:
        if self._stored is not None and (n := self._stored.fences.stored_number(fence_id)) is not None:
            self._fences_gone.add(n)
        known = self._fences.pop(fence_id, None)
        if known is None:
            return
        merchant_id, tags = known
        _discard(self._of_merchant, merchant_id, fence_id)
        for tag in tags:
            _discard(self._tagged, (merchant_id, tag), fence_id)

    def tags_of(self, fence_id: str) -> tuple[str, ...]:
        known = self._fence(fence_id)
        return tuple(sorted(known[1])) if known else ()

    def _fence(self, fence_id: str) -> tuple[str, frozenset[str]] | None:
        known = self._fences.get(fence_id)
        if known is not None or self._stored is None:
            return known
        n = self._stored.fences.stored_number(fence_id)
        return None if n is None or n in self._fences_gone else self._stored.fence(n)

    def put_offer(self, offer: Placement) -> None:
        if offer.all_geofences or offer.geofence_tags:
            self._wide.setdefault(offer.merchant_id, {})[offer.id] = offer
        for fence_id in offer.geofence_ids:
            self._by_id.setdefault(fence_id, {})[offer.id] = offer

    def drop_offer(self, offer: Placement) -> None:
        if self._stored is not None and (n := self._stored.offers.stored_number(offer.id)) is not None:
            self._offers_gone.add(n)
        _discard(self._wide, offer.merchant_id, offer.id)
        for fence_id in offer.geofence_ids:
            _discard(self._by_id, fence_id, offer.id)

    def fences_of(self, offer: Placement) -> list[str]:
        """The fences the offer is on now, each once: its ids first, then the ones its tags or ``all`` add."""
        found = dict.fromkeys(offer.geofence_ids)
        if offer.all_geofences:
            found.update(dict.fromkeys(self._stored_fences(offer.merchant_id, None)))
            found.update(self._of_merchant.get(offer.merchant_id, {}))
        for tag in offer.geofence_tags:
            found.update(dict.fromkeys(self._stored_fences(offer.merchant_id, tag)))
            found.update(self._tagged.get((offer.merchant_id, tag), {}))
        return list(found)

    def _stored_fences(self, merchant_id: str, tag: str | None) -> list[str]:
        """The stored fences of a merchant (with ``tag``) still as stored: one pass over two columns."""
        s = self._stored
        if s is None or merchant_id not in s.merchants:
            return []
        chosen = (s.fence_merchant == s.merchants.index(merchant_id)) & ~s.fence_audience
        if tag is not None:
            chosen &= np.isin(s.fence_tags, [n for n, tags in enumerate(s.tag_sets) if tag in tags])
        numbers = np.flatnonzero(chosen)
        if self._fences_gone:
            numbers = numbers[~np.isin(numbers, list(self._fences_gone))]
        return s.fences.names(numbers)

    def offers_on(self, fence_id: str) -> list[Placement]:
        """The offers on a fence now: named by its id, or by one of its tags, or over all its merchant's fences."""
        found = {p.id: p for p in self._stored_naming(fence_id)}
        found.update(self._by_id.get(fence_id, {}))
        known = self._fence(fence_id)
        if known is not None:
            merchant_id, tags = known
            for offer in self._wide.get(merchant_id, {}).values():
                if offer.all_geofences or not tags.isdisjoint(offer.geofence_tags):
                    found[offer.id] = offer
        return list(found.values())

    def _stored_naming(self, fence_id: str) -> Iterable[Placement]:
        """The stored offers (as stored) that name a fence by id, whatever became of the fence."""
        s = self._stored
        n = None if s is None else s.fences.stored_number(fence_id)
        if s is None or n is None:
            return ()
        numbers = s.fence_offers[s.fence_offers_at[n] : s.fence_offers_at[n + 1]].tolist()
        return [s.placement(m) for m in numbers if m not in self._offers_gone]

    def fences_with_offers(self, triggered: bool = False) -> list[str]:
        """Every fence some offer is on (some offer with a trigger: what a full rebuild of the trigger tables
        walks)."""
        found: dict[str, None] = {}
        s = self._stored
        if s is not None:
            numbers = np.flatnonzero(s.offer_triggered) if triggered else np.arange(s.offers.stored, dtype=np.int64)
            for m in numbers.tolist():
                if m not in self._offers_gone:
                    found.update(dict.fromkeys(s.placement(m).geofence_ids))
        found.update(
            (f, None) for f, offers in self._by_id.items() if not triggered or any(o.triggered for o in offers.values())
        )
        for offers in self._wide.values():
            for offer in offers.values():
                if offer.triggered or not triggered:
                    found.update(dict.fromkeys(self.fences_of(offer)))
        return list(found)


def _discard(table: dict[Any, dict[str, Any]], key: object, item: str) -> None:
    group = table.get(key)
    if group is not None:
        group.pop(item, None)
        if not group:
            del table[key]
