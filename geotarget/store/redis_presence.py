"""The Redis presence engine: ``lua/presence.lua`` moves one device's presence per call (its hash tag keeps the
device's keys in one slot), and fired transitions go to a Redis Stream for the trigger worker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import redis

from geotarget.store import keys
from geotarget.store.redis_client import ensure_group, text
from geotarget.store.scripts import script
from geotarget.triggers.presence import Fired, PresenceMove, PresenceRules, Transition

_SCRIPT = script("registry", "presence", entry="return move_presence(KEYS, ARGV)")
KEEP_S = 86_400  # how long a device's newest ping time is remembered once nothing is present
MAX_TRANSITIONS = 1_000_000  # approximate trim of the stream: a safety net if no trigger worker runs
TRIGGER_GROUP = "triggers"
CLAIM_IDLE_MS = 60_000  # a transition pending this long has lost its trigger worker


class RedisPresence:
    def __init__(
        self, client: redis.Redis, prefix: str, rules: PresenceRules, claim_idle_ms: int = CLAIM_IDLE_MS
    ) -> None:
        self.client = client
        self.claim_idle_ms = claim_idle_ms
        self.prefix = prefix
        self.rules = rules
        self.stream = keys.transitions_stream(prefix)
        self._move = client.register_script(_SCRIPT)

    def apply(self, move: PresenceMove) -> list[Transition]:
        names, argv = self.arguments(move)
        _, _, flat = self._move(keys=names, args=argv)
        return transitions(flat)

    def arguments(self, move: PresenceMove) -> tuple[list[str], list[str | int | float | bytes]]:
        """The keys and arguments of ``move_presence`` for this move (``lua/presence.lua``)."""
        sender = orjson.dumps([move.app, move.attributes])  # kept as the hash's '_app': a timed-out exit knows it
        member = keys.presence_member(move.device_key, move.app)
        argv: list[str | int | float | bytes] = ["ping", member, self.rules.timeout_s * 1000, KEEP_S]
        argv += [move.device_id, sender, len(move.pings)]
        for ping in move.pings:
            argv += [_ms(ping.at), int(self.rules.accurate(ping.accuracy_m)), len(ping.sightings)]
            for s in ping.sightings:
                argv += [s.fence_id, int(s.inside), round(s.distance_m, 1), ",".join(map(str, s.dwell_thresholds_s))]
        return self._keys(member), argv

    def sweep(self, now: datetime, limit: int = 500) -> list[Fired]:
        """Exits for devices whose presence timed out by ``now`` (each device atomically; any worker may run it)."""
        due = self.client.zrangebyscore(keys.presence_due(self.prefix), "-inf", _ms(now), start=0, num=limit)
        fired: list[Fired] = []
        for member in map(text, due):
            device_key, _ = keys.presence_of_member(member)
            argv: list[str | int] = ["sweep", member, self.rules.timeout_s * 1000, KEEP_S, _ms(now)]
            device_id, sender, flat = self._move(keys=self._keys(member), args=argv)
            app, attributes = orjson.loads(sender) if sender else ("", {})
            fired += [Fired(device_key, text(device_id), app, t, attributes) for t in transitions(flat)]
        return fired

    def ensure_group(self) -> None:
        ensure_group(self.client, self.stream, TRIGGER_GROUP)

    def take(self, consumer: str, count: int, block_ms: int, claim: bool = True) -> list[tuple[str, Fired | None]]:
        """Transitions for the trigger worker: (when ``claim``) those a dead worker left first, then new ones.
        ``None`` stands for an entry erased meanwhile (acknowledge it, nothing to do)."""
        entries: list[Any] = []
        if claim:
            claimed: Any = self.client.xautoclaim(
                self.stream, TRIGGER_GROUP, consumer, self.claim_idle_ms, "0-0", count=count
            )
            entries = list(claimed[1])
        if not entries:
            answer: Any = self.client.xreadgroup(
                TRIGGER_GROUP, consumer, {self.stream: ">"}, count=count, block=block_ms
            )
            entries = list(answer[0][1]) if answer else []
        return [(text(entry), _fired(fields[b"t"]) if fields else None) for entry, fields in entries]

    def ack(self, entry_ids: Sequence[str]) -> None:
        """Done with these: acknowledged and deleted (they hold raw device ids, which must not linger)."""
        if entry_ids:
            pipe = self.client.pipeline(transaction=True)
            pipe.xack(self.stream, TRIGGER_GROUP, *entry_ids)
            pipe.xdel(self.stream, *entry_ids)
            pipe.execute()

    def publish(self, fired: Sequence[Fired]) -> None:
        """Hand fired transitions to the trigger worker, in one pipelined round trip."""
        if not fired:
            return
        pipe = self.client.pipeline(transaction=False)
        for f in fired:
            pipe.xadd(self.stream, {"t": orjson.dumps(f)}, maxlen=MAX_TRANSITIONS, approximate=True)
        pipe.execute()

    def _keys(self, member: str) -> list[str]:
        device_key, app = keys.presence_of_member(member)
        return [
            keys.presence(self.prefix, device_key, app),
            keys.presence_due(self.prefix),
            keys.registry(self.prefix, device_key),
        ]


def _fired(raw: bytes) -> Fired:
    data = orjson.loads(raw)
    t = data["transition"]
    at = datetime.fromisoformat(t["at"])
    transition = Transition(t["kind"], t["fence_id"], at, t["dwell_s"], t["distance_m"], t["threshold_s"])
    return Fired(data["device_key"], data["device_id"], data["app"], transition, data.get("attributes") or {})


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def transitions(flat: Sequence[object]) -> list[Transition]:
    """What ``move_presence`` returns as its third part, as transitions."""
    found = []
    for i in range(0, len(flat), 6):
        kind, fence, at, dwell, distance, threshold = map(text, flat[i : i + 6])
        found.append(
            Transition(
                kind,  # type: ignore[arg-type]
                fence,
                datetime.fromtimestamp(int(at) / 1000, UTC),
                int(dwell) if dwell else None,
                float(distance) if distance else None,
                int(threshold) if threshold else None,
            )
        )
    return found
