"""The two loops behind triggers, each a thread: the trigger loop turns fired transitions into deliveries (and
pushes), the delivery loop sends them. Both read Redis Streams with consumer groups, so any number of
processes may run them, and an entry taken by a process that died is claimed by another. A Redis fault pauses
a loop (logged, with a growing wait), never ends it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from geotarget.triggers.delivering import Deliverer
from geotarget.triggers.dispatch import Dispatcher
from geotarget.triggers.presence import Fired
from geotarget.triggers.webhooks import PendingDelivery

log = logging.getLogger(__name__)
BATCH = 256


class TransitionFeed(Protocol):
    def ensure_group(self) -> None: ...
    def take(
        self, consumer: str, count: int, block_ms: int, claim: bool = True
    ) -> Sequence[tuple[str, Fired | None]]: ...
    def ack(self, entry_ids: Sequence[str]) -> None: ...


class DeliverySource(Protocol):
    def ensure_group(self) -> None: ...
    def take(self, consumer: str, count: int, block_ms: int, claim: bool = True) -> Sequence[PendingDelivery]: ...
    def promote_due(self, now: datetime, limit: int = 1_000) -> int: ...


class Every:
    """True at most once every ``period_s`` (the first call included): what a loop does now and then, not each
    lap (claiming a dead worker's entries, moving due retries back in line), so a busy lap costs one read.

    >>> now = iter([0.0, 0.1, 0.6]); every = Every(0.5, clock=lambda: next(now))
    >>> every(), every(), every()
    (True, False, True)
    """

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._next = float("-inf")

    def __call__(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self.period_s
        return True


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def trigger_lap(feed: TransitionFeed, dispatcher: Dispatcher, consumer: str, block_ms: int, claim: bool = True) -> int:
    """Dispatch one batch of transitions; returns how many were handled."""
    taken = feed.take(consumer, BATCH, block_ms, claim)
    if taken:
        dispatcher.dispatch([fired for _, fired in taken if fired is not None], datetime.now(UTC))
        feed.ack([entry for entry, _ in taken])  # only once queued: a failure leaves them to be claimed again
    return len(taken)


def delivery_lap(
    source: DeliverySource,
    deliverer: Deliverer,
    consumer: str,
    block_ms: int,
    promote: bool = True,
    claim: bool = True,
) -> int:
    """Move due retries back in line (when ``promote``), then take one batch to send; returns how many."""
    if promote:
        source.promote_due(datetime.now(UTC))
    batch = source.take(consumer, BATCH, block_ms, claim)
    deliverer.deliver(batch)
    return len(batch)


class LoopThread(threading.Thread):
    """Runs ``lap`` until stopped; after a fault waits 0.5 s, doubling to 30 s while faults go on. After a lap
    that found less than a full batch it waits ``linger_s`` before the next: under a steady trickle each lap then
    takes several entries (one read, one write for all) instead of one, at the price of that much latency."""

    def __init__(self, name: str, prepare: Callable[[], None], lap: Callable[[], int], linger_s: float = 0.0) -> None:
        super().__init__(name=name, daemon=True)
        self._prepare = prepare
        self._lap = lap
        self._linger_s = linger_s
        self._halt = threading.Event()
        self.laps = 0

    def run(self) -> None:
        wait, prepared = 0.5, False
        while not self._halt.is_set():
            try:
                if not prepared:
                    self._prepare()
                    prepared = True
                handled = self._lap()
                self.laps += 1
                wait = 0.5
                if handled < BATCH and self._linger_s:
                    self._halt.wait(self._linger_s)
            except Exception as exc:
                log.warning("%s: %s; trying again in %.1f s", self.name, exc.__class__.__name__, wait)
                self._halt.wait(wait)
                wait = min(wait * 2, 30.0)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._halt.set()
        self.join(timeout_s)
