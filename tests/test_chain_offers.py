"""A chain's offer names its stores by tag, or as all of the merchant's fences (DESIGN §9.2): a store opened
later with the tag is served the offer without anyone editing it, and another merchant's stores never are."""

from __future__ import annotations

import pytest

from geotarget.catalog.snapshot import Catalog
from tests.conftest import ADMIN
from tests.test_api_offers_and_nearby import app_key, clock  # noqa: F401  (fixtures)


def store(lon: float, lat: float, *tags: str) -> dict[str, object]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"name": f"Store {lon:.4f}", "radius_m": 30, "tags": list(tags)},
    }


ROSSIO, CHIADO, BELEM = (-9.1394, 38.7139), (-9.1421, 38.7107), (-9.2060, 38.6970)


def served(client, headers, where: tuple[float, float], device: str = "phone-1") -> set[str]:
    lon, lat = where
    answer = client.get("/v1/nearby", params={"lat": lat, "lon": lon, "device_id": device}, headers=headers)
    assert answer.status_code == 200, answer.text
    return {o["offer_id"] for o in answer.json()["offers"]}


def put(client, merchant, feature) -> str:
    made = client.post("/v1/geofences", json=feature, headers=merchant.headers)
    assert made.status_code == 201, made.text
    return made.json()["id"]


def offer(client, merchant, **fields) -> dict:
    made = client.post("/v1/offers", json={"title": "Chain week", **fields}, headers=merchant.headers)
    assert made.status_code == 201, made.text
    return made.json()


def test_an_offer_by_tag_reaches_every_tagged_store_and_one_opened_later(client, cafe, app_key, clock):  # noqa: F811
    put(client, cafe, store(*ROSSIO, "flagship", "lisbon"))
    put(client, cafe, store(*CHIADO, "kiosk"))
    week = offer(client, cafe, geofence_tags=["lisbon"])
    assert week["geofence_ids"] == [] and week["geofence_tags"] == ["lisbon"]
    assert week["id"] in served(client, app_key, ROSSIO)
    assert week["id"] not in served(client, app_key, CHIADO, "phone-2")

    put(client, cafe, store(*BELEM, "lisbon"))  # a new store: nobody edits the offer
    assert week["id"] in served(client, app_key, BELEM, "phone-3")


def test_a_store_that_loses_its_tag_or_closes_stops_serving_it(client, cafe, app_key, clock):  # noqa: F811
    rossio = put(client, cafe, store(*ROSSIO, "lisbon"))
    chiado = put(client, cafe, store(*CHIADO, "lisbon"))
    week = offer(client, cafe, geofence_tags=["lisbon"])
    untagged = client.patch(f"/v1/geofences/{rossio}", json={"properties": {"tags": []}}, headers=cafe.headers)
    assert untagged.status_code == 200
    assert week["id"] not in served(client, app_key, ROSSIO)
    assert client.delete(f"/v1/geofences/{chiado}", headers=cafe.headers).status_code == 204
    assert week["id"] not in served(client, app_key, CHIADO, "phone-2")


def test_all_geofences_means_the_merchants_own_and_never_anothers(client, cafe, bakery, app_key, clock):  # noqa: F811
    put(client, cafe, store(*ROSSIO, "lisbon"))
    put(client, bakery, store(*CHIADO, "lisbon"))
    everywhere = offer(client, cafe, all_geofences=True)
    tagged = offer(client, cafe, geofence_tags=["lisbon"])
    assert {everywhere["id"], tagged["id"]} <= served(client, app_key, ROSSIO)
    assert not {everywhere["id"], tagged["id"]} & served(client, app_key, CHIADO, "phone-2")
    put(client, cafe, store(*BELEM))  # no tags: only the offer over all fences
    assert everywhere["id"] in served(client, app_key, BELEM, "phone-3")
    assert tagged["id"] not in served(client, app_key, BELEM, "phone-4")


def test_an_audience_fence_with_the_tag_is_never_served_or_pushed(client, runtime, cafe, app_key, clock):  # noqa: F811
    home = store(*ROSSIO, "lisbon")
    home["properties"]["purpose"] = "audience"
    fence_id = put(client, cafe, home)
    pulled = offer(client, cafe, geofence_tags=["lisbon"])
    offer(client, cafe, all_geofences=True, trigger={"on": "enter"})
    assert pulled["id"] not in served(client, app_key, ROSSIO)
    assert fence_id not in runtime.catalog.triggered


def test_a_worker_that_starts_resolves_tags_as_the_writer_did(client, runtime, cafe):
    put(client, cafe, store(*ROSSIO, "lisbon"))
    put(client, cafe, store(*CHIADO, "lisbon"))
    offer(client, cafe, geofence_tags=["lisbon"], trigger={"on": "enter"})
    offer(client, cafe, all_geofences=True, nearby_m=200)
    fresh = Catalog(runtime.catalog.index.res)
    fresh.load_all(runtime.repository)
    assert fresh.triggered.keys() == runtime.catalog.triggered.keys() and len(fresh.triggered) == 2
    assert fresh.view.count == runtime.catalog.view.count == 2  # the triggered offer is pushed, not pulled
    assert sorted(fresh.view.fence_ids) == sorted(runtime.catalog.view.fence_ids[: runtime.catalog.view.count])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "geofence_ids"),
        ({"geofence_tags": [""]}, "geofence_tags[0]"),
        ({"geofence_tags": [f"t{i}" for i in range(21)]}, "geofence_tags"),
        ({"all_geofences": "sometimes"}, "all_geofences"),
    ],
)
def test_an_offer_without_fences_or_with_bad_tags_is_422(client, cafe, fields, field):
    response = client.post("/v1/offers", json={"title": "Nowhere", **fields}, headers=cafe.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_a_tag_offer_of_a_merchant_without_a_time_zone_asks_for_one(client):
    made = client.post("/v1/merchants", json={"name": "Zoneless"}, headers=ADMIN).json()
    headers = {"Authorization": f"Bearer {made['api_key']}"}
    response = client.post("/v1/offers", json={"title": "Week", "geofence_tags": ["x"]}, headers=headers)
    assert response.status_code == 422 and response.json()["error"]["field"] == "timezone"
    given = client.post(
        "/v1/offers", json={"title": "Week", "geofence_tags": ["x"], "timezone": "Europe/Lisbon"}, headers=headers
    )
    assert given.status_code == 201


def test_the_report_scopes_list_a_chain_offer_with_the_stores_it_is_on_now(client, cafe, bakery):
    """The dashboard offers a heatmap per fence of the chosen offer: a tag offer's fences are its tagged stores."""
    rossio = put(client, cafe, store(*ROSSIO, "lisbon"))
    put(client, cafe, store(*CHIADO, "kiosk"))
    put(client, bakery, store(*BELEM, "lisbon"))
    week = offer(client, cafe, geofence_tags=["lisbon"])
    adops = client.post("/v1/apps", json={"name": "ops", "role": "adops"}, headers=ADMIN).json()["api_key"]
    scopes = client.get("/v1/reports/scopes", headers={"Authorization": f"Bearer {adops}"}).json()
    assert next(o for o in scopes["offers"] if o["id"] == week["id"])["geofence_ids"] == [rossio]
