"""A key's life: listed without its secret, rotated with a grace period (the id, and so an app's impressions and
webhooks, unchanged), revoked at once on every worker, expiring on its own, stamped with its last use. The admin
lists merchants and reads every report."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geotarget.runtime import Runtime
from geotarget.settings import Settings
from tests.conftest import ADMIN, make_settings
from tests.test_interactions_and_redemptions import new_app, offer_shown

ANYWHERE = {"lat": 38.7, "lon": -9.1, "device_id": "phone"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_admin_lists_keys_without_their_secrets(client, cafe):
    app = client.post("/v1/apps", json={"name": "Tram app"}, headers=ADMIN).json()
    listed = client.get("/v1/keys", headers=ADMIN)

    assert listed.status_code == 200
    keys = {k["role"]: k for k in listed.json()["keys"]}
    assert keys["merchant"]["owner_id"] == cafe.id and keys["app"]["id"] == app["id"]
    assert keys["app"] == keys["app"] | {"name": "Tram app", "owner_id": None, "revoked": False, "expires_at": None}
    assert cafe.key not in listed.text and app["api_key"] not in listed.text
    assert not any("hash" in field for k in keys.values() for field in k)
    assert client.get("/v1/keys", headers=cafe.headers).status_code == 403


@pytest.mark.slow
def test_a_rotated_key_works_the_old_one_only_during_its_grace(client, cafe):
    (merchant_key,) = [k for k in client.get("/v1/keys", headers=ADMIN).json()["keys"] if k["owner_id"] == cafe.id]
    rotated = client.post(f"/v1/keys/{merchant_key['id']}/rotate", json={"grace_s": 2}, headers=ADMIN)

    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["id"] == merchant_key["id"] and body["api_key"] != cafe.key
    until = datetime.fromisoformat(body["previous_valid_until"])
    assert timedelta(seconds=1) < until - datetime.now(UTC) <= timedelta(seconds=2)
    assert client.get("/v1/geofences", headers=bearer(body["api_key"])).status_code == 200
    assert client.get("/v1/geofences", headers=cafe.headers).status_code == 200  # the grace

    time.sleep((until - datetime.now(UTC)).total_seconds() + 0.1)
    refused = client.get("/v1/geofences", headers=cafe.headers)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/geofences", headers=bearer(body["api_key"])).status_code == 200


def test_a_rotation_without_grace_stops_the_old_key_at_once(client, cafe):
    rotated = client.post("/v1/keys/self/rotate", json={"grace_s": 0}, headers=cafe.headers).json()
    assert client.get("/v1/geofences", headers=cafe.headers).status_code == 401
    assert client.get("/v1/geofences", headers=bearer(rotated["api_key"])).status_code == 200


def test_an_app_rotating_its_own_key_keeps_its_impressions(client, cafe):
    app = new_app(client)
    _, shown = offer_shown(client, cafe, app)
    rotated = client.post("/v1/keys/self/rotate", headers=app)  # no body: the default grace of a day
    assert rotated.status_code == 200
    assert datetime.fromisoformat(rotated.json()["previous_valid_until"]) > datetime.now(UTC) + timedelta(hours=23)

    click = {"impression_id": shown["impression_id"], "type": "click"}
    answer = client.post("/v1/interactions", json=click, headers=bearer(rotated.json()["api_key"]))
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text


def test_a_revoked_key_is_refused_and_cannot_be_rotated_back(client, cafe):
    (key_id,) = [k["id"] for k in client.get("/v1/keys", headers=ADMIN).json()["keys"] if k["owner_id"] == cafe.id]
    assert client.get("/v1/geofences", headers=cafe.headers).status_code == 200  # cached by this worker

    assert client.delete(f"/v1/keys/{key_id}", headers=ADMIN).status_code == 204
    assert client.get("/v1/geofences", headers=cafe.headers).status_code == 401
    assert client.delete(f"/v1/keys/{key_id}", headers=ADMIN).status_code == 204  # twice: no change
    again = client.post(f"/v1/keys/{key_id}/rotate", headers=ADMIN)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    listed = {k["id"]: k for k in client.get("/v1/keys", headers=ADMIN).json()["keys"]}
    assert listed[key_id]["revoked"] is True


def test_unknown_keys_and_the_admin_key_answer_clearly(client):
    assert client.post("/v1/keys/key_nope/rotate", headers=ADMIN).status_code == 404
    assert client.delete("/v1/keys/key_nope", headers=ADMIN).status_code == 404
    own = client.post("/v1/keys/self/rotate", headers=ADMIN)
    assert own.status_code == 422 and "GEOTARGET_ADMIN_KEY" in own.json()["error"]["message"]
    bad = client.post("/v1/keys/key_nope/rotate", json={"grace_s": -1}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "grace_s"


@pytest.mark.slow
def test_a_key_expires_on_its_own_even_while_remembered(client):
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    app = client.post("/v1/apps", json={"name": "trial", "expires_at": soon.isoformat()}, headers=ADMIN).json()
    assert client.get("/v1/nearby", params=ANYWHERE, headers=bearer(app["api_key"])).status_code == 200

    time.sleep((soon - datetime.now(UTC)).total_seconds() + 0.1)
    assert client.get("/v1/nearby", params=ANYWHERE, headers=bearer(app["api_key"])).status_code == 401
    past = client.post("/v1/apps", json={"name": "late", "expires_at": "2020-01-01T00:00:00Z"}, headers=ADMIN)
    assert past.status_code == 422 and past.json()["error"]["field"] == "expires_at"
    naive = client.post("/v1/merchants", json={"name": "x", "expires_at": "2099-01-01T00:00:00"}, headers=ADMIN)
    assert naive.status_code == 422 and naive.json()["error"]["field"] == "expires_at"


def test_last_use_is_recorded(client, runtime, cafe):
    assert client.get("/v1/geofences", headers=cafe.headers).status_code == 200
    runtime.keys.flush_usage(runtime.repository, force=True)
    (key,) = [k for k in client.get("/v1/keys", headers=ADMIN).json()["keys"] if k["owner_id"] == cafe.id]
    assert datetime.now(UTC) - datetime.fromisoformat(key["last_used_at"]) < timedelta(seconds=30)


def test_the_admin_lists_merchants_and_reads_reports(client, cafe, bakery):
    merchants = client.get("/v1/merchants", headers=ADMIN).json()["merchants"]
    assert {m["id"] for m in merchants} == {cafe.id, bakery.id}
    assert client.get("/v1/merchants", headers=cafe.headers).status_code == 403
    for scope in ({"merchant_id": cafe.id}, {"merchant_id": bakery.id}):
        assert client.get("/v1/reports/reach", params=scope, headers=ADMIN).status_code == 200


@pytest.fixture
def two_workers(tmp_path: Path, redis_url: str) -> Iterator[tuple[TestClient, TestClient]]:
    """Two runtimes sharing one database and one Redis, as two `serve` workers do; the second syncs by the
    notice only (its poll is slower than the promise being tested)."""
    shared = make_settings(tmp_path, redis_url, f"sqlite:///{tmp_path / 'db.sqlite'}")
    slow_poll: Settings = shared.model_copy(update={"sync_poll_s": 30.0})
    first, second = Runtime.open(shared), Runtime.open(slow_poll)
    try:
        with TestClient(create_app(shared, first)) as a, TestClient(create_app(slow_poll, second)) as b:
            yield a, b
    finally:
        first.close()
        second.close()


@pytest.mark.slow
def test_revocation_reaches_another_worker_within_a_second(two_workers):
    a, b = two_workers
    app = a.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()
    params = ANYWHERE
    assert b.get("/v1/nearby", params=params, headers=bearer(app["api_key"])).status_code == 200  # b remembers it

    assert a.delete(f"/v1/keys/{app['id']}", headers=ADMIN).status_code == 204
    revoked_at = time.monotonic()
    while b.get("/v1/nearby", params=params, headers=bearer(app["api_key"])).status_code == 200:
        assert time.monotonic() - revoked_at < 1.0, "worker b still accepts a revoked key after a second"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_key_cannot_outlive_its_expiry_by_rotating_itself(client):
    """An admin gave a trial key 3 s; rotating itself with a month of grace leaves both keys ending with it."""
    soon = datetime.now(UTC) + timedelta(seconds=3)
    trial = client.post("/v1/apps", json={"name": "trial", "expires_at": soon.isoformat()}, headers=ADMIN).json()
    later = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    rotated = client.post(
        "/v1/keys/self/rotate", json={"grace_s": 2_592_000, "expires_at": later}, headers=bearer(trial["api_key"])
    )

    assert rotated.status_code == 200, rotated.text
    assert datetime.fromisoformat(rotated.json()["previous_valid_until"]) <= soon
    (listed,) = [k for k in client.get("/v1/keys", headers=ADMIN).json()["keys"] if k["id"] == trial["id"]]
    assert abs(datetime.fromisoformat(listed["expires_at"]) - soon) < timedelta(seconds=1)
    time.sleep((soon - datetime.now(UTC)).total_seconds() + 0.2)
    for key in (trial["api_key"], rotated.json()["api_key"]):
        assert client.get("/v1/nearby", params=ANYWHERE, headers=bearer(key)).status_code == 401


def test_the_admin_may_give_a_rotated_key_a_new_end(client):
    soon = datetime.now(UTC) + timedelta(hours=1)
    trial = client.post("/v1/apps", json={"name": "trial", "expires_at": soon.isoformat()}, headers=ADMIN).json()
    kept = client.post(f"/v1/keys/{trial['id']}/rotate", json={"grace_s": 0}, headers=ADMIN)
    assert kept.status_code == 200
    (listed,) = [k for k in client.get("/v1/keys", headers=ADMIN).json()["keys"] if k["id"] == trial["id"]]
    assert abs(datetime.fromisoformat(listed["expires_at"]) - soon) < timedelta(seconds=1)  # kept, not dropped

    later = datetime.now(UTC) + timedelta(days=30)
    extended = client.post(f"/v1/keys/{trial['id']}/rotate", json={"expires_at": later.isoformat()}, headers=ADMIN)
    assert extended.status_code == 200
    (listed,) = [k for k in client.get("/v1/keys", headers=ADMIN).json()["keys"] if k["id"] == trial["id"]]
    assert abs(datetime.fromisoformat(listed["expires_at"]) - later) < timedelta(seconds=1)
