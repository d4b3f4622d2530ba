"""Frequency caps as data: which counters a served offer increments, with which limits and lifetimes.

No I/O here. A ``Capper`` (Redis, in ``geotarget.store.redis_caps``) receives the counters of the ranked
candidates and, atomically, serves the first ``limit`` candidates whose counters all have room, counting them
(and appending the request's events in the same round trip).

Windows are calendar windows in a time zone: the hour, the day and the ISO week as the clock on the wall shows
them, so a counter for "today" ends at local midnight even on a 23- or 25-hour DST day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from geotarget.audiences.gate import Gate
from geotarget.catalog.model import Offer
from geotarget.serving.types import Candidate
from geotarget.triggers.presence import PresenceMove, Transition

Scope = Literal["offer", "merchant", "global", "budget"]
Window = Literal["h", "d", "w", "life"]
_SLACK_S = 60


@dataclass(frozen=True)
class Counter:
    """One counter: ``scope``/``subject`` say whose (an offer, a merchant, all offers, an offer's budget),
    ``period`` which window (``d:2026-11-23``), ``per_device`` whether it counts one device's views."""

    scope: Scope
    subject: str
    period: str
    limit: int
    ttl_s: int  # 0: never expires
    per_device: bool = True


@dataclass(frozen=True)
class GlobalCaps:
    per_device_per_hour: int | None = None
    per_device_per_day: int | None = None


@dataclass(frozen=True)
class Reserved:
    """What one reservation decided, by candidate index."""

    served: list[int]
    blocked: list[int]  # a counter was full
    skipped: list[int]  # outside the offer's audiences: neither counted nor logged
    moved: list[Transition]  # presence transitions fired by the same call

    @property
    def decided(self) -> int:
        return len(self.served) + len(self.blocked) + len(self.skipped)


@dataclass(frozen=True)
class PendingBid:
    """What a bid's hold writes: its id, the event logged when it holds a slot (``bid``) or finds its caps full
    (``cap_blocked``), and the impression a win logs, as JSON up to its closing ``"price":`` (the clearing price
    and the closing brace are added when the win is known)."""

    bid_id: str
    bid_event: bytes
    blocked_event: bytes
    impression_head: bytes


Settled = Literal["unknown", "settled", "late"]


QUICK_S = 0.02  # the cap store's average answer time under which event-loop callers call serving inline


@dataclass
class AnswerTimes:
    """Whether the cap store answers quickly enough for serving to be called inline on an event loop (a thread
    hop costs more than the call) rather than on a thread (so a slow Redis holds up its own request, not the
    worker). An answer slower than ``QUICK_S`` or a fault sends the next calls to threads at once; quick answers
    bring them back as the moving average falls. At 5 ms for the last answer alone, the jitter of a loaded 2-core
    machine sent half of a worker's requests through threads (py-spy: Condition.notify, WorkerThread.run).

    >>> times = AnswerTimes()
    >>> [times.answered(s) for s in (0.004, 0.012, 0.030, 0.001, 0.001, 0.001)], times.failed()
    ([True, True, False, False, True, True], False)
    """

    average_s: float = 0.0

    def answered(self, seconds: float) -> bool:
        self.average_s = seconds if seconds >= QUICK_S else 0.8 * self.average_s + 0.2 * seconds
        return self.average_s < QUICK_S

    def failed(self) -> bool:
        self.average_s = max(self.average_s, 1.0)
        return False


class Capper(Protocol):
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
        """Serve up to ``limit`` candidates (by index, in order) that pass their audience ``gates`` (none: no
        gate) and whose counters all have room, and count them; in the same atomic call append ``ping`` and,
        for each candidate decided, its impression event (JSON, as served) or the same event as
        ``cap_blocked``, and apply ``moving`` to the device's presence. Raises on any storage fault (callers
        fail closed)."""

    def hold(
        self,
        device_key: str,
        counters: Sequence[Sequence[Counter]],
        gates: Sequence[Gate | None],
        bids: Sequence[PendingBid],
        hold_s: int,
        keep_s: int,
    ) -> Reserved:
        """For a bid: the first candidate that passes its gate and whose counters have room, counting the slots
        other bids hold, holds one slot on each for ``hold_s`` without counting it (``served`` names it); its
        record is kept ``keep_s`` for late notices. Logs ``bid`` or ``cap_blocked`` events as ``reserve`` does.
        Raises on any storage fault."""

    def peek(
        self,
        device_key: str,
        counters: Sequence[Sequence[Counter]],
        limit: int,
        ghosts: Sequence[bool],
        gates: Sequence[Gate | None],
    ) -> Reserved:
        """What ``reserve`` would decide for these candidates now, counting nothing and logging nothing (the
        decision explainer). ``ghosts`` marks held-out candidates: counted, but not using up the limit."""

    def counts(self, device_key: str, counters: Sequence[Counter]) -> list[int]:
        """What each counter has counted so far."""

    def bid_id(self, device_key: str, impression_id: str) -> str:
        """The id a bid on this impression goes by in its notices: what ``settle`` finds its hold by."""

    def settle(self, bid_id: str, won: bool, price: float) -> Settled:
        """The bid's notice, once: a win counts its held slots and logs its impression at ``price`` (CPM), a loss
        frees them. ``unknown``: no such bid (never made, settled already, or its record expired)."""


def period(window: Window, at: datetime, timezone: str) -> tuple[str, int]:
    """The window's label and the seconds until it ends (plus a minute), in ``timezone``.

    >>> from datetime import UTC
    >>> period("d", datetime(2026, 3, 29, 12, 0, tzinfo=UTC), "Europe/Lisbon")  # a 23-hour day
    ('d:2026-03-29', 39660)
    """
    if window == "life":
        return "life", 0
    now = at.timestamp()
    minute = int(now // 60)
    known = _windows.get((window, timezone, minute))
    if known is None:
        # windows start and end on whole minutes in every zone in use, so one minute has one answer
        if len(_windows) > 4096:
            _windows.clear()
        known = _windows[(window, timezone, minute)] = _window(window, at, ZoneInfo(timezone))
    label, end = known
    return label, max(1, int(end - now)) + _SLACK_S


_windows: dict[tuple[str, str, int], tuple[str, float]] = {}


def _window(window: Window, at: datetime, zone: ZoneInfo) -> tuple[str, float]:
    """The label of the window holding ``at`` and its end (epoch seconds)."""
    local = at.astimezone(zone)
    if window == "h":
        start = local.replace(minute=0, second=0, microsecond=0)
        return f"h:{start:%Y-%m-%dT%H}{start:%z}", start.timestamp() + 3600
    if window == "d":
        return f"d:{local:%Y-%m-%d}", _local_midnight(local.date() + timedelta(days=1), zone)
    year, week, weekday = local.isocalendar()
    return f"w:{year}-W{week:02d}", _local_midnight(local.date() + timedelta(days=8 - weekday), zone)


def _local_midnight(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(), zone).timestamp()


def counters_for(
    candidate: Candidate, at: datetime, device_zone: str, global_caps: GlobalCaps, merchant_cap: int | None = None
) -> list[Counter]:
    """Every counter serving ``candidate`` would increment; an empty list means the offer is uncapped.
    ``merchant_cap`` is the offer's merchant's limit of impressions per device per day, if it set one."""
    offer = candidate.offer
    found: list[Counter] = []
    for window, limit in (
        ("h", offer.caps.per_device_per_hour),
        ("d", offer.caps.per_device_per_day),
        ("w", offer.caps.per_device_per_week),
        ("life", offer.caps.per_device_lifetime),
    ):
        if limit is not None:
            label, ttl = period(window, at, offer.timezone)  # type: ignore[arg-type]
            found.append(Counter("offer", offer.id, label, limit, ttl))
    if merchant_cap is not None:
        label, ttl = period("d", at, offer.timezone)
        found.append(Counter("merchant", offer.merchant_id, label, merchant_cap, ttl))
    for window, limit in (("h", global_caps.per_device_per_hour), ("d", global_caps.per_device_per_day)):
        if limit is not None:
            label, ttl = period(window, at, device_zone)  # type: ignore[arg-type]
            found.append(Counter("global", "all", label, limit, ttl))
    if offer.daily_budget is not None:
        label, ttl = period("d", at, offer.timezone)
        found.append(Counter("budget", offer.id, label, offer.daily_budget, ttl, per_device=False))
    if offer.goal is not None and (counter := goal_counter(offer, at)) is not None:
        found.append(counter)
    return found


def goal_counter(offer: Offer, at: datetime) -> Counter | None:
    """The counter of an offer's impression goal while ``at`` is within its days (outside them it counts nothing
    and holds nothing back); it lives until a minute after the goal's last local day."""
    goal = offer.goal
    if goal is None:
        return None
    zone = ZoneInfo(offer.timezone)
    if not goal.first_day <= at.astimezone(zone).date() <= goal.last_day:
        return None
    ends = _local_midnight(goal.last_day + timedelta(days=1), zone)
    label = f"goal:{goal.first_day.isoformat()}:{goal.last_day.isoformat()}"
    return Counter("budget", offer.id, label, goal.impressions, max(1, int(ends - at.timestamp())) + _SLACK_S, False)
