"""API answers a new user tripped on (issue #14's list), each held so it cannot come back: errors that say what is
wrong in plain words and where, and requests that change nothing changing nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from geotarget.measurement.reporting import report_days
from tests.conftest import ADMIN
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE


def app_headers(client) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.post('/v1/apps', json={'name': 'a'}, headers=ADMIN).json()['api_key']}"}


def test_a_key_of_the_wrong_role_is_told_in_english(client):
    answer = client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": "x"}, headers=ADMIN)
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "this needs an app key; yours is an admin key"


def test_not_a_number_is_not_out_of_range(client):
    answer = client.get("/v1/nearby", params={"lat": "NaN", "lon": 1, "device_id": "x"}, headers=app_headers(client))
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "lat" and "finite number" in answer.json()["error"]["message"]


def test_a_body_that_is_not_json_says_so(client, cafe):
    headers = {**cafe.headers, "content-type": "application/json"}
    answer = client.post("/v1/offers", content=b"{", headers=headers).json()["error"]
    assert answer["field"] == "body" and answer["message"].startswith("the body is not valid JSON")


def test_a_bare_array_of_pings_is_told_to_be_wrapped(client):
    answer = client.post("/v1/pings", json=[{"device_id": "x"}], headers=app_headers(client))
    assert answer.status_code == 422
    assert '{"pings": [...]}' in answer.json()["error"]["message"]


def test_an_empty_patch_changes_nothing_and_unknown_keys_are_refused(client, cafe):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()
    same = client.patch(f"/v1/geofences/{fence['id']}", json={}, headers=cafe.headers).json()
    assert same["properties"]["version"] == fence["properties"]["version"] == 1
    unknown = client.patch(f"/v1/geofences/{fence['id']}", json={"colour": "red"}, headers=cafe.headers)
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "colour"
    offer = client.post("/v1/offers", json={"title": "t", "geofence_ids": [fence["id"]]}, headers=cafe.headers).json()
    assert client.patch(f"/v1/offers/{offer['id']}", json={}, headers=cafe.headers).json()["version"] == 1
    after = client.get(f"/v1/geofences/{fence['id']}", headers=cafe.headers).json()
    assert after["properties"]["version"] == 1


def test_a_heatmap_is_not_silently_json_when_csv_is_asked(client, cafe):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()
    answer = client.get(
        "/v1/reports/heatmap", params={"geofence_id": fence["id"], "format": "csv"}, headers=cafe.headers
    )
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "format"


def test_one_fence_is_refused_with_the_codes_a_bulk_upload_uses(client, cafe):
    circle = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-9.13, 38.71]}}
    for properties, code, field in (
        ({"name": 123, "radius_m": 30}, "bad_name", "properties.name"),
        ({"radius_m": "wide"}, "bad_radius", "properties.radius_m"),
        ({"radius_m": 30, "tags": "cafe"}, "bad_tags", "properties.tags"),
        ({"radius_m": 30, "timezone": 5}, "bad_timezone", "properties.timezone"),
    ):
        one = client.post("/v1/geofences", json={**circle, "properties": properties}, headers=cafe.headers)
        bulk = client.post(
            "/v1/geofences/bulk",
            json={"type": "FeatureCollection", "features": [{**circle, "properties": properties}]},
            headers=cafe.headers,
        )
        assert (one.status_code, one.json()["error"]["code"]) == (422, code)
        assert one.json()["error"]["field"] == field and "Input should" not in one.json()["error"]["message"]
        assert bulk.json()["results"][0]["error"]["code"] == code
    wrong = client.post("/v1/geofences", json={**circle, "type": "Feature!"}, headers=cafe.headers)
    assert wrong.json()["error"]["code"] == "not_a_feature"


def test_every_report_has_the_same_default_window_of_30_days(client, cafe):
    """reach and lift without from/to: the 30 days ending today; heatmap uses the same rule (it once took the
    month to date), and a backwards window is refused alike."""
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    offer = client.post("/v1/offers", json={"title": "x", "geofence_ids": [fence]}, headers=cafe.headers).json()
    today = datetime.now(UTC).date()
    assert report_days(None, None, date(2026, 11, 24)) == (date(2026, 10, 26), date(2026, 11, 24))

    reach = client.get("/v1/reports/reach", params={"merchant_id": cafe.id}, headers=cafe.headers).json()
    lift = client.get("/v1/reports/lift", params={"offer_id": offer["id"]}, headers=cafe.headers).json()
    for body in (reach, lift):
        assert (date.fromisoformat(body["from"]), date.fromisoformat(body["to"])) == report_days(None, None, today)
    backwards = {"geofence_id": fence, "from": "2026-11-20", "to": "2026-11-01"}
    refused = client.get("/v1/reports/heatmap", params=backwards, headers=cafe.headers)
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "to"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/geofences", "GET, POST"),
        ("DELETE", "/healthz", "GET"),
        ("GET", "/v1/openrtb2/bid", "POST"),
        ("PUT", "/v1/pings", "POST"),
    ],
)
def test_a_405_lists_every_method_the_path_answers(client, method, path, allow):
    response = client.request(method, path, headers=ADMIN)
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == allow


@pytest.mark.parametrize("body", [b'"hello"', b"42", b"null", b"true"])
def test_a_bare_json_value_to_pings_is_a_whole_request_422(client, body):
    app = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()
    headers = {"Authorization": f"Bearer {app['api_key']}", "Content-Type": "application/json"}
    for path in ("/v1/pings", "/v1/interactions"):
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 422 and response.json()["error"]["field"] == "body", (path, response.text)


def test_a_route_for_several_roles_names_them_as_a_sentence_would(client):
    """It said "this needs a merchant or an adops or an admin key"."""
    answer = client.get("/v1/reports/reach", headers=app_headers(client))
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "this needs a merchant, ad-ops or admin key; yours is an app key"


def test_an_empty_answer_whose_lat_and_lon_look_swapped_says_so(client, cafe):
    """Swapped coordinates used to be a silent 200 with no offers."""
    assert client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).status_code == 201
    app = app_headers(client)
    right = {"lat": INSIDE_ALFAMA_CAFE["lat"], "lon": INSIDE_ALFAMA_CAFE["lon"], "device_id": "x"}
    swapped = {**right, "lat": right["lon"], "lon": right["lat"]}
    answer = client.get("/v1/nearby", params=swapped, headers=app).json()
    assert answer["offers"] == []
    [warning] = answer["warnings"]
    assert warning["code"] == "lat_lon_swapped" and warning["field"] == "lat"
    assert "are lat and lon swapped?" in warning["message"]
    assert client.get("/v1/nearby", params=right, headers=app).json()["warnings"] is None  # near its fence
    nowhere = client.get("/v1/nearby", params={**right, "lat": 10.0, "lon": 20.0}, headers=app).json()
    assert nowhere["offers"] == [] and nowhere["warnings"] is None  # far from all, swapped too


def test_pings_whose_lat_and_lon_look_swapped_are_kept_and_say_so(client, cafe):
    assert client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).status_code == 201
    right = {"device_id": "x", "lat": INSIDE_ALFAMA_CAFE["lat"], "lon": INSIDE_ALFAMA_CAFE["lon"], "ts": 1_764_000_000}
    swapped = {**right, "lat": right["lon"], "lon": right["lat"]}
    body = {"pings": [right, swapped, {**swapped, "device_id": "y"}]}
    rows = client.post("/v1/pings", json=body, headers=app_headers(client)).json()["results"]
    assert [r["status"] for r in rows] == ["accepted"] * 3  # kept: they may be meant
    assert rows[0]["warnings"] is None
    for i in (1, 2):
        [warning] = rows[i]["warnings"]
        assert warning["code"] == "lat_lon_swapped" and warning["field"] == f"pings[{i}].lat"


@pytest.mark.parametrize(
    ("rule", "field", "says"),
    [
        ({"kind": "regulars", "tags": ["cafe"], "min_days": 5, "days": 3}, "rule.min_days", "5 days of visits"),
        ({"kind": "lapsed", "tags": ["cafe"], "not_within_days": 90}, "rule.not_within_days", "fewer than the 90"),
        ({"kind": "visitors"}, "rule.geofence_ids", "pick the fences"),
        ({"kind": "dwellers", "tags": ["cafe"], "min_dwell_s": 5}, "rule.min_dwell_s", "greater than or equal"),
    ],
)
def test_an_audience_error_names_the_field_to_change_in_plain_words(client, cafe, rule, field, says):
    """Not ``rule.regulars: Value error, ...``: the union's tag is no field, and pydantic's prefix no word."""
    error = client.post("/v1/audiences", json={"name": "n", "rule": rule}, headers=cafe.headers).json()["error"]
    assert error["field"] == field and error["message"].startswith(f"{field}: ")
    assert says in error["message"] and "Value error" not in error["message"]
