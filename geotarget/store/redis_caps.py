"""The Redis ``Capper``: one EVALSHA per request (``lua/reserve.lua``, registered once; redis-py reloads it
after NOSCRIPT, e.g. when Redis restarted) that checks audience memberships, reserves the caps and appends the
request's events together, and moves the device's presence in the same call when asked (``lua/serve.lua``)."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from geotarget.audiences.gate import Gate
from geotarget.metrics import REDIS_SECONDS
from geotarget.serving.caps import Counter, PendingBid, Reserved, Settled
from geotarget.store import keys
from geotarget.store.event_stream import MAX_STREAM_LENGTH
from geotarget.store.redis_presence import RedisPresence, transitions
from geotarget.store.scripts import script
from geotarget.triggers.presence import PresenceMove, Transition

_SCRIPT = script("registry", "reserve", entry="return reserve(KEYS, ARGV)")
_SERVE = script("registry", "reserve", "presence", entry="serve")
_HOLD = script("registry", "reserve", "hold", entry="return hold(KEYS, ARGV)")
_SETTLE = script("registry", "reserve", entry="settle")
_PEEK = script("registry", "reserve", entry="peek")
PREFIXES = {b'{"kind":"impression",': "impression", b'{"kind":"ghost",': "ghost"}


class RedisCapper:
    def __init__(self, client: redis.Redis, prefix: str, presence: RedisPresence | None = None) -> None:
        self.prefix = prefix
        self.stream = keys.events_stream(prefix)
        self.presence = presence
        self._reserve = client.register_script(_SCRIPT)
        self._serve = client.register_script(_SERVE)
        self._hold = client.register_script(_HOLD)
        self._settle = client.register_script(_SETTLE)
        self._peek = client.register_script(_PEEK)
        self._client = client

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
        root = keys.device_root(self.prefix, device_key)
        argv: list[int | str | bytes] = [limit, len(counters), MAX_STREAM_LENGTH, ping or b"", root]
        for i, (candidate, impression) in enumerate(zip(counters, impressions, strict=True)):
            prefix = next((p for p in PREFIXES if impression.startswith(p)), None)
            if prefix is None:
                raise ValueError("an impression or ghost event must start with its kind")
            argv += self._checks(device_key, candidate, gates[i] if gates else None, key_index)
            argv += [PREFIXES[prefix], impression[len(prefix) :]]
        names = [*key_index, keys.registry(self.prefix, device_key), self.stream]
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

    def hold(
        self,
        device_key: str,
        counters: Sequence[Sequence[Counter]],
        gates: Sequence[Gate | None],
        bids: Sequence[PendingBid],
        hold_s: int,
        keep_s: int,
    ) -> Reserved:
        key_index: dict[str, int] = {}
        checks = [self._checks(device_key, c, g, key_index) for c, g in zip(counters, gates, strict=True)]
        records = [keys.bid(self.prefix, bid.bid_id) for bid in bids]
        argv: list[int | str | bytes] = [len(counters), MAX_STREAM_LENGTH, hold_s * 1000, keep_s, device_key]
        for i, (check, bid) in enumerate(zip(checks, bids, strict=True)):
            record_index = len(key_index) + i + 1  # KEYS: the counters and memberships, then the records
            argv += [*check, record_index, bid.bid_id, bid.bid_event, bid.blocked_event, bid.impression_head]
        with HOLD_SECONDS.time():
            registry = keys.registry(self.prefix, device_key)
            held, blocked, skipped = self._hold(keys=[*key_index, *records, registry, self.stream], args=argv)
        return Reserved(_indices(held), _indices(blocked), _indices(skipped), [])

    def settle(self, bid_id: str, won: bool, price: float) -> Settled:
        with SETTLE_SECONDS.time():
            outcome = self._settle(
                keys=[keys.bid(self.prefix, bid_id), self.stream],
                args=["win" if won else "loss", bid_id, repr(float(price)), MAX_STREAM_LENGTH],
            )
        return ("unknown", "settled", "late")[int(outcome)]

    def peek(
        self,
        device_key: str,
        counters: Sequence[Sequence[Counter]],
        limit: int,
        ghosts: Sequence[bool],
        gates: Sequence[Gate | None],
    ) -> Reserved:
        key_index: dict[str, int] = {}
        argv: list[int | str | bytes] = [limit, len(counters)]
        for candidate, ghost, gate in zip(counters, ghosts, gates, strict=True):
            argv += [*self._checks(device_key, candidate, gate, key_index), "ghost" if ghost else "impression"]
        served, blocked, skipped = self._peek(keys=list(key_index), args=argv)
        return Reserved(_indices(served), _indices(blocked), _indices(skipped), [])

    def counts(self, device_key: str, counters: Sequence[Counter]) -> list[int]:
        """What each counter has counted (bids' held slots aside): the explainer's figures for a full cap."""
        names = [keys.counter(self.prefix, device_key, c.scope, c.subject, c.period, c.per_device) for c in counters]
        return [int(v or 0) for v in self._client.mget(names)] if names else []

    def _checks(
        self, device_key: str, counters: Sequence[Counter], gate: Gate | None, key_index: dict[str, int]
    ) -> list[int | str | bytes]:
        """One candidate's counters (KEYS index, limit, ttl) and audience checks, as reserve.lua reads them."""
        argv: list[int | str | bytes] = [len(counters)]
        for c in counters:
            key = keys.counter(self.prefix, device_key, c.scope, c.subject, c.period, c.per_device)
            argv.extend((key_index.setdefault(key, len(key_index) + 1), c.limit, c.ttl_s))
        program = gate.program if gate is not None else ()
        argv.append(len(program))
        if program:
            index = key_index.setdefault(keys.memberships(self.prefix, device_key), len(key_index) + 1)
            for sign, step in program:
                argv.extend((sign * index, step))
        return argv


RESERVE_SECONDS = REDIS_SECONDS.labels("reserve")
HOLD_SECONDS = REDIS_SECONDS.labels("hold_bid")
SETTLE_SECONDS = REDIS_SECONDS.labels("settle_bid")
SERVE_SECONDS = REDIS_SECONDS.labels("reserve_and_presence")


def _indices(numbers: Sequence[bytes | int]) -> list[int]:
    return [int(i) - 1 for i in numbers]
