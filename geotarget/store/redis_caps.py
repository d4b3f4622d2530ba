"""The Redis ``Capper``: one EVALSHA per request (``lua/reserve.lua``, registered once; redis-py reloads it
after NOSCRIPT, e.g. when Redis restarted)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import redis

from geotarget.serving.caps import Counter
from geotarget.store import keys

_SCRIPT = (Path(__file__).parent / "lua" / "reserve.lua").read_text()


class RedisCapper:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.prefix = prefix
        self._reserve = client.register_script(_SCRIPT)

    def reserve(
        self, device_key: str, counters: Sequence[Sequence[Counter]], limit: int
    ) -> tuple[list[int], list[int]]:
        key_index: dict[str, int] = {}
        argv: list[int | str] = [limit, len(counters)]
        for candidate in counters:
            argv.append(len(candidate))
            for c in candidate:
                key = keys.counter(self.prefix, device_key, c.scope, c.subject, c.period, c.per_device)
                index = key_index.setdefault(key, len(key_index) + 1)
                argv.extend((index, c.limit, c.ttl_s))
        served, blocked = self._reserve(keys=list(key_index), args=argv)
        return [int(i) - 1 for i in served], [int(i) - 1 for i in blocked]
