"""The matcher: from a ping to the ranked offers that may be shown. Pure. This is the *reference rule*, written
for clarity: the server finds the same answers faster (``search``), and a test holds the two equal.

ping → fences it is inside or near (given, with exact distances) → offers on those fences → within the offer's
``nearby_m`` (inside-only offers need an accurate ping) → live now in the fence's time zone → audience → ranked.
Cap reservation happens after this, in one atomic call (``caps.Capper``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from geofences import Proximity
from geotarget.catalog.model import Offer
from geotarget.serving import ranking, targeting
from geotarget.serving.schedule import is_live
from geotarget.serving.types import Attributes, Candidate


@dataclass(frozen=True)
class MatchRequest:
    at: datetime
    accuracy_m: float | None
    attributes: Attributes
    max_accuracy_m: float = 200.0
    per_merchant: int = 2
    pushed: bool = False  # matching for a trigger: only triggered offers count (an app asking gets the others)
    coarse: bool = False  # an IP-derived or stale position (a bid request's): never inside-only offers
    paced: Callable[[Offer], bool] | None = None  # pacing's draw, asked last: is the offer tried this time?

    @property
    def accurate(self) -> bool:
        """Whether the position may win an inside-only offer."""
        return not self.coarse and (self.accuracy_m is None or self.accuracy_m <= self.max_accuracy_m)


def match(
    request: MatchRequest,
    proximities: Sequence[Proximity],
    offers_by_fence: Mapping[str, Sequence[Offer]],
    fence_timezones: Mapping[str, str],
) -> list[Candidate]:
    """Ranked candidates; each offer appears once, at its best fence (inside, then nearest)."""
    best: dict[str, Candidate] = {}
    for place in proximities:
        zone = fence_timezones.get(place.fence_id)
        if zone is None:
            continue
        for offer in offers_by_fence.get(place.fence_id, ()):
            if offer.id in best and _better_or_equal(best[offer.id], place):
                continue
            if refusal(request, offer, place, zone) is not None:
                continue
            best[offer.id] = Candidate(
                offer,
                place.fence_id,
                place.inside,
                place.distance_m,
                ranking.score(offer, place.inside, place.distance_m),
            )
    return ranking.rank(best.values(), request.per_merchant)


def refusal(request: MatchRequest, offer: Offer, place: Proximity, zone: str) -> str | None:
    """The first rule that keeps ``offer`` from ``place`` for this request, as a reason code (the explainer's
    words for it are in ``explain``); None: it may be shown there."""
    if offer.status != "active":
        return f"offer_{offer.status}"
    if (offer.trigger is not None) != request.pushed:
        return "push_only" if offer.trigger is not None else "not_pushed"  # an offer with a trigger is only pushed
    if place.distance_m > offer.nearby_m:
        return "out_of_reach"
    if offer.nearby_m == 0 and not request.accurate:
        return "inaccurate"  # an inside-only offer needs a ping we can trust to be inside
    if not is_live(offer.schedule, request.at, zone):
        return "out_of_hours"
    criterion = targeting.mismatch(offer.targeting, request.attributes)
    if criterion is not None:
        return f"targeting_{criterion}"
    return "paced" if request.paced is not None and not request.paced(offer) else None


def _better_or_equal(current: Candidate, place: Proximity) -> bool:
    return (not current.inside, current.distance_m) <= (not place.inside, place.distance_m)
