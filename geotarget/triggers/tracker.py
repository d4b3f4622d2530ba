"""Moves presence for every ping geotarget sees, where someone listens, and hands what fired to the trigger
worker.

Called on the request path (``/v1/nearby``, ``POST /v1/pings``) after the answer is decided. Presence is kept per
(app key, device) and only in listened fences (``listening``): with nobody listening to an app's devices a ping
does no presence work at all. A presence fault never changes an answer or refuses a ping: it is logged and
counted, and the device's next ping catches up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from geofences import LatLng
from geotarget.catalog.snapshot import Catalog
from geotarget.tally import Tally
from geotarget.triggers.listening import NOBODY, Listening
from geotarget.triggers.presence import (
    Fired,
    PresenceMove,
    PresencePing,
    PresenceRules,
    Sighting,
    Transition,
    sightings,
)
from geotarget.triggers.webhooks import Subscription

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fix:
    """One ping as presence needs it."""

    point: LatLng
    at: datetime
    accuracy_m: float | None = None


class PresenceStore(Protocol):
    def apply(self, move: PresenceMove) -> list[Transition]:
        """Apply one device's pings atomically and hand what they fired to the trigger worker; returns that."""

    def sweep(self, now: datetime, limit: int = 500) -> list[Fired]:
        """Exits of presences that timed out by ``now``, handed to the trigger worker in the same step."""


class PresenceTracker:
    def __init__(self, catalog: Catalog, store: PresenceStore, rules: PresenceRules) -> None:
        self.catalog = catalog
        self.store = store
        self.rules = rules
        self.stats = Tally("presence")  # transitions, failures
        self.listening: Listening = NOBODY  # replaced whole when subscriptions change (``listen``)

    def listen(self, subscriptions: Iterable[Subscription]) -> None:
        """Who listens now: every worker calls it on its catalog sync, and after a subscription change."""
        self.listening = Listening.of(subscriptions)

    def listened(self) -> bool:
        """Whether any presence is kept at all (else there are no transitions to read)."""
        return self.listening.anywhere(self.catalog.triggered)

    def prepare(
        self,
        device_key: str,
        device_id: str,
        app: str,
        fixes: Sequence[Fix],
        attributes: Mapping[str, object] | None = None,
    ) -> PresenceMove | None:
        """One device's (non-``lmt``) pings, in any order, made ready for the engine, or None when nobody
        listens to this app's devices. Only listened fences are seen. ``attributes``: what the app said of its
        user (kept with the presence, so a push is targeted as a pulled offer is)."""
        listening, triggered = self.listening, self.catalog.triggered
        if not listening.anyone(app, triggered):
            return None
        catalog = self.catalog
        index, waits, unseen = catalog.index, catalog.dwell_thresholds, catalog.audience_fences

        def merchant_of(fence_id: str) -> str | None:
            meta = catalog.meta(fence_id)
            return None if meta is None else meta.merchant_id

        def seen(f: Fix) -> tuple[Sighting, ...]:
            found = sightings(index, f.point, f.accuracy_m, self.rules, waits, unseen)
            return tuple(s for s in found if listening.hears(app, s.fence_id, triggered, merchant_of))

        pings = tuple(PresencePing(f.at, f.accuracy_m, seen(f), f.point) for f in sorted(fixes, key=lambda f: f.at))
        return PresenceMove(device_key, device_id, app, pings, dict(attributes or {}))

    def seen(
        self,
        device_key: str,
        device_id: str,
        app: str,
        fixes: Sequence[Fix],
        attributes: Mapping[str, object] | None = None,
    ) -> list[Fired]:
        """Move one device's presence by its pings in a call of its own (``POST /v1/pings``, bulk files); what it
        fired, each with the ping that fired it (an exit's distance is the trigger worker's: ``Fired.measured``)."""
        move = self.prepare(device_key, device_id, app, fixes, attributes)
        if move is None:
            return []
        try:
            moved = self.store.apply(move)
        except Exception as exc:
            self.failed(exc)
            return []
        self.handed_on(moved)
        at = {p.at: p.point for p in move.pings}
        return [Fired(move.device_key, move.device_id, move.app, t, move.attributes, at.get(t.at)) for t in moved]

    def seen_each(self, app: str, pings: Iterable[tuple[str, str, Fix]]) -> None:
        """Many devices' pings (device key, raw id, fix): each device moved once, its pings in timestamp order."""
        by_device: dict[tuple[str, str], list[Fix]] = {}
        for device_key, device_id, fix in pings:
            by_device.setdefault((device_key, device_id), []).append(fix)
        for (device_key, device_id), fixes in by_device.items():
            self.seen(device_key, device_id, app, fixes)

    def handed_on(self, moved: Sequence[Transition]) -> None:
        """Count what a move fired: the engine handed it to the trigger worker in the same step (with the cap
        reservation too, on the request path)."""
        self.stats.add("transitions", len(moved))

    def failed(self, exc: Exception) -> None:
        self.stats.add("failures")
        log.warning("presence not moved (%s); the device's next ping catches up", exc.__class__.__name__)

    def sweep(self, now: datetime) -> list[Fired]:
        """Exits for devices gone silent (handed on by the engine); safe to run in several workers at once."""
        fired = self.store.sweep(now)
        self.stats.add("transitions", len(fired))
        return fired
