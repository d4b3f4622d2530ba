"""The Redis presence engine: ``lua/presence.lua`` moves one device's presence per call (its hash tag keeps the
device's keys in one slot), and fired transitions go to a Redis Stream for the trigger worker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis

from geotarget.store import keys
from geotarget.triggers.presence import Fired, PresencePing, PresenceRules, Transition

_SCRIPT = (Path(__file__).parent / "lua" / "presence.lua").read_text()
KEEP_S = 86_400  # how long a device's newest ping time is remembered once nothing is present
MAX_TRANSITIONS = 1_000_000  # approximate trim of the stream: a safety net if no trigger worker runs


class RedisPresence:
    def __init__(self, client: redis.Redis, prefix: str, rules: PresenceRules) -> None:
        self.client = client
        self.prefix = prefix
        self.rules = rules
        self.stream = keys.transitions_stream(prefix)
        self._move = client.register_script(_SCRIPT)

    def apply(self, device_key: str, device_id: str, app: str, pings: Sequence[PresencePing]) -> list[Transition]:
        argv: list[str | int | float] = ["ping", device_key, self.rules.timeout_s * 1000, KEEP_S, device_id, app]
        argv.append(len(pings))
        for ping in pings:
            argv += [_ms(ping.at), int(self.rules.accurate(ping.accuracy_m)), len(ping.sightings)]
            for s in ping.sightings:
                argv += [s.fence_id, int(s.inside), round(s.distance_m, 1), ",".join(map(str, s.dwell_thresholds_s))]
        _, _, flat = self._move(keys=self._keys(device_key), args=argv)
        return _transitions(flat)

    def sweep(self, now: datetime, limit: int = 500) -> list[Fired]:
        """Exits for devices whose presence timed out by ``now`` (each device atomically; any worker may run it)."""
        due = self.client.zrangebyscore(keys.presence_due(self.prefix), "-inf", _ms(now), start=0, num=limit)
        fired: list[Fired] = []
        for device_key in map(_text, due):
            argv: list[str | int] = ["sweep", device_key, self.rules.timeout_s * 1000, KEEP_S, _ms(now)]
            device_id, app, flat = self._move(keys=self._keys(device_key), args=argv)
            fired += [Fired(device_key, _text(device_id), _text(app), t) for t in _transitions(flat)]
        return fired

    def publish(self, fired: Sequence[Fired]) -> None:
        """Hand fired transitions to the trigger worker, in one pipelined round trip."""
        if not fired:
            return
        pipe = self.client.pipeline(transaction=False)
        for f in fired:
            pipe.xadd(self.stream, {"t": orjson.dumps(f)}, maxlen=MAX_TRANSITIONS, approximate=True)
        pipe.execute()

    def _keys(self, device_key: str) -> list[str]:
        return [keys.presence(self.prefix, device_key), keys.presence_due(self.prefix)]


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _transitions(flat: Sequence[object]) -> list[Transition]:
    found = []
    for i in range(0, len(flat), 6):
        kind, fence, at, dwell, distance, threshold = map(_text, flat[i : i + 6])
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
