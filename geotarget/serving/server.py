"""Serving offers for a ping: match, reserve caps in one atomic call, emit events. The request path.

Faults: when the cap store fails or is slower than its timeout, only uncapped offers are served and the answer
says ``degraded = "caps unavailable"`` (fail closed: caps are a promise). An event-stream fault never changes the
answer; it is logged and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import islice

from geofences import LatLng, Proximity, cells
from geotarget.audiences.gate import Gate, Gates
from geotarget.catalog.model import Offer
from geotarget.catalog.snapshot import Catalog
from geotarget.catalog.timezones import timezone_at
from geotarget.measurement.devices import device_key
from geotarget.measurement.events import Event, EventSink, ping_event_id
from geotarget.measurement.interactions import impression_id
from geotarget.measurement.lift import in_holdout
from geotarget.measurement.redemptions import new_code
from geotarget.serving import matcher, search
from geotarget.serving.answers import NearbyAnswer, NearbyQuery, Served, shown
from geotarget.serving.caps import AnswerTimes, Capper, Counter, GlobalCaps, Reserved, counters_for
from geotarget.serving.matcher import MatchRequest
from geotarget.serving.pacing import Pacer
from geotarget.serving.swapped import swapped_hint
from geotarget.serving.targeting import deciding
from geotarget.serving.types import Attributes, Candidate
from geotarget.serving.variants import Rotation
from geotarget.tally import Tally
from geotarget.triggers.dispatch import Pushed
from geotarget.triggers.presence import Fired, PresenceMove, Transition
from geotarget.triggers.tracker import Fix, PresenceTracker

log = logging.getLogger(__name__)
CAPS_UNAVAILABLE = "caps unavailable"
SCAN_APP = "scan"  # whom a scan's impression id is signed for: the poster's page, not an app


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
        tracker: PresenceTracker | None = None,
    ) -> None:
        self.catalog = catalog
        self.capper = capper
        self.sink = sink
        self.device_secret = device_secret
        self.global_caps = global_caps
        self.max_accuracy_m = max_accuracy_m
        self.per_merchant = per_merchant
        self.stats = Tally("serving")  # requests, served, cap_blocked, degraded, event_failures
        self.quick, self.answer_times = True, AnswerTimes()
        self.tracker = tracker
        self.gates = Gates()
        self.public_url = ""  # GEOTARGET_PUBLIC_URL: the base of the links in what is served (code QR images)
        self.pacer = Pacer()  # the runtime sets its workers and updates it every minute (pacing_loop)
        self.rotation = Rotation()  # variant shares; optimized ones learned every few minutes (pacing_loop)

    def nearby(self, query: NearbyQuery) -> NearbyAnswer:
        """Blocks for at most one cap-store call and one event append, each bounded by the Redis timeout.
        ``quick`` says whether cap-store calls answer quickly (``AnswerTimes``): callers on an event loop
        may call this inline while it holds and hand it to a thread otherwise."""
        self.stats.add("requests")
        view = self.catalog.view  # one snapshot for the whole request
        key = device_key(self.device_secret, query.device_id)
        cell = cells.cell_to_str(cells.latlng_to_cell(query.point, view.res))
        live = self.catalog.live_audiences  # replaced whole on change: one state for the request
        ranked = self.candidates(query, live)
        ping = None if query.lmt else self._ping(key, query, cell)
        moving = self._moving(key, query)
        outcome = self._serve(key, query, cell, ranked, ping, moving, live)
        self.stats.add("served", len(outcome.served))
        self.stats.add("cap_blocked", outcome.blocked)
        unlogged = ([outcome.ping] if outcome.ping else []) + outcome.unlogged
        if unlogged:
            self._append(unlogged)
        if self.tracker is not None and moving is not None and outcome.moved:
            self.tracker.handed_on(outcome.moved)
        hint = None if outcome.served else swapped_hint(self.catalog.index, query.point)
        return NearbyAnswer(outcome.served, cell, outcome.degraded, hint)

    def candidates(self, query: NearbyQuery, live: Mapping[str, int]) -> Iterator[Candidate]:
        """The ranked candidates for a query (lazily, best first) that some device could be shown: the one
        matching path of pulled offers and bids."""
        request = MatchRequest(
            query.at,
            query.accuracy_m,
            query.attributes,
            self.max_accuracy_m,
            self.per_merchant,
            coarse=query.coarse,
            paced=self.pacer.passes,
        )
        ranked = search.ranked(self.catalog.view, query.point, request)
        return self._admissible(ranked, live, query.attributes, query.lmt)

    def counters(self, candidates: list[Candidate], query: NearbyQuery) -> list[list[Counter]]:
        """Each candidate's cap counters for this query."""
        if not candidates:
            return []
        zone = self._device_zone(query, candidates)
        caps = self.catalog.view.merchant_caps
        return [counters_for(c, query.at, zone, self.global_caps, caps.get(c.offer.merchant_id)) for c in candidates]

    def _moving(self, key: str, query: NearbyQuery) -> PresenceMove | None:
        """The presence move that rides along with the cap reservation; limit-ad-tracking pings move nothing.
        After a cap-store fault it is dropped with the rest (the device's next ping catches up)."""
        if self.tracker is None or query.lmt:
            return None
        fix = Fix(query.point, query.at, query.accuracy_m)
        return self.tracker.prepare(key, query.device_id, query.app, [fix], query.attributes.to_json())

    def push(self, fired: Fired) -> Pushed | None:
        """The best offer whose trigger this transition is, when live, targeted and within its caps: the same
        matcher and the same atomic reservation as a pulled offer; its impression is counted with ``trigger``
        set. Raises on a cap-store fault (the trigger worker tries the transition again)."""
        t = fired.transition
        offers = [o for o in self.catalog.triggered.get(t.fence_id, ()) if _fires(o, t.kind, t.threshold_s)]
        shape = self.catalog.index.shape(t.fence_id)
        if not offers or shape is None:
            return None
        said = Attributes.from_json(fired.attributes)
        request = MatchRequest(t.at, None, said, self.max_accuracy_m, 1, pushed=True, paced=self.pacer.passes)
        place = Proximity(t.fence_id, True, 0.0)  # about the fence itself, whichever side the device is on
        live = self.catalog.live_audiences
        ranked = list(
            self._admissible(matcher.match(request, [place], {t.fence_id: offers}, self.catalog.timezones), live, said)
        )
        if not ranked:
            return None
        west, south, east, north = shape.bounds
        query = NearbyQuery(LatLng((south + north) / 2, (west + east) / 2), fired.device_id, t.at, limit=1)
        cell = cells.cell_to_str(cells.latlng_to_cell(query.point, self.catalog.view.res))
        zone = self.catalog.timezones.get(t.fence_id, "UTC")
        caps = self.catalog.view.merchant_caps
        counters = [counters_for(c, t.at, zone, self.global_caps, caps.get(c.offer.merchant_id)) for c in ranked]
        served = [self.issue(c, fired.app, fired.device_key) for c in ranked]
        kinds = ["ghost" if held_out(fired.device_key, c) else "impression" for c in ranked]
        events = [
            replace(self.about(fired.device_key, query, cell, s, k), trigger=t.kind)
            for s, k in zip(served, kinds, strict=True)
        ]
        gates = [self.gate(c, live, said) for c in ranked]
        reserved = self._reserve(fired.device_key, counters, 1, [e.to_json() for e in events], None, None, gates)
        self.stats.add("cap_blocked", len(reserved.blocked))
        chosen = [i for i in reserved.served if kinds[i] != "ghost"]  # a held-out device is not pushed to
        if not chosen:
            return None
        self.stats.add("served")
        pushed = served[chosen[0]]
        return Pushed(shown(pushed, self.public_url), pushed.impression_id)

    def hand_out(self, offer: Offer, fence_id: str, key: str, zone: str, at: datetime) -> Served | None:
        """A unique code for a browser that scanned the offer's poster at ``fence_id``: an impression (trigger
        "scan", no position) counted against the offer's caps and budget for that browser as for a device, in
        the same atomic reservation as any other. None when a cap refuses; raises on a cap-store fault."""
        candidate = Candidate(offer, fence_id, True, 0.0, 0.0)
        caps = self.catalog.view.merchant_caps.get(offer.merchant_id)
        counters = [counters_for(candidate, at, zone, self.global_caps, caps)]
        served = self.issue(candidate, SCAN_APP, key)
        where = NearbyQuery(LatLng(0.0, 0.0), "", at, limit=1)
        event = replace(self.about(key, where, "", served, "impression"), trigger="scan")
        reserved = self._reserve(key, counters, 1, [event.to_json()], None, None, [None])
        self.stats.add("cap_blocked", len(reserved.blocked))
        return served if reserved.served else None

    def _serve(
        self,
        key: str,
        query: NearbyQuery,
        cell: str,
        ranked: Iterator[Candidate],
        ping: Event | None,
        moving: PresenceMove | None,
        live: Mapping[str, int],
    ) -> _Outcome:
        """Take ranked candidates a batch at a time (the limit and as many spares, for capped ones) until the
        limit is served or none are left. Each batch goes to the capper with its events, and the first with the
        ping and the presence move: one round trip in the usual case, capped or not. Only in a fault are events
        left for one append at the end."""
        outcome = _Outcome()
        linked = "" if query.lmt else key
        while len(outcome.served) < query.limit:
            room = query.limit - len(outcome.served)
            batch = _batch(ranked, room)
            if not batch:
                break
            counters = self.counters(batch, query)
            served = [self.issue(c, query.app, key) for c in batch]
            ghosts = [held_out(key, c) for c in batch]
            kinds = ["ghost" if g else "impression" for g in ghosts]
            events = [self.about(linked, query, cell, s, k).to_json() for s, k in zip(served, kinds, strict=True)]
            gates = [
                None if query.lmt else self.gate(c, live, query.attributes) for c in batch
            ]  # lmt: decided by _admissible
            try:
                reserved = self._reserve(key, counters, room, events, ping, moving, gates)
            except Exception as exc:  # any cap-store fault: fail closed
                log.warning("cap store unavailable (%s); serving uncapped offers only", exc.__class__.__name__)
                outcome.ping = ping
                return self._uncapped(outcome, query, cell, key, served, counters, gates, ranked, live)
            ping, moving = None, None  # logged and moved
            outcome.moved += reserved.moved
            outcome.served += [served[i] for i in reserved.served if not ghosts[i]]  # a ghost is counted, not shown
            outcome.blocked += len(reserved.blocked)
            if reserved.decided < len(batch):
                break  # the capper stopped at the limit
        if ping is not None or moving is not None:  # nothing to serve: the ping and the move go alone
            try:
                outcome.moved += self._reserve(key, [], 0, [], ping, moving).moved
            except Exception:
                outcome.ping = ping
        return outcome

    def _reserve(
        self,
        key: str,
        counters: list[list[Counter]],
        room: int,
        events: list[bytes],
        ping: Event | None,
        moving: PresenceMove | None = None,
        gates: list[Gate | None] | None = None,
    ) -> Reserved:
        started = time.perf_counter()
        try:
            answer = self.capper.reserve(
                key, counters, room, events, ping.to_json() if ping else None, moving, gates or ()
            )
        except Exception:
            self.quick = self.answer_times.failed()
            raise
        self.quick = self.answer_times.answered(time.perf_counter() - started)
        return answer

    def _uncapped(
        self,
        outcome: _Outcome,
        query: NearbyQuery,
        cell: str,
        key: str,
        served: list[Served],
        counters: list[list[Counter]],
        gates: list[Gate | None],
        ranked: Iterator[Candidate],
        live: Mapping[str, int],
    ) -> _Outcome:
        """The cap store failed: the rest of the answer is uncapped offers only, and it says ``degraded`` when a
        capped one (or one whose audiences need the device's memberships) was withheld. Their events are
        appended at the end (held-out devices get ghosts)."""
        linked = "" if query.lmt else key
        room = query.limit - len(outcome.served)
        chosen: list[tuple[Served, bool]] = []  # (served, a ghost), in rank order

        def take(s: Served) -> None:
            ghost = held_out(key, s.candidate)
            chosen.append((s, ghost))
            nonlocal room
            room -= not ghost

        for s, cs, gate in zip(served, counters, gates, strict=True):
            if not cs and gate is None and room > 0:
                take(s)
        withheld = any(counters) or any(gates)
        for candidate in ranked:
            if room <= 0:
                break
            zone = self._device_zone(query, [candidate])
            caps = self.catalog.view.merchant_caps.get(candidate.offer.merchant_id)
            gate = None if query.lmt else self.gate(candidate, live, query.attributes)
            if gate is not None or counters_for(candidate, query.at, zone, self.global_caps, caps):
                withheld = True
            else:
                take(self.issue(candidate, query.app, key))
        for s, ghost in chosen:
            outcome.unlogged.append(self.about(linked, query, cell, s, "ghost" if ghost else "impression"))
            if not ghost:
                outcome.served.append(s)
        if withheld:
            outcome.degraded = CAPS_UNAVAILABLE
            self.stats.add("degraded")
        return outcome

    def gate(self, candidate: Candidate, live: Mapping[str, int], attributes: Attributes) -> Gate | None:
        offer = candidate.offer
        return self.gates.of(offer.id, offer.targeting, live, deciding(attributes))

    def _admissible(
        self, ranked: Iterable[Candidate], live: Mapping[str, int], attributes: Attributes, lmt: bool = False
    ) -> Iterator[Candidate]:
        """Candidates whose audiences some device could pass (for ``lmt``, a device with no memberships: it is
        never a member of an audience, so only offers that include none are left)."""
        for candidate in ranked:
            gate = self.gate(candidate, live, attributes)
            if gate is None or (gate.admits({}) if lmt else gate.possible):
                yield candidate

    def issue(self, candidate: Candidate, app: str, key: str) -> Served:
        """An impression id signed for ``app``, the redemption code the offer shows, if it has one, and for an
        offer with variants the one this device (``key``) is shown, overlaid on the offer."""
        redemption = candidate.offer.redemption
        code = None if redemption is None else new_code() if redemption.unique else redemption.code
        if not candidate.offer.variants:
            return Served(candidate, impression_id(self.device_secret, app), code)
        creative, variant_id = self.rotation.creative(candidate.offer, key)
        return Served(replace(candidate, offer=creative), impression_id(self.device_secret, app), code, variant_id)

    def _device_zone(self, query: NearbyQuery, candidates: list[Candidate]) -> str:
        if self.global_caps.per_device_per_day is None and self.global_caps.per_device_per_hour is None:
            return "UTC"  # not used
        return self.catalog.timezones.get(candidates[0].fence_id) or timezone_at(query.point)

    def _ping(self, key: str, query: NearbyQuery, cell: str) -> Event:
        p = query.point
        return Event(
            kind="ping",
            event_id=ping_event_id(key, query.at),
            at=query.at,
            device_key=key,
            lat=p.lat,
            lon=p.lon,
            cell=cell,
            accuracy_m=query.accuracy_m,
        )

    @staticmethod
    def about(linked: str, query: NearbyQuery, cell: str, served: Served, kind: str) -> Event:
        """An event about one offer. Limit-ad-tracking devices leave no linkable history: no ping, and their
        impressions are counted without a device key. A cap-blocked serve keeps the impression id it would
        have had."""
        c = served.candidate
        return Event(
            kind=kind,
            event_id=served.impression_id,
            at=query.at,
            device_key=linked,
            lat=query.point.lat,
            lon=query.point.lon,
            cell=cell,
            offer_id=c.offer.id,
            merchant_id=c.offer.merchant_id,
            fence_id=c.fence_id,
            inside=c.inside,
            distance_m=c.distance_m,
            accuracy_m=query.accuracy_m,
            code=(served.redemption_code or "") if c.offer.redemption and c.offer.redemption.unique else "",
            variant=served.variant_id or "",
        )

    def _append(self, events: list[Event]) -> None:
        try:
            self.sink.append(events)
        except Exception as exc:
            self.stats.add("event_failures")
            log.warning("could not append %d event(s): %s", len(events), exc.__class__.__name__)


def held_out(device_key: str, candidate: Candidate) -> bool:
    """The device is in this offer's control group: the offer is reserved and logged as a ghost, not shown."""
    pct = candidate.offer.holdout_pct
    return pct > 0 and in_holdout(candidate.offer.id, device_key, pct)


def _batch(ranked: Iterator[Candidate], room: int) -> list[Candidate]:
    """The next candidates for one reservation: the limit and as many spares, for capped candidates and for
    ones outside their audiences. Measured (scripts/bench_audiences.py): counting candidates with audiences on
    top of the spares saves the second Redis call a skipped one sometimes costs, but every candidate pulled
    deeper from the search costs more than that call (+29 % CPU against +10 %)."""
    return list(islice(ranked, 2 * room))


def _fires(offer: Offer, kind: str, threshold_s: int | None) -> bool:
    return offer.trigger is not None and offer.trigger.on == kind and offer.trigger.threshold_s == threshold_s


@dataclass
class _Outcome:
    served: list[Served] = field(default_factory=list)
    blocked: int = 0
    unlogged: list[Event] = field(default_factory=list)  # events no capper call has appended
    moved: list[Transition] = field(default_factory=list)  # presence transitions the capper call fired
    ping: Event | None = None  # the ping, while no capper call has appended it
    degraded: str | None = None
