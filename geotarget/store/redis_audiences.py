"""Audience memberships in Redis: one hash per device, in the device's shard (so the cap reservation reads it in
its one call), with a field per audience generation the device belongs to, whose value is when that membership
runs out (epoch seconds). So each membership has its own lifetime (memberships that stop being refreshed run out
rather than linger) while a device costs one key however many audiences it is in.

A refresh adds the new generation beside the previous one and drops the one before that: workers whose catalog
still names the previous generation keep matching until they catch up, and a device that left the audience
keeps only a generation no catalog names any more (until it runs out). The key itself lives as long as its
longest membership.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from itertools import islice

import redis

from geotarget.audiences.model import membership_token
from geotarget.store import keys

BATCH = 2_000  # devices per pipeline round trip


class RedisMemberships:
    def __init__(self, client: redis.Redis, prefix: str, shards: int = 1) -> None:
        self.client = client
        self.prefix = prefix
        self.shards = shards

    def publish(self, audience_id: str, generation: int, device_keys: Iterable[str], ttl_s: int) -> int:
        """Make ``device_keys`` members of ``generation``; returns how many were written."""
        written = 0
        devices = iter(device_keys)
        while batch := list(islice(devices, BATCH)):
            pipe = self.client.pipeline(transaction=False)
            until = int(time.time()) + ttl_s
            for device_key in batch:
                key = keys.memberships(keys.device_shard(self.prefix, device_key, self.shards), device_key)
                pipe.hset(key, membership_token(audience_id, generation), until)
                if generation > 2:
                    pipe.hdel(key, membership_token(audience_id, generation - 2))
                pipe.expire(key, ttl_s, nx=True)  # a new key: its first lifetime
                pipe.expire(key, ttl_s, gt=True)  # an older one: never shortened
            pipe.execute()
            written += len(batch)
        return written

    def lead(self, seconds: int) -> bool:
        """Take the scheduled refresh for the next ``seconds`` unless another process already has it."""
        return bool(self.client.set(keys.audience_refresh_lead(self.prefix), "1", nx=True, ex=max(1, seconds)))

    def close(self) -> None:
        self.client.close()
