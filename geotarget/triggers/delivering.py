"""The delivery worker's rule: sign, send, and settle each attempt as delivered, to be retried, or failed.

Fair to every tenant: each webhook's deliveries wait in ``per_webhook`` queues of their own (a device always in
the same one), each sent from by one thread at a time, so one webhook holds at most that many of the
``parallel`` threads. It holds only as many as it needs: one while its receiver answers within
``SEND_MS_PER_SENDER`` and little waits, more as answers slow or the queue grows (each thread blocked on a send
costs CPU at every switch, in a process that may also serve requests). A webhook whose receiver just timed out
or refused a connection is *parked* for ``PARK_S``: its queued deliveries are put off as retries (with the usual
backoff) without being sent, so a tarpit costs its owner, not everyone queued behind it. Taking the next batch
never waits for a slow receiver.

Within one delivery worker, deliveries of one webhook and device go out one after another in the order they
were queued. Across several workers (or after a retry) they may arrive out of order: every body carries ``at``,
the moment of the transition, by which a receiver can put them back in order (docs/triggers.md). Each attempt
is signed with its own timestamp (so a receiver's freshness check holds for a retry a day later).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from geotarget.triggers.dispatch import SubscriptionCache
from geotarget.triggers.webhooks import PendingDelivery, RetryPolicy, Sent, Settled, signed_headers

log = logging.getLogger(__name__)


class Sender(Protocol):
    def send(self, url: str, headers: Mapping[str, str], body: bytes) -> Sent: ...


class DeliveryLedger(Protocol):
    def settle_many(self, settled: Sequence[Settled]) -> None: ...


PARK_S = 30.0  # how long a webhook that timed out or refused a connection is parked
SLOW_MS = 2_000.0  # a failed attempt this slow (or with no answer at all) parks its webhook
SEND_MS_PER_SENDER = 5.0  # a webhook gets one more sending thread for each this many ms its receiver takes...
QUEUED_PER_SENDER = 64  # ...or for each this many of its deliveries waiting
RECORD_BATCH = 8  # a sending thread records up to this many attempts in one round trip


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
        self._unrecorded = threading.BoundedSemaphore(parallel)  # places for attempts made and not yet recorded
        self._slots: dict[str, list[deque[PendingDelivery]]] = {}  # webhook -> its per_webhook queues
        self._busy: set[tuple[str, int]] = set()  # (webhook, slot) being sent from now
        self._senders: dict[str, int] = {}  # webhook -> sending threads it holds
        self._waiting: dict[str, int] = {}  # webhook -> deliveries queued here, not yet taken by a sender
        self._send_ms: dict[str, float] = {}  # webhook -> moving average of its receiver's answer time
        self._queued = 0
        self._held: set[str] = set()  # stream entries queued or being sent here: a re-claim of one is not queued twice
        self._parked_until: dict[str, float] = {}  # webhook -> monotonic time
        self._changed = threading.Condition()
        self._stopping = False
        self._rng = random.Random()

    def deliver(self, batch: Sequence[PendingDelivery]) -> None:
        """Queue a batch for the sending threads; returns once it is queued (waiting only while too much is)."""
        with self._changed:
            while self._queued >= self.max_queued and not self._stopping:
                self._changed.wait(0.5)
            touched: set[str] = set()
            for pending in batch:
                if pending.entry_id in self._held:
                    continue  # still waiting its turn here (taken again as idle): sent once, by this queue
                self._held.add(pending.entry_id)
                sub = pending.subscription_id
                if sub not in self._slots:
                    self._slots[sub] = [deque() for _ in range(self.per_webhook)]
                self._slots[sub][zlib.crc32(pending.device_key.encode()) % self.per_webhook].append(pending)
                self._waiting[sub] = self._waiting.get(sub, 0) + 1
                self._queued += 1
                touched.add(sub)
        for sub in touched:
            self._add_senders(sub, wait=True)

    def idle(self, timeout_s: float) -> bool:
        """Wait until everything queued is settled (or put off); False if it is not within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._slots:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _wanted(self, sub: str) -> int:
        """Sending threads for a webhook: one while its receiver answers quickly and little waits, up to
        ``per_webhook`` as it slows or its queue grows (a thread blocks for each send; an idle one only costs)."""
        slow = math.ceil(self._send_ms.get(sub, 0.0) / SEND_MS_PER_SENDER)
        backlog = math.ceil(self._waiting.get(sub, 0) / QUEUED_PER_SENDER)
        return min(self.per_webhook, max(1, slow, backlog))

    def _add_senders(self, sub: str, wait: bool) -> None:
        """Start the sending threads this webhook wants and has work for; ``wait`` for a free thread (the
        delivery loop may), or start only what is free now (a sending thread may not wait on its peers)."""
        while True:
            with self._changed:  # counted before it starts: two callers never both take the last place
                held = self._senders.get(sub, 0)
                if self._stopping or held >= min(self._wanted(sub), self._free_slots(sub)):
                    return
                self._senders[sub] = held + 1
            if not self._threads.acquire(blocking=wait):
                with self._changed:
                    self._senders[sub] -= 1  # the caller is itself one of this webhook's senders: nothing stalls
                return
            self._pool.submit(self._send_from, sub)

    def _free_slots(self, sub: str) -> int:
        return sum(1 for n, q in enumerate(self._slots.get(sub, ())) if q and (sub, n) not in self._busy)

    def _send_from(self, sub: str) -> None:
        """A sending thread of one webhook: takes the next delivery of a queue no other thread is sending from
        (so one device's go out in order), until there is none or the webhook wants fewer threads. Its attempts
        are recorded a few at a time (``RECORD_BATCH``, one round trip), never more than ``parallel`` unrecorded
        across all threads: a worker killed now sends again at most that many."""
        sent: list[tuple[PendingDelivery, Settled]] = []
        try:
            while True:
                if sent and (len(sent) >= RECORD_BATCH or not self._unrecorded.acquire(blocking=False)):
                    self._record(sent)
                    sent = []
                    continue
                if not sent:
                    self._unrecorded.acquire()  # one place for the next attempt (held by nobody's unrecorded one)
                with self._changed:
                    slots = self._slots.get(sub, [])
                    free = [n for n, q in enumerate(slots) if q and (sub, n) not in self._busy]
                    done = not free or self._stopping or self._senders[sub] > self._wanted(sub)
                    if done and not sent:
                        self._unrecorded.release()
                        self._senders[sub] -= 1
                        self._tidy(sub)
                        return
                    if not done:
                        slot = self._rng.choice(free)
                        pending = slots[slot].popleft()
                        self._busy.add((sub, slot))
                        self._waiting[sub] -= 1
                        self._queued -= 1
                        if self._queued == self.max_queued - 1:
                            self._changed.notify_all()  # room again for a waiting ``deliver``
                if done:  # record what this thread sent before it goes (or looks again)
                    self._unrecorded.release()
                    self._record(sent)
                    sent = []
                    continue
                try:
                    sent.append((pending, self.attempt(pending)))
                except Exception as exc:  # left pending in the stream group: claimed and tried again later
                    log.warning("delivery %s not attempted (%s)", pending.delivery_id, exc.__class__.__name__)
                    self._record([(pending, None)])
                finally:
                    with self._changed:
                        self._busy.discard((sub, slot))
                self._add_senders(sub, wait=False)  # slower answers or a longer queue: more threads
        finally:
            if sent:
                self._record(sent)
            self._threads.release()

    def _record(self, sent: Sequence[tuple[PendingDelivery, Settled | None]]) -> None:
        """Record attempts in one round trip and free their places; an attempt not recorded (a fault, or None:
        never made) stays pending in the stream group and is claimed and tried again later."""
        try:
            self.ledger.settle_many([settled for _, settled in sent if settled is not None])
        except Exception as exc:
            log.warning("%d deliveries not settled (%s)", len(sent), exc.__class__.__name__)
        finally:
            with self._changed:
                self._held.difference_update(pending.entry_id for pending, _ in sent)
            for _ in sent:
                self._unrecorded.release()

    def _tidy(self, sub: str) -> None:
        """A webhook with nothing queued and no sender is forgotten here (its answer times too); when stopping,
        what is still queued stays pending in the stream and is claimed again."""
        if self._stopping:
            for queue in self._slots.get(sub, []):
                self._queued -= len(queue)
                self._held.difference_update(p.entry_id for p in queue)
                queue.clear()
        if self._senders[sub] == 0 and not any(self._slots.get(sub, ())):
            self._slots.pop(sub, None)
            self._senders.pop(sub, None)
            self._waiting.pop(sub, None)
        self._changed.notify_all()

    def attempt(self, pending: PendingDelivery) -> Settled:
        """One try of one delivery (none while its webhook is parked): how it ended, to be recorded."""
        sub = self.subscriptions.get(pending.subscription_id)
        now = datetime.now(UTC)
        if sub is None:
            return Settled(pending, "failed", now, error="the webhook was deleted")
        if self._parked_until.get(sub.id, 0.0) > time.monotonic():
            error = "put off: this webhook's receiver timed out or refused a connection moments ago"
            return self._failed(pending, now, error=error)
        timestamp = int(now.timestamp())
        headers = signed_headers(sub.secret, pending.event_id, pending.event_type, timestamp, pending.body)
        sent = self.sender.send(sub.url, headers, pending.body)
        done = datetime.now(UTC)
        answered_ms = self._send_ms.get(sub.id, sent.latency_ms)
        self._send_ms[sub.id] = 0.8 * answered_ms + 0.2 * sent.latency_ms
        if sent.delivered:
            self._parked_until.pop(sub.id, None)
            return Settled(pending, "delivered", done, status=sent.status, latency_ms=sent.latency_ms)
        if sent.status is None or sent.latency_ms >= SLOW_MS:  # no answer, or a slow one: park the webhook
            self._parked_until[sub.id] = time.monotonic() + PARK_S
        return self._failed(pending, done, status=sent.status, error=sent.error, latency_ms=sent.latency_ms)

    def _failed(self, pending: PendingDelivery, done: datetime, **how: Any) -> Settled:
        """A retry with the usual backoff, or failed for good once past the policy's horizon."""
        next_at = done + timedelta(seconds=self.policy.delay_s(pending.attempts + 1, self._rng))
        outcome = "failed" if self.policy.gives_up(pending.created_ms / 1000, next_at.timestamp()) else "retry"
        return Settled(pending, outcome, done, next_at=next_at, **how)

    def close(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._pool.shutdown(wait=True)
