"""What a scan of a poster opens: the offer at its store, a code when it has one, and a ``scan`` event.

A browser is counted like a device: a first-party random id (kept in a cookie by the page) hashed with the
server's secret, as device ids are. A browser that asks not to be tracked (``DNT: 1``, ``Sec-GPC: 1``) has no
id: its scan is counted without one and it gets no unique code (a unique code is an impression for someone).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from geotarget.catalog.model import Fence, Offer
from geotarget.errors import InvalidInput, NotFound
from geotarget.measurement.devices import device_key
from geotarget.measurement.events import Event
from geotarget.posters.tokens import PosterRef, read, sign
from geotarget.serving.schedule import is_live
from geotarget.serving.server import OfferServer
from geotarget.store.repository import EVERYONE, Repository

log = logging.getLogger(__name__)

State = Literal["running", "not_now", "gone", "unknown"]
NOT_TRACKED = "this browser asks not to be tracked, and a unique code is counted for someone: ask at the till"
CAPPED = "you have had this offer's code as often as it allows; come back another day"
UNAVAILABLE = "codes cannot be issued right now; scan again in a minute"


@dataclass(frozen=True)
class Landing:
    state: State  # running; not_now (outside its hours: no code); gone (paused, ended, deleted); unknown
    offer: Offer | None = None
    fence: Fence | None = None
    code: str | None = None
    no_code: str = ""  # why an offer with codes shows none


class PosterDesk:
    def __init__(self, repository: Repository, server: OfferServer) -> None:
        self.repository = repository
        self.server = server

    def link(self, merchant_id: str, offer_id: str, fence_id: str | None, base: str) -> str:
        """The signed link a poster of the merchant's offer at one of its stores prints (``fence_id`` may be left
        out when the offer is on one store only)."""
        offer = self.repository.offer(merchant_id, offer_id)
        if offer is None:
            raise NotFound(f"no offer {offer_id!r}", "offer_id")
        stores = [f for f in self.repository.fences(merchant_id) if offer.names_fence(f) and not f.audience_only]
        chosen = [f for f in stores if fence_id in (None, f.id)]
        if not chosen:
            where = f"the offer is not on the fence {fence_id!r}" if fence_id else "the offer is on no fence"
            raise InvalidInput(where, "geofence_id")
        if len(chosen) > 1:
            which = f"the offer is on {len(chosen)} fences: give geofence_id (which store's poster)"
            raise InvalidInput(which, "geofence_id")
        return f"{base}/o/{sign(self.server.device_secret, PosterRef(offer.id, chosen[0].id))}"

    def scanned(self, token: str, browser_id: str | None, at: datetime) -> Landing:
        """The page for ``token``; a running or not-yet-live offer's scan is counted (once per page view)."""
        ref = read(self.server.device_secret, token)
        if ref is None:
            return Landing("unknown")
        offer, fence = self._found(ref)
        if offer is None or fence is None or not offer.names_fence(fence) or offer.status != "active":
            return Landing("gone", offer, fence)
        ended = offer.schedule.valid_to if offer.schedule is not None else None
        if ended is not None and at.astimezone(ZoneInfo(fence.timezone)).date() > ended:
            return Landing("gone", offer, fence)
        key = None if browser_id is None else device_key(self.server.device_secret, f"browser:{browser_id}")
        self._count(offer, fence, key, at)
        if not is_live(offer.schedule, at, fence.timezone):
            return Landing("not_now", offer, fence)
        redemption = offer.redemption
        if redemption is None:
            return Landing("running", offer, fence)
        if not redemption.unique:
            return Landing("running", offer, fence, redemption.code)
        if key is None:
            return Landing("running", offer, fence, no_code=NOT_TRACKED)
        try:
            served = self.server.hand_out(offer, fence.id, key, fence.timezone, at)
        except Exception as exc:  # the cap store: no code rather than an uncapped one
            log.warning("no code for a scan: cap store unavailable (%s)", exc.__class__.__name__)
            return Landing("running", offer, fence, no_code=UNAVAILABLE)
        if served is None:
            return Landing("running", offer, fence, no_code=CAPPED)
        return Landing("running", offer, fence, served.redemption_code)

    def _found(self, ref: PosterRef) -> tuple[Offer | None, Fence | None]:
        offer = self.repository.offer(EVERYONE, ref.offer_id)
        fence = None if offer is None else self.repository.fence(offer.merchant_id, ref.fence_id)
        return offer, fence

    def _count(self, offer: Offer, fence: Fence, key: str | None, at: datetime) -> None:
        """A scan carries no position: the store is where the poster hangs, not where the phone is."""
        event = Event(
            kind="scan",
            event_id=f"s:{uuid.uuid4().hex}",
            at=at,
            device_key=key or "",
            lat=0.0,
            lon=0.0,
            cell="",
            offer_id=offer.id,
            merchant_id=offer.merchant_id,
            fence_id=fence.id,
        )
        try:
            self.server.sink.append([event])
        except Exception:  # the page still shows the offer; only the report misses the scan
            log.warning("could not append the scan of %s", offer.id, exc_info=True)
