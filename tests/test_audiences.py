"""Audience rules over hand-built visit histories, through the real DuckDB query over the Parquet event store.

A visit is a device's run of pings inside one fence with gaps under 30 minutes, dated by its first ping; every
rule counts visits in a window that ends at the refresh (``NOW``) and starts ``days`` × 24 h before it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from geotarget.audiences.gate import gate_for
from geotarget.audiences.model import RULE, Dwellers, Lapsed, Regulars, Visitors
from geotarget.catalog.model import AudienceSelection
from geotarget.measurement.events import Event, ping_event_id, visit_event_id
from geotarget.store.event_store import ParquetEventStore, events_to_table
from geotarget.store.report_queries import audience_members

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CAFE, RIVAL = "fen_cafe", "fen_rival"
ZONES = {CAFE: "Europe/Lisbon"}


class History:
    """Pings written to a real event store, a visit at a time."""

    def __init__(self, root):
        self.store = ParquetEventStore(root)
        self.events: list[Event] = []
        self.fences: list[list[str]] = []

    def visit(self, device: str, start: datetime, minutes: int = 0, every: int = 5, fence: str = CAFE) -> History:
        """Pings inside ``fence`` from ``start`` every ``every`` minutes for ``minutes``."""
        for step in range(0, minutes + 1, every):
            at = start + timedelta(minutes=step)
            self.events.append(
                Event(kind="ping", event_id=ping_event_id(device, at), at=at, device_key=device, lat=0, lon=0, cell="")
            )
            self.fences.append([fence])
        return self

    def kept_visit(self, device: str, start: datetime, fence: str = CAFE) -> History:
        """A visit record left after retention replaced its raw pings."""
        ms = int(start.timestamp() * 1000)
        event_id = visit_event_id(device, fence, ms)
        self.events.append(Event(kind="visit", event_id=event_id, at=start, device_key=device, lat=0, lon=0, cell=""))
        self.fences.append([fence])
        return self

    def members(self, rule, zones=ZONES, erased=()) -> set[str]:
        self.store.write(events_to_table(self.events, self.fences))
        self.events, self.fences = [], []
        return set(audience_members(self.store, rule, zones, NOW, erased))


def days_ago(days: float, hour: int = 0) -> datetime:
    return NOW - timedelta(days=days) + timedelta(hours=hour)


@pytest.fixture
def history(tmp_path):
    return History(tmp_path / "events")


def visitors(**figures):
    return Visitors(kind="visitors", geofence_ids=(CAFE,), **figures)


def test_visitors_need_min_visits_within_days(history):
    history.visit("twice", days_ago(10)).visit("twice", days_ago(10, hour=2))  # two visits: 2 h apart
    history.visit("once", days_ago(10)).visit("once", days_ago(10) + timedelta(minutes=20))  # one: a 20-min gap
    history.visit("old", days_ago(31)).visit("old", days_ago(5))
    assert history.members(visitors(min_visits=2, days=30)) == {"twice"}
    assert history.members(visitors(min_visits=1, days=30)) == {"twice", "once", "old"}


def test_a_visit_counts_from_exactly_days_before_the_refresh_and_not_a_second_earlier(history):
    history.visit("on-the-edge", NOW - timedelta(days=30))
    history.visit("just-outside", NOW - timedelta(days=30, seconds=1))
    assert history.members(visitors(days=30)) == {"on-the-edge"}


def test_a_visit_that_started_before_the_window_is_dated_by_its_start(history):
    history.visit("long-stay", NOW - timedelta(days=30, minutes=20), minutes=40)  # starts 20 min outside
    assert history.members(visitors(days=30)) == set()


def test_regulars_count_days_in_the_fences_own_time_zone(history):
    new_york = {CAFE: "America/New_York"}
    # 03:00 and 15:00 UTC on one UTC day are two days in New York (23:00 the evening before, 10:00)
    for device in ("regular", "utc-regular"):
        history.visit(device, days_ago(3, hour=-9))  # 03:00 UTC
        history.visit(device, days_ago(3, hour=3))  # 15:00 UTC, the same UTC day
        history.visit(device, days_ago(2, hour=3))
    assert history.members(Regulars(kind="regulars", geofence_ids=(CAFE,), min_days=3), new_york) == {
        "regular",
        "utc-regular",
    }
    assert history.members(Regulars(kind="regulars", geofence_ids=(CAFE,), min_days=3)) == set()  # Lisbon: 2 days


def test_regulars_need_different_days_not_many_visits(history):
    for hour in (0, 2, 4, 6):
        history.visit("busy-day", days_ago(5, hour=hour))
    for day in (1, 8, 20):
        history.visit("regular", days_ago(day))
    history.visit("lapsing", days_ago(1)).visit("lapsing", days_ago(8)).visit("lapsing", days_ago(29))
    rule = Regulars(kind="regulars", geofence_ids=(CAFE,), min_days=3, days=28)
    assert history.members(rule) == {"regular"}


def test_lapsed_were_seen_within_the_long_window_and_not_within_the_short_one(history):
    history.visit("lapsed", days_ago(60))
    history.visit("still-coming", days_ago(60)).visit("still-coming", days_ago(10))
    history.visit("long-gone", days_ago(100))
    history.kept_visit("lapsed-long-ago", days_ago(80))  # only a visit record left after retention
    rule = Lapsed(kind="lapsed", geofence_ids=(CAFE,), seen_within_days=90, not_within_days=30)
    assert history.members(rule) == {"lapsed", "lapsed-long-ago"}


def test_dwellers_stayed_min_dwell_in_one_visit(history):
    history.visit("stayed", days_ago(3), minutes=12, every=2)
    history.visit("popped-in", days_ago(3), minutes=8, every=2)
    history.visit("twice-briefly", days_ago(3), minutes=8).visit("twice-briefly", days_ago(3, hour=1), minutes=8)
    history.visit("sparse-pings", days_ago(3), minutes=40, every=20)  # gaps under 30 min: one 40-minute visit
    history.kept_visit("unknown-dwell", days_ago(3))
    rule = Dwellers(kind="dwellers", geofence_ids=(CAFE,), min_dwell_s=600, days=30)
    assert history.members(rule) == {"stayed", "sparse-pings"}


def test_only_the_chosen_fences_count_and_erased_devices_never(history):
    history.visit("rival-visitor", days_ago(2), fence=RIVAL)
    history.visit("cafe-visitor", days_ago(2))
    history.visit("erased", days_ago(2), fence=RIVAL)
    rivals = Visitors(kind="visitors", geofence_ids=(RIVAL,))
    assert history.members(rivals, {RIVAL: "Europe/Lisbon"}, erased={"erased"}) == {"rival-visitor"}
    assert history.members(rivals, {CAFE: "Europe/Lisbon"}) == {"cafe-visitor"}


def test_limit_ad_tracking_pings_have_no_device_and_make_no_member(history):
    history.visit("", days_ago(1))
    assert history.members(visitors()) == set()


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ({"kind": "visitors"}, "give geofence_ids or tags"),
        ({"kind": "visitors", "geofence_ids": ["a"], "tags": ["b"]}, "not both"),
        ({"kind": "regulars", "tags": ["cafe"], "min_days": 10, "days": 7}, "cannot fit in a window of 7 days"),
        ({"kind": "lapsed", "tags": ["cafe"], "seen_within_days": 30, "not_within_days": 30}, "must be fewer"),
        ({"kind": "dwellers", "tags": ["cafe"], "min_dwell_s": 5}, "greater than or equal to 60"),
        ({"kind": "loyal", "tags": ["cafe"]}, "visitors"),
        ({"kind": "visitors", "tags": ["cafe"], "days": 366}, "less than or equal to 365"),
    ],
)
def test_rules_that_make_no_sense_are_refused(rule, says):
    with pytest.raises(ValidationError, match=says):
        RULE.validate_python(rule)


def test_the_gate_admits_members_of_an_included_audience_and_turns_away_members_of_an_excluded_one():
    live = {"aud_regulars": 4, "aud_rivals": 2}
    new_customers = gate_for(AudienceSelection(exclude=("aud_regulars",)), live)
    rivals_only = gate_for(AudienceSelection(include=("aud_rivals", "aud_gone")), live)
    assert new_customers.admits({}) and not new_customers.admits({"aud_regulars": {4}})
    assert new_customers.admits({"aud_regulars": {3}})  # an old generation is not membership
    assert rivals_only.admits({"aud_rivals": {2}}) and not rivals_only.admits({})
    nobody = gate_for(AudienceSelection(include=("aud_suppressed",)), live)
    assert not nobody.possible  # an included audience under k (no live generation) matches nobody
    assert gate_for(AudienceSelection(exclude=("aud_suppressed",)), live) is None  # excludes nobody: nothing to read
    assert gate_for(None, live) is None and gate_for(AudienceSelection(), live) is None
