"""Webhook test sends (``POST /v1/webhooks/{id}/test``) on a few threads of their own.

A test send waits for the receiver (up to the webhook timeout, 10 s by default). Run on the server's request
threads, fifteen slow ones a second took every thread and pushed ``/healthz`` and other tenants' calls to 8–15 s.
Here they hold at most ``threads`` threads of their own, at most ``per_owner`` at once per key or merchant, and at
most ``waiting`` more queued: past that the caller is told to come back (``TooManyAtOnce``), at once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from geotarget.errors import TooManyAtOnce

T = TypeVar("T")


class Probes:
    def __init__(self, threads: int = 4, per_owner: int = 1, waiting: int = 16) -> None:
        self.per_owner = per_owner
        self.capacity = threads + waiting
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="webhook-test")
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()

    def submit(self, owner: str, call: Callable[[], T]) -> Future[T]:
        """``call()`` on a probe thread, or ``TooManyAtOnce`` when this owner or everyone has enough going."""
        with self._lock:
            if self._running[owner] >= self.per_owner:
                raise TooManyAtOnce("a test send of this key is still waiting for its receiver; try again shortly")
            if self._running.total() >= self.capacity:
                raise TooManyAtOnce("too many webhook test sends are running; try again shortly")
            self._running[owner] += 1
        try:
            future = self._pool.submit(call)
        except RuntimeError:  # the pool is shutting down
            self._done(owner)
            raise TooManyAtOnce("the server is stopping") from None
        future.add_done_callback(lambda _: self._done(owner))
        return future

    def _done(self, owner: str) -> None:
        with self._lock:
            self._running[owner] -= 1
            if self._running[owner] <= 0:
                del self._running[owner]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
