"""The Redis ``Capper``: one EVALSHA per request (``lua/reserve.lua``, registered once; redis-py reloads it
after NOSCRIPT, e.g. when Redis restarted) that checks audience memberships, reserves the caps and appends the
request's events together, and moves the device's presence in the same call when asked (``lua/serve.lua``).

With several shards (``store.keys``) the counters all devices share (budgets, goals) are not in the device's
slot: a request whose candidates have any is decided in two calls. The shared counters are reserved first
(``lua/shared.lua``), so a budget is never spent twice; the device's call then decides with the candidates the
budgets refused marked as such; what it did not serve of those the budgets counted is given back in a third
call (only then, and at once when Redis refuses the device's call; after a timeout, which may have counted, the
budgets keep what they counted: a budget may be under-spent by a failed call, never over-spent). A bid holds
shared slots the same way, in a record of their own that its notice settles after the device's."""

from __future__ import annotations

import logging
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
_RESERVE_SHARED = script("registry", "reserve", "shared", entry="return reserve_shared(KEYS, ARGV)")
_HOLD_SHARED = script("registry", "reserve", "shared", entry="return hold_shared(KEYS, ARGV)")
PREFIXES = {b'{"kind":"impression",': "impression", b'{"kind":"ghost",': "ghost"}
log = logging.getLogger(__name__)


class RedisCapper:
    def __init__(
        self, client: redis.Redis, prefix: str, presence: RedisPresence | None = None, shards: int = 1
    ) -> None:
        self.prefix = prefix
        self.shards = shards
        self.stream = keys.events_stream(keys.shard(prefix, 0, shards))  # the first shard's: with one, every event's
        self.presence = presence
        self._reserve = client.register_script(_SCRIPT)
        self._serve = client.register_script(_SERVE)
        self._hold = client.register_script(_HOLD)
        self._settle = client.register_script(_SETTLE)
        self._peek = client.register_script(_PEEK)
        self._reserve_shared = client.register_script(_RESERVE_SHARED)
        self._hold_shared = client.register_script(_HOLD_SHARED)
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
        kinds, rests = [], []
        for impression in impressions:
            prefix = next((p for p in PREFIXES if impression.startswith(p)), None)
            if prefix is None:
                raise ValueError("an impression or ghost event must start with its kind")
            kinds.append(PREFIXES[prefix])
            rests.append(impression[len(prefix) :])
        shared, taken = self._shared(counters), list[int]()
        if shared:
            kinds, taken = self._take_shared(shared, kinds, limit)
        try:
            reserved = self._reserve_device(device_key, counters, limit, rests, kinds, ping, moving, gates)
        except redis.ResponseError:  # the device's call was refused: it counted nothing, so neither do the budgets
            self._give_back(shared, taken)
            raise  # (a timeout may have counted: what the budgets counted stays, never spent twice)
        self._give_back(shared, [i for i in taken if i not in reserved.served])
        return reserved

    def _reserve_device(
        self,
        device_key: str,
        counters: Sequence[Sequence[Counter]],
        limit: int,
        events: Sequence[bytes],
        kinds: Sequence[str],
        ping: bytes | None,
        moving: PresenceMove | None,
        gates: Sequence[Gate | None],
    ) -> Reserved:
        own = self._own(device_key)
        key_index: dict[str, int] = {}
        argv: list[int | str | bytes] = [
            limit,
            len(counters),
            MAX_STREAM_LENGTH,
            ping or b"",
            keys.device_root(own, device_key),
        ]
        for i, (candidate, event, kind) in enumerate(zip(counters, events, kinds, strict=True)):
            argv += self._checks(device_key, self._device_part(candidate), gates[i] if gates else None, key_index)
            argv += [kind, event]
        names = [*key_index, keys.registry(own, device_key), keys.events_stream(own)]
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

    def _shared(self, counters: Sequence[Sequence[Counter]]) -> list[list[Counter]]:
        """Each candidate's shared counters when they live apart from the device's (several shards), else []."""
        if self.shards <= 1 or all(c.per_device for candidate in counters for c in candidate):
            return []
        return [[c for c in candidate if not c.per_device] for candidate in counters]

    def _device_part(self, counters: Sequence[Counter]) -> Sequence[Counter]:
        return [c for c in counters if c.per_device] if self.shards > 1 else counters

    def _take_shared(
        self, shared: Sequence[Sequence[Counter]], kinds: Sequence[str], limit: int, counting: bool = True
    ) -> tuple[list[str], list[int]]:
        """Reserve the shared counters (``lua/shared.lua``): the kinds the device's call is to decide with, and
        the candidates whose shared counters were counted."""
        key_index: dict[str, int] = {}
        argv: list[int | str | bytes] = [limit, len(shared), int(counting)]
        for candidate, kind in zip(shared, kinds, strict=True):
            argv += [*self._triples(candidate, "", key_index), kind]
        with SHARED_SECONDS.time():
            taken, refused, considered = self._reserve_shared(keys=list(key_index), args=argv)
        refused_at = set(_indices(refused))
        decided = [
            "refused" if i in refused_at else "unasked" if i >= int(considered) and shared[i] else kind
            for i, kind in enumerate(kinds)
        ]
        return decided, _indices(taken)

    def _give_back(self, shared: Sequence[Sequence[Counter]], candidates: Sequence[int]) -> None:
        """Uncount the shared counters of candidates the device's call did not serve."""
        if not candidates:
            return
        pipe = self._client.pipeline(transaction=False)
        for i in candidates:
            for c in shared[i]:
                pipe.decr(self._counter("", c))
        try:
            with GIVE_BACK_SECONDS.time():
                pipe.execute()
        except redis.RedisError as exc:  # the request stands; the budgets stay counted (short, never over)
            log.warning("shared counters not given back (%s)", exc.__class__.__name__)

    def hold(
        self,
        device_key: str,
        counters: Sequence[Sequence[Counter]],
        gates: Sequence[Gate | None],
        bids: Sequence[PendingBid],
        hold_s: int,
        keep_s: int,
    ) -> Reserved:
        decided, held_shared = [""] * len(bids), -1
        if shared := self._shared(counters):
            decided, held_shared = self._hold_shared_slots(shared, bids, hold_s, keep_s)
        try:
            reserved = self._hold_device(device_key, counters, gates, bids, decided, hold_s, keep_s)
        except redis.ResponseError:  # as in reserve; after a timeout the shared hold ends with its time
            self._free_shared(bids, held_shared)
            raise
        if held_shared >= 0 and held_shared not in reserved.served:
            self._free_shared(bids, held_shared)  # the device's caps refused it: its shared slots go
        return reserved

    def _hold_device(
        self,
        device_key: str,
        counters: Sequence[Sequence[Counter]],
        gates: Sequence[Gate | None],
        bids: Sequence[PendingBid],
        decided: Sequence[str],
        hold_s: int,
        keep_s: int,
    ) -> Reserved:
        own, key_index = self._own(device_key), dict[str, int]()
        checks = [
            self._checks(device_key, self._device_part(c), g, key_index) for c, g in zip(counters, gates, strict=True)
        ]
        records = [keys.bid(own, bid.bid_id) for bid in bids]
        argv: list[int | str | bytes] = [len(counters), MAX_STREAM_LENGTH, hold_s * 1000, keep_s, device_key]
        for i, (check, bid) in enumerate(zip(checks, bids, strict=True)):
            record_index = len(key_index) + i + 1  # KEYS: the counters and memberships, then the records
            argv += [*check, record_index, bid.bid_id, bid.bid_event, bid.blocked_event, bid.impression_head]
            argv.append(decided[i])
        names = [*key_index, *records, keys.registry(own, device_key), keys.events_stream(own)]
        with HOLD_SECONDS.time():
            held, blocked, skipped = self._hold(keys=names, args=argv)
        return Reserved(_indices(held), _indices(blocked), _indices(skipped), [])

    def _hold_shared_slots(
        self, shared: Sequence[Sequence[Counter]], bids: Sequence[PendingBid], hold_s: int, keep_s: int
    ) -> tuple[list[str], int]:
        """Hold the shared counters' slots for the first candidate with room (``lua/shared.lua``): what the
        device's call is to know of each candidate, and which holds them (-1: none)."""
        key_index: dict[str, int] = {}
        triples = [self._triples(candidate, "", key_index) for candidate in shared]
        records = [keys.bid(self.prefix, bid.bid_id) for bid in bids]
        argv: list[int | str | bytes] = [len(shared), hold_s * 1000, keep_s]
        for i, (triple, bid) in enumerate(zip(triples, bids, strict=True)):
            argv += [*triple, len(key_index) + i + 1, bid.bid_id]
        with SHARED_SECONDS.time():
            held, refused, considered = self._hold_shared(keys=[*key_index, *records], args=argv)
        at, refused_at = _indices(held), set(_indices(refused))
        decided = [
            "held" if i in at else "refused" if i in refused_at else "unasked" if i >= int(considered) and c else ""
            for i, c in enumerate(shared)
        ]
        return decided, at[0] if at else -1

    def _free_shared(self, bids: Sequence[PendingBid], candidate: int) -> None:
        """Free a bid's shared slots (as a loss would); should Redis fail, they end with the hold."""
        if candidate >= 0:
            bid_id = bids[candidate].bid_id
            try:
                self._settle_record(keys.bid(self.prefix, bid_id), self.prefix, bid_id, False, 0.0)
            except redis.RedisError as exc:
                log.warning("a bid's shared slots not freed (%s)", exc.__class__.__name__)

    def bid_id(self, device_key: str, impression_id: str) -> str:
        """With several shards a bid's id names its device's shard, where its record is (all a notice carries)."""
        return impression_id if self.shards <= 1 else f"{impression_id}.{keys.shard_of(device_key, self.shards)}"

    def settle(self, bid_id: str, won: bool, price: float) -> Settled:
        number = bid_id.rpartition(".")[2] if self.shards > 1 else "0"
        if not number.isdigit() or int(number) >= self.shards:
            return "unknown"
        own = keys.shard(self.prefix, int(number), self.shards)
        outcome, shared = self._settle_record(keys.bid(own, bid_id), own, bid_id, won, price)
        if shared:
            self._settle_record(keys.bid(self.prefix, bid_id), self.prefix, bid_id, won, price)
        return ("unknown", "settled", "late")[outcome]

    def _settle_record(self, record: str, prefix: str, bid_id: str, won: bool, price: float) -> tuple[int, int]:
        with SETTLE_SECONDS.time():
            outcome, shared = self._settle(
                keys=[record, keys.events_stream(prefix)],
                args=[
                    "win" if won else "loss",
                    bid_id,
                    repr(float(price)),
                    MAX_STREAM_LENGTH,
                ],
            )
        return int(outcome), int(shared)

    def peek(
        self,
        device_key: str,
        counters: Sequence[Sequence[Counter]],
        limit: int,
        ghosts: Sequence[bool],
        gates: Sequence[Gate | None],
    ) -> Reserved:
        kinds = ["ghost" if ghost else "impression" for ghost in ghosts]
        if shared := self._shared(counters):
            kinds, _ = self._take_shared(shared, kinds, limit, counting=False)
        key_index: dict[str, int] = {}
        argv: list[int | str | bytes] = [limit, len(counters)]
        for candidate, kind, gate in zip(counters, kinds, gates, strict=True):
            argv += [*self._checks(device_key, self._device_part(candidate), gate, key_index), kind]
        served, blocked, skipped = self._peek(keys=list(key_index), args=argv)
        return Reserved(_indices(served), _indices(blocked), _indices(skipped), [])

    def counts(self, device_key: str, counters: Sequence[Counter]) -> list[int]:
        """What each counter has counted (bids' held slots aside): the explainer's figures for a full cap."""
        names = [self._counter(device_key, c) for c in counters]
        return (
            [int(v or 0) for v in self._client.mget(names)]
            if names and self._one_slot(names)
            else [int(self._client.get(name) or 0) for name in names]
        )

    def _own(self, device_key: str) -> str:
        return keys.device_shard(self.prefix, device_key, self.shards)

    def _counter(self, device_key: str, c: Counter) -> str:
        prefix = self._own(device_key) if c.per_device else self.prefix
        return keys.counter(prefix, device_key, c.scope, c.subject, c.period, c.per_device)

    def _one_slot(self, names: Sequence[str]) -> bool:
        return self.shards <= 1 or len({name.partition("}")[0] for name in names}) == 1

    def _triples(
        self, counters: Sequence[Counter], device_key: str, key_index: dict[str, int]
    ) -> list[int | str | bytes]:
        """n, then (KEYS index, limit, ttl) for each counter, as reserve.lua reads them."""
        argv: list[int | str | bytes] = [len(counters)]
        for c in counters:
            argv.extend((key_index.setdefault(self._counter(device_key, c), len(key_index) + 1), c.limit, c.ttl_s))
        return argv

    def _checks(
        self, device_key: str, counters: Sequence[Counter], gate: Gate | None, key_index: dict[str, int]
    ) -> list[int | str | bytes]:
        """One candidate's counters and audience checks, as reserve.lua reads them."""
        argv = self._triples(counters, device_key, key_index)
        program = gate.program if gate is not None else ()
        argv.append(len(program))
        if program:
            index = key_index.setdefault(keys.memberships(self._own(device_key), device_key), len(key_index) + 1)
            for sign, step in program:
                argv.extend((sign * index, step))
        return argv


RESERVE_SECONDS = REDIS_SECONDS.labels("reserve")
HOLD_SECONDS = REDIS_SECONDS.labels("hold_bid")
SETTLE_SECONDS = REDIS_SECONDS.labels("settle_bid")
SERVE_SECONDS = REDIS_SECONDS.labels("reserve_and_presence")
SHARED_SECONDS = REDIS_SECONDS.labels("shared_counters")
GIVE_BACK_SECONDS = REDIS_SECONDS.labels("shared_give_back")


def _indices(numbers: Sequence[bytes | int]) -> list[int]:
    return [int(i) - 1 for i in numbers]
