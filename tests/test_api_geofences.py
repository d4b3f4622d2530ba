"""The merchant geofence API, against a real Redis and both SQLite and PostgreSQL."""

from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geofences.formats import FORMATS, write_features
from geotarget.runtime import Runtime
from tests.conftest import ADMIN, make_settings, new_merchant
from tests.fixtures import ALFAMA_CAFE, CHIADO_KIOSK, INSIDE_ALFAMA_CAFE, NEW_YORK_BAR


def test_a_merchant_draws_a_fence_and_gets_it_back_with_zone_area_and_cells(client, cafe):
    created = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers)
    assert created.status_code == 201, created.text
    fence = created.json()
    assert fence["id"].startswith("fen_")
    assert fence["properties"]["timezone"] == "Europe/Lisbon"
    assert 3_000 < fence["properties"]["area_m2"] < 4_000
    assert fence["properties"]["h3"]["res"] == 10
    assert fence["properties"]["h3"]["boundary_cells"] >= 1

    assert client.get(f"/v1/geofences/{fence['id']}", headers=cafe.headers).json()["geometry"] == fence["geometry"]
    listing = client.get("/v1/geofences", headers=cafe.headers).json()
    assert listing["type"] == "FeatureCollection"
    assert [f["id"] for f in listing["features"]] == [fence["id"]]


def test_the_time_zone_is_derived_from_the_location_unless_given(client, cafe):
    bar = client.post("/v1/geofences", json=NEW_YORK_BAR, headers=cafe.headers).json()
    assert bar["properties"]["timezone"] == "America/New_York"
    given = copy.deepcopy(NEW_YORK_BAR)
    given["properties"]["timezone"] = "America/Chicago"
    assert client.post("/v1/geofences", json=given, headers=cafe.headers).json()["properties"]["timezone"] == (
        "America/Chicago"
    )
    given["properties"]["timezone"] = "Mars/Olympus"
    refused = client.post("/v1/geofences", json=given, headers=cafe.headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "properties.timezone"


def test_contains_answers_inside_and_nearby_with_distances(client, cafe):
    alfama = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()
    kiosk = client.post("/v1/geofences", json=CHIADO_KIOSK, headers=cafe.headers).json()
    inside = client.get("/v1/geofences/contains", params=INSIDE_ALFAMA_CAFE, headers=cafe.headers).json()
    assert inside == {"fences": [{"id": alfama["id"], "name": "Café Tejo — Alfama", "inside": True, "distance_m": 0.0}]}
    around = client.get(
        "/v1/geofences/contains", params={**INSIDE_ALFAMA_CAFE, "within_m": 1500}, headers=cafe.headers
    ).json()["fences"]
    assert [f["id"] for f in around] == [alfama["id"], kiosk["id"]]
    assert 900 < around[1]["distance_m"] < 1100 and around[1]["inside"] is False


def test_cells_are_the_index_cover_marked_interior_and_boundary(client, cafe):
    big = copy.deepcopy(ALFAMA_CAFE)
    big["geometry"]["coordinates"] = [
        [[-9.135, 38.710], [-9.125, 38.710], [-9.125, 38.716], [-9.135, 38.716], [-9.135, 38.710]]
    ]
    fence = client.post("/v1/geofences", json=big, headers=cafe.headers).json()
    cells = client.get(f"/v1/geofences/{fence['id']}/cells", headers=cafe.headers).json()
    kinds = {f["properties"]["kind"] for f in cells["features"]}
    assert kinds == {"interior", "boundary"}
    summary = fence["properties"]["h3"]
    assert len(cells["features"]) == summary["interior_cells"] + summary["boundary_cells"]
    finer = client.get(f"/v1/geofences/{fence['id']}/cells", params={"res": 11}, headers=cafe.headers).json()
    assert len(finer["features"]) > len(cells["features"])
    too_fine = client.get(f"/v1/geofences/{fence['id']}/cells", params={"res": 15}, headers=cafe.headers)
    assert too_fine.status_code == 422 and too_fine.json()["error"]["field"] == "res"


def test_patch_renames_moves_and_revalidates(client, cafe):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()
    renamed = client.patch(
        f"/v1/geofences/{fence['id']}", json={"properties": {"name": "Tejo Alfama"}}, headers=cafe.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["properties"]["name"] == "Tejo Alfama"
    assert renamed.json()["properties"]["version"] == 2

    moved = client.patch(
        f"/v1/geofences/{fence['id']}", json={"geometry": NEW_YORK_BAR["geometry"]}, headers=cafe.headers
    ).json()
    assert moved["properties"]["timezone"] == "America/New_York"
    assert client.get("/v1/geofences/contains", params=INSIDE_ALFAMA_CAFE, headers=cafe.headers).json() == {
        "fences": []
    }

    broken = {
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[0, 0], [0.001, 0.001], [0.001, 0], [0, 0.001], [0, 0]]],
        }
    }
    refused = client.patch(f"/v1/geofences/{fence['id']}", json=broken, headers=cafe.headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_geometry"
    kept = client.get(f"/v1/geofences/{fence['id']}", headers=cafe.headers).json()
    assert kept["geometry"] == moved["geometry"]  # nothing lost by a refused change


def test_delete_removes_the_fence_from_storage_and_index(client, cafe):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()
    assert client.delete(f"/v1/geofences/{fence['id']}", headers=cafe.headers).status_code == 204
    assert client.get(f"/v1/geofences/{fence['id']}", headers=cafe.headers).status_code == 404
    assert client.get("/v1/geofences/contains", params=INSIDE_ALFAMA_CAFE, headers=cafe.headers).json() == {
        "fences": []
    }


def test_repair_true_fixes_a_bow_tie_and_says_so(client, cafe):
    bow_tie = {
        "type": "Feature",
        "properties": {"name": "Bow tie"},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[0, 0], [0.001, 0.001], [0.001, 0], [0, 0.001], [0, 0]]],
        },
    }
    refused = client.post("/v1/geofences", json=bow_tie, headers=cafe.headers)
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "invalid_geometry",
        "message": "ring 0 intersects itself near [0.0005, 0.0005] (send ?repair=true to fix it with make_valid)",
        "field": "geometry.coordinates[0]",
    }
    repaired = client.post("/v1/geofences", params={"repair": "true"}, json=bow_tie, headers=cafe.headers)
    assert repaired.status_code == 201
    assert "make_valid" in repaired.json()["properties"]["repaired"]


def test_bulk_json_stores_the_valid_and_reports_the_invalid_by_index(client, cafe):
    bad = {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-9.1, 38.7]}}
    body = {"type": "FeatureCollection", "features": [ALFAMA_CAFE, bad, CHIADO_KIOSK]}
    result = client.post("/v1/geofences/bulk", json=body, headers=cafe.headers).json()
    assert (result["created"], result["rejected"]) == (2, 1)
    assert [r["status"] for r in result["results"]] == ["created", "rejected", "created"]
    assert result["results"][1]["error"]["field"] == "features[1].properties.radius_m"
    assert len(client.get("/v1/geofences", headers=cafe.headers).json()["features"]) == 2


def test_every_bulk_rejection_names_its_row_in_the_field_path(client, cafe):
    point = {"type": "Point", "coordinates": [-9.1, 38.7]}
    rows = [
        {"type": "Feature", "properties": {"name": 7}, "geometry": point},
        {"type": "Feature", "properties": {"radius_m": "wide"}, "geometry": point},
        {"type": "Feature", "properties": {"radius_m": 1e6}, "geometry": point},
        {"type": "Feature", "properties": {}, "geometry": point},
        {"type": "Feature", "properties": {"tags": "x", "radius_m": 20}, "geometry": point},
    ]
    body = {"type": "FeatureCollection", "features": rows}
    results = client.post("/v1/geofences/bulk", json=body, headers=cafe.headers).json()["results"]
    fields = [r["error"]["field"] for r in results]
    assert all(field.startswith(f"features[{i}].properties.") for i, field in enumerate(fields)), fields


@pytest.mark.parametrize("fmt", FORMATS)
def test_bulk_upload_accepts_every_file_format(client, cafe, fmt):
    data = write_features([ALFAMA_CAFE, NEW_YORK_BAR], fmt)
    name = {"shapefile": "fences.zip"}.get(fmt, f"fences.{fmt}")
    response = client.post("/v1/geofences/bulk", files={"file": (name, data)}, headers=cafe.headers)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 2
    names = {f["properties"]["name"] for f in client.get("/v1/geofences", headers=cafe.headers).json()["features"]}
    assert names == {"Café Tejo — Alfama", "Bar on Bleecker"}


def test_a_broken_upload_is_a_422_that_names_the_file(client, cafe):
    response = client.post("/v1/geofences/bulk", files={"file": ("x.zip", b"PK\x03\x04junk")}, headers=cafe.headers)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "file"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer nope"}, 401, "unauthorized"),
        (ADMIN, 403, "forbidden"),
    ],
)
def test_fences_need_a_merchant_key(client, headers, status, code):
    response = client.get("/v1/geofences", headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_only_admin_creates_merchants_and_apps(client, cafe):
    assert client.post("/v1/merchants", json={"name": "X"}, headers=cafe.headers).status_code == 403
    app_key = client.post("/v1/apps", json={"name": "Lisbon Guide"}, headers=ADMIN)
    assert app_key.status_code == 201 and app_key.json()["api_key"].startswith("gt_app_")
    adops = client.post("/v1/apps", json={"name": "Ops", "role": "adops"}, headers=ADMIN).json()
    assert client.get("/v1/geofences", headers={"Authorization": f"Bearer {adops['api_key']}"}).status_code == 403
    bad_zone = client.post("/v1/merchants", json={"name": "X", "timezone": "Lisbon"}, headers=ADMIN)
    assert bad_zone.status_code == 422 and bad_zone.json()["error"]["field"] == "timezone"


def test_an_oversized_body_is_a_413(client, cafe):
    huge = b'{"type": "FeatureCollection", "features": [' + b" " * (21 * 1024 * 1024) + b"]}"
    response = client.post(
        "/v1/geofences/bulk", content=huge, headers={**cafe.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz").json()
    assert ready["checks"] == {"redis": "ok", "database": "ok"} and ready["status"] == "ok"
    assert ready["redis_persistence"] in ("aof", "rdb", "none", "unknown")


def test_two_merchants_with_the_same_name_are_separate_tenants(client):
    first, second = new_merchant(client, "Twin"), new_merchant(client, "Twin")
    assert first.id != second.id


def _swapped(feature: dict) -> dict:
    """The same polygon or circle typed as [lat, lon] pairs, the mistake GeoJSON's order invites."""
    geometry = feature["geometry"]
    if geometry["type"] == "Point":
        lon, lat = geometry["coordinates"]
        return {**feature, "geometry": {"type": "Point", "coordinates": [lat, lon]}}
    rings = [[[lat, lon] for lon, lat in ring] for ring in geometry["coordinates"]]
    return {**feature, "geometry": {"type": "Polygon", "coordinates": rings}}


def test_a_fence_with_lat_and_lon_swapped_is_kept_with_a_warning(client, cafe):
    first = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers)
    assert first.status_code == 201 and first.json().get("warnings") is None  # Lisbon, as the merchant's zone

    swapped = client.post("/v1/geofences", json=_swapped(ALFAMA_CAFE), headers=cafe.headers)
    assert swapped.status_code == 201
    codes = {w["code"]: w for w in swapped.json()["warnings"]}
    assert set(codes) == {"far_from_other_fences", "far_from_merchant_timezone"}
    assert "swapped" in codes["far_from_other_fences"]["message"]
    assert codes["far_from_other_fences"]["field"] == "geometry"
    assert len(client.get("/v1/geofences", headers=cafe.headers).json()["features"]) == 2  # kept: it may be meant

    nearby = client.post("/v1/geofences", json=CHIADO_KIOSK, headers=cafe.headers)
    assert nearby.json().get("warnings") is None  # 1 km from the first: nothing odd


def test_a_mistake_saved_earlier_does_not_hide_the_next_one(client, cafe):
    """The first swapped fence is kept (it may be meant); the next swapped one lies next to it, yet is judged
    against the merchant's fences in its own time zone, so it is warned about all the same."""
    for feature in (ALFAMA_CAFE, CHIADO_KIOSK, _swapped(ALFAMA_CAFE)):
        assert client.post("/v1/geofences", json=feature, headers=cafe.headers).status_code == 201
    again = client.post("/v1/geofences", json=_swapped(CHIADO_KIOSK), headers=cafe.headers).json()
    codes = {w["code"]: w["message"] for w in again["warnings"]}
    assert "swapped" in codes["far_from_other_fences"] and "far_from_merchant_timezone" in codes


def test_without_a_merchant_time_zone_the_middle_of_its_fences_decides(client):
    made = client.post("/v1/merchants", json={"name": "Zoneless"}, headers=ADMIN).json()
    headers = {"Authorization": f"Bearer {made['api_key']}"}
    kiosk = {**CHIADO_KIOSK, "properties": {**CHIADO_KIOSK["properties"], "name": "Kiosk 2"}}
    for feature in (ALFAMA_CAFE, CHIADO_KIOSK, kiosk, _swapped(ALFAMA_CAFE)):
        client.post("/v1/geofences", json=feature, headers=headers)
    again = client.post("/v1/geofences", json=_swapped(CHIADO_KIOSK), headers=headers).json()
    assert [w["code"] for w in again["warnings"]] == ["far_from_other_fences"]
    good = client.post("/v1/geofences", json=kiosk, headers=headers)
    assert good.json().get("warnings") is None  # two of five are mistakes: the middle is still in Lisbon


@pytest.fixture
def three_fences_each(tmp_path, redis_url, database_url):
    settings = make_settings(tmp_path, redis_url, database_url, max_fences_per_merchant=3)
    runtime = Runtime.open(settings)
    with TestClient(create_app(settings, runtime)) as client:
        yield client
    runtime.close()


def test_a_merchant_holds_at_most_max_fences_per_merchant(three_fences_each):
    client = three_fences_each
    cafe = new_merchant(client, "Café Tejo")
    bakery = new_merchant(client, "Padaria")
    assert client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).status_code == 201
    bulk = {"type": "FeatureCollection", "features": [ALFAMA_CAFE] * 3}
    refused = client.post("/v1/geofences/bulk", json=bulk, headers=cafe.headers)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "quota"
    assert "2 more fit" in refused.json()["error"]["message"]
    assert len(client.get("/v1/geofences", headers=cafe.headers).json()["features"]) == 1  # nothing half-written

    bulk["features"] = [ALFAMA_CAFE] * 2
    assert client.post("/v1/geofences/bulk", json=bulk, headers=cafe.headers).status_code == 200
    assert client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).status_code == 409
    assert client.post("/v1/geofences", json=ALFAMA_CAFE, headers=bakery.headers).status_code == 201  # its own share


@pytest.fixture
def on_database(tmp_path, redis_url, database_url):
    settings = make_settings(tmp_path, redis_url, database_url)
    runtime = Runtime.open(settings)
    with TestClient(create_app(settings, runtime)) as client:
        yield client
    runtime.close()


def test_a_deleted_fence_leaves_exactly_the_offers_that_named_it_and_no_other(on_database):
    """Found in SQL by the ids' JSON text (a chain's offers are no longer all read): the merchant's offer on
    another fence only, and another merchant's offer, are untouched."""
    client = on_database
    cafe, bakery = new_merchant(client, "Café Tejo"), new_merchant(client, "Padaria")
    alfama, kiosk = (
        client.post("/v1/geofences", json=f, headers=cafe.headers).json()["id"] for f in (ALFAMA_CAFE, CHIADO_KIOSK)
    )
    own = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=bakery.headers).json()["id"]

    def offer(merchant, *fences: str) -> dict:
        body = {"title": "latte", "geofence_ids": list(fences), "status": "active"}
        return client.post("/v1/offers", json=body, headers=merchant.headers).json()

    both, other, theirs = offer(cafe, alfama, kiosk), offer(cafe, kiosk), offer(bakery, own)
    assert client.delete(f"/v1/geofences/{alfama}", headers=cafe.headers).status_code == 204

    def now(merchant, made: dict) -> dict:
        return client.get(f"/v1/offers/{made['id']}", headers=merchant.headers).json()

    assert now(cafe, both)["geofence_ids"] == [kiosk]
    assert now(cafe, other) == other  # not even a new version
    assert now(bakery, theirs) == theirs
    patched = client.patch(f"/v1/geofences/{kiosk}", json={"properties": {"purpose": "audience"}}, headers=cafe.headers)
    assert patched.status_code == 409 and both["id"] in patched.json()["error"]["message"]
