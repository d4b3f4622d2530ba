"""Audiences end to end: visits sent through POST /v1/pings, through the consumer into the event store, a refresh,
then offers that include or exclude the audience served through the real /v1/nearby (real Redis, real SQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from typer.testing import CliRunner

from api.cli import app as cli
from geotarget.measurement.devices import device_key
from geotarget.store import keys
from tests.conftest import ADMIN, make_settings
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE

K = 3
RIVAL = {
    "type": "Feature",
    "properties": {"name": "Rival roastery", "tags": ["rival"], "purpose": "audience", "radius_m": 30},
    "geometry": {"type": "Point", "coordinates": [-9.1330, 38.7120]},
}
INSIDE_RIVAL = {"lat": 38.7120, "lon": -9.1330}


@pytest.fixture
def settings(tmp_path, redis_url, database_url):
    return make_settings(tmp_path, redis_url, database_url, report_min_devices=K)


@pytest.fixture
def app(client):
    key = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
    return {"Authorization": f"Bearer {key}"}


def visit(client, app, runtime, devices, where, minutes_ago=60):
    at = int((datetime.now(UTC) - timedelta(minutes=minutes_ago)).timestamp())
    pings = [{"device_id": d, **where, "ts": at, "accuracy_m": 10} for d in devices]
    assert client.post("/v1/pings", json={"pings": pings}, headers=app).json()["accepted"] == len(devices)
    runtime.consumer.drain()


def shown(client, app, device, **extra):
    params = {**INSIDE_ALFAMA_CAFE, "device_id": device, "accuracy_m": 10, **extra}
    return {o["title"] for o in client.get("/v1/nearby", params=params, headers=app).json()["offers"]}


@pytest.fixture
def rival_fence(client, cafe):
    made = client.post("/v1/geofences", json=RIVAL, headers=cafe.headers)
    assert made.status_code == 201, made.text
    assert made.json()["properties"]["purpose"] == "audience"
    return made.json()["id"]


@pytest.fixture
def cafe_fence(client, cafe):
    return client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]


def test_include_serves_only_members_and_exclude_only_non_members(client, cafe, app, runtime, rival_fence, cafe_fence):
    rivals = [f"rival-fan-{n}" for n in range(4)]
    visit(client, app, runtime, rivals, INSIDE_RIVAL)
    made = client.post(
        "/v1/audiences",
        json={"name": "Rival's visitors", "rule": {"kind": "visitors", "tags": ["rival"]}},
        headers=cafe.headers,
    )
    assert made.status_code == 201, made.text
    audience = made.json()
    assert (audience["size"], audience["suppressed"]) == (4, False)
    for title, targeting in (
        ("win them over", {"include": [audience["id"]]}),
        ("for the rest", {"exclude": [audience["id"]]}),
    ):
        body = {"title": title, "geofence_ids": [cafe_fence], "targeting": {"audiences": targeting}}
        assert client.post("/v1/offers", json=body, headers=cafe.headers).status_code == 201

    assert all(shown(client, app, d) == {"win them over"} for d in rivals)
    assert shown(client, app, "stranger") == {"for the rest"}
    # a member asking with limit-ad-tracking is treated as a device with no memberships
    assert shown(client, app, rivals[0], lmt="true") == {"for the rest"}


def test_an_audience_under_k_is_suppressed_and_matches_nobody(client, cafe, app, runtime, rival_fence, cafe_fence):
    visit(client, app, runtime, ["lonely-1", "lonely-2"], INSIDE_RIVAL)  # K - 1 devices
    audience = client.post(
        "/v1/audiences",
        json={"name": "tiny", "rule": {"kind": "visitors", "geofence_ids": [rival_fence]}},
        headers=cafe.headers,
    ).json()
    assert (audience["size"], audience["suppressed"]) == (None, True)
    for title, side in (("only them", "include"), ("not them", "exclude")):
        body = {"title": title, "geofence_ids": [cafe_fence], "targeting": {"audiences": {side: [audience["id"]]}}}
        client.post("/v1/offers", json=body, headers=cafe.headers)
    assert shown(client, app, "lonely-1") == {"not them"}  # a member of an audience that matches nobody
    assert shown(client, app, "someone") == {"not them"}


def test_a_refresh_moves_members_in_and_out(client, cafe, app, runtime, cafe_fence):
    visit(client, app, runtime, ["a", "b", "c"], INSIDE_ALFAMA_CAFE, minutes_ago=60 * 24 * 3)
    rule = {"kind": "lapsed", "geofence_ids": [cafe_fence], "seen_within_days": 30, "not_within_days": 1}
    audience = client.post("/v1/audiences", json={"name": "lapsed", "rule": rule}, headers=cafe.headers).json()
    assert audience["size"] == 3
    body = {
        "title": "we miss you",
        "geofence_ids": [cafe_fence],
        "targeting": {"audiences": {"include": [audience["id"]]}},
    }
    client.post("/v1/offers", json=body, headers=cafe.headers)
    visit(client, app, runtime, ["a", "b", "c", "d"], INSIDE_ALFAMA_CAFE, minutes_ago=5)  # all came back
    visit(client, app, runtime, ["x", "y", "z"], INSIDE_ALFAMA_CAFE, minutes_ago=60 * 24 * 5)

    refreshed = client.post(f"/v1/audiences/{audience['id']}/refresh", headers=cafe.headers).json()

    assert refreshed["size"] == 3 and refreshed["refreshed_at"] >= audience["refreshed_at"]
    assert shown(client, app, "a") == set() and shown(client, app, "x") == {"we miss you"}


def test_audience_only_fences_are_never_served_and_take_no_offers(client, cafe, app, runtime, rival_fence):
    body = {"title": "at the rival", "geofence_ids": [rival_fence]}
    refused = client.post("/v1/offers", json=body, headers=cafe.headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "audience_fence"
    assert refused.json()["error"]["field"] == "geofence_ids[0]"
    served = client.get("/v1/nearby", params={**INSIDE_RIVAL, "device_id": "p"}, headers=app).json()
    assert served["offers"] == []
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    client.post("/v1/offers", json={"title": "latte", "geofence_ids": [fence]}, headers=cafe.headers)
    patch = {"properties": {"purpose": "audience"}}
    assert client.patch(f"/v1/geofences/{fence}", json=patch, headers=cafe.headers).status_code == 409
    bad = client.post(
        "/v1/geofences", json={**RIVAL, "properties": {"radius_m": 20, "purpose": "spy"}}, headers=cafe.headers
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_purpose"


def test_audiences_belong_to_their_merchant(client, cafe, bakery, app, runtime, rival_fence):
    rule = {"kind": "visitors", "geofence_ids": [rival_fence]}
    audience = client.post("/v1/audiences", json={"name": "mine", "rule": rule}, headers=cafe.headers).json()
    assert (
        client.post("/v1/audiences", json={"name": "theirs", "rule": rule}, headers=bakery.headers).status_code == 422
    )
    for method, path in (
        ("GET", f"/v1/audiences/{audience['id']}"),
        ("DELETE", f"/v1/audiences/{audience['id']}"),
        ("POST", f"/v1/audiences/{audience['id']}/refresh"),
    ):
        assert client.request(method, path, headers=bakery.headers).status_code == 404
    assert client.get("/v1/audiences", headers=bakery.headers).json() == {"audiences": []}
    bakery_fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=bakery.headers).json()["id"]
    body = {"title": "x", "geofence_ids": [bakery_fence], "targeting": {"audiences": {"include": [audience["id"]]}}}
    refused = client.post("/v1/offers", json=body, headers=bakery.headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "targeting.audiences.include[0]"
    assert client.get("/v1/audiences", headers=app).status_code == 403


def test_an_audience_in_use_cannot_be_deleted_and_erasure_removes_memberships(
    client, cafe, app, runtime, rival_fence, cafe_fence, redis_url
):
    fans = ["fan-1", "fan-2", "fan-3"]
    visit(client, app, runtime, fans, INSIDE_RIVAL)
    rule = {"kind": "visitors", "tags": ["rival"]}
    audience = client.post("/v1/audiences", json={"name": "fans", "rule": rule}, headers=cafe.headers).json()
    body = {"title": "hi", "geofence_ids": [cafe_fence], "targeting": {"audiences": {"include": [audience["id"]]}}}
    offer = client.post("/v1/offers", json=body, headers=cafe.headers).json()
    assert client.delete(f"/v1/audiences/{audience['id']}", headers=cafe.headers).status_code == 409
    prefix, ttl = runtime.settings.redis_prefix, runtime.settings.audience_ttl_s
    memberships = keys.memberships(prefix, device_key(runtime.server.device_secret, "fan-1"))
    plain = redis.Redis.from_url(redis_url)
    until = int(plain.hget(memberships, f"{audience['id']}:1"))
    assert 0 < plain.ttl(memberships) <= ttl and time.time() < until <= time.time() + ttl

    assert client.delete("/v1/devices/fan-1", headers=ADMIN).status_code == 200

    assert not plain.exists(memberships)
    assert shown(client, app, "fan-1") == set() and shown(client, app, "fan-2") == {"hi"}
    fan_3 = keys.memberships(prefix, device_key(runtime.server.device_secret, "fan-3"))
    plain.hset(fan_3, f"{audience['id']}:1", int(time.time()) - 1)  # its membership ran out: no refresh since
    assert shown(client, app, "fan-3") == set()
    client.delete(f"/v1/offers/{offer['id']}", headers=cafe.headers)
    assert client.delete(f"/v1/audiences/{audience['id']}", headers=cafe.headers).status_code == 204


def test_scheduled_and_command_line_refreshes(client, cafe, app, runtime, settings, rival_fence):
    visit(client, app, runtime, ["x", "y", "z"], INSIDE_RIVAL)
    rule = {"kind": "visitors", "tags": ["rival"]}
    audience = client.post("/v1/audiences", json={"name": "rivals", "rule": rule}, headers=cafe.headers).json()
    visit(client, app, runtime, ["w"], INSIDE_RIVAL)

    first = runtime.audiences.refresh_if_leading(3_600)
    again = runtime.audiences.refresh_if_leading(3_600)  # another worker, the same period: not its turn

    assert [(a.id, a.size) for a in first] == [(audience["id"], 4)] and again == []
    env = {f"GEOTARGET_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}
    visit(client, app, runtime, ["v"], INSIDE_RIVAL)
    done = CliRunner().invoke(cli, ["audiences", "refresh", "--merchant", cafe.id], env=env)
    assert done.exit_code == 0, done.output
    assert f"{audience['id']}  rivals: 5 devices" in done.output and "refreshed 1 audience(s)" in done.output


def test_an_expression_mixes_audiences_with_what_the_app_sent(
    client, cafe, bakery, app, runtime, rival_fence, cafe_fence
):
    rivals = [f"rival-fan-{n}" for n in range(3)]
    visit(client, app, runtime, rivals, INSIDE_RIVAL)
    rule = {"kind": "visitors", "tags": ["rival"]}
    audience = client.post("/v1/audiences", json={"name": "fans", "rule": rule}, headers=cafe.headers).json()["id"]
    fans_or_young = {"any": [{"audience": audience}, {"attr": "age", "op": "lte", "value": 25}]}
    android_strangers = {"all": [{"not": {"audience": audience}}, {"attr": "os", "op": "in", "value": ["android"]}]}
    for title, expr in (("fans or young", fans_or_young), ("android strangers", android_strangers)):
        body = {"title": title, "geofence_ids": [cafe_fence], "targeting": {"expr": expr}}
        made = client.post("/v1/offers", json=body, headers=cafe.headers)
        assert made.status_code == 201, made.text

    assert shown(client, app, rivals[0], age=60) == {"fans or young"}
    assert shown(client, app, rivals[1], age=60, os="android") == {"fans or young"}  # a fan: not a stranger
    assert shown(client, app, "stranger", age=20, os="android") == {"fans or young", "android strangers"}
    assert shown(client, app, "stranger", age=60, os="ios") == set()
    assert shown(client, app, rivals[2], lmt="true", age=60, os="android") == {"android strangers"}  # no memberships
    why = client.get(
        "/v1/explain", params={**INSIDE_ALFAMA_CAFE, "device_id": "stranger", "age": 60, "os": "android"}, headers=ADMIN
    ).json()["offers"]
    assert {o["title"]: o["reason"] for o in why} == {"android strangers": "served", "fans or young": "audience"}

    assert client.delete(f"/v1/audiences/{audience}", headers=cafe.headers).status_code == 409  # in use by expr
    bakery_fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=bakery.headers).json()["id"]
    body = {"title": "x", "geofence_ids": [bakery_fence], "targeting": {"expr": fans_or_young}}
    refused = client.post("/v1/offers", json=body, headers=bakery.headers).json()["error"]
    assert (refused["field"], refused["code"]) == ("targeting.expr.any[0].audience", "unknown_audience")
