"""Suppression cannot be undone by subtraction: a figure that one report hides never shows up as the difference
between two others (a merchant-wide report before and after a new fence, a week and its days)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from geotarget.measurement.devices import device_key
from geotarget.measurement.events import Event
from tests.conftest import make_settings
from tests.fixtures import ALFAMA_CAFE, CHIADO_KIOSK, INSIDE_ALFAMA_CAFE, offer_event, ping_event

K = 5
MONDAY = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)  # Lisbon = UTC in November
INSIDE_CHIADO_KIOSK = {"lat": 38.71075, "lon": -9.14195}


@pytest.fixture
def settings(tmp_path, redis_url, database_url):
    return make_settings(tmp_path, redis_url, database_url, report_min_devices=K)


def ping(runtime, device: str, at: datetime, where: dict[str, float]) -> Event:
    key = device_key(runtime.server.device_secret, device)
    return ping_event(key, at, lat=where["lat"], lon=where["lon"])


def impression(runtime, device: str, at: datetime, offer: str, merchant: str, fence: str) -> Event:
    key = device_key(runtime.server.device_secret, device)
    return offer_event(
        kind="impression",
        event_id=f"imp-{device}-{at.timestamp()}",
        at=at,
        device_key=key,
        lat=38.71,
        lon=-9.13,
        offer_id=offer,
        merchant_id=merchant,
        fence_id=fence,
    )


def store(runtime, events: list[Event]) -> None:
    runtime.server.sink.append(events)
    runtime.consumer.drain()


def report(client, merchant, **params) -> list[dict]:
    answer = client.get(
        "/v1/reports/reach", params={"from": "2026-11-16", "to": "2026-11-22", **params}, headers=merchant.headers
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


def test_a_new_fence_with_one_visitor_does_not_move_the_merchant_wide_figures(client, cafe, runtime):
    alfama = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    offer = client.post("/v1/offers", json={"title": "latte", "geofence_ids": [alfama]}, headers=cafe.headers)
    regulars = [f"regular-{n}" for n in range(12)]
    store(
        runtime, [ping(runtime, d, MONDAY + timedelta(minutes=n), INSIDE_ALFAMA_CAFE) for n, d in enumerate(regulars)]
    )
    store(runtime, [impression(runtime, d, MONDAY, offer.json()["id"], cafe.id, alfama) for d in regulars])
    before, week_before = report(client, cafe), report(client, cafe, granularity="week")
    assert before[0]["visitors"] == 12 and before[0]["impressions"] == 12

    # the attack: a fence around one person's path, and an offer only they can see
    kiosk = client.post("/v1/geofences", json=CHIADO_KIOSK, headers=cafe.headers).json()["id"]
    lone_offer = client.post("/v1/offers", json={"title": "bait", "geofence_ids": [kiosk]}, headers=cafe.headers)
    store(runtime, [ping(runtime, "the-target", MONDAY + timedelta(hours=2), INSIDE_CHIADO_KIOSK)])
    store(runtime, [impression(runtime, "the-target", MONDAY, lone_offer.json()["id"], cafe.id, kiosk)])

    assert report(client, cafe, geofence_id=kiosk)[0]["visitors"] is None
    assert report(client, cafe, offer_id=lone_offer.json()["id"])[0]["impressions"] is None
    assert report(client, cafe) == before
    assert report(client, cafe, granularity="week") == week_before


def test_a_day_with_one_device_is_not_revealed_by_its_week(client, cafe, runtime):
    alfama = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    crowd = [ping(runtime, f"crowd-{n}", MONDAY + timedelta(minutes=n), INSIDE_ALFAMA_CAFE) for n in range(8)]
    store(runtime, crowd)
    week_before = report(client, cafe, geofence_id=alfama, granularity="week")
    store(runtime, [ping(runtime, "night-owl", MONDAY + timedelta(days=2), INSIDE_ALFAMA_CAFE)])
    days = report(client, cafe, geofence_id=alfama)
    assert days[0]["visitors"] == 8 and days[2]["visitors"] is None
    assert report(client, cafe, geofence_id=alfama, granularity="week") == week_before


def test_the_window_totals_count_each_visitor_once_not_once_a_day(client, cafe, runtime):
    """The dashboard's cards: 12 regulars visiting on three days are 12 visitors over the week, not 36."""
    alfama = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    offer = client.post("/v1/offers", json={"title": "latte", "geofence_ids": [alfama]}, headers=cafe.headers)
    regulars = [f"regular-{n}" for n in range(12)]
    days = [MONDAY + timedelta(days=d) for d in (0, 2, 4)]
    store(
        runtime,
        [
            ping(runtime, r, day + timedelta(minutes=n), INSIDE_ALFAMA_CAFE)
            for day in days
            for n, r in enumerate(regulars)
        ],
    )
    store(runtime, [impression(runtime, r, day, offer.json()["id"], cafe.id, alfama) for day in days for r in regulars])
    answer = client.get(
        "/v1/reports/reach", params={"from": "2026-11-16", "to": "2026-11-22"}, headers=cafe.headers
    ).json()
    assert sum(row["visitors"] or 0 for row in answer["rows"]) == 36
    totals = answer["totals"]
    assert (totals["period"], totals["visitors"], totals["visits"]) == ("2026-11-16/2026-11-22", 12, 36)
    assert (totals["impressions"], totals["reach"], totals["frequency"]["3"]) == (36, 12, 12)


def lift(client, merchant, offer_id: str) -> dict:
    answer = client.get(
        "/v1/reports/lift",
        params={"offer_id": offer_id, "from": "2026-11-16", "to": "2026-11-22"},
        headers=merchant.headers,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_audience_fence_at_one_persons_door_does_not_move_the_lift(client, cafe, runtime):
    """The reported attack: exposed visitors 18 -> 19 once the merchant drew an audience-only fence at one
    person's home and that person pinged there. Lift counts visits to the offer's own fences only."""
    alfama = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    offer = client.post("/v1/offers", json={"title": "latte", "geofence_ids": [alfama]}, headers=cafe.headers)
    offer_id = offer.json()["id"]
    devices = [f"phone-{n}" for n in range(2 * K)]
    events = [impression(runtime, d, MONDAY, offer_id, cafe.id, alfama) for d in devices]
    events += [ping(runtime, d, MONDAY + timedelta(hours=2), INSIDE_ALFAMA_CAFE) for d in devices[: K + 1]]
    store(runtime, events)
    before = lift(client, cafe, offer_id)
    assert before["exposed"] == {"devices": 2 * K, "visitors": K + 1, "rate": 0.6}

    home = {**CHIADO_KIOSK, "properties": {**CHIADO_KIOSK["properties"], "name": "a home", "purpose": "audience"}}
    assert client.post("/v1/geofences", json=home, headers=cafe.headers).status_code == 201
    store(runtime, [ping(runtime, devices[-1], MONDAY + timedelta(hours=3), INSIDE_CHIADO_KIOSK)])
    after = lift(client, cafe, offer_id)

    assert after["exposed"] == before["exposed"]
