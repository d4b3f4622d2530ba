"""Per-key request rate limits, counted in Redis by the ``limits`` library's moving window, so every worker
shares one count. Limits protect the server, caps protect the device: when Redis is away the limits fail open
(requests go through, uncounted) while caps fail closed.

A round trip per request would cost the serving path about a tenth of its CPU (measured: scripts/bench_nearby.py),
so a worker takes a lease of several requests at once where a limit is large (a twentieth of it, at most 50,
for at most 100 ms) and counts them down locally. The count in Redis is then ahead of the requests by at most a
lease per worker: a key may be refused that much early, and never let through more than a lease late. Small
limits (under 40 a window) are counted one request at a time, exactly. A refused key is refused locally until its
window frees a place (the moving window says when), so a client hammering past its limit costs no Redis calls."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import limits
import redis
from limits.storage import RedisClusterStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

from geotarget.metrics import RATE_LIMIT_UNAVAILABLE, RATE_LIMITED
from geotarget.store.redis_client import close, is_cluster

log = logging.getLogger(__name__)

PAUSE_AFTER_FAULT_S = 1.0  # a Redis fault: limits are off this long, so each request does not wait out a timeout
LEASE_SHARE = 20
MAX_LEASE = 50
LEASE_S = 0.1


@dataclass(frozen=True)
class Refusal:
    """A request over its limit: which limit, and when a request of its class will be let through again."""

    limit: str
    amount: int
    retry_after_s: int


def parse(text: str) -> list[limits.RateLimitItem]:
    """``"200/second"`` or ``"200/second; 5000/hour"`` (the ``limits`` notation); ``""`` means no limit."""
    return limits.parse_many(text) if text.strip() else []


def lease_size(items: list[limits.RateLimitItem]) -> int:
    """How many requests one Redis call counts for a class (1: each request is counted as it comes).

    >>> lease_size(parse("200/second")), lease_size(parse("20/second")), lease_size(parse("100000/second"))
    (10, 1, 50)
    >>> lease_size(parse("200/second; 100000/day"))  # several limits: exact
    1
    """
    if len(items) != 1:
        return 1
    return max(1, min(MAX_LEASE, items[0].amount // LEASE_SHARE))


@dataclass
class _Lease:
    left: int
    until: float  # monotonic


class RateLimits:
    """``check(key_id, route_class)`` counts one request and says whether it is over a limit of its class."""

    def __init__(
        self, client: redis.Redis, prefix: str, classes: Mapping[str, str], url: str = "", timeout_s: float = 0.05
    ) -> None:
        """Counts on ``client``'s connections; on a cluster (``url`` is ``redis+cluster://``) on the library's
        own cluster client, with the same ``timeout_s``."""
        storage: RedisStorage
        self._own: Any = None  # a client of our own to close (the cluster's)
        if is_cluster(url):
            storage = RedisClusterStorage(
                url, key_prefix=f"{prefix}:ratelimit", socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
            self._own = storage.storage
        else:
            pool = client.connection_pool
            storage = RedisStorage("redis://", connection_pool=pool, key_prefix=f"{prefix}:ratelimit")
        self._limiter = MovingWindowRateLimiter(storage)
        self._classes = {name: parse(text) for name, text in classes.items()}
        self._lease_sizes = {name: lease_size(items) for name, items in self._classes.items()}
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._refused: dict[tuple[str, str], tuple[float, Refusal]] = {}  # until (monotonic), the refusal
        self._lock = threading.Lock()  # checks run on the event loop and on threads
        self._paused_until = 0.0
        self.refused = 0
        self.unavailable = 0

    def close(self) -> None:
        if self._own is not None:
            close(self._own)

    def check(self, key_id: str, route_class: str) -> Refusal | None:
        items = self._classes.get(route_class)
        now = time.monotonic()
        if not items or now < self._paused_until or self._from_lease((key_id, route_class), now):
            return None
        if (refused := self._still_refused((key_id, route_class), now)) is not None:
            return refused
        try:
            size = self._lease_sizes[route_class]
            if size > 1 and self._limiter.hit(items[0], key_id, route_class, cost=size):
                self._lease((key_id, route_class), _Lease(size - 1, now + LEASE_S))
                return None
            for item in items:  # the first limit broken stops the count: longer windows keep what was let through
                if not self._limiter.hit(item, key_id, route_class):
                    refusal, until = self._refusal(item, key_id, route_class)
                    with self._lock:
                        self._refused[(key_id, route_class)] = (until, refusal)
                    self.refused += 1
                    RATE_LIMITED.labels(route_class).inc()
                    return refusal
        except redis.RedisError:
            self.unavailable += 1
            RATE_LIMIT_UNAVAILABLE.inc()
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAULT_S
            log.warning("rate limits unavailable (Redis): requests pass unlimited for %.0f s", PAUSE_AFTER_FAULT_S)
        return None

    def _from_lease(self, key: tuple[str, str], now: float) -> bool:
        with self._lock:
            lease = self._leases.get(key)
            if lease is None or lease.left <= 0 or lease.until <= now:
                return False
            lease.left -= 1
            return True

    def _lease(self, key: tuple[str, str], lease: _Lease) -> None:
        with self._lock:
            if len(self._leases) >= 10_000:
                self._leases.clear()
            self._leases[key] = lease

    def _still_refused(self, key: tuple[str, str], now: float) -> Refusal | None:
        with self._lock:
            until, refusal = self._refused.get(key, (0.0, None))
            if refusal is None or until <= now:
                self._refused.pop(key, None)
                return None
        self.refused += 1
        RATE_LIMITED.labels(key[1]).inc()
        return replace(refusal, retry_after_s=max(1, math.ceil(until - now)))

    def _refusal(self, item: limits.RateLimitItem, key_id: str, route_class: str) -> tuple[Refusal, float]:
        """The refusal, and until when (monotonic) the window has no place: when its oldest request leaves it."""
        wait_s = max(0.0, self._limiter.get_window_stats(item, key_id, route_class).reset_time - time.time())
        return Refusal(str(item), item.amount, max(1, math.ceil(wait_s))), time.monotonic() + wait_s
