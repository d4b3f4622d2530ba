"""The trigger worker's rule: a fired transition becomes one event per webhook that hears it, and, where an app
listens for pushes, at most one pushed offer (reserved against its caps like a pulled one), sent after it.

Handling the same transition twice enqueues nothing new: event and delivery ids are derived from it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from geotarget.catalog.model import iso_utc
from geotarget.triggers.presence import DEFAULT_DWELL_S, Fired
from geotarget.triggers.webhooks import Queued, Subscription, delivery_id, event_id


@dataclass(frozen=True)
class Pushed:
    """An offer pushed for a transition: as ``/v1/nearby`` shows it, with its impression id."""

    offer: Mapping[str, Any]
    impression_id: str


class Pusher(Protocol):
    def push(self, fired: Fired) -> Pushed | None:
        """The best triggered offer for this transition that is live, targeted and within its caps (reserved)."""


class DeliveryQueue(Protocol):
    def enqueue_many(self, queued: Sequence[Queued], now: datetime) -> int: ...


class SubscriptionCache:
    """Every subscription, reloaded when older than ``max_age_s``: a new webhook hears events within seconds."""

    def __init__(self, load: Callable[[], Sequence[Subscription]], max_age_s: float = 2.0) -> None:
        self._load = load
        self._max_age_s = max_age_s
        self._loaded_at = float("-inf")
        self._all: tuple[Subscription, ...] = ()
        self._by_id: dict[str, Subscription] = {}
        self._lock = threading.Lock()

    def current(self) -> tuple[Subscription, ...]:
        with self._lock:
            if time.monotonic() - self._loaded_at > self._max_age_s:
                self._all = tuple(self._load())
                self._by_id = {s.id: s for s in self._all}
                self._loaded_at = time.monotonic()
            return self._all

    def invalidate(self) -> None:
        """A subscription changed in this process: read them again at the next use."""
        with self._lock:
            self._loaded_at = float("-inf")

    def get(self, subscription_id: str) -> Subscription | None:
        self.current()
        return self._by_id.get(subscription_id)


class Dispatcher:
    def __init__(
        self,
        merchant_of: Callable[[str], str | None],
        subscriptions: SubscriptionCache,
        queue: DeliveryQueue,
        pusher: Pusher | None,
        measured: Callable[[Fired], Fired],
    ) -> None:
        self.merchant_of = merchant_of
        self.measured = measured  # an exit's distance from the ping that fired it (Fired.measured)
        self.subscriptions = subscriptions
        self.queue = queue
        self.pusher = pusher

    def dispatch(self, transitions: Sequence[Fired], now: datetime) -> int:
        """Enqueue what these transitions set off, in order and in one go; returns how many deliveries were new."""
        subscribers = self.subscriptions.current()
        queued: list[Queued] = []
        for fired in transitions:
            queued += self._events(self.measured(fired), subscribers)
        return self.queue.enqueue_many(queued, now)

    def _events(self, fired: Fired, subscribers: Sequence[Subscription]) -> list[Queued]:
        t = fired.transition
        merchant = self.merchant_of(t.fence_id)
        if merchant is None:
            return []  # the fence is gone: nothing to tell about it
        base: dict[str, Any] = {"type": t.kind, "at": iso_utc(t.at), "geofence_id": t.fence_id, "merchant_id": merchant}
        base["distance_m"] = t.distance_m if t.distance_m is not None else 0.0
        if t.kind != "enter":
            base["dwell_s"] = t.dwell_s
        transition_id = event_id(fired.device_key, t.fence_id, t.kind, iso_utc(t.at), t.threshold_s or "")
        queued: list[Queued] = []
        if t.kind != "dwell" or t.threshold_s == DEFAULT_DWELL_S:  # other dwell times exist only for pushes
            queued += _heard(fired, {"id": transition_id, **base}, subscribers, merchant)
        if self.pusher is not None and any(
            s.owner == "app" and s.hears("push", t.fence_id, merchant, fired.app) for s in subscribers
        ):
            pushed = self.pusher.push(fired)
            if pushed is not None:
                push = {"id": event_id(transition_id, "push"), **base, "type": "push", "trigger": t.kind}
                push["offer"] = {**pushed.offer, "impression_id": pushed.impression_id}
                queued += _heard(fired, push, subscribers, merchant)  # after the transition's own event
        return queued


def _heard(fired: Fired, event: dict[str, Any], subscribers: Sequence[Subscription], merchant: str) -> list[Queued]:
    """The event for each webhook that hears it; an app's webhook gets the device id as the app sent it."""
    return [
        Queued(
            delivery_id(sub.id, event["id"]),
            sub.id,
            {**event, "device_id": fired.device_id} if sub.owner == "app" else event,
            fired.device_key,
        )
        for sub in subscribers
        if sub.hears(event["type"], event["geofence_id"], merchant, fired.app)
    ]
