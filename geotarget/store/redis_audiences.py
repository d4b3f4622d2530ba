"""Audience memberships in Redis: per device and audience a small set of the generations it is a member of,
under the device's hash tag (so the cap reservation reads them in its one call) and with a TTL (so memberships
that stop being refreshed run out rather than linger).

A refresh adds the new generation beside the previous one and drops the one before that: workers whose catalog
still names the previous generation keep matching until they catch up, and a device that left the audience
keeps only a generation no catalog names any more.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import redis

from geotarget.store import keys

BATCH = 2_000  # devices per pipeline round trip


class RedisMemberships:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def publish(self, audience_id: str, generation: int, device_keys: Iterable[str], ttl_s: int) -> int:
        """Make ``device_keys`` members of ``generation``; returns how many were written."""
        written = 0
        devices = iter(device_keys)
        while batch := list(islice(devices, BATCH)):
            pipe = self.client.pipeline(transaction=False)
            for device_key in batch:
                key = keys.membership(self.prefix, device_key, audience_id)
                pipe.sadd(key, generation)
                if generation > 2:
                    pipe.srem(key, generation - 2)
                pipe.expire(key, ttl_s)
            pipe.execute()
            written += len(batch)
        return written

    def lead(self, seconds: int) -> bool:
        """Take the scheduled refresh for the next ``seconds`` unless another process already has it."""
        return bool(self.client.set(keys.audience_refresh_lead(self.prefix), "1", nx=True, ex=max(1, seconds)))

    def close(self) -> None:
        self.client.close()

    def generations(self, device_key: str, audience_id: str) -> set[int]:
        """The generations a device is a member of (tests and support; no API lists members)."""
        return {int(g) for g in self.client.smembers(keys.membership(self.prefix, device_key, audience_id))}
