"""Each worker's pacing loop: once a minute, read what every paced offer's budget and goal counters say was
spent (one Redis MGET for all of them) and set the offers' pass rates for the minute (``serving.pacing``)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from geotarget.serving.caps import Counter, goal_counter, period
from geotarget.serving.server import OfferServer

log = logging.getLogger(__name__)
EVERY_S = 60.0


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


class PacingLoop:
    def __init__(self, server: OfferServer, every_s: float = EVERY_S) -> None:
        self.server = server
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pacing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            now = datetime.now(UTC)
            try:
                pace_once(self.server, now)
            except Exception as exc:  # Redis away: the rates of the last minute stand until it is back
                log.warning("pacing not updated: %s", exc.__class__.__name__)
            if self._stop.wait(self.every_s - now.timestamp() % self.every_s):  # on the minute
                return
