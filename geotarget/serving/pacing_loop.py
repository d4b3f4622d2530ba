"""Each worker's pacing round: once a minute, read what every paced offer's budget and goal counters say was
spent (one Redis MGET for all of them) and set the offers' pass rates for the minute (``serving.pacing``)."""

from __future__ import annotations

from datetime import datetime

from geotarget.serving.caps import Counter, goal_counter, period
from geotarget.serving.server import OfferServer

EVERY_S = 60.0  # on the minute (geotarget.periodic)


def pace_once(server: OfferServer, at: datetime) -> None:
    """Reads every paced offer's budget and goal counters in one call and sets the minute's rates."""
    offers = server.catalog.paced_offers()
    named: list[tuple[str, Counter]] = []
    for offer in offers:
        if offer.daily_budget is not None:
            label, _ = period("d", at, offer.timezone)
            named.append((offer.id, Counter("budget", offer.id, label, offer.daily_budget, 0, per_device=False)))
        if (goal := goal_counter(offer, at)) is not None:
            named.append((f"{offer.id}:goal", goal))
    spent = server.capper.counts("", [c for _, c in named]) if named else []
    server.pacer.update(offers, {name: n for (name, _), n in zip(named, spent, strict=True)}, at)
