"""Caps are a promise: 200 simultaneous requests for one device, against a real server with two worker
processes and a real Redis, never get more than the cap allows (20 repetitions, a fresh device each time)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_KEY
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.servers import serving

REPETITIONS = 20
SIMULTANEOUS = 200


def setup_city(base: str, offers: list[dict]) -> dict[str, str]:
    merchant = httpx.post(f"{base}/v1/merchants", json={"name": "Café Tejo"}, headers=ADMIN).json()
    headers = {"Authorization": f"Bearer {merchant['api_key']}"}
    fence = httpx.post(f"{base}/v1/geofences", json=ALFAMA_CAFE, headers=headers).json()["id"]
    for offer in offers:
        created = httpx.post(f"{base}/v1/offers", json={**offer, "geofence_ids": [fence]}, headers=headers)
        assert created.status_code == 201, created.text
    app = httpx.post(f"{base}/v1/apps", json={"name": "app"}, headers=ADMIN).json()
    return {"Authorization": f"Bearer {app['api_key']}"}


async def burst(base: str, headers: dict[str, str], device: str, simultaneous: int = SIMULTANEOUS) -> list[dict]:
    limits = httpx.Limits(max_connections=simultaneous)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        params = {**INSIDE_ALFAMA_CAFE, "device_id": device, "limit": 5}
        responses = await asyncio.gather(*(client.get("/v1/nearby", params=params) for _ in range(simultaneous)))
    assert {r.status_code for r in responses} == {200}
    return [r.json() for r in responses]


def served_count(answers: list[dict]) -> int:
    assert not any(a.get("degraded") for a in answers)
    return sum(len(a["offers"]) for a in answers)


@pytest.mark.slow
def test_an_offer_capped_at_3_a_day_is_served_exactly_3_times(tmp_path, redis_url):
    with serving(tmp_path, redis_url, ADMIN_KEY, workers=2, redis_timeout_ms="2000") as [base]:
        app = setup_city(base, [{"title": "latte", "caps": {"per_device_per_day": 3}}])
        totals = [served_count(asyncio.run(burst(base, app, f"device-{i}"))) for i in range(REPETITIONS)]
    assert totals == [3] * REPETITIONS


@pytest.mark.slow
def test_a_global_cap_of_4_a_day_holds_across_uncapped_offers(tmp_path, redis_url):
    offers = [{"title": f"offer {i}", "priority": 10 + i} for i in range(2)]
    with serving(
        tmp_path, redis_url, ADMIN_KEY, workers=2, redis_timeout_ms="2000", global_cap_per_device_per_day="4"
    ) as [base]:
        app = setup_city(base, offers)
        totals = [served_count(asyncio.run(burst(base, app, f"device-{i}"))) for i in range(REPETITIONS)]
    assert totals == [4] * REPETITIONS


@pytest.mark.slow
def test_with_the_default_50_ms_timeout_an_overloaded_server_fails_closed_never_over(tmp_path, redis_url):
    with serving(tmp_path, redis_url, ADMIN_KEY, workers=2) as [base]:
        app = setup_city(base, [{"title": "latte", "caps": {"per_device_per_day": 3}}])
        for i in range(5):
            answers = asyncio.run(burst(base, app, f"device-{i}"))
            assert sum(len(a["offers"]) for a in answers) <= 3
