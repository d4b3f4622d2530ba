"""One exchange key cannot take serving down: a bid request has its own body limit (256 KiB) and slot limit (20
imps), refused before any parsing, and another app's ``/v1/nearby`` keeps its latency while oversized bid
requests pour in."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.servers import serving
from tests.test_openrtb import bid_request, post_bid


def with_imps(count: int) -> dict:
    request = bid_request()
    request["imp"] = [{**request["imp"][0], "id": str(n)} for n in range(count)]
    return request


def test_a_bid_request_over_256_kib_is_refused_unread(client, exchange):
    request = bid_request(ext={"padding": "x" * 300_000})
    response = post_bid(client, exchange, request)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert "262,144 bytes" in response.json()["error"]["message"]


def test_a_bid_request_streamed_without_a_length_is_cut_off_at_the_limit(client, exchange):
    def chunks() -> Iterator[bytes]:
        yield b'{"id": "x", "imp": ['
        for _ in range(400):
            yield b'{"id": "1", "banner": {"w": 320, "h": 50}, "ext": "' + b"x" * 1000 + b'"},'
        yield b'{"id": "2"}]}'

    response = client.post("/v1/openrtb2/bid", content=chunks(), headers=exchange)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_more_imps_than_the_limit_are_refused_naming_imp(client, exchange):
    refused = post_bid(client, exchange, with_imps(21))
    assert refused.status_code == 413 and refused.json()["error"]["field"] == "imp"
    assert "at most 20 imps" in refused.json()["error"]["message"]
    assert post_bid(client, exchange, with_imps(20)).status_code in (200, 204)


def test_other_routes_keep_the_general_body_limit(client, cafe):
    big = {**ALFAMA_CAFE, "properties": {**ALFAMA_CAFE["properties"], "name": "Café", "tags": ["x" * 300_000]}}
    response = client.post("/v1/geofences", json=big, headers=cafe.headers)
    assert response.status_code != 413  # a fence may be larger than a bid request


@pytest.mark.slow
def test_oversized_bids_from_one_exchange_leave_another_apps_nearby_quick(tmp_path, redis_url):
    """The attack as reported: 200,000-imp bid requests (about 12 MiB) four at a time against one worker."""
    with serving(tmp_path / "data", redis_url, "bid-admin", workers=1) as [base]:
        admin = {"Authorization": "Bearer bid-admin"}
        merchant = httpx.post(f"{base}/v1/merchants", json={"name": "Café"}, headers=admin).json()
        app = httpx.post(f"{base}/v1/apps", json={"name": "Phone app"}, headers=admin).json()
        bidder = httpx.post(f"{base}/v1/apps", json={"name": "Ex", "role": "exchange"}, headers=admin).json()
        owner = {"Authorization": f"Bearer {merchant['api_key']}"}
        fence = httpx.post(f"{base}/v1/geofences", json=ALFAMA_CAFE, headers=owner).json()
        offer = {"title": "Pastel de nata", "geofence_ids": [fence["id"]], "status": "active"}
        assert httpx.post(f"{base}/v1/offers", json=offer, headers=owner).status_code == 201

        huge = orjson.dumps(with_imps(200_000))
        assert len(huge) > 10 * 1024 * 1024
        stop = threading.Event()
        refusals: list[int] = []

        def flood() -> None:
            with httpx.Client(base_url=base, timeout=60) as exchange_client:
                while not stop.is_set():
                    try:
                        answer = exchange_client.post(
                            "/v1/openrtb2/bid",
                            content=huge,
                            headers={"Authorization": f"Bearer {bidder['api_key']}"},
                        )
                        refusals.append(answer.status_code)
                    except httpx.TransportError:
                        refusals.append(413)  # the server answered and closed before the upload ended

        floods = [threading.Thread(target=flood) for _ in range(4)]
        for thread in floods:
            thread.start()
        latencies_ms: list[float] = []
        try:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {app['api_key']}"}) as phone:
                for n in range(150):
                    started = time.perf_counter()
                    answer = phone.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": f"walker-{n}"})
                    latencies_ms.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200, answer.text
                    time.sleep(0.01)
        finally:
            stop.set()
            for thread in floods:
                thread.join(60)

        assert refusals and set(refusals) == {413}
        p99 = statistics.quantiles(latencies_ms, n=100)[98]
        print(f"nearby during oversized bids: p50={statistics.median(latencies_ms):.1f} ms p99={p99:.1f} ms")
        assert p99 < 250, f"p99 {p99:.0f} ms"
