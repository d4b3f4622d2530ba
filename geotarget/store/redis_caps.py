"""The Redis ``Capper``: one EVALSHA per request (``lua/reserve.lua``, registered once; redis-py reloads it
after NOSCRIPT, e.g. when Redis restarted) that reserves the caps and appends the request's events together."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import redis

from geotarget.serving.caps import Counter
from geotarget.store import keys
from geotarget.store.event_stream import MAX_STREAM_LENGTH

_SCRIPT = (Path(__file__).parent / "lua" / "reserve.lua").read_text()
IMPRESSION_PREFIX = b'{"kind":"impression",'


class RedisCapper:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.prefix = prefix
        self.stream = keys.events_stream(prefix)
        self._reserve = client.register_script(_SCRIPT)

    def reserve(
        self,
        device_key: str,
        counters: Sequence[Sequence[Counter]],
        limit: int,
        impressions: Sequence[bytes],
        ping: bytes | None,
    ) -> tuple[list[int], list[int]]:
        key_index: dict[str, int] = {}
        argv: list[int | str | bytes] = [limit, len(counters), MAX_STREAM_LENGTH, ping or b""]
        for candidate, impression in zip(counters, impressions, strict=True):
            if not impression.startswith(IMPRESSION_PREFIX):
                raise ValueError("an impression event must start with its kind")
            argv.append(len(candidate))
            for c in candidate:
                key = keys.counter(self.prefix, device_key, c.scope, c.subject, c.period, c.per_device)
                index = key_index.setdefault(key, len(key_index) + 1)
                argv.extend((index, c.limit, c.ttl_s))
            argv.append(impression[len(IMPRESSION_PREFIX) :])
        served, blocked = self._reserve(keys=[*key_index, self.stream], args=argv)
        return [int(i) - 1 for i in served], [int(i) - 1 for i in blocked]
