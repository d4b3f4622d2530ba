"""Pacing a daily budget, simulated minute by minute with a virtual clock: constant and bursty traffic over a
special's three live hours is delivered within ±10 % of the even curve at every half hour and ends within 2 %
of the budget, never over it; frontloaded stays ahead early and still lands. Then the same through the API."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from api.deps import now
from geotarget.catalog.model import Offer
from geotarget.serving.pacing import Pacer, curve, live_minutes
from geotarget.serving.pacing_loop import pace_once
from geotarget.serving.schedule import parse_schedule
from tests.conftest import ADMIN
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE

BUDGET = 1_000
OPEN = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday, 07:00 in Lisbon (UTC in winter)
SPECIAL = {"windows": [{"days": ["weekdays"], "start": "07:00", "end": "10:00"}]}


def offer(pacing: str) -> Offer:
    return Offer.model_validate(
        {
            "id": "off_1",
            "merchant_id": "mer_1",
            "title": "t",
            "geofence_ids": ["f"],
            "timezone": "Europe/Lisbon",
            "daily_budget": BUDGET,
            "pacing": pacing,
            "schedule": SPECIAL,
            "version": 1,
            "created_at": OPEN,
            "updated_at": OPEN,
        }
    )


def constant(rng: random.Random, minute: int) -> int:
    return 40 + rng.randrange(-5, 6)


def bursty(rng: random.Random, minute: int) -> int:
    """Quiet, then rushes: a commuter peak at 08:00–08:30 and random bursts of ten times the usual."""
    base = 60 if 60 <= minute < 90 else 15
    return base * (10 if rng.random() < 0.05 else 1) + rng.randrange(0, 5)


def simulate(pacing: str, traffic, workers: int = 2, seed: int = 1) -> list[int]:
    """Spent at the end of each live minute; ``workers`` pacers share the budget counter and split requests."""
    rng = random.Random(seed)
    paced = offer(pacing)
    pacers = [Pacer(workers, draw=rng.random) for _ in range(workers)]
    spent, history = 0, []
    for minute in range(180):
        at = OPEN + timedelta(minutes=minute)
        for pacer in pacers:
            pacer.update([paced], {paced.id: spent}, at)
        for _ in range(traffic(rng, minute)):
            pacer = rng.choice(pacers)
            if pacer.passes(paced) and spent < BUDGET:  # the budget counter refuses past the budget
                spent += 1
        history.append(spent)
    return history


@pytest.mark.parametrize("traffic", [constant, bursty])
def test_even_pacing_follows_the_straight_curve_and_lands_on_the_budget(traffic):
    history = simulate("even", traffic)
    for half_hour in range(30, 181, 30):
        target = BUDGET * half_hour / 180
        assert abs(history[half_hour - 1] - target) <= 0.10 * target, (half_hour, history[half_hour - 1], target)
    assert BUDGET * 0.98 <= history[-1] <= BUDGET


@pytest.mark.parametrize("traffic", [constant, bursty])
def test_frontloaded_pacing_runs_ahead_early_and_still_lands(traffic):
    front, even = simulate("frontloaded", traffic), simulate("even", traffic)
    assert front[29] > even[29] * 1.1 and front[59] > even[59] * 1.05
    assert BUDGET * 0.98 <= front[-1] <= BUDGET


def test_asap_spends_as_traffic_comes():
    assert simulate("asap", constant)[30] == BUDGET  # 40 a minute: the budget is gone within the first half hour


def test_the_curve_and_the_live_minutes():
    minutes = live_minutes(parse_schedule(SPECIAL), OPEN.date(), "Europe/Lisbon")
    assert (minutes[0], minutes[-1], len(minutes)) == (420, 599, 180)
    assert curve(0.25, "even") == 0.25 and curve(0.25, "frontloaded") == pytest.approx(0.325)


def test_a_chain_of_paced_offers_with_one_schedule_works_out_its_live_minutes_once():
    """Each worker's first round (and the first after local midnight) used to test 1,440 minutes per offer:
    seconds of a worker's GIL for a chain's thousands of paced offers (scripts/bench_adops.py found it)."""
    chain = [offer("even").model_copy(update={"id": f"off_{n}"}) for n in range(3_000)]
    live_minutes.cache_clear()
    pacer = Pacer(workers=2)
    pacer.update(chain, {}, OPEN + timedelta(days=7))
    assert live_minutes.cache_info().misses == 1 and all(pacer.rate(o.id) == 1.0 for o in chain)


def test_a_paced_offer_ahead_of_its_curve_is_held_back_and_the_explainer_says_so(client, cafe, runtime):
    """Served through the API: once its budget counter is ahead of the even curve, the minute's rate is 0."""
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    body = {"title": "paced", "geofence_ids": [fence], "daily_budget": 10, "pacing": "even", "schedule": SPECIAL}
    paced = client.post("/v1/offers", json=body, headers=cafe.headers).json()
    app = {"Authorization": f"Bearer {client.post('/v1/apps', json={'name': 'a'}, headers=ADMIN).json()['api_key']}"}
    at = OPEN + timedelta(minutes=1)
    client.app.dependency_overrides[now] = lambda: at
    pace_once(runtime.server, at)  # not known before: everything passes, and this minute spends 2 of 10
    for device in ("a", "b"):
        assert client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": device}, headers=app).json()[
            "offers"
        ]
    pace_once(runtime.server, at + timedelta(minutes=1))  # the curve wants 10 × 3/180 by the next minute's end
    assert runtime.server.pacer.rate(paced["id"]) == 0.0
    params = {**INSIDE_ALFAMA_CAFE, "device_id": "c"}
    assert client.get("/v1/nearby", params=params, headers=app).json()["offers"] == []
    (why,) = client.get("/v1/explain", params=params, headers=ADMIN).json()["offers"]
    assert why["reason"] == "paced" and "pacing curve" in why["detail"]


def test_pacing_needs_a_budget(client, cafe):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    error = client.post("/v1/offers", json={"title": "t", "geofence_ids": [fence], "pacing": "even"},
                        headers=cafe.headers).json()["error"]  # fmt: skip
    assert error["field"] == "pacing" and "daily_budget" in error["message"]


def test_a_goal_is_paced_over_its_days_and_never_exceeded():
    """3,000 impressions over three weekday mornings of the special: about a third each day, all of it by the end."""
    rng = random.Random(5)
    goal = {"impressions": 3_000, "from": "2026-11-23", "to": "2026-11-25"}
    paced = Offer.model_validate(
        {"id": "off_g", "merchant_id": "m", "title": "t", "geofence_ids": ["f"], "timezone": "Europe/Lisbon",
         "goal": goal, "pacing": "even", "schedule": SPECIAL, "version": 1, "created_at": OPEN, "updated_at": OPEN}
    )  # fmt: skip
    pacers = [Pacer(2, draw=rng.random) for _ in range(2)]
    spent, by_day = 0, []
    for day in range(3):
        for minute in range(180):
            at = OPEN + timedelta(days=day, minutes=minute)
            for pacer in pacers:
                pacer.update([paced], {"off_g:goal": spent}, at)
            for _ in range(constant(rng, minute)):
                if rng.choice(pacers).passes(paced) and spent < 3_000:
                    spent += 1
        by_day.append(spent)
    assert all(abs(spent_by - 1_000 * (n + 1)) <= 100 for n, spent_by in enumerate(by_day)), by_day
    assert 2_940 <= by_day[-1] <= 3_000


def test_a_reached_goal_stops_the_offer_and_the_explainer_says_so(client, cafe, runtime):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    today = datetime.now(UTC).date()
    goal = {
        "impressions": 2,
        "from": (today - timedelta(days=1)).isoformat(),
        "to": (today + timedelta(days=1)).isoformat(),
    }
    made = client.post(
        "/v1/offers", json={"title": "goal", "geofence_ids": [fence], "goal": goal}, headers=cafe.headers
    )
    assert made.status_code == 201 and made.json()["goal"] == goal
    app = {"Authorization": f"Bearer {client.post('/v1/apps', json={'name': 'a'}, headers=ADMIN).json()['api_key']}"}
    where = [{**INSIDE_ALFAMA_CAFE, "device_id": f"g{n}"} for n in range(4)]
    shown = [bool(client.get("/v1/nearby", params=p, headers=app).json()["offers"]) for p in where]
    assert shown == [True, True, False, False]
    (why,) = client.get("/v1/explain", params={**INSIDE_ALFAMA_CAFE, "device_id": "g9"}, headers=ADMIN).json()["offers"]
    assert why["reason"] == "goal_reached" and "2 of 2 impressions" in why["detail"]
    past = {"impressions": 1, "from": "2020-01-01", "to": "2020-01-02"}  # outside its days a goal holds nothing back
    client.patch(f"/v1/offers/{made.json()['id']}", json={"goal": past}, headers=cafe.headers)
    assert client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": "g5"}, headers=app).json()["offers"]


def test_a_goal_must_run_forwards():
    with pytest.raises(ValueError, match="cannot be before"):
        offer("even").model_copy().model_validate(
            {
                **offer("even").model_dump(by_alias=True),
                "goal": {"impressions": 5, "from": "2026-12-02", "to": "2026-12-01"},
            }
        )
