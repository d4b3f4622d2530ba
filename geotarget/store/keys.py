"""Every Redis key name is built here, under one configurable prefix.

What belongs to one device (cap counters, held slots, memberships, presence, its registry, bid records) and the
streams its requests append to live in the device's *shard*: with ``SHARDS`` = 1 that is the deployment's own
prefix (on a cluster one hash tag, one slot); with more, each shard's prefix is a hash tag of its own, so a Redis
Cluster spreads the shards over its masters while every key one request touches for a device stays in one slot.
What all devices share (budgets, goals, deliveries, locks) keeps the deployment's prefix.
"""

from __future__ import annotations

import zlib


def shard_of(device_key: str, shards: int) -> int:
    """A device's shard: fixed by its key.

    >>> shard_of("fed2cfaea1602ae187a46f2600799a6e", 64), shard_of("fed2cfaea1602ae187a46f2600799a6e", 1)
    (40, 0)
    """
    return zlib.crc32(device_key.encode()) % shards if shards > 1 else 0


def shard(prefix: str, number: int, shards: int) -> str:
    """The prefix of one shard's keys: the deployment's own with one shard (so its names never change), else a
    hash tag of the shard's own.

    >>> shard("gt", 0, 1), shard("{gt}", 5, 64), shard("gt", 5, 64)
    ('gt', '{gt.5}', '{gt.5}')
    """
    return prefix if shards <= 1 else f"{{{prefix.strip('{}')}.{number}}}"


def device_shard(prefix: str, device_key: str, shards: int) -> str:
    """The prefix of the device's shard."""
    return shard(prefix, shard_of(device_key, shards), shards)


def every_shard(prefix: str, shards: int) -> list[str]:
    """Every shard's prefix: what a stream reader, the presence sweeper or a backfill goes through."""
    return [shard(prefix, n, shards) for n in range(max(1, shards))]


def fences_version(prefix: str) -> str:
    """Incremented on every fence change; workers compare it to know they are behind."""
    return f"{prefix}:fences:version"


def fences_channel(prefix: str) -> str:
    """Pub/sub channel announcing fence changes (payload: the change sequence number)."""
    return f"{prefix}:fences:changed"


def counter(prefix: str, device_key: str, scope: str, subject: str, period: str, per_device: bool = True) -> str:
    """A cap counter. Per-device counters go under the device's shard's prefix (``device_shard``), so every
    counter one request touches for a device lives in one Redis Cluster slot; budget counters are per offer, not
    per device, under the deployment's prefix."""
    if per_device:
        return f"{prefix}:{{{device_key}}}:cap:{scope}:{subject}:{period}"
    return f"{prefix}:budget:{subject}:{period}"


def memberships(prefix: str, device_key: str) -> str:
    """A device's audience memberships: a hash of ``<audience>:<generation>`` -> when it runs out (epoch s)."""
    return f"{prefix}:{{{device_key}}}:audiences"


def bid(prefix: str, bid_id: str) -> str:
    """A bid's record while it holds cap slots and a while after (``lua/hold.lua``), in its device's shard (the
    bid id names the shard when there are several: all a notice URL carries); its device's registry names it. A
    bid's slots on shared counters have a record of their own under the deployment's prefix."""
    return f"{prefix}:bid:{bid_id}"


def bid_pattern(prefix: str) -> str:
    return f"{prefix}:bid:*"


def audience_refresh_lead(prefix: str) -> str:
    """Held (with a TTL of one refresh period) by the process that refreshes audiences on schedule."""
    return f"{prefix}:audiences:refresh-lead"


def device_root(prefix: str, device_key: str) -> str:
    """What every per-device key of one device starts with."""
    return f"{prefix}:{{{device_key}}}:"


def registry(prefix: str, device_key: str) -> str:
    """The set of every key holding something of one device (``lua/registry.lua``): what an erasure deletes."""
    return f"{prefix}:{{{device_key}}}:keys"


def device_pattern(prefix: str) -> str:
    """Every per-device key of every device: read once, to index keys written before registries existed."""
    return f"{prefix}:{{*}}:*"


def device_of(prefix: str, name: str) -> str | None:
    """The device key of a per-device key name.

    >>> device_of("gt", "gt:{d41d8cd98f00b204}:cap:offer:o_1:2026-12-03")
    'd41d8cd98f00b204'
    >>> device_of("{gt}", "{gt}:bid:b_1") is None
    True
    """
    head = f"{prefix}:{{"
    end = name.find("}", len(head))
    return name[len(head) : end] if name.startswith(head) and end > 0 else None


def devices_indexed(prefix: str) -> str:
    """Set once every device key written before registries existed is in its device's registry."""
    return f"{prefix}:devices:indexed"


def events_stream(prefix: str) -> str:
    """The Redis Stream that pings and impressions are appended to, for the event consumer."""
    return f"{prefix}:events"


def consumer_lock(prefix: str) -> str:
    """Held by the one process that moves the event stream into the event store."""
    return f"{prefix}:consumer:lock"


def presence(prefix: str, device_key: str, app: str) -> str:
    """One device's presence in fences as one app sees it (``lua/presence.lua``): another app's pings never move,
    read or end it."""
    return f"{prefix}:{{{device_key}}}:presence:{app}"


def presence_member(device_key: str, app: str) -> str:
    """A presence's name in the sweeper's sorted set."""
    return f"{device_key}|{app}"


def presence_of_member(member: str) -> tuple[str, str]:
    """(device key, app) of a sweeper entry.

    >>> presence_of_member(presence_member("d41d8cd98f00b204", "key_7"))
    ('d41d8cd98f00b204', 'key_7')
    """
    device_key, _, app = member.partition("|")
    return device_key, app


def presence_due(prefix: str) -> str:
    """Devices by when their oldest presence times out: what the sweeper reads."""
    return f"{prefix}:presence:due"


def transitions_stream(prefix: str) -> str:
    """Enter, dwell and exit as they fire, with the raw device id, for the trigger worker (pending deliveries)."""
    return f"{prefix}:transitions"


def deliveries_stream(prefix: str) -> str:
    """Webhook deliveries to send (entries name a delivery), read by the delivery workers' consumer group."""
    return f"{prefix}:deliveries"


def delivery(prefix: str, delivery_id: str) -> str:
    """One delivery's state; while pending, also its body (which may hold a raw device id)."""
    return f"{prefix}:delivery:{delivery_id}"


def delivery_retries(prefix: str) -> str:
    """Deliveries waiting for their next attempt, by when it is due (ms)."""
    return f"{prefix}:deliveries:retry"


def delivery_stats(prefix: str) -> str:
    """Delivered, retried and failed counts and summed latency, over every delivery worker."""
    return f"{prefix}:deliveries:stats"


def webhook_index(prefix: str, subscription_id: str) -> str:
    """A webhook's deliveries by when they were made, for listing."""
    return f"{prefix}:webhook:{subscription_id}:deliveries"


def device_deliveries(prefix: str, device_key: str) -> str:
    """A device's pending deliveries (their bodies hold its raw id), for erasure."""
    return f"{prefix}:{{{device_key}}}:deliveries"
