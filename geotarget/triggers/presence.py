"""Presence of a device in fences, moved by its pings: the rules, as data and as a plain replay.

The engine that applies them atomically lives in Redis (``store/lua/presence.lua``); ``replay`` is the same rules
written for reading, used as the reference the engine is tested against.

- **enter**: a ping inside the fence, accurate enough (``accuracy_m`` ≤ the limit, or none given), while the
  device was not present.
- **exit**: a ping farther than ``max(exit_margin_m, accuracy_m)`` from the fence, or no ping inside for
  ``timeout_s`` (the sweeper fires these at last-inside + timeout). Between the fence and that margin nothing
  moves: this band is the hysteresis that keeps GPS jitter at the edge from flapping.
- **dwell**: once per presence and threshold, at the first ping inside at least that many seconds after the enter.
- A ping coarser than the accuracy limit moves nothing but the presence it confirms (inside: still there); a ping
  older than the newest one applied to the device changes nothing.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from geofences import FenceIndex, LatLng

Kind = Literal["enter", "dwell", "exit"]
DEFAULT_DWELL_S = 300


@dataclass(frozen=True)
class PresenceRules:
    max_accuracy_m: float = 200.0
    exit_margin_m: float = 25.0
    timeout_s: int = 1_800

    def band_m(self, accuracy_m: float | None) -> float:
        """How far from a fence a ping must be to end a presence."""
        return max(self.exit_margin_m, accuracy_m or 0.0)

    def accurate(self, accuracy_m: float | None) -> bool:
        return accuracy_m is None or accuracy_m <= self.max_accuracy_m


@dataclass(frozen=True)
class Sighting:
    """A fence the ping is inside, or within the exit band of (``distance_m`` ≤ the band)."""

    fence_id: str
    inside: bool
    distance_m: float
    dwell_thresholds_s: tuple[int, ...] = (DEFAULT_DWELL_S,)


@dataclass(frozen=True)
class PresencePing:
    at: datetime
    accuracy_m: float | None
    sightings: tuple[Sighting, ...]
    point: LatLng | None = None  # to measure exits from fences beyond the band


@dataclass(frozen=True)
class PresenceMove:
    """One device's pings, ready for the presence engine (in timestamp order, sightings found), and who sent
    them: the raw id and app key (kept while present, for deliveries) and what the app said of its user."""

    device_key: str
    device_id: str
    app: str
    pings: tuple[PresencePing, ...]
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    kind: Kind
    fence_id: str
    at: datetime
    dwell_s: int | None = None  # since the enter (dwell, exit)
    distance_m: float | None = None  # of the ping that moved it (exit: the last one seen, for a timeout)
    threshold_s: int | None = None  # dwell: which threshold was crossed


@dataclass(frozen=True)
class Fired:
    """A transition of one device, with what its deliveries need: the raw id as the app sent it (only ever in
    pending deliveries) and the app whose key sent the ping."""

    device_key: str
    device_id: str
    app: str
    transition: Transition
    attributes: Mapping[str, object] = field(default_factory=dict)  # what the app said of its user, for targeting
    point: LatLng | None = None  # the ping that fired it, where known: an exit's distance is measured from it

    def measured(self, index: FenceIndex) -> Fired:
        """An exit by a ping beyond the band, with that ping's distance to the fence (the engine does not know
        it: only fences near the ping are sent to it)."""
        t = self.transition
        if t.kind != "exit" or t.distance_m is not None or self.point is None:
            return self
        shape = index.shape(t.fence_id)
        if shape is None:
            return self
        distance = round(shape.distance_m(self.point), 1)
        exit_ = Transition("exit", t.fence_id, t.at, t.dwell_s, distance)
        return Fired(self.device_key, self.device_id, self.app, exit_, self.attributes, self.point)


def sightings(
    index: FenceIndex,
    point: LatLng,
    accuracy_m: float | None,
    rules: PresenceRules,
    thresholds: Mapping[str, tuple[int, ...]] | None = None,
    unseen: Container[str] = (),
) -> tuple[Sighting, ...]:
    """The fences a ping sees: inside it, or within the exit band (a coarse ping sees only the ones it is in).
    ``unseen``: fences that have no presence (audience-only ones)."""
    band = rules.band_m(accuracy_m) if rules.accurate(accuracy_m) else 0.0
    found = index.nearby(point, band)  # within 0 m: only the fences the point is in
    known = thresholds or {}
    return tuple(
        Sighting(p.fence_id, p.inside, p.distance_m, known.get(p.fence_id, (DEFAULT_DWELL_S,)))
        for p in found
        if p.fence_id not in unseen
    )


@dataclass
class _Presence:
    entered: datetime
    last_inside: datetime
    distance_m: float
    dwelled_s: int = 0


@dataclass
class Replay:
    """The rules applied one ping at a time, in memory: the reference for the Redis engine."""

    rules: PresenceRules
    present: dict[str, _Presence] = field(default_factory=dict)
    last: datetime | None = None

    def ping(self, ping: PresencePing, distance_to: Mapping[str, float] | None = None) -> list[Transition]:
        """``distance_to``: exact distances to fences not sighted (for exits), when the caller knows them."""
        if self.last is not None and ping.at <= self.last:
            return []
        self.last = ping.at
        moved: list[Transition] = []
        accurate = self.rules.accurate(ping.accuracy_m)
        seen = {s.fence_id: s for s in ping.sightings}
        for s in ping.sightings:
            state = self.present.get(s.fence_id)
            if not s.inside:
                if state is not None:
                    state.distance_m = s.distance_m
                continue
            if state is None:
                if accurate:
                    self.present[s.fence_id] = _Presence(ping.at, ping.at, 0.0)
                    moved.append(Transition("enter", s.fence_id, ping.at, distance_m=0.0))
                continue
            state.last_inside, state.distance_m = ping.at, 0.0
            stayed = int((ping.at - state.entered).total_seconds())
            for threshold in sorted(s.dwell_thresholds_s):
                if state.dwelled_s < threshold <= stayed:
                    state.dwelled_s = threshold
                    moved.append(Transition("dwell", s.fence_id, ping.at, stayed, 0.0, threshold))
        if accurate:
            for fence_id in sorted(set(self.present) - set(seen)):
                state = self.present.pop(fence_id)
                stayed = int((ping.at - state.entered).total_seconds())
                distance = (distance_to or {}).get(fence_id)
                moved.append(Transition("exit", fence_id, ping.at, stayed, distance))
        return moved

    def sweep(self, now: datetime) -> list[Transition]:
        """Exits for presences with no ping inside for the timeout, at the moment they timed out."""
        moved = []
        for fence_id in sorted(self.present):
            state = self.present[fence_id]
            ends = state.last_inside.timestamp() + self.rules.timeout_s
            if ends <= now.timestamp():
                del self.present[fence_id]
                at = datetime.fromtimestamp(ends, tz=now.tzinfo)
                moved.append(Transition("exit", fence_id, at, int(ends - state.entered.timestamp()), state.distance_m))
        return moved


def replay(pings: Iterable[PresencePing], rules: PresenceRules) -> list[Transition]:
    """Every transition of one device's pings, taken in timestamp order."""
    state = Replay(rules)
    moved: list[Transition] = []
    for ping in sorted(pings, key=lambda p: p.at):
        moved += state.ping(ping)
    return moved
