"""Presence is kept per (app key, device) and only where someone listens (DESIGN §9.1): one app's pings never
move, read or end another app's presence; a ping from the future is refused; with nobody listening a ping does
no presence work at all; a new subscription starts tracking at the next ping and removing the last one stops it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from geofences import LatLng
from geofences.shapes import moved
from tests.conftest import ADMIN
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.test_presence import transitions
from tests.webhook_receiver import receiver

INSIDE = {**INSIDE_ALFAMA_CAFE, "accuracy_m": 5}
FAR = moved(LatLng(INSIDE_ALFAMA_CAFE["lat"], INSIDE_ALFAMA_CAFE["lon"]), 0, 800.0)
AD_ID = "38400000-8cf0-11bd-b23e-10b96e40000d"  # one advertising id, known to both apps


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def cafe_with_fence(client) -> dict[str, str]:
    merchant = client.post("/v1/merchants", json={"name": "Café", "timezone": "Europe/Lisbon"}, headers=ADMIN).json()
    assert client.post("/v1/geofences", json=ALFAMA_CAFE, headers=bearer(merchant["api_key"])).status_code == 201
    return bearer(merchant["api_key"])


def new_app(client, name: str) -> dict[str, str]:
    return client.post("/v1/apps", json={"name": name}, headers=ADMIN).json()


def presence_keys(runtime) -> list[str]:
    """Every presence hash and the sweeper's set, if any."""
    pattern = f"{runtime.settings.redis_prefix}:*presence*"
    return [k.decode() if isinstance(k, bytes) else k for k in runtime.redis.scan_iter(match=pattern)]


def device_presences(runtime) -> list[str]:
    return [k for k in presence_keys(runtime) if not k.endswith(":due")]


@pytest.mark.slow
def test_another_app_knowing_the_advertising_id_never_moves_reads_or_ends_the_presence(with_triggers):
    client, _ = with_triggers
    cafe_with_fence(client)
    guide, rival = new_app(client, "Lisbon Guide"), new_app(client, "Rival")
    with receiver() as guide_end, receiver() as rival_end:
        for app, end in ((guide, guide_end), (rival, rival_end)):
            hook = {"url": end.url, "events": ["enter", "dwell", "exit"]}
            assert client.post("/v1/webhooks", json=hook, headers=bearer(app["api_key"])).status_code == 201
        assert client.get(
            "/v1/nearby", params={**INSIDE, "device_id": AD_ID}, headers=bearer(guide["api_key"])
        ).is_success
        guide_end.wait_for(lambda got: len(got) >= 1)

        now = int(datetime.now(UTC).timestamp())
        future = {"device_id": AD_ID, "lat": FAR.lat, "lon": FAR.lon, "ts": now + 20 * 3_600, "accuracy_m": 5}
        refused = client.post("/v1/pings", json={"pings": [future]}, headers=bearer(rival["api_key"])).json()
        assert refused["rejected"] == 1 and refused["results"][0]["error"]["field"] == "pings[0].ts"
        away = {**future, "ts": now + 30}
        assert client.post("/v1/pings", json=away, headers=bearer(rival["api_key"])).status_code == 200
        time.sleep(1.5)
        assert rival_end.received == []  # the rival's ping ended nothing and told it nothing
        assert [r.event["type"] for r in guide_end.received] == ["enter"]

        real_exit = {**away, "ts": now + 60}
        assert client.post("/v1/pings", json=real_exit, headers=bearer(guide["api_key"])).status_code == 200
        got = guide_end.wait_for(lambda got: len(got) >= 2)
    assert [r.event["type"] for r in got] == ["enter", "exit"]
    assert got[1].event["device_id"] == AD_ID


def test_with_nobody_listening_a_ping_does_no_presence_work(client, runtime):
    cafe_with_fence(client)
    app = new_app(client, "Guide")
    for n in range(5):
        params = {**INSIDE, "device_id": f"phone-{n}"}
        assert client.get("/v1/nearby", params=params, headers=bearer(app["api_key"])).is_success
    ping = {"device_id": "phone-0", "lat": FAR.lat, "lon": FAR.lon, "ts": int(time.time())}
    assert client.post("/v1/pings", json=ping, headers=bearer(app["api_key"])).status_code == 200
    assert presence_keys(runtime) == [] and transitions(runtime) == []


def test_a_subscription_starts_tracking_at_the_next_ping_and_removing_the_last_stops_it(client, runtime):
    cafe = cafe_with_fence(client)
    app = new_app(client, "Guide")
    phone = bearer(app["api_key"])
    assert client.get("/v1/nearby", params={**INSIDE, "device_id": "early"}, headers=phone).is_success
    assert transitions(runtime) == []

    hook = client.post("/v1/webhooks", json={"url": "https://8.8.8.8/h", "events": ["enter"]}, headers=cafe).json()
    assert client.get("/v1/nearby", params={**INSIDE, "device_id": "early"}, headers=phone).is_success
    assert [t.transition.kind for t in transitions(runtime)] == ["enter"]  # tracked from this ping on

    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=cafe).status_code == 204
    assert client.get("/v1/nearby", params={**INSIDE, "device_id": "late"}, headers=phone).is_success
    assert [t.device_id for t in transitions(runtime)] == ["early"]  # "late" is not tracked
    assert len(device_presences(runtime)) == 1  # "early"'s, for that app


def test_a_push_only_hook_listens_through_its_triggered_offers(client, runtime):
    cafe = cafe_with_fence(client)
    fence = client.get("/v1/geofences", headers=cafe).json()["features"][0]["id"]
    offer = {"title": "Welcome", "geofence_ids": [fence], "trigger": {"on": "enter"}}
    assert client.post("/v1/offers", json=offer, headers=cafe).status_code == 201
    app = new_app(client, "Guide")
    assert client.get("/v1/nearby", params={**INSIDE, "device_id": "walker"}, headers=bearer(app["api_key"])).is_success
    assert [t.transition.kind for t in transitions(runtime)] == ["enter"]
