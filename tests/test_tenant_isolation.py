"""A merchant can never see or change another merchant's fence: every route answers 404 (never 403, which would
confirm the id exists) and leaves the fence untouched."""

from __future__ import annotations

import pytest

from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE

OTHER_MERCHANT_ROUTES = [
    ("GET", "/v1/geofences/{id}", None),
    ("PATCH", "/v1/geofences/{id}", {"properties": {"name": "stolen"}}),
    ("DELETE", "/v1/geofences/{id}", None),
    ("GET", "/v1/geofences/{id}/cells", None),
]


@pytest.mark.parametrize(("method", "path", "body"), OTHER_MERCHANT_ROUTES)
def test_another_merchants_fence_is_not_found(client, cafe, bakery, method, path, body):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()
    response = client.request(method, path.format(id=fence["id"]), json=body, headers=bakery.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    untouched = client.get(f"/v1/geofences/{fence['id']}", headers=cafe.headers).json()
    assert untouched["properties"]["name"] == "Café Tejo — Alfama"
    assert untouched["properties"]["version"] == 1


def test_listing_and_contains_show_only_the_callers_fences(client, cafe, bakery):
    client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers)
    assert client.get("/v1/geofences", headers=bakery.headers).json()["features"] == []
    answer = client.get(
        "/v1/geofences/contains", params={**INSIDE_ALFAMA_CAFE, "within_m": 5000}, headers=bakery.headers
    )
    assert answer.json() == {"fences": []}
