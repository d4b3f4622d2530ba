"""What Redis holds about one device, found and deleted for an erasure: its cap counters (every key under its
``{device_key}`` hash tag) and its events still waiting in the stream."""

from __future__ import annotations

from typing import Any

import redis

from geotarget.measurement.events import Event
from geotarget.store import keys

_PAGE = 1_000


class RedisDeviceData:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def check(self) -> None:
        """Raise when Redis is away, so an erasure can refuse before it changes anything."""
        self.client.ping()

    def erase(self, device_key: str) -> tuple[int, int]:
        """Delete the device's keys and stream entries; returns (keys, stream entries) deleted."""
        deleted_keys = 0
        pattern = keys.device_pattern(self.prefix, device_key).replace("[", "\\[")
        for name in self.client.scan_iter(match=pattern, count=_PAGE):
            deleted_keys += int(self.client.delete(name))
        entries = 0
        stream, last = keys.events_stream(self.prefix), "-"
        while True:
            chunk: Any = self.client.xrange(stream, min=last, max="+", count=_PAGE)
            if not chunk:
                break
            doomed = [entry_id for entry_id, fields in chunk if _belongs(fields, device_key)]
            if doomed:
                entries += int(self.client.xdel(stream, *doomed))
            if len(chunk) < _PAGE:
                break
            last = "(" + str(chunk[-1][0])
        return deleted_keys, entries


def _belongs(fields: Any, device_key: str) -> bool:
    try:
        return Event.from_json(fields["e"]).device_key == device_key
    except Exception:
        return False
