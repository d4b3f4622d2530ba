"""Serving offers for a ping: match, reserve caps in one atomic call, emit events. The request path.

Faults: when the cap store fails or is slower than its timeout, only uncapped offers are served and the answer
says ``degraded = "caps unavailable"`` (fail closed: caps are a promise). An event-stream fault never changes the
answer; it is logged and counted.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from geofences import LatLng, cells
from geotarget.catalog.snapshot import Catalog
from geotarget.catalog.timezones import timezone_at
from geotarget.measurement.devices import device_key
from geotarget.measurement.events import Event, EventSink, ping_event_id
from geotarget.serving.caps import Capper, GlobalCaps, counters_for
from geotarget.serving.matcher import MatchRequest, match
from geotarget.serving.types import Attributes, Candidate

log = logging.getLogger(__name__)
CAPS_UNAVAILABLE = "caps unavailable"


@dataclass(frozen=True)
class NearbyQuery:
    point: LatLng
    device_id: str
    at: datetime
    accuracy_m: float | None = None
    limit: int = 5
    lmt: bool = False
    attributes: Attributes = field(default_factory=Attributes)


@dataclass(frozen=True)
class Served:
    candidate: Candidate
    impression_id: str


@dataclass(frozen=True)
class NearbyAnswer:
    offers: list[Served]
    cell: str
    degraded: str | None = None


@dataclass
class ServingStats:
    """Counters for /metrics."""

    requests: int = 0
    served: int = 0
    cap_blocked: int = 0
    degraded: int = 0
    event_failures: int = 0


class OfferServer:
    def __init__(
        self,
        catalog: Catalog,
        capper: Capper,
        sink: EventSink,
        device_secret: str,
        global_caps: GlobalCaps,
        max_accuracy_m: float = 200.0,
        per_merchant: int = 2,
    ) -> None:
        self.catalog = catalog
        self.capper = capper
        self.sink = sink
        self.device_secret = device_secret
        self.global_caps = global_caps
        self.max_accuracy_m = max_accuracy_m
        self.per_merchant = per_merchant
        self.stats = ServingStats()

    def nearby(self, query: NearbyQuery) -> NearbyAnswer:
        self.stats.requests += 1
        key = device_key(self.device_secret, query.device_id)
        cell = cells.cell_to_str(cells.latlng_to_cell(query.point, self.catalog.index.res))
        proximities = self.catalog.index.nearby(query.point, self.catalog.max_nearby_m)
        request = MatchRequest(query.at, query.accuracy_m, query.attributes, self.max_accuracy_m, self.per_merchant)
        candidates = match(request, proximities, self.catalog.offers_by_fence, self.catalog.timezones)
        chosen, blocked, degraded = self._reserve(key, query, candidates)
        served = [Served(c, uuid.uuid4().hex) for c in chosen]
        self.stats.served += len(served)
        self.stats.cap_blocked += len(blocked)
        self._emit(key, query, cell, served, blocked)
        return NearbyAnswer(served, cell, degraded)

    def _reserve(
        self, key: str, query: NearbyQuery, candidates: list[Candidate]
    ) -> tuple[list[Candidate], list[Candidate], str | None]:
        if not candidates:
            return [], [], None
        zone = self._device_zone(query, candidates)
        merchant_caps = self.catalog.merchant_caps
        counters = [
            counters_for(c, query.at, zone, self.global_caps, merchant_caps.get(c.offer.merchant_id))
            for c in candidates
        ]
        if not any(counters):
            return candidates[: query.limit], [], None
        try:
            served, blocked = self.capper.reserve(key, counters, query.limit)
        except Exception as exc:  # any cap-store fault: fail closed
            log.warning("cap store unavailable (%s); serving uncapped offers only", exc.__class__.__name__)
            self.stats.degraded += 1
            uncapped = [c for c, cs in zip(candidates, counters, strict=True) if not cs]
            return uncapped[: query.limit], [], CAPS_UNAVAILABLE
        return [candidates[i] for i in served], [candidates[i] for i in blocked], None

    def _device_zone(self, query: NearbyQuery, candidates: list[Candidate]) -> str:
        if self.global_caps.per_device_per_day is None and self.global_caps.per_device_per_hour is None:
            return "UTC"  # not used
        return self.catalog.timezones.get(candidates[0].fence_id) or timezone_at(query.point)

    def _emit(self, key: str, query: NearbyQuery, cell: str, served: list[Served], blocked: list[Candidate]) -> None:
        """The ping and what happened to it. Limit-ad-tracking devices leave no linkable history: no ping, and
        their impressions are counted without a device key."""
        p = query.point
        linked = "" if query.lmt else key
        events = (
            []
            if query.lmt
            else [
                Event(
                    kind="ping",
                    event_id=ping_event_id(key, query.at),
                    at=query.at,
                    device_key=key,
                    lat=p.lat,
                    lon=p.lon,
                    cell=cell,
                    accuracy_m=query.accuracy_m,
                )
            ]
        )

        def about_offer(kind: str, event_id: str, c: Candidate) -> Event:
            return Event(
                kind=kind,
                event_id=event_id,
                at=query.at,
                device_key=linked,
                lat=p.lat,
                lon=p.lon,
                cell=cell,
                offer_id=c.offer.id,
                merchant_id=c.offer.merchant_id,
                fence_id=c.fence_id,
                inside=c.inside,
                distance_m=c.distance_m,
                accuracy_m=query.accuracy_m,
            )

        events += [about_offer("impression", s.impression_id, s.candidate) for s in served]
        events += [about_offer("cap_blocked", uuid.uuid4().hex, c) for c in blocked]
        try:
            self.sink.append(events)
        except Exception as exc:
            self.stats.event_failures += 1
            log.warning("could not append %d event(s): %s", len(events), exc.__class__.__name__)
