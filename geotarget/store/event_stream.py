"""Appends events to a Redis Stream in one pipelined round trip; the consumer moves them to the event store."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from geotarget.measurement.events import Event
from geotarget.metrics import REDIS_SECONDS
from geotarget.store import keys

MAX_STREAM_LENGTH = 5_000_000  # approximate trim: a safety net if no consumer runs, not a retention policy


class RedisStreamSink:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.stream = keys.events_stream(prefix)

    def append(self, events: Sequence[Event]) -> None:
        if not events:
            return
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(self.stream, {"e": event.to_json()}, maxlen=MAX_STREAM_LENGTH, approximate=True)
        with APPEND_SECONDS.time():
            pipe.execute()


APPEND_SECONDS = REDIS_SECONDS.labels("append_events")
