"""The decision explainer: why each offer in reach of a point is or is not shown to a device there now.

A dry run of the serving path with its own rules (``matcher.refusal``, ranking, the audience gates, the holdout
split and the cap reservation run as ``Capper.peek``): nothing is counted, logged or moved. What it says is
served is what ``/v1/nearby`` would serve at that moment (a test holds the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from geofences import Proximity, cells
from geotarget.catalog.model import Offer
from geotarget.measurement.devices import device_key
from geotarget.serving import ranking
from geotarget.serving.answers import NearbyQuery
from geotarget.serving.caps import Counter
from geotarget.serving.matcher import MatchRequest, refusal
from geotarget.serving.server import OfferServer, held_out
from geotarget.serving.types import Candidate

LOOK_M = 1_000.0  # offers out of reach are listed this far around the point (the farther-reaching ones farther)
Outcome = Literal["served", "not_served"]


@dataclass(frozen=True)
class Explained:
    offer_id: str
    merchant_id: str
    title: str
    fence_id: str
    inside: bool
    distance_m: float
    outcome: Outcome
    reason: str  # a code: "served", "out_of_hours", "capped", ...
    detail: str  # the same in words, with the figures that decided it


@dataclass(frozen=True)
class Explanation:
    at: datetime
    cell: str
    served: list[str]  # offer ids in the order they would be shown
    offers: list[Explained]


def explain(server: OfferServer, query: NearbyQuery, merchant_id: str | None = None) -> Explanation:
    """Every offer on a fence within ``LOOK_M`` of the point, or within the reach of the farthest-reaching offer
    when that is farther (only ``merchant_id``'s when given: a merchant asks about its own), each at its best
    fence, with the first rule that stops it or ``served``. Everything that could be served is among them."""
    catalog = server.catalog
    request = MatchRequest(
        query.at,
        query.accuracy_m,
        query.attributes,
        server.max_accuracy_m,
        server.per_merchant,
        coarse=query.coarse,
        paced=lambda offer: server.pacer.rate(offer.id) != 0.0,  # a dry run draws nothing: only "never" is sure
    )
    places = catalog.index.nearby(query.point, max(LOOK_M, catalog.farthest_reach_m()))
    said: dict[str, Explained] = {}
    admitted: dict[str, Candidate] = {}
    for place in places:  # inside first, then nearest: an offer's first passing place is its best
        zone = catalog.timezones.get(place.fence_id)
        if zone is None:
            continue
        for offer in catalog.offers_on(place.fence_id):
            if offer.id in admitted:
                continue
            reason = refusal(request, offer, place, zone)
            if reason is None:
                score = ranking.score(offer, place.inside, place.distance_m)
                admitted[offer.id] = Candidate(offer, place.fence_id, place.inside, place.distance_m, score)
                said.pop(offer.id, None)
            elif offer.id not in said:
                said[offer.id] = _said(offer, place, "not_served", reason, _words(reason, offer, place, request, zone))
    ranked = ranking.rank(admitted.values(), request.per_merchant)
    kept = {c.offer.id for c in ranked}  # by id: comparing candidates compares whole offers
    for candidate in admitted.values():
        if candidate.offer.id not in kept:
            words = f"its merchant has {request.per_merchant} better offers here (at most that many are shown)"
            said[candidate.offer.id] = _of(candidate, "not_served", "per_merchant", words)
    served = _reserve_dry(server, query, ranked, said)
    cell = cells.cell_to_str(cells.latlng_to_cell(query.point, catalog.view.res))
    listed = [e for e in said.values() if merchant_id is None or e.merchant_id == merchant_id]
    listed.sort(key=lambda e: (e.outcome != "served", served.index(e.offer_id) if e.offer_id in served else 0,
                               not e.inside, e.distance_m, e.offer_id))  # fmt: skip
    return Explanation(
        query.at, cell, [o for o in served if merchant_id is None or said[o].merchant_id == merchant_id], listed
    )


def _reserve_dry(
    server: OfferServer, query: NearbyQuery, ranked: list[Candidate], said: dict[str, Explained]
) -> list[str]:
    """The ranked candidates through the audience gates and a reservation that counts nothing."""
    key = device_key(server.device_secret, query.device_id)
    live = server.catalog.live_audiences
    hopeful: list[Candidate] = []
    for c in ranked:
        gate = server.gate(c, live, query.attributes)
        if gate is not None and not (gate.admits({}) if query.lmt else gate.possible):
            words = (
                "limit ad tracking: a device without history is in no audience"
                if query.lmt
                else ("none of the audiences it is for has members yet (under k devices, or never refreshed)")
            )
            said[c.offer.id] = _of(c, "not_served", "audience", words)
        else:
            hopeful.append(c)
    if not hopeful:
        return []
    counters = server.counters(hopeful, query)
    ghosts = [held_out(key, c) for c in hopeful]
    gates = [None if query.lmt else server.gate(c, live, query.attributes) for c in hopeful]
    decided = server.capper.peek(key, counters, query.limit, ghosts, gates)
    for i, c in enumerate(hopeful):
        if i in decided.served:
            rate = server.pacer.rate(c.offer.id)
            pacing = "" if rate is None or rate >= 1 else f"tried on about {rate:.0%} of requests this minute (pacing)"
            said[c.offer.id] = (
                _of(c, "not_served", "holdout", _HOLDOUT) if ghosts[i] else _of(c, "served", "served", pacing)
            )
        elif i in decided.blocked:
            said[c.offer.id] = _of(c, "not_served", *_full(server, key, counters[i]))
        elif i in decided.skipped:
            said[c.offer.id] = _of(c, "not_served", "audience", "this device is outside the audiences it is for")
        else:
            words = f"ranked below the {query.limit} offer(s) the app asked for"
            said[c.offer.id] = _of(c, "not_served", "below_limit", words)
    return [c.offer.id for i, c in enumerate(hopeful) if i in decided.served and not ghosts[i]]


_HOLDOUT = "this device is in the offer's holdout group: counted to measure lift, never shown"


def _full(server: OfferServer, key: str, counters: list[Counter]) -> tuple[str, str]:
    """Which counter is full, with its figures (a bid's held slot counts too, so it may read one under)."""
    counts = server.capper.counts(key, counters)
    counter, used = max(zip(counters, counts, strict=True), key=lambda pair: pair[1] >= pair[0].limit)
    if counter.scope == "budget" and counter.period.startswith("goal:"):
        days = counter.period.removeprefix("goal:").replace(":", " to ")
        return "goal_reached", f"its goal is reached: {used:,} of {counter.limit:,} impressions ({days})"
    if counter.scope == "budget":
        return (
            "budget_spent",
            f"its daily budget is spent: {used:,} of {counter.limit:,} impressions ({counter.period})",
        )
    whose = {"offer": "this offer's", "merchant": "the merchant's", "global": "the server's"}[counter.scope]
    window = {"h": "hour", "d": "day", "w": "week", "l": "lifetime"}[counter.period[0]]
    return "capped", f"{whose} cap per device per {window} is reached: {used} of {counter.limit} ({counter.period})"


def _words(reason: str, offer: Offer, place: Proximity, request: MatchRequest, zone: str) -> str:
    """Only the one sentence asked for: an answer lists hundreds of offers in a dense city."""
    if reason in _FIXED:
        return _FIXED[reason]
    if reason == "push_only":
        return f"it is pushed on {offer.trigger.on if offer.trigger else '-'}, never listed when an app asks"
    if reason == "out_of_reach":
        reach = "only inside it" if offer.nearby_m == 0 else f"{offer.nearby_m:,.0f} m around it"
        return f"the device is {place.distance_m:,.0f} m from the fence; the offer reaches {reach}"
    if reason == "inaccurate":
        if request.coarse:
            return "it is for devices inside the fence, and the position is coarse (IP-derived or stale)"
        return (f"it is for devices inside the fence, and a ping of accuracy {request.accuracy_m or 0:,.0f} m "
                f"(over {request.max_accuracy_m:,.0f} m) cannot say so")  # fmt: skip
    if reason == "out_of_hours":
        local = request.at.astimezone(ZoneInfo(zone)).strftime("%a %H:%M")
        return f"not live now ({local} at the store, {zone}): see its schedule"
    criterion = reason.removeprefix("targeting_")
    if criterion == "expr":
        return "its targeting expression does not hold for what the app sent (a missing value fails its tests)"
    return f"its targeting by {criterion} does not match what the app sent (a missing value never matches)"


_FIXED = {
    "offer_paused": "the offer is paused",
    "offer_ended": "the offer has ended",
    "not_pushed": "it has no trigger: it is listed when an app asks, never pushed",
    "paced": "held back this minute: its daily budget is ahead of its pacing curve (docs/caps.md#pacing)",
}


def _said(offer: Offer, place: Proximity, outcome: Outcome, reason: str, detail: str) -> Explained:
    return Explained(offer.id, offer.merchant_id, offer.title, place.fence_id, place.inside, round(place.distance_m, 1),
                     outcome, reason, detail)  # fmt: skip


def _of(c: Candidate, outcome: Outcome, reason: str, detail: str) -> Explained:
    return _said(c.offer, Proximity(c.fence_id, c.inside, c.distance_m), outcome, reason, detail)
