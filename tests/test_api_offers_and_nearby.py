"""Offers and GET /v1/nearby through the API, with a real Redis for caps and the event stream."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

from api.deps import now
from geofences import LatLng, cells
from geotarget.measurement.events import Event
from tests.conftest import ADMIN
from tests.fixtures import ALFAMA_CAFE, CHIADO_KIOSK, INSIDE_ALFAMA_CAFE
from tests.test_metrics import scrape

MONDAY_0800_LISBON = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LATTES = {"windows": [{"days": ["weekdays"], "start": "07:00", "end": "10:00"}]}


@pytest.fixture
def app_key(client) -> dict[str, str]:
    key = client.post("/v1/apps", json={"name": "Lisbon Guide"}, headers=ADMIN).json()["api_key"]
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def clock(client):
    moments = [MONDAY_0800_LISBON]
    client.app.dependency_overrides[now] = lambda: moments[0]
    yield moments
    client.app.dependency_overrides.pop(now, None)


@pytest.fixture
def alfama(client, cafe) -> str:
    return client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]


def new_offer(client, merchant, fence_id: str, **fields) -> dict:
    body = {"title": "2-for-1 lattes", "body": "Weekdays 7–10", "geofence_ids": [fence_id], "priority": 50, **fields}
    response = client.post("/v1/offers", json=body, headers=merchant.headers)
    assert response.status_code == 201, response.text
    return response.json()


def nearby(client, headers, device="phone-1", **params):
    response = client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": device, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_daily_special_is_served_inside_the_cafe_during_its_window(client, cafe, alfama, app_key, clock):
    special = new_offer(client, cafe, alfama, schedule=LATTES, special=True, url="https://tejo.example/latte")
    assert special["timezone"] == "Europe/Lisbon"
    answer = nearby(client, app_key)
    assert [o["offer_id"] for o in answer["offers"]] == [special["id"]]
    served = answer["offers"][0]
    assert served["inside"] is True and served["special"] is True and served["geofence_id"] == alfama
    assert len(served["impression_id"]) == 32
    assert answer["cell"] == cells.cell_to_str(cells.latlng_to_cell(LatLng(**INSIDE_ALFAMA_CAFE), 10))
    assert answer["degraded"] is None

    clock[0] = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 11:00 in Lisbon: the special is over
    assert nearby(client, app_key)["offers"] == []


def test_caps_hold_per_device_and_reset_the_next_local_day(client, cafe, alfama, app_key, clock):
    new_offer(client, cafe, alfama, caps={"per_device_per_day": 2})
    assert [len(nearby(client, app_key)["offers"]) for _ in range(4)] == [1, 1, 0, 0]
    assert len(nearby(client, app_key, device="phone-2")["offers"]) == 1  # another device has its own count
    clock[0] = datetime(2026, 11, 24, 0, 1, tzinfo=UTC)
    assert len(nearby(client, app_key)["offers"]) == 1


def test_a_global_cap_spans_every_offer(client, settings, runtime, cafe, bakery, app_key, clock):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    new_offer(client, cafe, fence, title="latte")
    new_offer(client, cafe, fence, title="croissant")
    runtime.server.global_caps = type(runtime.server.global_caps)(per_device_per_hour=None, per_device_per_day=3)
    served = [len(nearby(client, app_key, limit=5)["offers"]) for _ in range(3)]
    assert served == [2, 1, 0]


def test_a_merchant_cap_set_by_the_admin_spans_its_offers_and_can_be_lifted(client, cafe, alfama, app_key, clock):
    new_offer(client, cafe, alfama, title="latte")
    new_offer(client, cafe, alfama, title="croissant")
    changed = client.patch(f"/v1/merchants/{cafe.id}", json={"cap_per_device_per_day": 3}, headers=ADMIN)
    assert changed.status_code == 200 and changed.json()["cap_per_device_per_day"] == 3
    assert [len(nearby(client, app_key, limit=5)["offers"]) for _ in range(3)] == [2, 1, 0]
    client.patch(f"/v1/merchants/{cafe.id}", json={"cap_per_device_per_day": None}, headers=ADMIN)
    assert len(nearby(client, app_key, limit=5)["offers"]) == 2
    assert client.patch("/v1/merchants/mer_nobody", json={"name": "x"}, headers=ADMIN).status_code == 404
    assert client.patch(f"/v1/merchants/{cafe.id}", json={"name": "x"}, headers=cafe.headers).status_code == 403


def test_nearby_offers_reach_passers_by_and_report_their_distance(client, cafe, app_key, clock):
    kiosk = client.post("/v1/geofences", json=CHIADO_KIOSK, headers=cafe.headers).json()["id"]
    new_offer(client, cafe, kiosk, title="Pastel de nata", nearby_m=1500)
    far = new_offer(client, cafe, kiosk, title="Only at the kiosk", nearby_m=0)
    answer = nearby(client, app_key)
    assert [o["title"] for o in answer["offers"]] == ["Pastel de nata"]
    assert answer["offers"][0]["inside"] is False and 900 < answer["offers"][0]["distance_m"] < 1100
    assert far["id"] not in {o["offer_id"] for o in answer["offers"]}


def test_targeting_uses_what_the_app_sends(client, cafe, alfama, app_key, clock):
    new_offer(client, cafe, alfama, targeting={"language": ["pt"], "age_range": [18, 35]})
    assert nearby(client, app_key)["offers"] == []
    assert len(nearby(client, app_key, language="pt-PT", age=30)["offers"]) == 1


def test_served_impressions_and_the_ping_go_to_the_event_stream(client, runtime, cafe, alfama, app_key, clock):
    new_offer(client, cafe, alfama)
    answer = nearby(client, app_key, device="ABC-123")

    stream = f"{runtime.settings.redis_prefix}:events"
    entries = [Event.from_json(f[b"e"]) for _, f in redis.Redis.from_url(runtime.redis_url).xrange(stream)]
    assert [e.kind for e in entries] == ["ping", "impression"]
    assert all("ABC-123" not in repr(e) for e in entries)  # the raw id is never stored
    assert len(entries[0].device_key) == 32
    assert entries[1].event_id == answer["offers"][0]["impression_id"]


def test_limit_ad_tracking_leaves_no_linkable_history(client, runtime, cafe, alfama, app_key, clock):
    new_offer(client, cafe, alfama)
    assert len(nearby(client, app_key, lmt="true")["offers"]) == 1
    stream = f"{runtime.settings.redis_prefix}:events"
    entries = [Event.from_json(f[b"e"]) for _, f in redis.Redis.from_url(runtime.redis_url).xrange(stream)]
    assert [(e.kind, e.device_key) for e in entries] == [("impression", "")]


def test_offers_are_tenant_isolated_and_fences_must_be_ones_own(client, cafe, bakery, alfama):
    offer = new_offer(client, cafe, alfama)
    assert client.get(f"/v1/offers/{offer['id']}", headers=bakery.headers).status_code == 404
    assert client.patch(f"/v1/offers/{offer['id']}", json={"title": "x"}, headers=bakery.headers).status_code == 404
    assert client.delete(f"/v1/offers/{offer['id']}", headers=bakery.headers).status_code == 404
    assert client.get("/v1/offers", headers=bakery.headers).json() == {"offers": []}
    stolen = client.post("/v1/offers", json={"title": "x", "geofence_ids": [alfama]}, headers=bakery.headers)
    assert stolen.status_code == 422
    assert stolen.json()["error"] == {
        "code": "unknown_fence",
        "message": f"no geofence '{alfama}' of yours",
        "field": "geofence_ids[0]",
    }


def test_patch_pause_and_delete_take_effect_in_serving(client, cafe, alfama, app_key, clock):
    offer = new_offer(client, cafe, alfama)
    paused = client.patch(f"/v1/offers/{offer['id']}", json={"status": "paused"}, headers=cafe.headers)
    assert paused.status_code == 200 and paused.json()["version"] == 2
    assert nearby(client, app_key)["offers"] == []
    client.patch(f"/v1/offers/{offer['id']}", json={"status": "active"}, headers=cafe.headers)
    assert len(nearby(client, app_key)["offers"]) == 1
    assert client.delete(f"/v1/offers/{offer['id']}", headers=cafe.headers).status_code == 204
    assert nearby(client, app_key)["offers"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "", "geofence_ids": ["x"]}, "title"),
        ({"title": "t", "geofence_ids": []}, "geofence_ids"),
        ({"title": "t", "geofence_ids": ["FENCE"], "priority": 101}, "priority"),
        ({"title": "t", "geofence_ids": ["FENCE"], "nearby_m": 6000}, "nearby_m"),
        ({"title": "t", "geofence_ids": ["FENCE"], "caps": {"per_device_per_day": 0}}, "caps.per_device_per_day"),
        ({"title": "t", "geofence_ids": ["FENCE"], "caps": {"per_year": 1}}, "caps.per_year"),
        (
            {
                "title": "t",
                "geofence_ids": ["FENCE"],
                "schedule": {"windows": [{"days": ["mon"], "start": "25:00", "end": "26:00"}]},
            },
            "schedule.windows[0].start",
        ),
        ({"title": "t", "geofence_ids": ["FENCE"], "status": "live"}, "status"),
        ({"title": "t", "geofence_ids": ["FENCE"], "url": "not a url"}, "url"),
        ({"title": "t", "geofence_ids": ["FENCE"], "targeting": {"age_range": [40, 20]}}, "targeting.age_range"),
        ({"title": "t", "geofence_ids": ["FENCE"], "timezone": "Lisbon"}, "timezone"),
    ],
)
def test_bad_offers_are_422_naming_the_field(client, cafe, alfama, body, field):
    body = {**body, "geofence_ids": [alfama if f == "FENCE" else f for f in body["geofence_ids"]]}

    response = client.post("/v1/offers", json=body, headers=cafe.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_deleting_a_fence_detaches_it_from_offers(client, cafe, alfama):
    kiosk = client.post("/v1/geofences", json=CHIADO_KIOSK, headers=cafe.headers).json()["id"]
    offer = new_offer(client, cafe, alfama, geofence_ids=[alfama, kiosk])
    client.delete(f"/v1/geofences/{kiosk}", headers=cafe.headers)
    assert client.get(f"/v1/offers/{offer['id']}", headers=cafe.headers).json()["geofence_ids"] == [alfama]


def test_nearby_needs_an_app_key_and_valid_coordinates(client, cafe, app_key):
    assert (
        client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": "d"}, headers=cafe.headers).status_code
        == 403
    )
    bad = client.get("/v1/nearby", params={"lat": 123.456, "lon": 678.9, "device_id": "d"}, headers=app_key)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "lat"


def test_metrics_count_requests_and_served_offers(client, cafe, alfama, app_key, clock):
    new_offer(client, cafe, alfama)
    before = scrape(client.get("/metrics").text)  # counters are per process: other tests' counts are in them
    nearby(client, app_key)
    after = scrape(client.get("/metrics").text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("geotarget_nearby_requests_total") == 1
    assert grew("geotarget_offer_decisions_total", decision="served") == 1
    assert grew("geotarget_http_request_duration_seconds_count", method="GET", route="/v1/nearby") == 1
    assert after[("geotarget_fence_index_fences", ())] >= 1
