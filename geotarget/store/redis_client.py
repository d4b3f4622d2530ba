"""Redis connections with short, explicit timeouts, so a slow or absent Redis is a defined fault, not a hang."""

from __future__ import annotations

import redis


def connect(url: str, timeout_ms: int = 50) -> redis.Redis:
    """A pooled client whose every call gives up after ``timeout_ms`` (connect gets a little more)."""
    timeout_s = timeout_ms / 1000
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=max(timeout_s, 0.2),
        health_check_interval=30,
        decode_responses=True,
    )


def connect_blocking(url: str) -> redis.Redis:
    """A client for pub/sub listeners and background work, where waiting is the point."""
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_keepalive=True, decode_responses=True)
