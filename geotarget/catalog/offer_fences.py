"""Which fences an offer is on, and which offers are on a fence: named by id, by tag (``geofence_tags``, any of
them), or all of a merchant's fences (``all_geofences``). A chain's offer by tag is resolved here, in memory, so
a store opened with the tag is served the chain's offers at once, and an offer over 10,000 stores is 10,000
(offer, fence) pairs like any other: a request pays for the pairs around it, never for the offer's size.

It holds each offer's ``Placement``, not the offer: a catalog started from a snapshot decodes an offer only
when something asks for it. The catalog keeps one of these under its write lock.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from geotarget.catalog.model import Fence, Offer


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


class OfferFences:
    def __init__(self) -> None:
        self._by_id: dict[str, dict[str, Placement]] = {}  # fence id -> offers naming it by id
        self._wide: dict[str, dict[str, Placement]] = {}  # merchant id -> offers by tag or over all its fences
        self._fences: dict[str, tuple[str, frozenset[str]]] = {}  # fence id -> (merchant id, tags)
        self._of_merchant: dict[str, dict[str, None]] = {}  # merchant id -> its fence ids, in the order put
        self._tagged: dict[tuple[str, str], dict[str, None]] = {}  # (merchant id, tag) -> fence ids

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
        known = self._fences.pop(fence_id, None)
        if known is None:
            return
        merchant_id, tags = known
        _discard(self._of_merchant, merchant_id, fence_id)
        for tag in tags:
            _discard(self._tagged, (merchant_id, tag), fence_id)

    def tags_of(self, fence_id: str) -> tuple[str, ...]:
        known = self._fences.get(fence_id)
        return tuple(sorted(known[1])) if known else ()

    def put_offer(self, offer: Placement) -> None:
        if offer.all_geofences or offer.geofence_tags:
            self._wide.setdefault(offer.merchant_id, {})[offer.id] = offer
        for fence_id in offer.geofence_ids:
            self._by_id.setdefault(fence_id, {})[offer.id] = offer

    def drop_offer(self, offer: Placement) -> None:
        _discard(self._wide, offer.merchant_id, offer.id)
        for fence_id in offer.geofence_ids:
            _discard(self._by_id, fence_id, offer.id)

    def fences_of(self, offer: Placement) -> list[str]:
        """The fences the offer is on now, each once: its ids first, then the ones its tags or ``all`` add."""
        found = dict.fromkeys(offer.geofence_ids)
        if offer.all_geofences:
            found.update(self._of_merchant.get(offer.merchant_id, {}))
        for tag in offer.geofence_tags:
            found.update(self._tagged.get((offer.merchant_id, tag), {}))
        return list(found)

    def offers_on(self, fence_id: str) -> list[Placement]:
        """The offers on a fence now: named by its id, or by one of its tags, or over all its merchant's fences."""
        found = dict(self._by_id.get(fence_id, {}))
        known = self._fences.get(fence_id)
        if known is not None:
            merchant_id, tags = known
            for offer in self._wide.get(merchant_id, {}).values():
                if offer.all_geofences or not tags.isdisjoint(offer.geofence_tags):
                    found[offer.id] = offer
        return list(found.values())

    def fences_with_offers(self, triggered: bool = False) -> list[str]:
        """Every fence some offer is on (some offer with a trigger: what a full rebuild of the trigger tables
        walks)."""
        found = {
            f: None for f, offers in self._by_id.items() if not triggered or any(o.triggered for o in offers.values())
        }
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
