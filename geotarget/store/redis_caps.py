"""The Redis ``Capper``: one EVALSHA per request (``lua/reserve.lua``, registered once; redis-py reloads it
after NOSCRIPT, e.g. when Redis restarted) that checks audience memberships, reserves the caps and appends the
request's events together, and moves the device's presence in the same call when asked (``lua/serve.lua``)."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from geotarget.audiences.gate import Gate
from geotarget.metrics import REDIS_SECONDS
from geotarget.serving.caps import Counter, Reserved
from geotarget.store import keys
from geotarget.store.event_stream import MAX_STREAM_LENGTH
from geotarget.store.redis_presence import RedisPresence, transitions
from geotarget.store.scripts import script
from geotarget.triggers.presence import PresenceMove, Transition

_SCRIPT = script("reserve", entry="return reserve(KEYS, ARGV)")
_SERVE = script("reserve", "presence", entry="serve")
PREFIXES = {b'{"kind":"impression",': "impression", b'{"kind":"ghost",': "ghost"}


class RedisCapper:
    def __init__(self, client: redis.Redis, prefix: str, presence: RedisPresence | None = None) -> None:
        self.prefix = prefix
        self.stream = keys.events_stream(prefix)
        self.presence = presence
        self._reserve = client.register_script(_SCRIPT)
        self._serve = client.register_script(_SERVE)

    def reserve(
        self,
        device_key: str,
        counters: Sequence[Sequence[Counter]],
        limit: int,
        impressions: Sequence[bytes],
        ping: bytes | None,
        moving: PresenceMove | None = None,
        gates: Sequence[Gate | None] = (),
    ) -> Reserved:
        key_index: dict[str, int] = {}
        argv: list[int | str | bytes] = [limit, len(counters), MAX_STREAM_LENGTH, ping or b""]
        for i, (candidate, impression) in enumerate(zip(counters, impressions, strict=True)):
            prefix = next((p for p in PREFIXES if impression.startswith(p)), None)
            if prefix is None:
                raise ValueError("an impression or ghost event must start with its kind")
            argv.append(len(candidate))
            for c in candidate:
                key = keys.counter(self.prefix, device_key, c.scope, c.subject, c.period, c.per_device)
                index = key_index.setdefault(key, len(key_index) + 1)
                argv.extend((index, c.limit, c.ttl_s))
            gate = gates[i] if gates else None
            checks = gate.checks if gate is not None else ()
            argv.append(len(checks))
            if checks:
                key = keys.memberships(self.prefix, device_key)
                index = key_index.setdefault(key, len(key_index) + 1)
                for check in checks:
                    argv.extend((index if check.include else -index, check.token))
            argv += [PREFIXES[prefix], impression[len(prefix) :]]
        names = [*key_index, self.stream]
        moved: list[Transition] = []
        if moving is None or self.presence is None:
            with RESERVE_SECONDS.time():
                served, blocked, skipped = self._reserve(keys=names, args=argv)
        else:  # the device's presence moves in the same call (lua/serve.lua)
            presence_keys, presence_argv = self.presence.arguments(moving)
            both = [len(names), len(argv), *argv, *presence_argv]
            with SERVE_SECONDS.time():
                served, blocked, skipped, flat = self._serve(keys=[*names, *presence_keys], args=both)
            moved = transitions(flat)
        return Reserved(_indices(served), _indices(blocked), _indices(skipped), moved)


RESERVE_SECONDS = REDIS_SECONDS.labels("reserve")
SERVE_SECONDS = REDIS_SECONDS.labels("reserve_and_presence")


def _indices(numbers: Sequence[bytes | int]) -> list[int]:
    return [int(i) - 1 for i in numbers]
