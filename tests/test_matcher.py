"""The matcher and the cap rules, pure: no Redis, no SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from geofences import Proximity
from geotarget.catalog.model import Caps, Offer, Targeting
from geotarget.serving.caps import GlobalCaps, counters_for, period
from geotarget.serving.matcher import MatchRequest, match
from geotarget.serving.ranking import rank, score
from geotarget.serving.schedule import parse_schedule
from geotarget.serving.targeting import matches
from geotarget.serving.types import Attributes, Candidate

MONDAY_MORNING = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 08:00 in Lisbon


def offer(offer_id: str, merchant: str = "cafe", **fields) -> Offer:
    base = {
        "title": offer_id,
        "geofence_ids": ("alfama",),
        "timezone": "Europe/Lisbon",
        "created_at": MONDAY_MORNING,
        "updated_at": MONDAY_MORNING,
    }
    return Offer(id=offer_id, merchant_id=merchant, **{**base, **fields})


INSIDE_ALFAMA = [Proximity("alfama", True, 0.0)]
ZONES = {"alfama": "Europe/Lisbon", "chiado": "Europe/Lisbon"}


def ranked_ids(proximities, offers, **request) -> list[str]:
    by_fence: dict[str, list[Offer]] = {}
    for o in offers:
        for f in o.geofence_ids:
            by_fence.setdefault(f, []).append(o)
    req = MatchRequest(
        request.pop("at", MONDAY_MORNING),
        request.pop("accuracy_m", 10.0),
        request.pop("attributes", Attributes()),
        **request,
    )
    return [c.offer.id for c in match(req, proximities, by_fence, ZONES)]


def test_inside_offers_come_before_nearby_ones_whatever_their_priority():
    near = offer("chiado-cake", geofence_ids=("chiado",), nearby_m=500, priority=100)
    inside = offer("alfama-latte", priority=10)
    places = [Proximity("alfama", True, 0.0), Proximity("chiado", False, 120.0)]
    assert ranked_ids(places, [near, inside]) == ["alfama-latte", "chiado-cake"]


def test_a_special_is_boosted_and_ties_break_by_distance_then_id():
    assert score(offer("a", priority=40, special=True), True, 0) > score(offer("b", priority=50), True, 0)
    twins = [offer("b"), offer("a")]
    assert ranked_ids(INSIDE_ALFAMA, twins) == ["a", "b"]


def test_nearby_offers_reach_only_as_far_as_their_nearby_m():
    kiosk = offer("kiosk", geofence_ids=("chiado",), nearby_m=100)
    assert ranked_ids([Proximity("chiado", False, 99.0)], [kiosk]) == ["kiosk"]
    assert ranked_ids([Proximity("chiado", False, 101.0)], [kiosk]) == []


def test_an_inaccurate_ping_does_not_trigger_inside_only_offers():
    inside_only, with_reach = offer("inside-only"), offer("reach", nearby_m=300)
    assert ranked_ids(INSIDE_ALFAMA, [inside_only, with_reach], accuracy_m=250.0) == ["reach"]
    assert ranked_ids(INSIDE_ALFAMA, [inside_only, with_reach], accuracy_m=50.0) == ["inside-only", "reach"]


def test_only_active_offers_live_now_for_this_audience_match():
    lattes = parse_schedule({"windows": [{"days": ["weekdays"], "start": "07:00", "end": "10:00"}]})
    offers = [
        offer("paused", status="paused"),
        offer("special", schedule=lattes, special=True),
        offer("evening", schedule=parse_schedule([{"days": ["daily"], "start": "18:00", "end": "22:00"}])),
        offer("young", targeting=Targeting(age_range=(18, 25))),
    ]
    assert ranked_ids(INSIDE_ALFAMA, offers, per_merchant=10) == ["special"]
    assert ranked_ids(INSIDE_ALFAMA, offers, per_merchant=10, attributes=Attributes(age=22)) == ["special", "young"]


def test_at_most_n_offers_per_merchant():
    offers = [offer(f"o{i}", priority=50 + i) for i in range(5)] + [offer("other", merchant="gym")]
    assert ranked_ids(INSIDE_ALFAMA, offers, per_merchant=2) == ["o4", "o3", "other"]


@pytest.mark.parametrize(
    ("targeting", "attributes", "expected"),
    [
        (Targeting(), Attributes(), True),
        (Targeting(gender=["F"]), Attributes(gender="f"), True),
        (Targeting(interests=["coffee", "books"]), Attributes(interests=frozenset({"Coffee"})), True),
        (Targeting(interests=["coffee"]), Attributes(interests=frozenset({"gym"})), False),
        (Targeting(os=["iOS"]), Attributes(os="android"), False),
        (Targeting(language=["pt-PT"]), Attributes(language="pt_BR"), True),
        (Targeting(language=["pt"]), Attributes(), False),
    ],
)
def test_targeting_table(targeting, attributes, expected):
    assert matches(targeting, attributes) is expected


def test_each_cap_becomes_a_counter_with_the_right_window():
    capped = offer(
        "latte",
        caps=Caps(per_device_per_hour=1, per_device_per_day=3, per_device_per_week=5, per_device_lifetime=9),
        daily_budget=1000,
    )
    candidate = Candidate(capped, "alfama", True, 0.0, 50.0)
    counters = counters_for(candidate, MONDAY_MORNING, "Europe/Lisbon", GlobalCaps(2, 6), merchant_cap=4)
    summary = {(c.scope, c.period, c.limit, c.per_device) for c in counters}
    assert summary == {
        ("offer", "h:2026-11-23T08+0000", 1, True),
        ("offer", "d:2026-11-23", 3, True),
        ("offer", "w:2026-W48", 5, True),
        ("offer", "life", 9, True),
        ("merchant", "d:2026-11-23", 4, True),
        ("global", "h:2026-11-23T08+0000", 2, True),
        ("global", "d:2026-11-23", 6, True),
        ("budget", "d:2026-11-23", 1000, False),
    }


@pytest.mark.parametrize(
    ("instant", "zone", "window", "label", "ttl_s"),
    [
        ("2026-11-23T23:30", "Europe/Lisbon", "d", "d:2026-11-23", 30 * 60 + 60),
        ("2026-11-23T23:30", "Europe/Helsinki", "d", "d:2026-11-24", 22 * 3600 + 30 * 60 + 60),  # 01:30 local
        ("2026-03-08T04:30", "America/New_York", "d", "d:2026-03-07", 30 * 60 + 60),  # 23:30 EST
        ("2026-03-08T05:30", "America/New_York", "d", "d:2026-03-08", 22 * 3600 + 30 * 60 + 60),  # 23-hour day
        ("2026-11-29T12:00", "Europe/Lisbon", "w", "w:2026-W48", 12 * 3600 + 60),  # Sunday noon
        ("2026-11-23T08:15", "Europe/Lisbon", "h", "h:2026-11-23T08+0000", 45 * 60 + 60),
    ],
)
def test_cap_windows_follow_the_local_calendar(instant, zone, window, label, ttl_s):
    at = datetime.fromisoformat(instant).replace(tzinfo=UTC)
    assert period(window, at, zone) == (label, ttl_s)


def test_rank_is_deterministic():
    a = Candidate(offer("a"), "alfama", False, 50.0, 10.0)
    b = Candidate(offer("b"), "alfama", False, 40.0, 10.0)
    assert [c.offer.id for c in rank([a, b], 5)] == ["b", "a"]
