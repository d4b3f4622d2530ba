"""The fast path of matching: a ping's ranked candidates from one ``CatalogView``, best first, made lazily.

1. One table lookup of the ping's cells gives every pair whose fence holds the ping (interior cells: certain;
   boundary cells: a point test per fence) and every pair whose *reach* holds it.
2. Pairs the device is inside rank first (score = the static part); the rest get, vectorised, a lower bound of
   their distance from the fence's box, which drops pairs out of reach and bounds their score from above.
3. Candidates are then taken in order of that bound; the exact distance, liveness (remembered per minute),
   targeting and the per-merchant limit are settled only for the ones taken, and a candidate is given out once
   no untaken one can still beat it. A caller that needs five offers pays for about five.

The order is exactly ``matcher.match``'s (the reference rule): inside first, then score, distance, offer id, and
for an offer on several fences its best fence (nearest, then the smallest fence id).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator

import numpy as np

from geofences import LatLng, cells
from geofences.shapes import box_distance_floors_m
from geotarget.catalog.view import BOUNDARY, INTERIOR, KINDS, CatalogView
from geotarget.serving import targeting
from geotarget.serving.matcher import MatchRequest
from geotarget.serving.ranking import DECAY_M, decay
from geotarget.serving.schedule import LiveNow
from geotarget.serving.types import Candidate


def ranked(view: CatalogView, point: LatLng, request: MatchRequest) -> Iterator[Candidate]:
    live = view.live
    members = view.members.lookup(cells.ancestor_keys(point, view.res, view.members.resolutions))
    rows, kinds = members // KINDS, members % KINDS
    keep = view.alive[rows]
    inside = _inside(view, point, rows[keep].tolist(), kinds[keep].tolist())
    around = view.reaches.lookup(cells.holding_keys(point, view.reaches.resolutions))
    around = around[view.alive[around]]
    for row in inside:  # a handful at most: cheaper than np.isin's sort
        around = around[around != row]
    floor = box_distance_floors_m(point.lat, point.lon, view.bounds[around])
    reachable = floor <= view.nearby_m[around]
    around, floor = around[reachable], floor[reachable]
    bound = view.static[around] * (1.0 / (1.0 + floor / DECAY_M))  # the exact score's formula, vectorised
    order = np.lexsort((floor, -bound))
    taken = _Taken(request.per_merchant)
    accurate = request.accurate
    firsts = sorted(
        (-float(view.static[r]), view.offer_ids[r], view.fence_ids[r], r)
        for r in inside
        if (accurate or view.nearby_m[r] > 0) and _wanted(view, live, r, request)
    )
    for negative, offer_id, fence_id, row in firsts:
        if taken.take(offer_id, view.merchants[row]):
            yield Candidate(view.offers[row], fence_id, True, 0.0, -negative)
    yield from _outside(
        view, live, point, request, around[order].tolist(), bound[order].tolist(), floor[order].tolist(), taken
    )


def _outside(
    view: CatalogView,
    live: LiveNow,
    point: LatLng,
    request: MatchRequest,
    rows: list[int],
    bounds: list[float],
    floors: list[float],
    taken: _Taken,
) -> Iterator[Candidate]:
    """Merge candidates taken in bound order with the exact ones waiting: a waiting one is final once it beats
    the best bound left (its key is below every key the rest could reach)."""
    waiting: list[tuple[float, float, str, str, int]] = []
    for row, bound, floor in zip(rows, bounds, floors, strict=True):
        while waiting and (waiting[0][0], waiting[0][1]) < (-bound, floor):
            yield from _final(view, heapq.heappop(waiting), taken)
        if taken.full(view.merchants[row]):
            continue  # a full merchant's pairs can never be given out: no id, no distance, no decoding
        offer_id = view.offer_ids[row]
        if offer_id in taken.offers or not _wanted(view, live, row, request):
            continue
        distance = view.shapes[row].distance_m(point)
        if distance > view.nearby_m[row]:
            continue
        exact = float(view.static[row]) * decay(distance)
        heapq.heappush(waiting, (-exact, distance, offer_id, view.fence_ids[row], row))
    while waiting:
        yield from _final(view, heapq.heappop(waiting), taken)


def _final(view: CatalogView, item: tuple[float, float, str, str, int], taken: _Taken) -> Iterator[Candidate]:
    negative, distance, offer_id, fence_id, row = item
    if taken.take(offer_id, view.merchants[row]):
        yield Candidate(view.offers[row], fence_id, False, distance, -negative)


class _Taken:
    """Offers already given out (each once, at its best fence) and how many per merchant."""

    def __init__(self, per_merchant: int) -> None:
        self.offers: set[str] = set()
        self._merchants: Counter[str] = Counter()
        self._per_merchant = per_merchant

    def full(self, merchant_id: str) -> bool:
        return self._merchants[merchant_id] >= self._per_merchant

    def take(self, offer_id: str, merchant_id: str) -> bool:
        if offer_id in self.offers:
            return False
        self.offers.add(offer_id)
        if self.full(merchant_id):
            return False
        self._merchants[merchant_id] += 1
        return True


def _wanted(view: CatalogView, live: LiveNow, row: int, request: MatchRequest) -> bool:
    """Live now, targeted at this request and drawn by pacing; the offer itself is read only when it targets or
    is paced (``plain``): a worker started from a snapshot then decodes only the offers it gives out."""
    if not live(view.schedules[row], request.at):
        return False
    if view.plain[row]:
        return True
    offer = view.offers[row]
    if not targeting.matches(offer.targeting, request.attributes):
        return False
    return request.paced is None or offer.pacing == "asap" or request.paced(offer)


def _inside(view: CatalogView, point: LatLng, rows: list[int], kinds: list[int]) -> set[int]:
    """Pairs whose fence holds the point: interior cells say so, boundary cells ask the shape (once a fence)."""
    found: set[int] = set()
    tested: dict[str, bool] = {}
    for row, kind in zip(rows, kinds, strict=True):
        if kind == INTERIOR:
            found.add(row)
        elif kind == BOUNDARY:
            fence_id = view.fence_ids[row]
            covered = tested.get(fence_id)
            if covered is None:
                covered = tested[fence_id] = view.shapes[row].covers(point)
            if covered:
                found.add(row)
    return found
