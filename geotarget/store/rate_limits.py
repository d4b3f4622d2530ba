"""Per-key request rate limits, counted in Redis by the ``limits`` library's moving window, so every worker
shares one count. Limits protect the server, caps protect the device: when Redis is away the limits fail open
(requests go through, uncounted) while caps fail closed."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import limits
import redis
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from geotarget.metrics import RATE_LIMIT_UNAVAILABLE, RATE_LIMITED

log = logging.getLogger(__name__)

PAUSE_AFTER_FAULT_S = 1.0  # a Redis fault: limits are off this long, so each request does not wait out a timeout


@dataclass(frozen=True)
class Refusal:
    """A request over its limit: which limit, and when a request of its class will be let through again."""

    limit: str
    amount: int
    retry_after_s: int


def parse(text: str) -> list[limits.RateLimitItem]:
    """``"200/second"`` or ``"200/second; 5000/hour"`` (the ``limits`` notation); ``""`` means no limit."""
    return limits.parse_many(text) if text.strip() else []


class RateLimits:
    """``check(key_id, route_class)`` counts one request and says whether it is over a limit of its class."""

    def __init__(self, client: redis.Redis, prefix: str, classes: Mapping[str, str]) -> None:
        storage = RedisStorage("redis://", connection_pool=client.connection_pool, key_prefix=f"{prefix}:ratelimit")
        self._limiter = MovingWindowRateLimiter(storage)
        self._classes = {name: parse(text) for name, text in classes.items()}
        self._paused_until = 0.0
        self.refused = 0
        self.unavailable = 0

    def check(self, key_id: str, route_class: str) -> Refusal | None:
        items = self._classes.get(route_class)
        if not items or time.monotonic() < self._paused_until:
            return None
        try:
            for item in items:  # the first limit broken stops the count: longer windows keep what was let through
                if not self._limiter.hit(item, key_id, route_class):
                    self.refused += 1
                    RATE_LIMITED.labels(route_class).inc()
                    return self._refusal(item, key_id, route_class)
        except redis.RedisError:
            self.unavailable += 1
            RATE_LIMIT_UNAVAILABLE.inc()
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAULT_S
            log.warning("rate limits unavailable (Redis): requests pass unlimited for %.0f s", PAUSE_AFTER_FAULT_S)
        return None

    def _refusal(self, item: limits.RateLimitItem, key_id: str, route_class: str) -> Refusal:
        reset_at = self._limiter.get_window_stats(item, key_id, route_class).reset_time
        retry_after_s = max(1, math.ceil(reset_at - time.time()))
        return Refusal(str(item), item.amount, retry_after_s)
