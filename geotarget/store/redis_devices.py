"""What Redis holds about one device, found and deleted for an erasure: the keys its registry lists (cap counters
and their held slots, presence, bid records: ``lua/registry.lua``), its memberships, its place in the presence
sweeper, its pending webhook deliveries, and its events and transitions still waiting in their streams. Nothing
scans the keyspace, so an erasure costs the same among a thousand keys or a hundred million; keys written before
registries existed are indexed once (``index_devices``), and until then an erasure scans as it used to. With
several shards everything but the device's pending deliveries (the deployment's, as deliveries are) is in the
device's shard: a few calls to one slot, whatever the size of the keyspace."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson
import redis

from geotarget.measurement.events import Event
from geotarget.store import keys
from geotarget.store.redis_client import text
from geotarget.store.scripts import script

_PAGE = 1_000
_REMEMBER = script("registry", entry="remember(KEYS[1], KEYS[2], tonumber(ARGV[1]))")


class RedisDeviceData:
    def __init__(self, client: redis.Redis, prefix: str, shards: int = 1) -> None:
        self.client = client
        self.prefix = prefix
        self.shards = shards

    def check(self) -> None:
        """Raise when Redis is away, so an erasure can refuse before it changes anything."""
        self.client.ping()

    def erase(self, device_key: str) -> tuple[int, int]:
        """Delete the device's keys and stream entries; returns (keys, stream entries) deleted."""
        deleted_keys = self._drop_deliveries(device_key)
        own = keys.device_shard(self.prefix, device_key, self.shards)
        registry = keys.registry(own, device_key)
        named = {text(n) for n in self.client.smembers(registry)}
        if not self.client.exists(keys.devices_indexed(self.prefix)):
            named |= set(self._scan_legacy(own, device_key))
        doomed = sorted({*named, *(f"{n}:pending" for n in named if ":cap:" in n)})
        doomed.append(keys.memberships(own, device_key))
        for i in range(0, len(doomed), _PAGE):
            deleted_keys += int(self.client.delete(*doomed[i : i + _PAGE]))
        deleted_keys += int(self.client.delete(keys.device_deliveries(self.prefix, device_key)))
        self.client.delete(registry)  # the list of keys, not something of the device's own
        sweeps = [keys.presence_member(device_key, n.rsplit(":presence:", 1)[1]) for n in named if ":presence:" in n]
        if sweeps:  # one per app: its place in the sweeper goes too
            self.client.zrem(keys.presence_due(own), *sweeps)
        entries = self._drop(keys.events_stream(own), lambda fields: _event_of(fields, device_key))
        entries += self._drop(keys.transitions_stream(own), lambda fields: _transition_of(fields, device_key))
        return deleted_keys, entries

    def index_devices(self) -> int:
        """Note every per-device key and bid record written before registries existed in its device's registry,
        once per deployment; returns how many keys were noted (0 when done before)."""
        if self.client.exists(keys.devices_indexed(self.prefix)):
            return 0
        remember = self.client.register_script(_REMEMBER)
        noted = 0
        for own in keys.every_shard(self.prefix, self.shards):
            for names in _pages(self.client.scan_iter(match=_escaped(keys.device_pattern(own)), count=_PAGE)):
                pipe = self.client.pipeline(transaction=False)
                for name in names:
                    pipe.ttl(name)
                for name, ttl in zip(names, pipe.execute(), strict=True):
                    device_key = keys.device_of(own, name)
                    if device_key is None or ttl == -2 or name.endswith((":keys", ":audiences", ":deliveries")):
                        continue
                    counter = name.removesuffix(":pending")  # a held slot's set is erased with its counter
                    remember(keys=[keys.registry(own, device_key), counter], args=[max(ttl, 0)])
                    noted += 1
            for names in _pages(self.client.scan_iter(match=_escaped(keys.bid_pattern(own)), count=_PAGE)):
                for name in names:
                    device_key, ttl = text(self.client.hget(name, "d") or ""), int(self.client.ttl(name))
                    if device_key and ttl != -2:
                        remember(keys=[keys.registry(own, device_key), name], args=[max(ttl, 0)])
                        noted += 1
        self.client.set(keys.devices_indexed(self.prefix), "1")
        return noted

    def _scan_legacy(self, own: str, device_key: str) -> Iterable[str]:
        """The device's keys and bid records found by scanning, as erasure did before registries."""
        yield from (
            text(n) for n in self.client.scan_iter(match=_escaped(keys.device_root(own, device_key)) + "*", count=_PAGE)
        )
        for name in self.client.scan_iter(match=_escaped(keys.bid_pattern(own)), count=_PAGE):
            if self.client.hget(name, "d") in (device_key, device_key.encode()):
                yield text(name)

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
    """A transition as presence.lua hands it on (its presence's member in ``m``) or as ``publish`` does (JSON)."""
    got = {text(name): value for name, value in fields.items()}
    try:
        if "m" in got:
            return keys.presence_of_member(text(got["m"]))[0] == device_key
        return bool(orjson.loads(got["t"])["device_key"] == device_key)
    except Exception:
        return False


def _escaped(pattern: str) -> str:
    """A SCAN pattern matching ``[`` literally (a cluster prefix's braces are literal already)."""
    return pattern.replace("[", "\\[")


def _pages(names: Iterable[Any], size: int = _PAGE) -> Iterable[list[str]]:
    page: list[str] = []
    for name in names:
        page.append(text(name))
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page
