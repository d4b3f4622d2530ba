"""Daily rollups and merged weeks are exact: for random event histories, every report, audience, lift and rotation
figure read from rollups equals the same figure read from raw events (k-suppression included), also after late
events make a rolled day (and its week) stale and after it is rolled again; rollups stand in for a day's pings,
only for closed days, a week only while its days' rollups are current, and an erasure reaches them too."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from geotarget.audiences.model import Dwellers, Lapsed, Regulars, Visitors
from geotarget.measurement.events import Event, ping_event_id, visit_event_id
from geotarget.store import rollups
from geotarget.store.event_store import ParquetEventStore, events_to_table
from geotarget.store.report_queries import (
    Scope,
    audience_members,
    heatmap_rows,
    lift_arms,
    reach_figures,
    variant_counts,
)

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
DAYS = 9  # a whole week, merged once rolled, and two days of the next
TODAY = (START + timedelta(days=DAYS)).date()  # every day of a history is closed
FENCES = ("fen_a", "fen_b")
DEVICES = [f"dev{n}" for n in range(6)]
ZONES = ("UTC", "Asia/Kathmandu", "America/St_Johns")  # whole hours, +05:45, -03:30

instants = st.integers(0, DAYS * 24 * 60 - 1).map(lambda minute: START + timedelta(minutes=minute))
gaps = st.sampled_from([1, 5, 14, 15, 16, 29, 30, 31, 45, 90])  # around a quarter hour and the 30-minute rule


@st.composite
def runs(draw: st.DrawFn) -> list[tuple[str, datetime, list[str]]]:
    """A device's pings: a start, then gaps, each ping inside one fence, both or none."""
    device = draw(st.sampled_from(DEVICES))
    at = draw(instants)
    inside = draw(st.sampled_from([[FENCES[0]], [FENCES[1]], list(FENCES), []]))
    pings = []
    for gap in draw(st.lists(gaps, max_size=12)):
        pings.append((device, at, inside))
        at += timedelta(minutes=gap, seconds=draw(st.integers(0, 59)))
    return pings


@st.composite
def offer_events(draw: st.DrawFn) -> list[Event]:
    """An impression (pulled, pushed or won, with a variant or not) or a ghost, a cap-blocked serve, a bid or a
    scan; an impression may be clicked and redeemed; a static code may be redeemed with no impression."""
    device = draw(st.sampled_from([*DEVICES, ""]))
    at = draw(instants)
    fence = draw(st.sampled_from(FENCES))
    kind = draw(st.sampled_from(["impression", "impression", "ghost", "cap_blocked", "bid", "scan", "redemption"]))
    n = 0  # made unique by the history
    common = {"lat": 0.0, "lon": 0.0, "cell": "", "offer_id": "off_x", "merchant_id": "mer_x", "fence_id": fence}
    if kind == "redemption":  # a static code, no impression
        return [Event(kind=kind, event_id=f"r{n}", at=at, device_key="", **common)]
    trigger = draw(st.sampled_from(["", "enter", "scan"])) if kind == "impression" else ""
    price = draw(st.sampled_from([None, 1.5])) if kind == "impression" else None
    variant = draw(st.sampled_from(["", "a", "b"])) if kind == "impression" else ""
    shown = Event(
        kind=kind, event_id=f"e{n}", at=at, device_key=device, trigger=trigger, price=price, variant=variant, **common
    )
    events = [shown]
    if kind == "impression":  # as the product writes them: a click names only its impression, a redemption its offer
        for outcome in draw(st.lists(st.sampled_from(["click", "redemption"]), max_size=2)):
            later = at + timedelta(minutes=draw(st.integers(1, 3000)))
            scope = {"offer_id": "off_x", "merchant_id": "mer_x"} if outcome == "redemption" else {}
            bare = {"device_key": "", "lat": 0.0, "lon": 0.0, "cell": "", "ref": shown.event_id}
            events.append(Event(kind=outcome, event_id=f"{outcome}{n}", at=later, **bare, **scope))
    return events


@st.composite
def histories(draw: st.DrawFn, name: str) -> tuple[list[Event], list[list[str]]]:
    """Pings, visit records and offer events; every event its own id (``name`` apart from another history's)."""
    events: list[Event] = []
    fences: list[list[str]] = []
    for run in draw(st.lists(runs(), max_size=12)):
        for device, at, inside in run:
            events.append(
                Event(
                    kind="ping", event_id=ping_event_id(device, at), at=at, device_key=device, lat=0.0, lon=0.0, cell=""
                )
            )
            fences.append(inside)
    for kept in draw(st.lists(st.tuples(st.sampled_from(DEVICES), instants, st.sampled_from(FENCES)), max_size=3)):
        device, at, fence = kept  # a visit record retention kept of pings gone
        ms = int(at.timestamp() * 1000)
        events.append(
            Event(
                kind="visit",
                event_id=visit_event_id(device, fence, ms),
                at=at,
                device_key=device,
                lat=0.0,
                lon=0.0,
                cell="",
            )
        )
        fences.append([fence])
    for number, group in enumerate(draw(st.lists(offer_events(), max_size=14))):
        own = {e.event_id: f"{name}{number}:{e.event_id}" for e in group}
        events.extend(replace(e, event_id=own[e.event_id], ref=own.get(e.ref, e.ref)) for e in group)
        fences.extend([] for _ in group)
    twice = draw(st.lists(st.integers(0, max(0, len(events) - 1)), max_size=4)) if events else []
    return events + [events[i] for i in twice], fences + [fences[i] for i in twice]


def figures(store: ParquetEventStore, zone: str, k: int) -> dict[str, Any]:
    """Every figure reports, audiences, lift and rotation ask of the store, over the whole history."""
    start, end = START, START + timedelta(days=DAYS)
    local = datetime.combine(START.date() + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo(zone))
    local_end = local + timedelta(days=4)
    now = start + timedelta(days=5, hours=7, minutes=13)  # an instant inside a rolled day: its edges read raw
    rules = [
        Visitors(kind="visitors", geofence_ids=FENCES, min_visits=2, days=3),
        Regulars(kind="regulars", geofence_ids=FENCES, min_days=2, days=4),
        Dwellers(kind="dwellers", geofence_ids=FENCES, min_dwell_s=600, days=3),
        Lapsed(kind="lapsed", geofence_ids=FENCES, seen_within_days=4, not_within_days=1),
    ]
    scopes = {
        "merchant": Scope(merchant_id="mer_x", visit_fences=FENCES),
        "fence": Scope(fence_ids=("fen_a",), visit_fences=("fen_a",)),
        "offer": Scope(offer_ids=("off_x",), visit_fences=FENCES),
    }
    found: dict[str, Any] = {
        "merchant by day": reach_figures(store, scopes["merchant"], local, local_end, zone, "day", k),
        "fence by week": reach_figures(store, scopes["fence"], start, end, zone, "week", k),
        "offer totals": reach_figures(store, scopes["offer"], local, local_end, zone, "day", k, whole=local.date()),
    }
    found["lift"] = lift_arms(store, "off_x", FENCES, start, start + timedelta(days=3), 2)
    found["audiences"] = [audience_members(store, rule, dict.fromkeys(FENCES, zone), now, ()) for rule in rules]
    found["variants"] = variant_counts(store, ["off_x"], start, end)
    found["heatmap"] = sorted(heatmap_rows(store, (-1.0, -1.0, 1.0, 1.0), local, local_end, "fen_a"))
    return found


@pytest.mark.timeout(900)  # a slow machine is no failure: hypothesis would shrink a timeout for minutes
@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # a failing history is long: show it anyway
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(histories("h"), histories("late"), st.sampled_from(ZONES), st.sampled_from([1, 2]))
def test_every_figure_from_rollups_equals_the_same_figure_from_raw_events(history, late, zone, k):
    with tempfile.TemporaryDirectory() as folder:
        store = ParquetEventStore(Path(folder))
        events, fences = history
        if events:
            store.write(events_to_table(events, fences))
        raw = figures(store, zone, k)

        store.roll(TODAY)
        assert figures(store, zone, k) == raw
        counted = {f.metric for f in raw["merchant by day"] if f.value} | ({"lift"} if raw["lift"] else set())
        for metric in sorted(counted & {"visits", "visits_after_exposure", "clicks", "lift"}):
            event(f"{metric} counted")  # hypothesis's statistics: the histories reach every kind of figure

        late_events, late_fences = late  # arrive after their days were rolled: those days read raw again
        if late_events:
            store.write(events_to_table(late_events, late_fences))
            with_late = figures(store, zone, k)
            store.roll(TODAY)
            assert figures(store, zone, k) == with_late


def ping(device: str, at: datetime, fence: str = "fen_a") -> tuple[Event, list[str]]:
    return Event(kind="ping", event_id=ping_event_id(device, at), at=at, device_key=device, lat=0, lon=0, cell=""), [
        fence
    ]


def write(store: ParquetEventStore, *pings: tuple[Event, list[str]]) -> None:
    store.write(events_to_table([e for e, _ in pings], [f for _, f in pings]))


def rolled_view(store: ParquetEventStore) -> tuple[int, int]:
    """(pings in the ``events`` view, rows of ``rolled_segments``) over every day."""
    with store.reading() as db:
        pings = db.execute("SELECT count(*) FROM events WHERE kind = 'ping'").fetchone()[0]
        segments = db.execute("SELECT count(*) FROM rolled_segments").fetchone()[0]
    return int(pings), int(segments)


def test_a_rolled_day_is_read_as_segments_and_the_open_day_as_pings(tmp_path):
    store = ParquetEventStore(tmp_path / "events")
    yesterday = datetime(2026, 11, 19, 9, tzinfo=UTC)
    write(store, *(ping("dev1", yesterday + timedelta(minutes=m)) for m in range(0, 60, 2)))  # 30 pings, 4 quarters
    write(store, *(ping("dev1", yesterday + timedelta(days=1, minutes=m)) for m in range(0, 10, 2)))  # today: 5
    assert rolled_view(store) == (35, 0)

    assert store.roll(date(2026, 11, 20)) == [date(2026, 11, 19)]  # today is not closed: not rolled
    assert rolled_view(store) == (5, 4)
    assert store.roll(date(2026, 11, 20)) == []  # nothing stale


def test_a_late_event_makes_its_day_raw_again_until_it_is_rolled_again(tmp_path):
    store = ParquetEventStore(tmp_path / "events")
    day = datetime(2026, 11, 19, 9, tzinfo=UTC)
    write(store, ping("dev1", day), ping("dev2", day))
    store.roll(date(2026, 11, 20))
    assert rolled_view(store) == (0, 2)

    write(store, ping("dev3", day + timedelta(hours=3)))  # a late event for a rolled day
    assert rolled_view(store) == (3, 0)  # the rollup no longer stands for the day's files
    assert store.roll(date(2026, 11, 20)) == [date(2026, 11, 19)]
    assert rolled_view(store) == (0, 3)
    assert len(store.area.names(rollups.FOLDER)) == 4  # the replaced rollup's two files wait a run...
    store.roll(date(2026, 11, 20))
    assert len(store.area.names(rollups.FOLDER)) == 2  # ...then go


def test_a_closed_week_is_read_as_one_merged_rollup_until_a_day_of_it_changes(tmp_path):
    store = ParquetEventStore(tmp_path / "events")
    monday = datetime(2026, 11, 9, 9, tzinfo=UTC)
    write(store, *(ping("dev1", monday + timedelta(days=n)) for n in range(8)))  # every day, and the next Monday
    store.roll(date(2026, 11, 16))  # the week is closed; its next Monday is today
    week = rollups.read_weeks(store.area)[date(2026, 11, 9)]
    assert store.views().rolled_segments == [week.segments]
    assert rolled_view(store) == (1, 7)
    assert len(store.views(date(2026, 11, 10)).rolled_segments) == 6  # a query not over the whole week: its days

    write(store, ping("dev2", monday + timedelta(days=2)))  # a late event on the Wednesday
    assert len(store.views().rolled_segments) == 6  # the other days' own rollups; Wednesday raw
    assert rolled_view(store) == (3, 6)
    store.roll(date(2026, 11, 16))
    again = rollups.read_weeks(store.area)[date(2026, 11, 9)]
    assert store.views().rolled_segments == [again.segments] != [week.segments]
    assert rolled_view(store) == (1, 8)


def test_a_rolled_click_takes_its_impressions_scope_so_other_fences_reports_skip_it(tmp_path):
    store = ParquetEventStore(tmp_path / "events")
    at = datetime(2026, 11, 19, 9, tzinfo=UTC)
    scope = {"lat": 0.0, "lon": 0.0, "cell": "", "offer_id": "off_x", "merchant_id": "mer_x", "fence_id": "fen_b"}
    shown = Event(kind="impression", event_id="imp1", at=at, device_key="dev1", **scope)
    bare = {"device_key": "", "lat": 0.0, "lon": 0.0, "cell": ""}
    click = Event(kind="click", event_id="clk1", at=at + timedelta(minutes=2), ref="imp1", **bare)
    store.write(events_to_table([shown, click]))
    store.roll(date(2026, 11, 20))
    rolled = rollups.read_index(store.area)[date(2026, 11, 19)]
    rows = store.area.read_table(rolled.events).to_pylist()
    assert [(r["kind"], r["merchant_id"], r["offer_id"], r["fence_id"]) for r in rows] == [
        ("click", "mer_x", "off_x", "fen_b"),
        ("impression", "mer_x", "off_x", "fen_b"),
    ]
    for fence, clicks in (("fen_b", 1.0), ("fen_a", 0.0)):
        figures = reach_figures(store, Scope(fence_ids=(fence,)), at, at + timedelta(hours=1), "UTC", "day", 1)
        assert sum(f.value for f in figures if f.metric == "clicks") == clicks


def test_erasure_reaches_the_rollups_and_the_merged_weeks(tmp_path):
    store = ParquetEventStore(tmp_path / "events")
    day = datetime(2026, 11, 19, 9, tzinfo=UTC)
    write(store, ping("dev1", day), ping("dev2", day), ping("dev1", day - timedelta(days=1)))
    store.roll(date(2026, 11, 23))  # Wednesday and Thursday rolled, their week merged
    assert rollups.read_weeks(store.area)
    store.erase_devices(["dev1"])
    for name in store.area.names():
        assert "dev1" not in store.area.read_table(name).column("device_key").to_pylist()
    store.roll(date(2026, 11, 23))  # the week merged again from its days' new rollups
    assert store.views().rolled_segments == [rollups.read_weeks(store.area)[date(2026, 11, 16)].segments]
    with store.reading() as db:
        assert db.execute("SELECT list(device_key) FROM rolled_segments").fetchone()[0] == ["dev2"]


def test_files_from_before_pushes_bids_clicks_and_variants_still_report_raw_and_rolled(tmp_path):
    """Event files written by older versions lack the newer columns (trigger, price, ref, variant): every view
    has them, as NULL, so the queries need no rewriting for them."""
    store = ParquetEventStore(tmp_path / "events")
    old_columns = ["kind", "event_id", "ts", "device_key", "lat", "lon", "cell", "offer_id", "merchant_id"]
    old_columns += ["fence_id", "inside", "distance_m", "accuracy_m", "fences"]
    day = datetime(2026, 11, 19, 9, tzinfo=UTC)
    shown = [
        Event(kind="impression", event_id=f"i{n}", at=day + timedelta(minutes=n), device_key=f"dev{n % 3}", lat=0,
              lon=0, cell="", offer_id="off_x", merchant_id="mer_x", fence_id="fen_a")
        for n in range(6)
    ]  # fmt: skip
    pings = [ping(f"dev{n}", day + timedelta(hours=1)) for n in range(3)]
    table = events_to_table(shown + [e for e, _ in pings], [[] for _ in shown] + [f for _, f in pings])
    folder = tmp_path / "events" / "day=2026-11-19"
    folder.mkdir(parents=True)
    pq.write_table(table.select(old_columns), folder / "old.parquet")

    def asked() -> tuple[list[Any], dict[str, tuple[int, int]], list[Any]]:
        scope = Scope(offer_ids=("off_x",), visit_fences=("fen_a",))
        reach = reach_figures(store, scope, day - timedelta(hours=9), day + timedelta(days=1), "UTC", "day", 1)
        return (
            reach,
            lift_arms(store, "off_x", ["fen_a"], day - timedelta(hours=9), day + timedelta(minutes=30), 1),
            variant_counts(store, ["off_x"], day - timedelta(hours=9), day + timedelta(days=1)),
        )

    raw = asked()
    figures_by_metric = {f.metric: f.value for f in raw[0]}
    assert figures_by_metric["impressions"] == 6 and figures_by_metric["visits_after_exposure"] == 3
    assert "pushes" not in figures_by_metric and "clicks" not in figures_by_metric and raw[2] == []
    assert raw[1] == {"exposed": (3, 3)}
    store.roll(date(2026, 11, 20))
    assert asked() == raw


def test_copies_that_differ_under_one_id_are_all_kept_for_the_query_to_choose(tmp_path):
    """A report picks, among an event's copies, the first within its window: a rollup that had kept only the first
    of the day would drop a redemption whose earlier copy lies before the window (found by the property test)."""
    store = ParquetEventStore(tmp_path / "events")
    day = datetime(2026, 11, 19, tzinfo=UTC)
    common = {"device_key": "", "lat": 0.0, "lon": 0.0, "cell": "", "offer_id": "off_x", "merchant_id": "mer_x"}
    copies = [Event(kind="redemption", event_id="r1", at=day + timedelta(hours=h), **common) for h in (1, 5)]
    store.write(events_to_table(copies))
    window = day + timedelta(hours=3), day + timedelta(hours=8)

    def redemptions() -> list[float]:
        found = reach_figures(store, Scope(offer_ids=("off_x",)), *window, "UTC", "day", 1, whole=day.date())
        return [f.value for f in found if f.metric == "redemptions"]

    assert redemptions() == [1.0]
    store.roll(date(2026, 11, 20))
    assert redemptions() == [1.0]
