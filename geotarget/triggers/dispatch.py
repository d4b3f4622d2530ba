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
from geotarget.triggers.webhooks import Subscription, delivery_id, event_id


@dataclass(frozen=True)
class Pushed:
    """An offer pushed for a transition: as ``/v1/nearby`` shows it, with its impression id."""

    offer: Mapping[str, Any]
    impression_id: str


class Pusher(Protocol):
    def push(self, fired: Fired) -> Pushed | None:
        """The best triggered offer for this transition that is live, targeted and within its caps (reserved)."""


class DeliveryQueue(Protocol):
    def enqueue(
        self, delivery_id: str, subscription_id: str, event: Mapping[str, Any], device_key: str, now: datetime
    ) -> bool: ...


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
    ) -> None:
        self.merchant_of = merchant_of
        self.subscriptions = subscriptions
        self.queue = queue
        self.pusher = pusher

    def dispatch(self, fired: Fired, now: datetime) -> int:
        """Enqueue what this transition sets off; returns how many deliveries were new."""
        t = fired.transition
        merchant = self.merchant_of(t.fence_id)
        if merchant is None:
            return 0  # the fence is gone: nothing to tell about it
        base: dict[str, Any] = {"type": t.kind, "at": iso_utc(t.at), "geofence_id": t.fence_id, "merchant_id": merchant}
        base["distance_m"] = t.distance_m if t.distance_m is not None else 0.0
        if t.kind != "enter":
            base["dwell_s"] = t.dwell_s
        transition_id = event_id(fired.device_key, t.fence_id, t.kind, iso_utc(t.at), t.threshold_s or "")
        subscribers = self.subscriptions.current()
        made = 0
        if t.kind != "dwell" or t.threshold_s == DEFAULT_DWELL_S:  # other dwell times exist only for pushes
            made += self._send(fired, {"id": transition_id, **base}, subscribers, merchant, now)
        if self.pusher is not None and any(
            s.owner == "app" and s.hears("push", t.fence_id, merchant, fired.app) for s in subscribers
        ):
            pushed = self.pusher.push(fired)
            if pushed is not None:
                push = {"id": event_id(transition_id, "push"), **base, "type": "push", "trigger": t.kind}
                push["offer"] = {**pushed.offer, "impression_id": pushed.impression_id}
                made += self._send(fired, push, subscribers, merchant, now)
        return made

    def _send(
        self,
        fired: Fired,
        event: dict[str, Any],
        subscribers: Sequence[Subscription],
        merchant: str,
        now: datetime,
    ) -> int:
        made = 0
        for sub in subscribers:
            if not sub.hears(event["type"], event["geofence_id"], merchant, fired.app):
                continue
            body = {**event, "device_id": fired.device_id} if sub.owner == "app" else event
            made += self.queue.enqueue(delivery_id(sub.id, event["id"]), sub.id, body, fired.device_key, now)
        return made
