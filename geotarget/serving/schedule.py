"""When an offer is live: weekly windows in the fence's own time zone, validity dates and blackout dates.

The only module that works in local time. A window ``{"days": ["mon"], "start": "22:00", "end": "02:00"}`` runs
past midnight: it belongs to the day it starts on (Monday), so validity and blackout dates are those of its start.
Windows are wall-clock times, so DST changes need no special case: "07:00–10:00" is 07:00–10:00 on the clock on
both sides of a change (a window over a skipped hour is simply shorter that day, over a repeated hour longer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from geotarget.errors import InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ALIASES = {"weekdays": DAYS[:5], "weekends": DAYS[5:], "daily": DAYS}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
MAX_WINDOWS = 28


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time | None  # None: midnight at the end of the day ("24:00")

    @property
    def overnight(self) -> bool:
        return self.end is not None and self.end <= self.start


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...] = ()
    valid_from: date | None = None
    valid_to: date | None = None
    blackout_dates: frozenset[date] = frozenset()

    def runs_on(self, day: date) -> bool:
        if self.valid_from is not None and day < self.valid_from:
            return False
        if self.valid_to is not None and day > self.valid_to:
            return False
        return day not in self.blackout_dates


ALWAYS = Schedule()


def is_live(schedule: Schedule | None, at: datetime, timezone: str) -> bool:
    """Whether ``schedule`` runs at the instant ``at`` (timezone-aware) in ``timezone``.

    >>> from datetime import UTC
    >>> lattes = parse_schedule({"windows": [{"days": ["weekdays"], "start": "07:00", "end": "10:00"}]})
    >>> is_live(lattes, datetime(2026, 11, 23, 8, 30, tzinfo=UTC), "Europe/Lisbon")  # a Monday, 08:30 in Lisbon
    True
    """
    if schedule is None:
        return True
    local = at.astimezone(ZoneInfo(timezone))
    today, now = local.date(), local.time().replace(tzinfo=None)
    if not schedule.windows:
        return schedule.runs_on(today)
    yesterday = today - timedelta(days=1)
    for window in schedule.windows:
        if window.overnight:
            assert window.end is not None
            if today.weekday() in window.days and now >= window.start and schedule.runs_on(today):
                return True
            if yesterday.weekday() in window.days and now < window.end and schedule.runs_on(yesterday):
                return True
        elif (
            today.weekday() in window.days
            and window.start <= now
            and (window.end is None or now < window.end)
            and schedule.runs_on(today)
        ):
            return True
    return False


class LiveNow:
    """``is_live`` for interned (schedule, zone) pairs, remembered for the current minute: schedules are
    whole minutes and zone offsets are whole minutes, so the answer cannot change within one."""

    def __init__(self, schedule_of: tuple[tuple[Schedule, str], ...]) -> None:
        self._schedule_of = schedule_of
        self._minute = -1
        self._known: dict[int, bool] = {}

    def __call__(self, number: int, at: datetime) -> bool:
        if number < 0:
            return True
        minute = int(at.timestamp() // 60)
        if minute != self._minute:
            self._minute, self._known = minute, {}
        known = self._known.get(number)
        if known is None:
            schedule, zone = self._schedule_of[number]
            known = self._known[number] = is_live(schedule, at, zone)
        return known


def parse_schedule(raw: Any, field: str = "schedule") -> Schedule | None:
    """Validate the JSON form; ``None`` means always live. Raises ``InvalidInput`` naming the bad field."""
    if raw is None:
        return None
    if isinstance(raw, list):  # a bare list of windows
        raw = {"windows": raw}
    if not isinstance(raw, Mapping):
        raise InvalidInput("schedule must be an object with 'windows' (and optional dates)", field)
    unknown = set(raw) - {"windows", "valid_from", "valid_to", "blackout_dates"}
    if unknown:
        raise InvalidInput(f"unknown schedule field(s): {', '.join(sorted(unknown))}", field)
    windows_raw = raw.get("windows") or []
    if not isinstance(windows_raw, list) or len(windows_raw) > MAX_WINDOWS:
        raise InvalidInput(f"windows must be a list of at most {MAX_WINDOWS} windows", f"{field}.windows")
    windows = tuple(_window(w, f"{field}.windows[{i}]") for i, w in enumerate(windows_raw))
    valid_from = _date(raw.get("valid_from"), f"{field}.valid_from")
    valid_to = _date(raw.get("valid_to"), f"{field}.valid_to")
    if valid_from and valid_to and valid_to < valid_from:
        raise InvalidInput("valid_to is before valid_from", f"{field}.valid_to")
    blackout_raw = raw.get("blackout_dates") or []
    if not isinstance(blackout_raw, list) or len(blackout_raw) > 366:
        raise InvalidInput("blackout_dates must be a list of dates", f"{field}.blackout_dates")
    blackout = frozenset(
        d for i, v in enumerate(blackout_raw) if (d := _date(v, f"{field}.blackout_dates[{i}]")) is not None
    )
    return Schedule(windows, valid_from, valid_to, blackout)


def schedule_to_json(schedule: Schedule | None) -> dict[str, Any] | None:
    if schedule is None:
        return None
    return {
        "windows": [
            {
                "days": [DAYS[d] for d in sorted(w.days)],
                "start": w.start.strftime("%H:%M"),
                "end": "24:00" if w.end is None else w.end.strftime("%H:%M"),
            }
            for w in schedule.windows
        ],
        "valid_from": schedule.valid_from.isoformat() if schedule.valid_from else None,
        "valid_to": schedule.valid_to.isoformat() if schedule.valid_to else None,
        "blackout_dates": sorted(d.isoformat() for d in schedule.blackout_dates),
    }


def _window(raw: Any, field: str) -> Window:
    if not isinstance(raw, Mapping):
        raise InvalidInput('a window is {"days": [...], "start": "HH:MM", "end": "HH:MM"}', field)
    days = _days(raw.get("days"), f"{field}.days")
    start = _clock(raw.get("start"), f"{field}.start")
    end = _clock(raw.get("end"), f"{field}.end")
    if start is None:
        raise InvalidInput("a window cannot start at 24:00", f"{field}.start")
    if end == start:
        raise InvalidInput("start and end are equal; use 00:00 to 24:00 for a whole day", f"{field}.end")
    return Window(days, start, end)


def _days(raw: Any, field: str) -> frozenset[int]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, Sequence) or not raw:
        raise InvalidInput("days must list at least one of mon…sun (or weekdays, weekends, daily)", field)
    days: set[int] = set()
    for name in raw:
        key = str(name).lower()[:3] if str(name).lower() not in _ALIASES else str(name).lower()
        if key in _ALIASES:
            days.update(DAYS.index(d) for d in _ALIASES[key])
        elif key in DAYS:
            days.add(DAYS.index(key))
        else:
            raise InvalidInput(f"{name!r} is not a day (mon…sun, weekdays, weekends, daily)", field)
    return frozenset(days)


def _clock(raw: Any, field: str) -> time | None:
    if not isinstance(raw, str) or not _CLOCK.match(raw):
        raise InvalidInput(f"{raw!r} is not a time of day: use HH:MM, 00:00 to 24:00", field)
    if raw == "24:00":
        return None
    hours, minutes = raw.split(":")
    return time(int(hours), int(minutes))


def _date(raw: Any, field: str) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise InvalidInput(f"{raw!r} is not a date (YYYY-MM-DD)", field) from None
