"""Serving rate limits per (app key, device): an app key ships inside every copy of the app, so a limit per key
would refuse a whole fleet for one noisy phone (measured: 82–84 % of a quiet device's requests refused while one
device of the same app flooded).

Counted in each worker's memory, not in Redis. A Redis call per request costs serving about a tenth of its CPU,
and leases cannot amortise it per device (a phone asks about once a second, not hundreds of times). Each of the
``workers`` processes lets a device through its share of the limit, ``ceil(limit / workers)``: a device whose
requests spread over the workers gets the whole limit, one held on one worker by a kept-alive connection gets that
worker's share, and a flood is cut at the limit either way. The window slides: the count is the current fixed
window's plus the previous one's, weighted by how much of it still lies inside the last ``window`` seconds.

Pure and thread-safe: no I/O. Device ids are held only as short hashes, for one or two windows.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import limits

MAX_TRACKED = 200_000  # devices remembered at once per worker; past it, windows that have ended are dropped


@dataclass(frozen=True)
class DeviceRefusal:
    limit: str  # as configured, e.g. "20 per 1 second"
    amount: int  # this worker's share
    retry_after_s: int


@dataclass
class _Window:
    start: float
    current: int
    previous: int


class DeviceLimits:
    """``check(key_id, device_id)`` counts one request and says whether that device is over a limit.

    >>> limits_ = DeviceLimits("2/second", workers=1, clock=lambda: 100.0)
    >>> [limits_.check("app", "phone") is None for _ in range(3)], limits_.check("app", "other") is None
    ([True, True, False], True)
    """

    def __init__(self, text: str, workers: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        items = limits.parse_many(text) if text.strip() else []
        share = max(1, workers)
        self._limits = [(str(item), max(1, math.ceil(item.amount / share)), item.get_expiry()) for item in items]
        self._windows: dict[tuple[bytes, int], _Window] = {}
        self._lock = threading.Lock()
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self._limits)

    def check(self, key_id: str, device_id: str) -> DeviceRefusal | None:
        if not self._limits:
            return None
        subject = hashlib.blake2b(f"{key_id}\0{device_id}".encode(), digest_size=12).digest()
        now = self._clock()
        with self._lock:
            if len(self._windows) > MAX_TRACKED:
                self._forget_before(now)
            counted = []
            for n, (text, amount, window_s) in enumerate(self._limits):
                window = self._window((subject, n), now, window_s)
                elapsed = now - window.start
                estimate = window.previous * max(0.0, 1 - elapsed / window_s) + window.current
                if estimate + 1 > amount:
                    return DeviceRefusal(text, amount, _retry_after(window, elapsed, amount, window_s))
                counted.append(window)
            for window in counted:  # counted only once every limit let it through
                window.current += 1
        return None

    def _window(self, key: tuple[bytes, int], now: float, window_s: int) -> _Window:
        window = self._windows.get(key)
        start = now - now % window_s
        if window is None:
            window = self._windows[key] = _Window(start, 0, 0)
        elif window.start < start:
            window.previous = window.current if start - window.start == window_s else 0
            window.current, window.start = 0, start
        return window

    def _forget_before(self, now: float) -> None:
        longest = max(window_s for _, _, window_s in self._limits)
        stale = [key for key, window in self._windows.items() if window.start < now - 2 * longest]
        for key in stale:
            del self._windows[key]
        if len(self._windows) > MAX_TRACKED:  # all recent: a flood of new ids; start over rather than grow
            self._windows.clear()


def _retry_after(window: _Window, elapsed: float, amount: int, window_s: int) -> int:
    """Whole seconds until the sliding estimate lets one more request through: a client that waits this long is
    served (the end of the fixed window alone is too early while the previous window still weighs)."""
    room = amount - 1  # what the estimate may be for one more request to pass
    if window.current > room:  # not in this window: in the next one, where this one's count weighs as "previous"
        wait = (window_s - elapsed) + window_s * max(0.0, 1 - room / window.current)
    else:  # in this window, once enough of the previous one has slid out
        wait = window_s * max(0.0, 1 - (room - window.current) / window.previous) - elapsed
    return max(1, math.ceil(wait - 1e-9))


__all__ = ["DeviceLimits", "DeviceRefusal"]
