"""Each worker's variant learning round: every few minutes, the impressions and clicks of every optimized offer's
variants over the last week (from the event store) give their new shares (``serving.variants``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from geotarget.serving.server import OfferServer

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
