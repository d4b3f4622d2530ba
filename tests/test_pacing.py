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
