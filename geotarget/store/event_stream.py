"""Appends events to their devices' shards' Redis Streams in one pipelined round trip (one per shard on a
cluster); the consumer moves them to the event store."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from geotarget.measurement.events import Event
from geotarget.metrics import REDIS_SECONDS
from geotarget.store import keys

MAX_STREAM_LENGTH = 5_000_000  # approximate trim: a safety net if no consumer runs, not a retention policy


class RedisStreamSink:
    def __init__(self, client: redis.Redis, prefix: str, shards: int = 1) -> None:
        self.client = client
        self.prefix = prefix
        self.shards = shards

    def append(self, events: Sequence[Event]) -> None:
        if not events:
            return
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            stream = keys.events_stream(keys.device_shard(self.prefix, event.device_key, self.shards))
            pipe.xadd(stream, {"e": event.to_json()}, maxlen=MAX_STREAM_LENGTH, approximate=True)
        with APPEND_SECONDS.time():
            pipe.execute()


APPEND_SECONDS = REDIS_SECONDS.labels("append_events")
