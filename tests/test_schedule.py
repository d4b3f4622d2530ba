"""Daily specials run on the shop's clock: table tests with fixed instants (a café in Lisbon, a bar in New York
across the March DST change, a window over midnight, validity and blackout dates)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from geotarget.errors import InvalidInput
from geotarget.serving.schedule import is_live, parse_schedule

LISBON_LATTES = parse_schedule({"windows": [{"days": ["weekdays"], "start": "07:00", "end": "10:00"}]})
NY_HAPPY_HOUR = parse_schedule({"windows": [{"days": ["daily"], "start": "17:00", "end": "19:00"}]})
LATE_BAR = parse_schedule(
    {"windows": [{"days": ["fri", "sat"], "start": "22:00", "end": "02:00"}], "blackout_dates": ["2026-12-25"]}
)
DECEMBER_ONLY = parse_schedule(
    {
        "windows": [{"days": ["daily"], "start": "00:00", "end": "24:00"}],
        "valid_from": "2026-12-01",
        "valid_to": "2026-12-31",
    }
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "zone", "instant", "live"),
    [
        # Lisbon is UTC+0 in winter, UTC+1 in summer: 07:00 local moves in UTC, the special does not.
        (LISBON_LATTES, "Europe/Lisbon", "2026-11-23T07:00", True),  # Monday 07:00 WET
        (LISBON_LATTES, "Europe/Lisbon", "2026-11-23T09:59", True),
        (LISBON_LATTES, "Europe/Lisbon", "2026-11-23T10:00", False),  # end is exclusive
        (LISBON_LATTES, "Europe/Lisbon", "2026-11-23T06:59", False),
        (LISBON_LATTES, "Europe/Lisbon", "2026-11-22T08:00", False),  # Sunday
        (LISBON_LATTES, "Europe/Lisbon", "2026-07-06T06:30", True),  # Monday 07:30 WEST
        (LISBON_LATTES, "Europe/Lisbon", "2026-07-06T09:30", False),  # 10:30 WEST
        # New York: EST (UTC−5) until Sunday 8 March 2026 02:00, then EDT (UTC−4).
        (NY_HAPPY_HOUR, "America/New_York", "2026-03-07T22:30", True),  # Sat 17:30 EST
        (NY_HAPPY_HOUR, "America/New_York", "2026-03-07T21:30", False),  # Sat 16:30 EST
        (NY_HAPPY_HOUR, "America/New_York", "2026-03-08T21:30", True),  # Sun 17:30 EDT (same UTC, other answer)
        (NY_HAPPY_HOUR, "America/New_York", "2026-03-08T23:00", False),  # Sun 19:00 EDT
        # Over midnight: Friday 22:00 to Saturday 02:00, and Saturday night into Sunday.
        (LATE_BAR, "Europe/Lisbon", "2026-11-27T23:30", True),  # Fri 23:30
        (LATE_BAR, "Europe/Lisbon", "2026-11-28T01:59", True),  # Sat 01:59, Friday's window
        (LATE_BAR, "Europe/Lisbon", "2026-11-28T02:00", False),
        (LATE_BAR, "Europe/Lisbon", "2026-11-29T01:00", True),  # Sun 01:00, Saturday's window
        (LATE_BAR, "Europe/Lisbon", "2026-11-30T01:00", False),  # Mon 01:00, Sunday has no window
        (LATE_BAR, "Europe/Lisbon", "2026-12-25T23:00", False),  # Christmas (a Friday) is blacked out
        (LATE_BAR, "Europe/Lisbon", "2026-12-26T01:00", False),  # ...including its after-midnight part
        (DECEMBER_ONLY, "Europe/Helsinki", "2026-11-30T22:00", True),  # already 1 December 00:00 in Helsinki
        (DECEMBER_ONLY, "Europe/Helsinki", "2026-11-30T21:59", False),
        (DECEMBER_ONLY, "Europe/Helsinki", "2026-12-31T21:59", True),
        (DECEMBER_ONLY, "Europe/Helsinki", "2026-12-31T22:00", False),  # 1 January in Helsinki
        (None, "Europe/Lisbon", "2026-11-23T03:00", True),  # no schedule: always
    ],
)
def test_offer_is_live_on_the_shops_own_clock(schedule, zone, instant, live):
    assert is_live(schedule, utc(instant), zone) is live


def test_a_window_over_the_skipped_dst_hour_is_just_shorter():
    night = parse_schedule({"windows": [{"days": ["sun"], "start": "01:30", "end": "03:30"}]})
    # Lisbon, 29 March 2026: at 01:00 UTC the clock jumps from 01:00 WET to 02:00 WEST; 01:30–02:00 never shows.
    assert not is_live(night, utc("2026-03-29T00:59"), "Europe/Lisbon")  # 00:59 WET: before
    assert is_live(night, utc("2026-03-29T01:00"), "Europe/Lisbon")  # 02:00 WEST: inside
    assert is_live(night, utc("2026-03-29T02:29"), "Europe/Lisbon")  # 03:29 WEST
    assert not is_live(night, utc("2026-03-29T02:30"), "Europe/Lisbon")  # 03:30 WEST: over, 90 minutes in all


def test_a_window_over_the_repeated_dst_hour_is_just_longer():
    night = parse_schedule({"windows": [{"days": ["sun"], "start": "01:00", "end": "02:00"}]})
    # Lisbon, 25 October 2026: 02:00 WEST falls back to 01:00 WET, so 01:00–02:00 happens twice.
    assert is_live(night, utc("2026-10-25T00:00"), "Europe/Lisbon")  # 01:00 WEST
    assert is_live(night, utc("2026-10-25T01:30"), "Europe/Lisbon")  # 01:30 WET, the second time round
    assert not is_live(night, utc("2026-10-25T02:00"), "Europe/Lisbon")  # 02:00 WET


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"windows": [{"days": ["funday"], "start": "07:00", "end": "10:00"}]}, "schedule.windows[0].days"),
        ({"windows": [{"days": ["mon"], "start": "7am", "end": "10:00"}]}, "schedule.windows[0].start"),
        ({"windows": [{"days": ["mon"], "start": "10:00", "end": "10:00"}]}, "schedule.windows[0].end"),
        ({"windows": [], "valid_from": "2026-12-31", "valid_to": "2026-12-01"}, "schedule.valid_to"),
        ({"windows": [], "blackout_dates": ["25/12/2026"]}, "schedule.blackout_dates[0]"),
        ({"window": []}, "schedule"),
    ],
)
def test_bad_schedules_name_the_field(raw, field):
    with pytest.raises(InvalidInput) as caught:
        parse_schedule(raw)
    assert caught.value.field == field
