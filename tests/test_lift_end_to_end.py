"""Holdout lift end to end: a generated population served through the real /v1/nearby with holdout_pct = 20,
then visiting through POST /v1/pings, through the consumer and the real report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from geotarget.measurement.devices import device_key
from geotarget.measurement.lift import in_holdout
from tests.conftest import ADMIN, make_settings
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE

K = 5
DEVICES = 240


@pytest.fixture
def settings(tmp_path, redis_url, database_url):
    return make_settings(tmp_path, redis_url, database_url, report_min_devices=K)


def test_the_lift_report_counts_exactly_the_generated_arms_and_the_control_group_only_gets_ghosts(
    client, cafe, runtime
):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    body = {"title": "2-for-1 lattes", "geofence_ids": [fence], "holdout_pct": 20}
    offer = client.post("/v1/offers", json=body, headers=cafe.headers).json()
    assert offer["holdout_pct"] == 20
    app = {"Authorization": f"Bearer {client.post('/v1/apps', json={'name': 'app'}, headers=ADMIN).json()['api_key']}"}
    arms: dict[str, list[str]] = {"exposed": [], "control": []}
    visitors: dict[str, set[str]] = {"exposed": set(), "control": set()}
    later = int((datetime.now(UTC) + timedelta(minutes=2)).timestamp())  # after the impressions, within the clock skew
    pings = []
    for n in range(DEVICES):
        device = f"phone-{n}"
        held = in_holdout(offer["id"], device_key(runtime.server.device_secret, device), 20)
        arm = "control" if held else "exposed"
        params = {**INSIDE_ALFAMA_CAFE, "device_id": device, "accuracy_m": 10}
        shown = [o["offer_id"] for o in client.get("/v1/nearby", params=params, headers=app).json()["offers"]]
        assert shown == ([] if held else [offer["id"]])  # the control group never sees it
        arms[arm].append(device)
        if (len(arms[arm]) - 1) % 10 < (3 if held else 5):  # exposure raises the visit rate: 30 % against 50 %
            visitors[arm].add(device)
            pings.append({"device_id": device, **INSIDE_ALFAMA_CAFE, "ts": later, "accuracy_m": 10})
    for start in range(0, len(pings), 500):
        assert client.post("/v1/pings", json={"pings": pings[start : start + 500]}, headers=app).status_code == 200
    runtime.consumer.drain()

    report = client.get("/v1/reports/lift", params={"offer_id": offer["id"]}, headers=cafe.headers).json()

    assert not report["suppressed"], report  # each arm has far more than K devices and visitors
    for arm in ("exposed", "control"):
        assert (report[arm]["devices"], report[arm]["visitors"]) == (len(arms[arm]), len(visitors[arm]))
    observed = len(visitors["exposed"]) / len(arms["exposed"]) - len(visitors["control"]) / len(arms["control"])
    assert report["lift_abs"] == pytest.approx(observed, abs=1e-4)
    low, high = report["ci95"]
    assert low <= report["lift_abs"] <= high
    assert report["in_words"].endswith(")") and "visits per 100 reached" in report["in_words"]
    ghosts = (
        runtime.events.connect()
        .execute(f"SELECT count(*) FROM '{runtime.events.glob}' WHERE kind = 'ghost' AND offer_id = ?", [offer["id"]])
        .fetchone()[0]
    )
    assert ghosts == len(arms["control"]) > 0


def test_a_lift_report_with_too_few_devices_in_an_arm_shows_no_numbers(client, cafe, runtime):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    offer = client.post(
        "/v1/offers", json={"title": "latte", "geofence_ids": [fence], "holdout_pct": 50}, headers=cafe.headers
    ).json()
    app = {"Authorization": f"Bearer {client.post('/v1/apps', json={'name': 'app'}, headers=ADMIN).json()['api_key']}"}
    for n in range(4):  # fewer than k in all: some arm is under k whatever the split
        client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": f"p{n}"}, headers=app)
    runtime.consumer.drain()
    report = client.get("/v1/reports/lift", params={"offer_id": offer["id"]}, headers=cafe.headers).json()
    assert report["suppressed"] and report["lift_abs"] is None and report["exposed"]["devices"] is None
    other = client.post("/v1/merchants", json={"name": "Other"}, headers=ADMIN).json()["api_key"]
    answer = client.get(
        "/v1/reports/lift", params={"offer_id": offer["id"]}, headers={"Authorization": f"Bearer {other}"}
    )
    assert answer.status_code == 404


def test_an_offer_without_a_holdout_says_so_rather_than_waiting_for_devices(client, cafe, runtime):
    """The report used to say "not enough devices in both groups yet" (and the dashboard something else)."""
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    offer = client.post("/v1/offers", json={"title": "latte", "geofence_ids": [fence]}, headers=cafe.headers).json()
    app = {"Authorization": f"Bearer {client.post('/v1/apps', json={'name': 'app'}, headers=ADMIN).json()['api_key']}"}
    for n in range(4):
        client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": f"p{n}"}, headers=app)
    runtime.consumer.drain()
    report = client.get("/v1/reports/lift", params={"offer_id": offer["id"]}, headers=cafe.headers).json()
    assert report["holdout_pct"] == 0
    assert report["in_words"] == "no holdout: give the offer a holdout_pct to measure lift"
