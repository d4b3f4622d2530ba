"""Answering a bid request: read it, take the serving path's ranked candidates for its position and device,
and per impression slot hold the best one that can be shown there (its creative fits, its price meets the
floor, its advertiser is not blocked) on the device's caps; then answer with a bid for each slot held.

A bid holds its cap slots as pending (``Capper.hold``): outstanding bids count against every cap, so however
many exchanges ask at once a device is never bid for beyond its caps. The win or billing notice turns the hold
into an impression at the clearing price; a loss notice or the end of the hold frees it. Bid requests are not
pings: they log no ping, move no presence and feed no audience (apps' own pings do), but audience-targeted
offers are bid on for members only, as they are served. A device in an offer's holdout group is not bid for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import islice
from typing import Any

from geofences import cells
from geotarget.bidding.creatives import advertiser_domain, banner_markup, fills, native_markup
from geotarget.bidding.notices import NOTICE_KINDS, NoticeKind, clearing_price, notice_url, verify
from geotarget.bidding.openrtb import BidRequest
from geotarget.bidding.reading import BidRules, Reading, Slot, read
from geotarget.bidding.reasons import NoBid
from geotarget.measurement.devices import device_key
from geotarget.serving.answers import NearbyQuery, Served
from geotarget.serving.caps import PendingBid, Settled
from geotarget.serving.server import OfferServer, held_out
from geotarget.serving.types import Candidate
from geotarget.tally import Tally

log = logging.getLogger(__name__)
SEAT = "geotarget"
MAX_PULLED = 50  # candidates looked at for one request's slots, at most
LATE_GRACE_S = 3_600  # how long after its hold a bid's record still settles a late notice
BANNER, NATIVE = 1, 4  # OpenRTB 2.6 bid.mtype


@dataclass(frozen=True)
class Bid:
    slot: Slot
    served: Served
    bid_id: str
    price: float


class Bidder:
    def __init__(self, server: OfferServer, rules: BidRules, notice_key: bytes, tally: Tally | None = None) -> None:
        self.server = server
        self.rules = rules
        self.notice_key = notice_key
        self.stats = tally or Tally("bidding")  # one count per request, by its reason (reasons.py)
        self.notices = Tally("notices", self.stats.sink)

    def bid(self, request: BidRequest, exchange: str, at: datetime, base_url: str) -> dict[str, Any] | NoBid:
        """The BidResponse (as JSON-ready data) or why there is none. Blocks for at most one cap-store call per
        slot; a cap-store fault is a no-bid (``caps_unavailable``): caps fail closed."""
        reading = read(request, self.rules, at)
        if isinstance(reading, NoBid):
            return self.refuse(reading)
        query = NearbyQuery(
            reading.point,
            reading.device_id,
            at,
            reading.accuracy_m,
            len(reading.slots),
            reading.lmt,
            reading.attributes,
            exchange,
            coarse=reading.coarse,
        )
        try:
            bids, blocked = self._hold(reading, query)
        except Exception as exc:  # any cap-store fault: no bid
            log.warning("cap store unavailable (%s); not bidding", exc.__class__.__name__)
            return self.refuse(NoBid("caps_unavailable"))
        if not bids:
            return self.refuse(NoBid("capped" if blocked else "no_offer"))
        self.stats.add("bid")
        return self._response(request, bids, base_url)

    def settle(self, kind: NoticeKind, bid_id: str, bid_price: str, sig: str, price: str | None) -> Settled:
        """A notice, checked (``InvalidNotice``, ``ValueError`` for a malformed price) and applied once."""
        ours = verify(self.notice_key, kind, bid_id, bid_price, sig)
        paid = clearing_price(price, ours)
        outcome = self.server.capper.settle(bid_id, kind != "loss", paid)
        self.notices.add(f"{kind}_{outcome}")
        return outcome

    def refuse(self, no_bid: NoBid) -> NoBid:
        self.stats.add(no_bid.reason)
        return no_bid

    def _hold(self, reading: Reading, query: NearbyQuery) -> tuple[list[Bid], int]:
        """Per slot in order, the best candidate left that fits it, held on the device's caps (two tried per
        call: the best and a spare, for a capped best)."""
        server = self.server
        key = device_key(server.device_secret, query.device_id)
        live = server.catalog.live_audiences
        pool = islice(self._biddable(server.candidates(query, live), reading, key), MAX_PULLED)
        seen: list[Candidate] = []
        used: set[str] = set()
        bids: list[Bid] = []
        blocked = 0
        cell = cells.cell_to_str(cells.latlng_to_cell(query.point, server.catalog.view.res))
        for slot in reading.slots:
            batch = _fitting(slot, seen, pool, used)
            if not batch:
                continue
            served = [server.issue(c, query.app, key) for c in batch]
            pending = [self._pending(key, query, cell, s) for s in served]
            gates = [None if query.lmt else server.gate(c, live, query.attributes) for c in batch]
            hold_s = slot.hold_s
            held = server.capper.hold(key, server.counters(batch, query), gates, pending, hold_s, hold_s + LATE_GRACE_S)
            blocked += len(held.blocked)
            for i in held.served:
                used.add(batch[i].offer.id)
                bids.append(Bid(slot, served[i], pending[i].bid_id, float(batch[i].offer.bid_cpm or 0)))
        return bids, blocked

    def _biddable(self, ranked: Iterator[Candidate], reading: Reading, key: str) -> Iterator[Candidate]:
        """Offers with a bid price and a link, whose advertiser the publisher does not block, for a device not
        held out of them."""
        for c in ranked:
            offer = c.offer
            domain = advertiser_domain(offer)
            if offer.bid_cpm is None or domain is None or domain in reading.blocked_domains:
                continue
            if not held_out(key, c):
                yield c

    def _pending(self, key: str, query: NearbyQuery, cell: str, served: Served) -> PendingBid:
        linked = "" if query.lmt else key
        impression = self.server.about(linked, query, cell, served, "impression")
        head = impression.to_json()
        if not head.endswith(b'"price":null}'):
            raise AssertionError("an event's price must be its last field")
        bid = replace(impression, kind="bid", event_id=f"b:{served.impression_id}", code="")
        bid = replace(bid, price=served.candidate.offer.bid_cpm)
        blocked = replace(impression, kind="cap_blocked", code="")
        bid_id = self.server.capper.bid_id(key, served.impression_id)
        return PendingBid(bid_id, bid.to_json(), blocked.to_json(), head[: -len(b"null}")])

    def _response(self, request: BidRequest, bids: list[Bid], base_url: str) -> dict[str, Any]:
        return {
            "id": request.id,
            "seatbid": [{"seat": SEAT, "bid": [self._bid_object(b, base_url) for b in bids]}],
            "bidid": bids[0].bid_id,
            "cur": self.rules.currency,
        }

    def _bid_object(self, bid: Bid, base_url: str) -> dict[str, Any]:
        offer = bid.served.candidate.offer
        urls = {k: notice_url(base_url, self.notice_key, k, bid.bid_id, bid.price) for k in NOTICE_KINDS}
        out: dict[str, Any] = {
            "id": bid.bid_id,
            "impid": bid.slot.imp_id,
            "price": bid.price,
            "nurl": urls["win"],
            "burl": urls["bill"],
            "lurl": urls["loss"],
            "adomain": [advertiser_domain(offer)],
            "crid": f"{offer.id}.v{offer.version}",
            "cid": offer.id,
            "exp": bid.slot.hold_s,
        }
        code = bid.served.redemption_code
        if bid.slot.native is not None and fills(offer, bid.slot.native):
            out |= {"adm": native_markup(offer, bid.slot.native, code), "mtype": NATIVE}
        else:
            assert bid.slot.size is not None
            w, h = bid.slot.size
            out |= {"adm": banner_markup(offer, bid.slot.size, code), "mtype": BANNER, "w": w, "h": h}
        return out


def _fitting(slot: Slot, seen: list[Candidate], pool: Iterator[Candidate], used: set[str]) -> list[Candidate]:
    """The best two candidates not yet bid that can fill ``slot``: from those already looked at, then more."""

    def fits(c: Candidate) -> bool:
        offer = c.offer
        if offer.id in used or (offer.bid_cpm or 0) < slot.floor:
            return False
        return slot.size is not None or (slot.native is not None and fills(offer, slot.native))

    found = [c for c in seen if fits(c)][:2]
    while len(found) < 2:
        c = next(pool, None)
        if c is None:
            break
        seen.append(c)
        if fits(c):
            found.append(c)
    return found
