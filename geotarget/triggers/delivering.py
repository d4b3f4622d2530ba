"""The delivery worker's rule: sign, send, and settle each attempt as delivered, to be retried, or failed.

Fair to every tenant: each webhook's deliveries wait in at most ``per_webhook`` queues of their own (a device
always in the same one), each drained by one sending thread at a time, so one webhook holds at most that many of
the ``parallel`` threads. A webhook whose receiver just timed out or refused a connection is *parked* for
``PARK_S``: its queued deliveries are put off as retries (with the usual backoff) without being sent, so a tarpit
costs its owner, not everyone queued behind it. Taking the next batch never waits for a slow receiver.

Within one delivery worker, deliveries of one webhook and device go out one after another in the order they
were queued. Across several workers (or after a retry) they may arrive out of order: every body carries ``at``,
the moment of the transition, by which a receiver can put them back in order (docs/triggers.md). Each attempt
is signed with its own timestamp (so a receiver's freshness check holds for a retry a day later).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import zlib
from collections import deque
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


PARK_S = 30.0  # how long a webhook that timed out or refused a connection is parked
SLOW_MS = 2_000.0  # a failed attempt this slow (or with no answer at all) parks its webhook


class Deliverer:
    def __init__(
        self,
        subscriptions: SubscriptionCache,
        sender: Sender,
        ledger: DeliveryLedger,
        policy: RetryPolicy,
        parallel: int = 16,
        per_webhook: int = 8,
    ) -> None:
        self.subscriptions = subscriptions
        self.sender = sender
        self.ledger = ledger
        self.policy = policy
        self.per_webhook = max(1, min(per_webhook, parallel))
        self.max_queued = parallel * 256  # taking batches waits while this many are queued
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="deliver")
        self._threads = threading.BoundedSemaphore(parallel)
        self._queues: dict[tuple[str, int], deque[PendingDelivery]] = {}
        self._queued = 0
        self._held: set[str] = set()  # stream entries queued or being sent here: a re-claim of one is not queued twice
        self._parked_until: dict[str, float] = {}  # webhook -> monotonic time
        self._changed = threading.Condition()
        self._stopping = False
        self._rng = random.Random()

    def deliver(self, batch: Sequence[PendingDelivery]) -> None:
        """Queue a batch for the sending threads; returns once it is queued (waiting only while too much is)."""
        starting = []
        with self._changed:
            while self._queued >= self.max_queued and not self._stopping:
                self._changed.wait(0.5)
            for pending in batch:
                if pending.entry_id in self._held:
                    continue  # still waiting its turn here (taken again as idle): sent once, by this queue
                self._held.add(pending.entry_id)
                queue_key = (pending.subscription_id, zlib.crc32(pending.device_key.encode()) % self.per_webhook)
                if queue_key not in self._queues:
                    self._queues[queue_key] = deque()
                    starting.append(queue_key)
                self._queues[queue_key].append(pending)
                self._queued += 1
        for queue_key in starting:
            self._threads.acquire()
            self._pool.submit(self._drain, queue_key)

    def idle(self, timeout_s: float) -> bool:
        """Wait until everything queued is settled (or put off); False if it is not within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._queues:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _drain(self, queue_key: tuple[str, int]) -> None:
        try:
            while True:
                with self._changed:
                    queue = self._queues[queue_key]
                    if not queue or self._stopping:  # stopping: what is left stays pending and is claimed again
                        self._queued -= len(queue)
                        self._held.difference_update(p.entry_id for p in queue)
                        del self._queues[queue_key]
                        self._changed.notify_all()
                        return
                    pending = queue.popleft()
                    self._queued -= 1
                    if self._queued == self.max_queued - 1:
                        self._changed.notify_all()  # room again for a waiting ``deliver``
                try:
                    if self._parked(pending.subscription_id):
                        self._put_off(pending)
                    else:
                        self.attempt(pending)
                except Exception as exc:  # left pending in the stream group: claimed and tried again later
                    log.warning("delivery %s not settled (%s)", pending.delivery_id, exc.__class__.__name__)
                finally:
                    with self._changed:
                        self._held.discard(pending.entry_id)
        finally:
            self._threads.release()

    def _parked(self, subscription_id: str) -> bool:
        return self._parked_until.get(subscription_id, 0.0) > time.monotonic()

    def _put_off(self, pending: PendingDelivery) -> None:
        done = datetime.now(UTC)
        next_at = done + timedelta(seconds=self.policy.delay_s(pending.attempts + 1, self._rng))
        outcome = "failed" if self.policy.gives_up(pending.created_ms / 1000, next_at.timestamp()) else "retry"
        error = "put off: this webhook's receiver timed out or refused a connection moments ago"
        self.ledger.settle(pending, outcome, done, next_at=next_at, error=error)

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
            self._parked_until.pop(sub.id, None)
            self.ledger.settle(pending, "delivered", done, status=sent.status, latency_ms=sent.latency_ms)
            return "delivered"
        if sent.status is None or sent.latency_ms >= SLOW_MS:  # no answer, or a slow one: park the webhook
            self._parked_until[sub.id] = time.monotonic() + PARK_S
        wait = self.policy.delay_s(pending.attempts + 1, self._rng)
        next_at = done + timedelta(seconds=wait)
        outcome = "failed" if self.policy.gives_up(pending.created_ms / 1000, next_at.timestamp()) else "retry"
        self.ledger.settle(
            pending, outcome, done, next_at=next_at, status=sent.status, error=sent.error, latency_ms=sent.latency_ms
        )
        return outcome

    def close(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._pool.shutdown(wait=True)
