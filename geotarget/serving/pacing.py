"""Pacing a daily budget: spread it over the offer's live minutes of the day (a special 07:00–10:00 over those
three hours) instead of spending it on the morning's first traffic.

Throttling, as in LinkedIn's budget pacing (KDD 2014): each minute a pass-through probability ``p`` is set so
that the impressions expected in the next minute bring the spent budget to the curve's value at its end:
``p = (target(next minute) − spent) / eligible requests expected``. ``spent`` is the budget counter every worker
shares (Redis), so a minute behind or ahead is corrected by the next one (the feedback); eligible requests are
this worker's, times the number of workers. ``even`` is the straight curve over the live minutes;
``frontloaded`` runs up to 40 % ahead of it early and meets it at the end. The budget counter itself still
never lets an impression past the budget. Pure: the clock, the counts and the random draw are given.
"""

from __future__ import annotations

import random
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from geotarget.catalog.model import Offer
from geotarget.serving.schedule import Schedule, is_live

FRONTLOAD = 0.4  # how far ahead of the even curve frontloaded delivery runs at the start
SMOOTHING = 0.3  # weight of the newest minute in the eligible-request forecast


@lru_cache(maxsize=4096)
def live_minutes(schedule: Schedule | None, day: date, zone: str) -> tuple[int, ...]:
    """The minutes of the local ``day`` (0–1439) in which the schedule is live. Remembered: a chain's thousands
    of paced offers share a few schedules, and 1,440 tests per offer each day held a worker's GIL for seconds."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tz)
    return tuple(m for m in range(1440) if is_live(schedule, start + timedelta(minutes=m), zone))


def curve(share: float, mode: str) -> float:
    """The share of the budget that should be spent once ``share`` of the live minutes have gone.

    >>> curve(0.5, "even"), curve(0.5, "frontloaded"), curve(1.0, "frontloaded")
    (0.5, 0.6, 1.0)
    """
    share = min(1.0, max(0.0, share))
    return share if mode == "even" else min(1.0, share * (1 + FRONTLOAD * (1 - share)))


def pass_rate(budget: int, spent: int, share_after: float, mode: str, expected: float) -> float:
    """The probability that lets through what the next minute should spend, given the requests it expects.

    >>> pass_rate(1000, 100, 0.2, "even", expected=500)  # 200 by the end of the minute: 100 more of 500
    0.2
    >>> pass_rate(1000, 300, 0.2, "even", expected=500)  # ahead: hold back
    0.0
    """
    if spent >= budget:
        return 0.0
    if expected <= 0:
        return 1.0
    return min(1.0, max(0.0, (budget * curve(share_after, mode) - spent) / expected))


def _holds(minutes: tuple[int, ...], minute: int) -> bool:
    """``minute in minutes`` for a sorted tuple, without a set per offer (shared tuples: see live_minutes)."""
    at = bisect_left(minutes, minute)
    return at < len(minutes) and minutes[at] == minute


@dataclass
class _Pace:  # one offer's pacing on one local day
    day: date
    minutes: tuple[int, ...]  # live minutes of the day, sorted
    p: float = 1.0
    eligible: int = 0  # requests that met the offer in the current minute (this worker)
    forecast: float | None = None  # eligible requests per live minute expected (this worker)


class Pacer:
    """Decides, per request, whether a paced offer may be tried; ``update`` resets the rates once a minute. A
    daily budget and a goal are paced each on its own curve, and the offer passes at the lower rate."""

    def __init__(self, workers: int = 1, draw: Callable[[], float] = random.random) -> None:
        self.workers = workers
        self.draw = draw
        self._paces: dict[str, _Pace] = {}
        self._goal_days: dict[tuple[str, int], list[int]] = {}  # (offer, version) -> live minutes per goal day
        self._lock = threading.Lock()

    def passes(self, offer: Offer) -> bool:
        if offer.pacing == "asap" or (offer.daily_budget is None and offer.goal is None):
            return True
        pace = self._paces.get(offer.id)
        if pace is None:
            return True  # not known yet: the first update sets its rate
        pace.eligible += 1  # a lost increment under a race only nudges the forecast
        return pace.p >= 1.0 or self.draw() < pace.p

    def rate(self, offer_id: str) -> float | None:
        pace = self._paces.get(offer_id)
        return None if pace is None else pace.p

    def update(self, offers: Iterable[Offer], spent: Mapping[str, int], at: datetime) -> None:
        """Once a minute: each paced offer's rate for the minute starting at ``at``, from what its counters say
        was spent (``spent``: by offer id for today's budget, ``<offer id>:goal`` for its goal)."""
        with self._lock:
            paces: dict[str, _Pace] = {}
            for offer in offers:
                if offer.pacing == "asap" or (offer.daily_budget is None and offer.goal is None):
                    continue
                local = at.astimezone(ZoneInfo(offer.timezone))
                pace = self._paces.get(offer.id)
                if pace is None or pace.day != local.date():
                    minutes = live_minutes(offer.schedule, local.date(), offer.timezone)
                    pace = _Pace(local.date(), minutes)
                minute = local.hour * 60 + local.minute
                if _holds(pace.minutes, minute - 1):  # only live minutes say what a live minute brings
                    self._forecast(pace)
                pace.eligible = 0
                done = bisect_right(pace.minutes, minute)  # this minute's end is the next target
                expected = (pace.forecast or 0.0) * self.workers
                rates = []
                if offer.daily_budget is not None:
                    share = done / len(pace.minutes) if pace.minutes else 1.0
                    rates.append(pass_rate(offer.daily_budget, spent.get(offer.id, 0), share, offer.pacing, expected))
                if offer.goal is not None and offer.goal.first_day <= local.date() <= offer.goal.last_day:
                    share = self._goal_share(offer, local.date(), done)
                    goal_spent = spent.get(f"{offer.id}:goal", 0)
                    rates.append(pass_rate(offer.goal.impressions, goal_spent, share, offer.pacing, expected))
                pace.p = min(rates, default=1.0)
                paces[offer.id] = pace
            self._paces = paces

    def _goal_share(self, offer: Offer, today: date, done_today: int) -> float:
        """The share of the goal's live minutes gone by the end of this minute."""
        assert offer.goal is not None
        days = self._goal_days.get((offer.id, offer.version))
        if days is None:
            first, count = offer.goal.first_day, (offer.goal.last_day - offer.goal.first_day).days + 1
            days = [len(live_minutes(offer.schedule, first + timedelta(days=n), offer.timezone)) for n in range(count)]
            self._goal_days = {k: v for k, v in self._goal_days.items() if k[0] != offer.id}
            self._goal_days[(offer.id, offer.version)] = days
        total = sum(days)
        before = sum(days[: (today - offer.goal.first_day).days])
        return (before + done_today) / total if total else 1.0

    @staticmethod
    def _forecast(pace: _Pace) -> None:
        """Held-back requests count too (they are counted before the draw)."""
        seen = pace.eligible
        pace.forecast = seen if pace.forecast is None else SMOOTHING * seen + (1 - SMOOTHING) * pace.forecast
