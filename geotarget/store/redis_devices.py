"""What Redis holds about one device, found and deleted for an erasure: its cap counters and presence (every key
under its ``{device_key}`` hash tag), its place in the presence sweeper, its pending webhook deliveries, its
open bids' records, and its events and transitions still waiting in their streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
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
        deleted_keys = self._drop_deliveries(device_key) + self._drop_bids(device_key)
        pattern = keys.device_pattern(self.prefix, device_key).replace("[", "\\[")
        sweeps = []
        for name in self.client.scan_iter(match=pattern, count=_PAGE):
            deleted_keys += int(self.client.delete(name))
            text = name.decode() if isinstance(name, bytes) else str(name)
            if ":presence:" in text:  # one per app: its place in the sweeper goes too
                sweeps.append(keys.presence_member(device_key, text.rsplit(":presence:", 1)[1]))
        if sweeps:
            self.client.zrem(keys.presence_due(self.prefix), *sweeps)
        entries = self._drop(keys.events_stream(self.prefix), lambda fields: _event_of(fields, device_key))
        entries += self._drop(keys.transitions_stream(self.prefix), lambda fields: _transition_of(fields, device_key))
        return deleted_keys, entries

    def _drop_deliveries(self, device_key: str) -> int:
        """Pending deliveries whose bodies hold the device's raw id: gone, and out of the retry schedule (a stream
        entry naming one is acknowledged unsent when a worker finds it gone)."""
        pending = [
            m.decode() if isinstance(m, bytes) else str(m)
            for m in self.client.smembers(keys.device_deliveries(self.prefix, device_key))
        ]
        if not pending:
            return 0
        self.client.zrem(keys.delivery_retries(self.prefix), *pending)
        return int(self.client.delete(*(keys.delivery(self.prefix, d) for d in pending)))

    def _drop_bids(self, device_key: str) -> int:
        """Bid records (their held slots go with the device's counters; a notice for one then finds nothing)."""
        pattern = keys.bid_pattern(self.prefix).replace("[", "\\[")
        doomed = [
            name
            for name in self.client.scan_iter(match=pattern, count=_PAGE)
            if self.client.hget(name, "d") in (device_key, device_key.encode())
        ]
        return int(self.client.delete(*doomed)) if doomed else 0

    def _drop(self, stream: str, belongs: Callable[[Any], bool]) -> int:
        entries, last = 0, "-"
        while True:
            chunk: Any = self.client.xrange(stream, min=last, max="+", count=_PAGE)
            if not chunk:
                break
            doomed = [entry_id for entry_id, fields in chunk if belongs(fields)]
            if doomed:
                entries += int(self.client.xdel(stream, *doomed))
            if len(chunk) < _PAGE:
                break
            last = "(" + str(chunk[-1][0])
        return entries


def _event_of(fields: Any, device_key: str) -> bool:
    try:
        return Event.from_json(fields[b"e"] if b"e" in fields else fields["e"]).device_key == device_key
    except Exception:
        return False


def _transition_of(fields: Any, device_key: str) -> bool:
    try:
        return bool(orjson.loads(fields[b"t"] if b"t" in fields else fields["t"])["device_key"] == device_key)
    except Exception:
        return False
