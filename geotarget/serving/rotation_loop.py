"""Each worker's variant learning: every few minutes, the impressions and clicks of every optimized offer's
variants over the last week (from the event store) give their new shares (``serving.variants``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from geotarget.serving.server import OfferServer

log = logging.getLogger(__name__)
EVERY_S = 300.0
WINDOW = timedelta(days=7)


class Counted(Protocol):
    @property
    def offer_id(self) -> str: ...
    @property
    def variant(self) -> str: ...
    @property
    def impressions(self) -> int: ...
    @property
    def clicks(self) -> int: ...


Counts = Callable[[Sequence[str], datetime, datetime], Sequence[Counted]]  # store.report_queries.variant_counts


def learn_once(server: OfferServer, counts: Counts, at: datetime) -> None:
    offers = server.catalog.optimized_offers()
    found = counts([o.id for o in offers], at - WINDOW, at) if offers else []
    by_pair = {(c.offer_id, c.variant): (c.impressions, c.clicks) for c in found}
    server.rotation.learn(offers, by_pair)


class RotationLoop:
    def __init__(self, server: OfferServer, counts: Counts, every_s: float = EVERY_S) -> None:
        self.server, self.counts, self.every_s = server, counts, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rotation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            try:
                learn_once(self.server, self.counts, datetime.now(UTC))
            except Exception as exc:  # the event store busy or away: the shares stand until the next round
                log.warning("variant shares not updated: %s", exc.__class__.__name__)
            if self._stop.wait(self.every_s):
                return
