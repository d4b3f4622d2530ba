"""Webhooks: transitions reach a real HTTP receiver on loopback, signed, retried with backoff, listed, kept
apart per tenant, never sent to private addresses unless allowed, and without raw device ids once settled."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geofences import LatLng
from geofences.shapes import moved
from geotarget.runtime import Runtime
from geotarget.store import keys
from geotarget.store.transports import Transports
from geotarget.triggers.webhooks import RetryPolicy, signature, verify
from tests.conftest import ADMIN, make_settings
from tests.fixtures import ALFAMA_CAFE, CHIADO_KIOSK, INSIDE_ALFAMA_CAFE
from tests.webhook_receiver import receiver

INSIDE = {**INSIDE_ALFAMA_CAFE, "accuracy_m": 5}
FAR = moved(LatLng(INSIDE_ALFAMA_CAFE["lat"], INSIDE_ALFAMA_CAFE["lon"]), 0, 800.0)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def world(client: TestClient) -> tuple[dict, dict, dict, str]:
    """A café with a fence, and an app: (merchant headers, app headers, app, fence id)."""
    merchant = client.post("/v1/merchants", json={"name": "Café", "timezone": "Europe/Lisbon"}, headers=ADMIN).json()
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=auth(merchant["api_key"])).json()
    app = client.post("/v1/apps", json={"name": "Lisbon Guide"}, headers=ADMIN).json()
    return auth(merchant["api_key"]), auth(app["api_key"]), app, fence["id"]


def walk_in_and_out(client: TestClient, app_headers: dict, device: str, start_s: int) -> None:
    """Enter through /v1/nearby, leave through POST /v1/pings a minute later."""
    inside = {**INSIDE, "device_id": device}
    assert client.get("/v1/nearby", params=inside, headers=app_headers).is_success
    ping = {"device_id": device, "lat": FAR.lat, "lon": FAR.lon, "ts": start_s + 60, "accuracy_m": 10}
    assert client.post("/v1/pings", json={"pings": [ping]}, headers=app_headers).status_code == 200


def subscribe(client: TestClient, headers: dict, url: str, events: list[str], **extra) -> dict:
    response = client.post("/v1/webhooks", json={"url": url, "events": events, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.slow
def test_enter_and_exit_reach_the_app_with_the_device_id_and_the_merchant_without_both_signed(with_triggers):
    client, runtime = with_triggers
    merchant, app_headers, _, fence_id = world(client)
    with receiver() as app_end, receiver() as merchant_end:
        app_hook = subscribe(client, app_headers, app_end.url, ["enter", "exit"])
        merchant_hook = subscribe(client, merchant, merchant_end.url, ["enter", "exit", "dwell"])
        assert (
            app_hook["secret"].startswith("whsec_")
            and "secret" not in client.get("/v1/webhooks", headers=app_headers).json()["webhooks"][0]
        )
        walk_in_and_out(client, app_headers, "phone-of-ana", int(datetime.now(UTC).timestamp()))
        to_app = app_end.wait_for(lambda r: len(r) == 2)
        to_merchant = merchant_end.wait_for(lambda r: len(r) == 2)
    now = time.time()
    assert [r.event["type"] for r in to_app] == ["enter", "exit"]
    assert {r.event["device_id"] for r in to_app} == {"phone-of-ana"}
    assert all("device_id" not in r.event for r in to_merchant)
    assert to_app[1].event["distance_m"] > 700 and to_app[1].event["dwell_s"] >= 59
    assert to_app[0].event["geofence_id"] == fence_id and to_app[0].event["merchant_id"]
    for got, secret in [(to_app, app_hook["secret"]), (to_merchant, merchant_hook["secret"])]:
        for r in got:
            assert verify(secret, r.headers, r.body, now)
            assert r.headers["Geotarget-Event-Id"] == r.event["id"]
            assert not verify(secret, r.headers, r.body.replace(b'"type"', b'"Type"'), now)
    listed = client.get(f"/v1/webhooks/{app_hook['id']}/deliveries", headers=app_headers).json()["deliveries"]
    assert [d["status"] for d in listed] == ["delivered", "delivered"]
    assert all("device_id" not in d["event"] for d in listed)
    prefix = runtime.settings.redis_prefix
    assert runtime.redis.xlen(keys.transitions_stream(prefix)) == 0  # handled transitions (raw ids) are deleted
    assert not any(
        b"phone-of-ana" in (runtime.triggers.client.hget(keys.delivery(prefix, d["id"]), "body") or b"") for d in listed
    )


@pytest.mark.slow
def test_a_receiver_answering_500_then_200_gets_the_event_twice_and_it_is_delivered_once(with_triggers):
    client, _ = with_triggers
    _, app_headers, _, _ = world(client)
    with receiver(answers=[500]) as end:
        hook = subscribe(client, app_headers, end.url, ["enter"])
        assert client.get("/v1/nearby", params={**INSIDE, "device_id": "d1"}, headers=app_headers).is_success
        got = end.wait_for(lambda r: len(r) >= 2)
        time.sleep(1.0)  # nothing more may come
        got = list(end.received)
    assert len(got) == 2 and got[0].event["id"] == got[1].event["id"]
    assert got[0].headers["Geotarget-Signature"] != got[1].headers["Geotarget-Signature"] or (
        got[0].headers["Geotarget-Timestamp"] == got[1].headers["Geotarget-Timestamp"]
    )
    [delivery] = client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=app_headers).json()["deliveries"]
    assert (delivery["status"], delivery["attempts"], delivery["response_status"]) == ("delivered", 2, 200)
    metrics = client.get("/metrics").text
    assert "geotarget_webhook_deliveries_retried_total 1" in metrics
    assert "geotarget_webhook_deliveries_delivered_total 1" in metrics


@pytest.mark.slow
def test_a_receiver_that_keeps_failing_is_given_up_on_and_the_delivery_listed_as_failed(tmp_path, redis_url):
    settings = make_settings(
        tmp_path,
        redis_url,
        f"sqlite:///{tmp_path / 'gt.db'}",
        webhook_allow_private=True,
        webhook_retry_base_s=0.1,
        webhook_give_up_s=1.0,
    )
    runtime = Runtime.open(settings, deliver=True)
    try:
        with TestClient(create_app(settings, runtime)) as client, receiver(answers=[503] * 100) as end:
            _, app_headers, _, _ = world(client)
            hook = subscribe(client, app_headers, end.url, ["enter"])
            assert client.get("/v1/nearby", params={**INSIDE, "device_id": "d2"}, headers=app_headers).is_success
            url = f"/v1/webhooks/{hook['id']}/deliveries"
            deadline = time.monotonic() + 15
            failed_only = {"status": "failed"}
            while (
                time.monotonic() < deadline
                and not client.get(url, params=failed_only, headers=app_headers).json()["deliveries"]
            ):
                time.sleep(0.2)
            [failed] = client.get(url, params={"status": "failed"}, headers=app_headers).json()["deliveries"]
            assert failed["attempts"] >= 2 and failed["response_status"] == 503
            assert "503" in failed["error"]
            assert client.get(url, params={"status": "pending"}, headers=app_headers).json()["deliveries"] == []
            assert len(end.received) == failed["attempts"]
    finally:
        runtime.close()


def test_webhooks_are_kept_apart_per_tenant(with_triggers):
    client, _ = with_triggers
    cafe, app_headers, _, fence_id = world(client)
    bakery_key = client.post("/v1/merchants", json={"name": "Padaria"}, headers=ADMIN).json()["api_key"]
    bakery = auth(bakery_key)
    kiosk = client.post("/v1/geofences", json=CHIADO_KIOSK, headers=bakery).json()["id"]
    with receiver() as end:
        hook = subscribe(client, cafe, end.url, ["enter"], geofence_ids=[fence_id])
        for other in (bakery, app_headers):
            assert client.get("/v1/webhooks", headers=other).json()["webhooks"] == []
            assert client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=other).status_code == 404
            assert client.post(f"/v1/webhooks/{hook['id']}/test", headers=other).status_code == 404
            assert client.delete(f"/v1/webhooks/{hook['id']}", headers=other).status_code == 404
        refused = client.post(
            "/v1/webhooks", json={"url": end.url, "events": ["exit"], "geofence_ids": [kiosk]}, headers=cafe
        )
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "geofence_ids.0"
        adops = client.post("/v1/adops-keys", json={"name": "ops"}, headers=ADMIN)
        if adops.status_code == 201:
            assert client.get("/v1/webhooks", headers=auth(adops.json()["api_key"])).status_code == 403
        assert client.delete(f"/v1/webhooks/{hook['id']}", headers=cafe).status_code == 204
        assert client.get("/v1/webhooks", headers=cafe).json()["webhooks"] == []


def test_the_test_route_sends_a_signed_test_event_now_and_reports_the_answer(with_triggers):
    client, _ = with_triggers
    _, app_headers, _, _ = world(client)
    with receiver(answers=[418]) as end:
        hook = subscribe(client, app_headers, end.url, ["enter"])
        first = client.post(f"/v1/webhooks/{hook['id']}/test", headers=app_headers).json()
        second = client.post(f"/v1/webhooks/{hook['id']}/test", headers=app_headers).json()
    assert (first["delivered"], first["status"]) == (False, 418) and "418" in first["error"]
    assert (second["delivered"], second["status"], second["error"]) == (True, 200, None)
    assert verify(hook["secret"], end.received[1].headers, end.received[1].body, time.time())
    assert end.received[1].event["type"] == "test"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "nats://127.0.0.1:4222/geotarget",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http:///no-host",
        "mqtt://example.com",
        "http://[2002:7f00:1::1]/hook",  # 6to4 carrying 127.0.0.1
        "http://[2002:c0a8:101::1]/hook",  # 6to4 carrying 192.168.1.1
        "http://[fec0::1]/hook",  # site-local
        "http://[64:ff9b::a00:1]/hook",  # NAT64 carrying 10.0.0.1
        "http://[::127.0.0.1]/hook",  # the old IPv4-compatible form
        "http://[::1/",
        "http://[127.0.0.1]/",
        "nats://[::1/x",
        f"http://{'a' * 70}.example.com/",
        "http://.。/",
        "http://a..b/",
    ],
)
def test_private_loopback_and_odd_urls_are_refused_unless_allowed(client, url):
    app = client.post("/v1/apps", json={"name": "Guide"}, headers=ADMIN).json()
    response = client.post("/v1/webhooks", json={"url": url, "events": ["enter"]}, headers=auth(app["api_key"]))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] in ("url", "body.url")
    assert response.json()["error"]["code"] in ("bad_url", "invalid")


def test_a_refusal_names_the_kind_of_address_never_what_our_dns_answered():
    transports = Transports(allow_private=False, resolver=lambda host, port: ["127.0.0.1"])
    sent = transports.send("https://vm/hook", {"Geotarget-Event-Id": "evt_1"}, b"{}")
    transports.close()
    assert not sent.delivered and sent.error.startswith("vm resolves to a loopback, private or link-local")
    assert "127.0.0.1" not in sent.error


def test_a_broker_password_is_never_shown_back(client):
    app = client.post("/v1/apps", json={"name": "Guide"}, headers=ADMIN).json()
    url = "amqp://shop:s3cret-pw@8.8.8.8/events"  # a public address: accepted without connecting
    created = client.post("/v1/webhooks", json={"url": url, "events": ["enter"]}, headers=auth(app["api_key"]))
    assert created.status_code == 201, created.text
    listed = client.get("/v1/webhooks", headers=auth(app["api_key"]))
    assert "s3cret-pw" not in created.text and "s3cret-pw" not in listed.text
    assert listed.json()["webhooks"][0]["url"] == "amqp://shop:****@8.8.8.8/events"


def test_a_name_that_resolves_to_a_private_address_at_send_time_is_not_reached():
    """DNS rebinding: allowed when subscribed, private when sent. The send checks again and never connects."""
    transports = Transports(allow_private=False, resolver=lambda host, port: ["10.0.0.7"])
    sent = transports.send("https://hooks.example.com/x", {"Geotarget-Event-Id": "evt_1"}, b"{}")
    transports.close()
    assert not sent.delivered and "private" in sent.error


def test_retry_waits_grow_exponentially_with_jitter_and_stop_after_a_day():
    policy = RetryPolicy(base_s=10, cap_s=3_600, give_up_s=86_400)
    rng = random.Random(7)
    for attempts in range(1, 40):
        ceiling = min(3_600, 10 * 2 ** (attempts - 1))
        assert 0.5 * ceiling <= policy.delay_s(attempts, rng) <= ceiling
    assert not policy.gives_up(0, 86_400) and policy.gives_up(0, 86_401)


def test_a_signature_is_bound_to_its_timestamp_and_body():
    body = b'{"id":"evt_1","type":"enter"}'
    headers = {"Geotarget-Timestamp": "1700000000", "Geotarget-Signature": signature("s3cret", 1700000000, body)}
    assert verify("s3cret", headers, body, 1700000100)
    assert not verify("s3cret", headers, body, 1700000000 + 301)  # too old: a replay
    assert not verify("other", headers, body, 1700000100)
    assert not verify("s3cret", {**headers, "Geotarget-Timestamp": "1700000001"}, body, 1700000100)


@pytest.mark.slow
def test_erasing_a_device_drops_its_pending_deliveries(with_triggers):
    client, runtime = with_triggers
    _, app_headers, _, _ = world(client)
    with receiver(answers=[500] * 1000) as end:
        hook = subscribe(client, app_headers, end.url, ["enter"])
        assert client.get("/v1/nearby", params={**INSIDE, "device_id": "erase-me"}, headers=app_headers).is_success
        end.wait_for(lambda r: len(r) >= 1)
        url = f"/v1/webhooks/{hook['id']}/deliveries"
        [pending] = client.get(url, params={"status": "pending"}, headers=app_headers).json()["deliveries"]
        assert client.delete("/v1/devices/erase-me", headers=ADMIN).status_code == 200
        assert client.get(url, headers=app_headers).json()["deliveries"] == []
        assert not runtime.triggers.client.exists(keys.delivery(runtime.settings.redis_prefix, pending["id"]))
