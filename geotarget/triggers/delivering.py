"""The delivery worker's rule: sign, send, and settle each attempt as delivered, to be retried, or failed.

Deliveries of one webhook and device are sent one after another, in the order they were queued; different
ones go out in parallel. Each attempt is signed with its own timestamp (so a receiver's freshness check holds
for a retry a day later).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Protocol

from geotarget.triggers.dispatch import SubscriptionCache
from geotarget.triggers.webhooks import PendingDelivery, RetryPolicy, Sent, signed_headers

log = logging.getLogger(__name__)


class Sender(Protocol):
    def send(self, url: str, headers: Mapping[str, str], body: bytes) -> Sent: ...


class DeliveryLedger(Protocol):
    def settle(
        self,
        pending: PendingDelivery,
        outcome: str,
        now: datetime,
        *,
        next_at: datetime | None = None,
        status: int | None = None,
        error: str = "",
        latency_ms: float = 0.0,
    ) -> int: ...


class Deliverer:
    def __init__(
        self,
        subscriptions: SubscriptionCache,
        sender: Sender,
        ledger: DeliveryLedger,
        policy: RetryPolicy,
        parallel: int = 16,
    ) -> None:
        self.subscriptions = subscriptions
        self.sender = sender
        self.ledger = ledger
        self.policy = policy
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="deliver")
        self._rng = random.Random()

    def deliver(self, batch: Sequence[PendingDelivery]) -> None:
        """Send a batch; returns when every delivery in it is settled."""
        lanes: dict[tuple[str, str], list[PendingDelivery]] = defaultdict(list)
        for pending in batch:
            lanes[(pending.subscription_id, pending.device_key)].append(pending)
        for done in [self._pool.submit(self._lane, lane) for lane in lanes.values()]:
            done.result()

    def _lane(self, lane: list[PendingDelivery]) -> None:
        for pending in lane:
            try:
                self.attempt(pending)
            except Exception as exc:  # left pending in the stream group: claimed and tried again later
                log.warning("delivery %s not settled (%s)", pending.delivery_id, exc.__class__.__name__)

    def attempt(self, pending: PendingDelivery) -> str:
        """One try of one delivery; returns how it was settled."""
        sub = self.subscriptions.get(pending.subscription_id)
        now = datetime.now(UTC)
        if sub is None:
            self.ledger.settle(pending, "failed", now, error="the webhook was deleted")
            return "failed"
        timestamp = int(now.timestamp())
        headers = signed_headers(sub.secret, pending.event_id, pending.event_type, timestamp, pending.body)
        sent = self.sender.send(sub.url, headers, pending.body)
        done = datetime.now(UTC)
        if sent.delivered:
            self.ledger.settle(pending, "delivered", done, status=sent.status, latency_ms=sent.latency_ms)
            return "delivered"
        wait = self.policy.delay_s(pending.attempts + 1, self._rng)
        next_at = done + timedelta(seconds=wait)
        outcome = "failed" if self.policy.gives_up(pending.created_ms / 1000, next_at.timestamp()) else "retry"
        self.ledger.settle(
            pending, outcome, done, next_at=next_at, status=sent.status, error=sent.error, latency_ms=sent.latency_ms
        )
        return outcome

    def close(self) -> None:
        self._pool.shutdown(wait=True)
