"""Posters (issue: QR codes): an offer's QR code decodes to a signed link whose page shows the offer at its store
and hands out a code within the offer's caps; a forged or altered link is a 404, a stopped offer a 410; scans
and the redemptions they lead to are in the reach report, k respected; a served code comes with its QR image."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from api.main import create_app
from geotarget.posters.tokens import PosterRef, sign
from geotarget.runtime import Runtime
from tests.conftest import ADMIN, make_settings
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE

K = 2


@pytest.fixture
def settings(tmp_path, redis_url, database_url):
    return make_settings(tmp_path, redis_url, database_url, report_min_devices=K)


def decoded(image: bytes) -> str:
    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(image)))
    assert found.format == zxingcpp.BarcodeFormat.QRCode
    return str(found.text)


def poster(client, cafe, **fields):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()
    body = {"title": "Two lattes", "body": "Show the code", "geofence_ids": [fence["id"]], **fields}
    offer = client.post("/v1/offers", json=body, headers=cafe.headers).json()
    qr = client.get(f"/v1/offers/{offer['id']}/qr", params={"format": "png", "size": 300}, headers=cafe.headers)
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/png", qr.text
    link = decoded(qr.content)
    assert link == qr.headers["geotarget-poster-link"] and urlparse(link).path.startswith("/o/")
    return fence, offer, link


def scan(client, link, browser=None, **headers):
    client.cookies.clear()
    if browser:
        client.cookies.set("gt_browser", browser, path="/o/")
    return client.get(link, headers=headers)


def report(client, cafe, offer_id):
    today = datetime.now(UTC).date().isoformat()
    params = {"offer_id": offer_id, "from": today, "to": today}
    return client.get("/v1/reports/reach", params=params, headers=cafe.headers).json()["totals"]


def test_a_posters_qr_code_opens_the_offer_at_its_store_with_a_unique_code_within_its_caps(client, cafe, runtime):
    fence, offer, link = poster(client, cafe, redemption={"unique": True}, caps={"per_device_lifetime": 1})
    page = scan(client, link, "browser-one-aaaaaaaaaaaa")
    assert page.status_code == 200 and "Two lattes" in page.text and fence["properties"]["name"] in page.text
    code = page.text.split('class="code-text">')[1].split("<")[0]
    assert len(code) == 14 and page.headers["content-security-policy"].startswith("default-src 'self'")
    image = client.get(f"/qr/{code}.svg")
    assert image.status_code == 200 and image.headers["content-type"] == "image/svg+xml"
    again = scan(client, link, "browser-one-aaaaaaaaaaaa")  # the same browser: the lifetime cap of 1 holds
    assert "as often as it allows" in again.text and 'class="code-text"' not in again.text
    other = scan(client, link)  # a new browser gets its own id (a cookie) and its own code
    assert 'class="code-text"' in other.text and "gt_browser=" in other.headers["set-cookie"]
    assert "HttpOnly" in other.headers["set-cookie"] and "Path=/o/" in other.headers["set-cookie"]

    runtime.consumer.drain()  # the codes are stored with their impressions: the till takes them
    for shown in (code, other.text.split('class="code-text">')[1].split("<")[0]):
        redeemed = client.post("/v1/redemptions", json={"code": shown}, headers=cafe.headers)
        assert redeemed.status_code == 200 and redeemed.json()["offer"]["id"] == offer["id"]
    runtime.consumer.drain()
    totals = report(client, cafe, offer["id"])  # two browsers redeemed: k = 2 is met
    assert (totals["scans"], totals["scan_redemptions"], totals["redemptions"]) == (3, 2, 2)
    assert totals["pushes"] == 0 and totals["impressions"] == 2  # two codes handed out: impressions, not pushes


def test_forged_altered_or_foreign_links_are_404_and_a_stopped_offer_410(client, cafe, runtime):
    fence, offer, link = poster(client, cafe)
    token = urlparse(link).path.removeprefix("/o/")
    body, mac = token.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for bad in (
        f"{body}.{flipped}",
        f"{body[:-2]}.{mac}",
        "x",
        sign("another secret", PosterRef(offer["id"], fence["id"])),
    ):
        answer = client.get(f"/o/{bad}")
        assert answer.status_code == 404 and "Not a poster of ours" in answer.text, bad
    client.patch(f"/v1/offers/{offer['id']}", json={"status": "paused"}, headers=cafe.headers)
    stopped = client.get(link)
    assert stopped.status_code == 410 and "no longer running" in stopped.text
    client.delete(f"/v1/offers/{offer['id']}", headers=cafe.headers)
    assert client.get(link).status_code == 410


def test_a_browser_that_asks_not_to_be_tracked_gets_no_id_and_no_unique_code_but_a_static_one(client, cafe, runtime):
    _, _, unique_link = poster(client, cafe, redemption={"unique": True})
    for header in ({"DNT": "1"}, {"Sec-GPC": "1"}):
        page = scan(client, unique_link, **header)
        assert "set-cookie" not in page.headers and "asks not to be tracked" in page.text
    _, _, static_link = poster(client, cafe, title="Cake", redemption={"code": "CAKE1"})
    assert 'class="code-text">CAKE1<' in scan(client, static_link, DNT="1").text


def test_scans_are_reported_per_offer_with_k_respected(client, cafe, runtime):
    _, offer, link = poster(client, cafe)
    scan(client, link, "lonely-browser-aaaaaaaaaa")
    runtime.consumer.drain()
    lonely = report(client, cafe, offer["id"])
    assert lonely["scans"] is None and "scans" in lonely["suppressed"]  # one browser: under k = 2
    scan(client, link, "second-browser-aaaaaaaaaa")
    runtime.consumer.drain()
    assert report(client, cafe, offer["id"])["scans"] == 2
    csv = client.get("/v1/reports/reach", params={"offer_id": offer["id"], "format": "csv"}, headers=cafe.headers).text
    assert "scans,scan_redemptions" in csv.splitlines()[0]


def test_a_served_code_carries_the_link_of_its_qr_image_which_reads_as_the_code(client, cafe):
    app = {"Authorization": f"Bearer {client.post('/v1/apps', json={'name': 'a'}, headers=ADMIN).json()['api_key']}"}
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()
    body = {"title": "latte", "geofence_ids": [fence["id"]], "redemption": {"unique": True}}
    client.post("/v1/offers", json=body, headers=cafe.headers)
    params = {**INSIDE_ALFAMA_CAFE, "device_id": "phone", "accuracy_m": 10}
    (shown,) = client.get("/v1/nearby", params=params, headers=app).json()["offers"]
    assert shown["redemption_qr"] == f"http://testserver/qr/{shown['redemption_code']}.svg"
    assert client.get(shown["redemption_qr"]).text.startswith("<svg")


def test_the_poster_needs_the_store_when_the_offer_is_on_several_and_never_another_merchants(client, cafe, bakery):
    first = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()
    second = client.post("/v1/geofences", json={**ALFAMA_CAFE, "properties": {"name": "Two"}}, headers=cafe.headers)
    offer = client.post("/v1/offers", json={"title": "t", "all_geofences": True}, headers=cafe.headers).json()
    which = client.get(f"/v1/offers/{offer['id']}/qr", headers=cafe.headers)
    assert which.status_code == 422 and which.json()["error"]["field"] == "geofence_id"
    chosen = client.get(f"/v1/offers/{offer['id']}/qr", params={"geofence_id": first["id"]}, headers=cafe.headers)
    assert chosen.status_code == 200 and chosen.text.startswith("<svg") and second.status_code == 201
    assert client.get(f"/v1/offers/{offer['id']}/qr", headers=bakery.headers).status_code == 404
    assert client.get("/qr/<script>.svg").status_code == 422
    assert client.get("/qr/ABC%0A.svg").status_code == 422  # a newline after a good code is no code


def test_the_public_pages_are_rate_limited_per_client_address(tmp_path, redis_url, database_url):
    settings = make_settings(tmp_path, redis_url, database_url, rate_limit_public="3/minute")
    runtime = Runtime.open(settings)
    try:
        with TestClient(create_app(settings, runtime)) as client:
            answers = [client.get(path) for path in ("/o/x", "/qr/ABC.svg", "/o/x", "/o/x")]
            assert [a.status_code for a in answers] == [404, 200, 404, 429]
            assert int(answers[-1].headers["retry-after"]) > 0 and "Too many requests" in answers[-1].text
            assert client.get("/healthz").status_code == 200  # the API's own limits are apart
    finally:
        runtime.close()
