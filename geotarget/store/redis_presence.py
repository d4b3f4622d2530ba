"""The Redis presence engine: ``lua/presence.lua`` moves one device's presence per call (its shard's hash tag keeps
the device's keys in one slot), and fired transitions go to its shard's Redis Stream for the trigger worker, which
reads every shard's in turn."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import redis

from geofences import LatLng
from geotarget.store import keys
from geotarget.store.redis_client import ensure_group, text
from geotarget.store.scripts import script
from geotarget.triggers.presence import Fired, PresenceMove, PresenceRules, Transition

_SCRIPT = script("registry", "presence", entry="return move_presence(KEYS, ARGV)")
KEEP_S = 86_400  # how long a device's newest ping time is remembered once nothing is present
MAX_TRANSITIONS = 1_000_000  # approximate trim of the stream: a safety net if no trigger worker runs
TRIGGER_GROUP = "triggers"
CLAIM_IDLE_MS = 60_000  # a transition pending this long has lost its trigger worker
IDLE_MS = 100  # with several shards, a trigger worker that found every shard's stream empty waits this long


class RedisPresence:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        rules: PresenceRules,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        shards: int = 1,
    ) -> None:
        self.client = client
        self.claim_idle_ms = claim_idle_ms
        self.prefix = prefix
        self.shards = shards
        self.rules = rules
        self.streams = [keys.transitions_stream(p) for p in keys.every_shard(prefix, shards)]
        self._move = client.register_script(_SCRIPT)

    def apply(self, move: PresenceMove) -> list[Transition]:
        names, argv = self.arguments(move)
        _, _, flat = self._move(keys=names, args=argv)
        return transitions(flat)

    def arguments(self, move: PresenceMove) -> tuple[list[str], list[str | int | float | bytes]]:
        """The keys and arguments of ``move_presence`` for this move (``lua/presence.lua``)."""
        sender = orjson.dumps([move.app, move.attributes])  # kept as the hash's '_app': a timed-out exit knows it
        member = keys.presence_member(move.device_key, move.app)
        argv: list[str | int | float | bytes] = ["ping", member, self.rules.timeout_s * 1000, KEEP_S, MAX_TRANSITIONS]
        argv += [move.device_id, sender, len(move.pings)]
        for ping in move.pings:
            point = f"{ping.point.lat!r},{ping.point.lon!r}" if ping.point is not None else ""
            argv += [_ms(ping.at), int(self.rules.accurate(ping.accuracy_m)), point, len(ping.sightings)]
            for s in ping.sightings:
                argv += [s.fence_id, int(s.inside), round(s.distance_m, 1), ",".join(map(str, s.dwell_thresholds_s))]
        return self._keys(member), argv

    def sweep(self, now: datetime, limit: int = 500) -> list[Fired]:
        """Exits for devices whose presence timed out by ``now`` (each device atomically; any worker may run it)."""
        fired: list[Fired] = []
        pipe = self.client.pipeline(transaction=False)  # every shard's list in one round trip (one per master)
        for prefix in keys.every_shard(self.prefix, self.shards):
            pipe.zrangebyscore(keys.presence_due(prefix), "-inf", _ms(now), start=0, num=limit)
        for due in pipe.execute():
            for member in map(text, due):
                device_key, _ = keys.presence_of_member(member)
                argv: list[str | int] = ["sweep", member, self.rules.timeout_s * 1000, KEEP_S, MAX_TRANSITIONS]
                argv.append(_ms(now))
                device_id, sender, flat = self._move(keys=self._keys(member), args=argv)
                app, attributes = orjson.loads(sender) if sender else ("", {})
                fired += [Fired(device_key, text(device_id), app, t, attributes) for t in transitions(flat)]
        return fired

    def ensure_group(self) -> None:
        for stream in self.streams:
            ensure_group(self.client, stream, TRIGGER_GROUP)

    def take(self, consumer: str, count: int, block_ms: int, claim: bool = True) -> list[tuple[str, Fired | None]]:
        """Transitions for the trigger worker: (when ``claim``) those a dead worker left first, then new ones.
        ``None`` stands for an entry erased meanwhile (acknowledge it, nothing to do). With several shards every
        shard's stream is read in one pipelined call (a round trip per master on a cluster, which cannot block on
        several slots: with nothing anywhere it waits ``IDLE_MS``) and an entry's id names its shard."""
        if len(self.streams) > 1:
            return self._take_every_shard(consumer, count, block_ms, claim)
        stream, entries = self.streams[0], []
        if claim:
            claimed: Any = self.client.xautoclaim(
                stream, TRIGGER_GROUP, consumer, self.claim_idle_ms, "0-0", count=count
            )
            entries = list(claimed[1])
        if not entries:
            answer: Any = self.client.xreadgroup(TRIGGER_GROUP, consumer, {stream: ">"}, count=count, block=block_ms)
            entries = list(answer[0][1]) if answer else []
        return [(text(entry), handed_on(fields) if fields else None) for entry, fields in entries]

    def _take_every_shard(
        self, consumer: str, count: int, block_ms: int, claim: bool
    ) -> list[tuple[str, Fired | None]]:
        each, found = max(8, -(-count // len(self.streams))), []
        if claim:
            claimed = self._each_shard(
                lambda pipe, s: pipe.xautoclaim(s, TRIGGER_GROUP, consumer, self.claim_idle_ms, "0-0", count=each)
            )
            found = [(n, answer[1]) for n, answer in claimed]
        if not any(entries for _, entries in found):
            read = self._each_shard(lambda pipe, s: pipe.xreadgroup(TRIGGER_GROUP, consumer, {s: ">"}, count=each))
            found = [(n, answer[0][1] if answer else []) for n, answer in read]
        taken = [(f"{n}/{text(e)}", handed_on(fields) if fields else None) for n, got in found for e, fields in got]
        if not taken:
            time.sleep(min(block_ms, IDLE_MS) / 1000)
        return taken

    def _each_shard(self, command: Any) -> list[tuple[int, Any]]:
        """``command(pipe, stream)`` for every shard's stream in one pipeline: (shard, answer) each."""
        pipe = self.client.pipeline(transaction=False)
        for stream in self.streams:
            command(pipe, stream)
        return list(enumerate(pipe.execute()))

    def ack(self, entry_ids: Sequence[str]) -> None:
        """Done with these: acknowledged and deleted (they hold raw device ids, which must not linger)."""
        by_stream: dict[str, list[str]] = defaultdict(list)
        for entry in entry_ids:
            number, _, entry_id = entry.rpartition("/")
            by_stream[self.streams[int(number or 0)]].append(entry_id)
        for stream, ids in by_stream.items():
            pipe = self.client.pipeline(transaction=True)
            pipe.xack(stream, TRIGGER_GROUP, *ids)
            pipe.xdel(stream, *ids)
            pipe.execute()

    def publish(self, fired: Sequence[Fired]) -> None:
        """Hand transitions to the trigger worker, in one pipelined round trip (one per shard on a cluster). A
        move or a sweep hands on its own in the same step (``lua/presence.lua``): this is for others."""
        if not fired:
            return
        pipe = self.client.pipeline(transaction=False)
        for f in fired:
            stream = keys.transitions_stream(keys.device_shard(self.prefix, f.device_key, self.shards))
            pipe.xadd(stream, {"t": orjson.dumps(f)}, maxlen=MAX_TRANSITIONS, approximate=True)
        pipe.execute()

    def _keys(self, member: str) -> list[str]:
        device_key, app = keys.presence_of_member(member)
        own = keys.device_shard(self.prefix, device_key, self.shards)
        own_keys = [keys.presence(own, device_key, app), keys.presence_due(own), keys.registry(own, device_key)]
        return [*own_keys, keys.transitions_stream(own)]


def handed_on(fields: Mapping[Any, Any]) -> Fired:
    """A transitions stream entry as presence.lua writes it, or as ``publish`` does (one JSON field ``t``)."""
    got = {text(name): value for name, value in fields.items()}
    if "t" in got:
        data = orjson.loads(got["t"])
        t = data["transition"]
        at = datetime.fromisoformat(t["at"])
        transition = Transition(t["kind"], t["fence_id"], at, t["dwell_s"], t["distance_m"], t["threshold_s"])
        return Fired(data["device_key"], data["device_id"], data["app"], transition, data.get("attributes") or {})
    device_key, _ = keys.presence_of_member(text(got["m"]))
    app, attributes = orjson.loads(got["s"]) if got["s"] else ("", {})
    (transition,) = transitions([got[f] for f in ("k", "f", "a", "d", "x", "h")])
    lat, _, lon = text(got["p"]).partition(",")
    point = LatLng(float(lat), float(lon)) if lon else None
    return Fired(device_key, text(got["i"]), app, transition, attributes, point)


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
