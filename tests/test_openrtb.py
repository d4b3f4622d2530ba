"""OpenRTB 2.6 bidding through the API: real bid requests from the IAB specification and Prebid Server's tests,
the location rules, creatives, floors and notices, with a real Redis holding the bids' cap slots."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import orjson
import pytest

from tests.conftest import ADMIN
from tests.openrtb26 import check_bid_response, check_native_response

# what each sample gets once an offer with a bid price sits on a fence at its position (when it has one)
EXPECTED = {
    "iab_openrtb26_spec_example1_simple_banner.json": 204,  # no position
    "iab_openrtb26_spec_example3_mobile.json": 204,  # no position
    "prebid_bidmyadz_site_banner_seattle.json": "bid",
    "prebid_endpoint_device_sua_INVALID_latlon.json": 204,  # lat 123.456, lon 678.9
    "prebid_evolution_site_banner_mexicocity.json": "bid",  # gdpr 0, the exchange's user id
    "prebid_infytv_app_video_guadalajara.json": 204,  # video only
    "prebid_smartx_device_geo_type2_munich.json": 204,  # video only
    "prebid_stroeer_app_mobile_banner_paris.json": "bid",  # asks for EUR: bid in a deployment that bids in EUR
    "prebid_yieldlab_app_video_london.json": 204,  # video only
}
LISBON = (38.71125, -9.13015)


def place(client, merchant, lat: float, lon: float, radius_m: float = 60, **fields) -> dict:
    """A round fence at (lat, lon) and an offer on it with a bid price, a link and an image."""
    fence = {
        "type": "Feature",
        "properties": {"name": f"store {lat:.4f},{lon:.4f}", "radius_m": radius_m},
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
    }
    made = client.post("/v1/geofences", json=fence, headers=merchant.headers)
    assert made.status_code == 201, made.text
    offer = {
        "title": "2-for-1 lattes",
        "body": "Every weekday morning",
        "url": "https://www.cafe-tejo.example/lattes",
        "image_url": "https://cafe-tejo.example/latte.jpg",
        "bid_cpm": 2.5,
        "nearby_m": 300,
        "geofence_ids": [made.json()["id"]],
        **fields,
    }
    created = client.post("/v1/offers", json=offer, headers=merchant.headers)
    assert created.status_code == 201, created.text
    return created.json()


def bid_request(lat: float = LISBON[0], lon: float = LISBON[1], device: str = "device-1", **parts) -> dict:
    request = {
        "id": "auction-1",
        "imp": [{"id": "1", "banner": {"format": [{"w": 320, "h": 50}]}, "bidfloor": 0.5, "bidfloorcur": "USD"}],
        "device": {"ifa": device, "geo": {"lat": lat, "lon": lon, "type": 1}, "os": "Android"},
    }
    request.update(parts)
    return request


def post_bid(client, exchange, request: dict):
    return client.post("/v1/openrtb2/bid", content=orjson.dumps(request), headers=exchange)


def only_bid(response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    check_bid_response(body)
    [seat] = body["seatbid"]
    [bid] = seat["bid"]
    return bid


def notice(client, url: str, price: str | None = None):
    """Call a notice URL as an exchange does: its macros filled in."""
    filled = url.replace("${AUCTION_PRICE}", price or "").replace("${AUCTION_LOSS}", "102")
    parts = urlsplit(filled)
    return client.get(parts.path, params={k: v[0] for k, v in parse_qs(parts.query).items()})


def stream_events(runtime, kind: str) -> list[dict]:
    stream = runtime.server.capper.stream
    found = [orjson.loads(fields.get("e") or fields[b"e"]) for _, fields in runtime.redis.xrange(stream)]
    return [e for e in found if e["kind"] == kind]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_sample_request_gets_a_valid_answer(client, runtime, cafe, exchange, shared_data, name):
    """The samples live in ../shared/data (skipped outside CI when it is not beside the checkout)."""
    sample = json.loads((shared_data / "openrtb" / name).read_text())
    geo = (sample.get("device") or {}).get("geo") or {}
    if geo and abs(geo["lat"]) <= 90 and abs(geo["lon"]) <= 180:
        place(client, cafe, geo["lat"], geo["lon"])
    if "EUR" in (sample.get("cur") or ()):
        runtime.bidder.rules = replace(runtime.bidder.rules, currency="EUR")
    response = post_bid(client, exchange, sample)
    if EXPECTED[name] == 204:
        assert response.status_code == 204, response.text
        assert response.content == b""
        return
    bid = only_bid(response)
    body = response.json()
    assert body["id"] == sample["id"] and body["cur"] == runtime.bidder.rules.currency
    assert bid["impid"] == sample["imp"][0]["id"]
    assert bid["price"] == 2.5 >= sample["imp"][0].get("bidfloor", 0)
    assert bid["adomain"] == ["cafe-tejo.example"] and bid["mtype"] == 1
    assert (bid["w"], bid["h"]) == (300, 250)  # the first format the imp offers
    assert bid["crid"].startswith(bid["cid"]) and bid["cid"].startswith("off")
    for url in (bid["nurl"], bid["burl"], bid["lurl"]):
        assert "${AUCTION_PRICE}" in url and "/v1/openrtb2/" in url


def test_the_banner_escapes_what_the_merchant_wrote(client, cafe, exchange):
    place(client, cafe, *LISBON, title='<script>alert("x")</script> & co', body="<img src=x onerror=alert(1)>")
    adm = only_bid(post_bid(client, exchange, bid_request()))["adm"]
    assert "<script>" not in adm and "onerror=alert" not in adm.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in adm
    assert 'href="https://www.cafe-tejo.example/lattes"' in adm and 'src="https://cafe-tejo.example/latte.jpg"' in adm


def test_a_native_request_gets_the_assets_it_asked_for(client, cafe, exchange):
    place(client, cafe, *LISBON)
    native = {
        "ver": "1.2",
        "assets": [
            {"id": 1, "required": 1, "title": {"len": 10}},
            {"id": 2, "required": 1, "img": {"type": 3, "w": 300, "h": 250}},
            {"id": 3, "required": 0, "data": {"type": 2, "len": 90}},
            {"id": 4, "required": 0, "data": {"type": 1}},
            {"id": 5, "required": 0, "video": {"mimes": ["video/mp4"]}},
        ],
    }
    request = bid_request(imp=[{"id": "n1", "native": {"request": json.dumps(native), "ver": "1.2"}}])
    bid = only_bid(post_bid(client, exchange, request))
    assert bid["mtype"] == 4 and "w" not in bid
    document = json.loads(bid["adm"])
    check_native_response(document)
    assets = {a["id"]: a for a in document["assets"]}
    assert assets[1]["title"]["text"] == "2-for-1 l…"  # cut to the 10 characters asked for
    assert assets[2]["img"] == {"url": "https://cafe-tejo.example/latte.jpg", "w": 300, "h": 250}
    assert assets[3]["data"]["value"] == "Every weekday morning"
    assert assets[4]["data"]["value"] == "cafe-tejo.example"
    assert 5 not in assets and document["link"]["url"] == "https://www.cafe-tejo.example/lattes"


def test_a_native_request_requiring_what_the_offer_lacks_gets_no_bid(client, cafe, exchange):
    place(client, cafe, *LISBON, image_url=None)
    native = {"assets": [{"id": 1, "required": 1, "img": {"type": 3}}]}
    request = bid_request(imp=[{"id": "n1", "native": {"request": json.dumps(native)}}])
    assert post_bid(client, exchange, request).status_code == 204


def test_floors_are_respected_and_offers_without_a_bid_price_never_bid(client, cafe, exchange):
    place(client, cafe, *LISBON, bid_cpm=1.0)
    place(client, cafe, *LISBON, title="not on exchanges", bid_cpm=None, priority=100)
    floor = bid_request()
    floor["imp"][0]["bidfloor"] = 1.01
    assert post_bid(client, exchange, floor).status_code == 204
    floor["imp"][0]["bidfloor"] = 1.0
    assert only_bid(post_bid(client, exchange, floor))["price"] == 1.0
    floor["imp"][0].update(bidfloor=0.1, bidfloorcur="EUR")  # no exchange rates: not comparable
    assert post_bid(client, exchange, floor).status_code == 204


def test_blocked_advertiser_domains_are_not_bid(client, cafe, exchange):
    place(client, cafe, *LISBON)
    assert post_bid(client, exchange, bid_request(badv=["cafe-tejo.example"])).status_code == 204
    assert post_bid(client, exchange, bid_request(badv=["other.example"])).status_code == 200


def test_one_bid_per_imp_each_with_a_different_offer(client, cafe, bakery, exchange):
    place(client, cafe, *LISBON, title="latte")
    place(client, bakery, *LISBON, title="pastel", url="https://padaria.example/")
    banner = {"banner": {"w": 300, "h": 250}}
    request = bid_request(imp=[{"id": "a", **banner}, {"id": "b", **banner}, {"id": "c", **banner}])
    body = post_bid(client, exchange, request).json()
    check_bid_response(body)
    bids = body["seatbid"][0]["bid"]
    assert sorted(b["impid"] for b in bids) == ["a", "b"]  # two offers for three slots
    assert len({b["cid"] for b in bids}) == 2


class TestLocationQuality:
    def test_a_gps_fix_inside_wins_an_inside_only_offer(self, client, cafe, exchange):
        place(client, cafe, *LISBON, nearby_m=0)
        assert post_bid(client, exchange, bid_request()).status_code == 200

    @pytest.mark.parametrize(
        "geo",
        [
            {"type": 2},  # IP-derived
            {"type": 1, "lastfix": 301},  # GPS, but stale
            {"type": 1, "accuracy": 250},  # GPS, less accurate than GEOTARGET_MAX_ACCURACY_M
        ],
    )
    def test_a_coarse_position_never_wins_an_inside_only_offer(self, client, cafe, exchange, geo):
        place(client, cafe, *LISBON, nearby_m=0)
        request = bid_request()
        request["device"]["geo"] |= geo
        assert post_bid(client, exchange, request).status_code == 204

    def test_a_coarse_position_still_wins_an_offer_for_nearby_devices(self, client, cafe, exchange):
        place(client, cafe, *LISBON, nearby_m=300)
        request = bid_request()
        request["device"]["geo"] |= {"type": 2, "accuracy": 3000}
        assert post_bid(client, exchange, request).status_code == 200
        [event] = stream_events(client.app.state.runtime, "bid")
        assert event["accuracy_m"] == 3000 and event["inside"] is True

    def test_user_geo_is_read_when_the_device_has_none(self, client, cafe, exchange):
        place(client, cafe, *LISBON)
        request = bid_request()
        request["user"] = {"geo": request["device"].pop("geo")}
        assert post_bid(client, exchange, request).status_code == 200

    def test_a_zeroed_ifa_falls_back_to_the_exchange_user_id_and_neither_is_no_bid_8(self, client, cafe, exchange):
        place(client, cafe, *LISBON)
        request = bid_request(device="00000000-0000-0000-0000-000000000000", user={"id": "exchange-user-7"})
        assert post_bid(client, exchange, request).status_code == 200
        request.pop("user")
        response = post_bid(client, exchange, request)
        assert response.status_code == 200 and response.json() == {"id": "auction-1", "nbr": 8}


class TestMalformedRequests:
    def test_malformed_json_is_a_400_in_the_error_format(self, client, exchange):
        response = client.post("/v1/openrtb2/bid", content=b'{"id": ', headers=exchange)
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"

    @pytest.mark.parametrize(
        "request_body",
        [{"id": "x"}, {"id": "x", "imp": []}, {"id": "x", "imp": [{"id": "1"}], "device": {"geo": {"lat": "north"}}}],
    )
    def test_json_that_is_no_bid_request_is_a_no_bid_with_nbr_2(self, client, exchange, request_body):
        response = post_bid(client, exchange, request_body)
        assert response.status_code == 200 and response.json() == {"id": "x", "nbr": 2}

    def test_only_exchange_keys_may_bid(self, client):
        app = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
        response = post_bid(client, {"Authorization": f"Bearer {app}"}, bid_request())
        assert response.status_code == 403 and "an exchange key" in response.json()["error"]["message"]


class TestNotices:
    def test_a_win_makes_the_held_bid_an_impression_at_the_clearing_price(self, client, runtime, cafe, exchange):
        place(client, cafe, *LISBON, caps={"per_device_per_day": 1})
        bid = only_bid(post_bid(client, exchange, bid_request()))
        assert post_bid(client, exchange, bid_request()).json() == {"id": "auction-1", "nbr": 9}  # held: capped
        won = notice(client, bid["nurl"], "1.234")
        assert won.status_code == 200 and won.json() == {"bid": bid["id"], "outcome": "settled"}
        [impression] = stream_events(runtime, "impression")
        assert impression["price"] == 1.234 and impression["event_id"] == bid["id"]
        billed = notice(client, bid["burl"], "1.234")
        assert billed.json()["outcome"] == "unknown"  # settled once
        assert stream_events(runtime, "impression") == [impression]
        assert post_bid(client, exchange, bid_request()).json()["nbr"] == 9  # the impression uses the cap

    def test_a_loss_frees_the_held_slot(self, client, cafe, exchange):
        place(client, cafe, *LISBON, caps={"per_device_per_day": 1})
        bid = only_bid(post_bid(client, exchange, bid_request()))
        assert notice(client, bid["lurl"], "3.0").json()["outcome"] == "settled"
        assert notice(client, bid["nurl"], "1.0").json()["outcome"] == "unknown"  # lost is lost
        assert post_bid(client, exchange, bid_request()).status_code == 200

    def test_a_hold_lasts_at_least_the_floor_whatever_imp_exp_says(self, client, cafe, exchange):
        place(client, cafe, *LISBON, caps={"per_device_per_day": 1})
        request = bid_request()
        request["imp"][0]["exp"] = 1  # the exchange says the impression comes within a second
        assert only_bid(post_bid(client, exchange, request))["exp"] == 5  # GEOTARGET_BID_MIN_HOLD_S
        assert post_bid(client, exchange, request).json() == {"id": "auction-1", "nbr": 9}

    def test_a_price_above_the_bid_is_cut_to_it_and_an_unfilled_macro_means_the_bid(self, client, runtime, cafe,
                                                                                      exchange):  # fmt: skip
        place(client, cafe, *LISBON)
        first = only_bid(post_bid(client, exchange, bid_request(device="a")))
        second = only_bid(post_bid(client, exchange, bid_request(device="b")))
        notice(client, first["nurl"], "99")
        client.get(urlsplit(second["burl"]).path + "?" + urlsplit(second["burl"]).query)  # ${AUCTION_PRICE} as is
        assert sorted(e["price"] for e in stream_events(runtime, "impression")) == [2.5, 2.5]

    @pytest.mark.parametrize("change", ["bid", "bp", "sig", "kind"])
    def test_a_tampered_notice_is_refused(self, client, cafe, exchange, change):
        place(client, cafe, *LISBON)
        bid = only_bid(post_bid(client, exchange, bid_request()))
        parts = urlsplit(bid["nurl"])
        params = {k: v[0] for k, v in parse_qs(parts.query).items()} | {"price": "1"}
        path = parts.path
        if change == "kind":
            path = path.replace("/win", "/loss")  # a loss made from the win URL
        else:
            params[change] = params[change][:-1] + ("0" if params[change][-1] != "0" else "1")
        response = client.get(path, params=params)
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
        assert notice(client, bid["nurl"], "1").json()["outcome"] == "settled"  # the real one still works

    @pytest.mark.parametrize("field", ["bid", "bp", "sig"])
    def test_a_notice_with_junk_in_its_signed_fields_is_a_422_not_a_crash(self, client, field):
        params = {"bid": "0" * 32, "bp": "2.5", "sig": "0" * 32, field: "\u00f1\U0001f600 x"}
        response = client.get("/v1/openrtb2/win", params=params)
        assert response.status_code == 422 and response.json()["error"]["field"] == field

    def test_a_non_ascii_signature_is_refused_by_the_check_itself(self):
        from geotarget.bidding.notices import InvalidNotice, notice_key, verify

        with pytest.raises(InvalidNotice):
            verify(notice_key("secret"), "win", "0" * 32, "2.5", "\u00f1" * 32)

    def test_a_malformed_price_is_a_422_naming_it(self, client, cafe, exchange):
        place(client, cafe, *LISBON)
        bid = only_bid(post_bid(client, exchange, bid_request()))
        response = notice(client, bid["nurl"], "NaN")
        assert response.status_code == 422 and response.json()["error"]["field"] == "price"


def test_bid_price_is_an_offer_field_with_limits(client, cafe):
    fence = client.post(
        "/v1/geofences",
        json={"type": "Feature", "properties": {"name": "x", "radius_m": 30},
              "geometry": {"type": "Point", "coordinates": [LISBON[1], LISBON[0]]}},
        headers=cafe.headers,
    ).json()["id"]  # fmt: skip
    for bad in (0, -1, 1001, "cheap"):
        response = client.post(
            "/v1/offers", json={"title": "t", "geofence_ids": [fence], "bid_cpm": bad}, headers=cafe.headers
        )
        assert response.status_code == 422 and response.json()["error"]["field"] == "bid_cpm"
    made = client.post(
        "/v1/offers", json={"title": "t", "geofence_ids": [fence], "bid_cpm": 0.75}, headers=cafe.headers
    )
    assert made.json()["bid_cpm"] == 0.75
    patched = client.patch(f"/v1/offers/{made.json()['id']}", json={"bid_cpm": None}, headers=cafe.headers)
    assert patched.status_code == 200 and patched.json()["bid_cpm"] is None


def today(offer: dict) -> dict[str, str]:
    """The reach report of today, in the merchant's calendar (Lisbon's), for one offer: one row."""
    day = datetime.now(ZoneInfo("Europe/Lisbon")).date().isoformat()
    return {"offer_id": offer["id"], "from": day, "to": day}


def test_reach_reports_count_bids_wins_and_spend(client, runtime, cafe, exchange):
    offer = place(client, cafe, *LISBON)
    bids = [only_bid(post_bid(client, exchange, bid_request(device=f"phone-{i}"))) for i in range(12)]
    for bid in bids[:10]:
        assert notice(client, bid["nurl"], "2.0").json()["outcome"] == "settled"
    for bid in bids[10:]:
        assert notice(client, bid["lurl"], "2.1").json()["outcome"] == "settled"
    runtime.consumer.drain()
    report = client.get("/v1/reports/reach", params=today(offer), headers=cafe.headers)
    assert report.status_code == 200, report.text
    [row] = report.json()["rows"]
    assert (row["bids"], row["wins"], row["impressions"], row["spend"]) == (12, 10, 10, 0.02)
    csv = client.get("/v1/reports/reach", params=today(offer) | {"format": "csv"}, headers=cafe.headers).text
    header, values = csv.splitlines()[:2]
    named = dict(zip(header.split(","), values.split(","), strict=True))
    assert (named["bids"], named["wins"], named["spend"]) == ("12", "10", "0.02")


def test_fewer_bidders_than_k_are_suppressed(client, runtime, cafe, exchange):
    offer = place(client, cafe, *LISBON)
    for i in range(3):
        notice(client, only_bid(post_bid(client, exchange, bid_request(device=f"few-{i}")))["nurl"], "1.0")
    runtime.consumer.drain()
    [row] = client.get("/v1/reports/reach", params=today(offer), headers=cafe.headers).json()["rows"]
    assert row["bids"] is None and row["wins"] is None and row["spend"] is None
    assert {"bids", "wins", "spend"} <= set(row["suppressed"])


def test_erasing_a_device_drops_its_open_bids(client, runtime, cafe, exchange):
    place(client, cafe, *LISBON)
    bid = only_bid(post_bid(client, exchange, bid_request(device="erase-me")))
    other = only_bid(post_bid(client, exchange, bid_request(device="keep-me")))
    assert client.delete("/v1/devices/erase-me", headers=ADMIN).status_code == 200
    assert notice(client, bid["nurl"], "1.0").json()["outcome"] == "unknown"
    assert notice(client, other["nurl"], "1.0").json()["outcome"] == "settled"


def test_every_decision_is_counted_by_reason_in_metrics(client, cafe, exchange):
    place(client, cafe, *LISBON)
    post_bid(client, exchange, bid_request())
    post_bid(client, exchange, bid_request(regs={"coppa": 1}))
    post_bid(client, exchange, bid_request(lat=10.0, lon=10.0))
    text = client.get("/metrics").text
    for reason in ("bid", "coppa", "no_offer"):
        assert f'geotarget_bid_decisions_total{{reason="{reason}"}}' in text
