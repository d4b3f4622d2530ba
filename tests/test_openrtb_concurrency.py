"""Outstanding bids never let a device exceed its caps: 300 simultaneous bid requests for one device against a
real server with two worker processes and a real Redis, an offer capped at 3 a day."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_KEY
from tests.servers import serving
from tests.test_openrtb import LISBON, bid_request

SIMULTANEOUS = 300


def setup(base: str) -> dict[str, str]:
    merchant = httpx.post(f"{base}/v1/merchants", json={"name": "Café Tejo"}, headers=ADMIN).json()
    headers = {"Authorization": f"Bearer {merchant['api_key']}"}
    fence = {
        "type": "Feature",
        "properties": {"name": "Café Tejo", "radius_m": 40},
        "geometry": {"type": "Point", "coordinates": [LISBON[1], LISBON[0]]},
    }
    fence_id = httpx.post(f"{base}/v1/geofences", json=fence, headers=headers).json()["id"]
    offer = {
        "title": "latte",
        "url": "https://cafe-tejo.example/",
        "bid_cpm": 2.0,
        "caps": {"per_device_per_day": 3},
        "geofence_ids": [fence_id],
    }
    assert httpx.post(f"{base}/v1/offers", json=offer, headers=headers).status_code == 201
    exchange = httpx.post(f"{base}/v1/apps", json={"name": "Exchange", "role": "exchange"}, headers=ADMIN).json()
    return {"Authorization": f"Bearer {exchange['api_key']}"}


async def burst(base: str, headers: dict[str, str], device: str) -> list[dict]:
    limits = httpx.Limits(max_connections=SIMULTANEOUS)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/openrtb2/bid", json=bid_request(device=device)) for _ in range(SIMULTANEOUS))
        )
    assert {a.status_code for a in answers} == {200}  # a bid, or a no-bid with nbr 9 (capped)
    bodies = [a.json() for a in answers]
    assert {b.get("nbr") for b in bodies if "seatbid" not in b} <= {9}
    return [bid for b in bodies for seat in b.get("seatbid", ()) for bid in seat["bid"]]


async def send(base: str, urls: list[str], price: str) -> list[str]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        answers = await asyncio.gather(*(client.get(_filled(url, price)) for url in urls))
    return [a.json()["outcome"] for a in answers]


def _filled(url: str, price: str) -> str:
    parts = urlsplit(url.replace("${AUCTION_PRICE}", price).replace("${AUCTION_LOSS}", "102"))
    return f"{parts.path}?{parts.query}"


def nearby_offers(base: str, device: str) -> int:
    app = httpx.post(f"{base}/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
    params = {"lat": LISBON[0], "lon": LISBON[1], "device_id": device}
    answer = httpx.get(f"{base}/v1/nearby", params=params, headers={"Authorization": f"Bearer {app}"}).json()
    return len(answer["offers"])


@pytest.mark.slow
def test_300_simultaneous_bids_for_one_device_capped_at_3_win_exactly_3_impressions(tmp_path, redis_url):
    with serving(tmp_path, redis_url, ADMIN_KEY, workers=2, redis_timeout_ms="2000") as [base]:
        exchange = setup(base)
        bids = asyncio.run(burst(base, exchange, "phone-1"))
        assert len(bids) == 3
        outcomes = asyncio.run(send(base, [b["nurl"] for b in bids] * 2, "1.5"))  # every win sent twice
        assert sorted(outcomes) == ["settled"] * 3 + ["unknown"] * 3
        assert asyncio.run(burst(base, exchange, "phone-1")) == []  # three impressions: the cap is used
        assert nearby_offers(base, "phone-1") == 0  # and the app path sees the same counters


@pytest.mark.slow
def test_losses_free_the_slots_for_the_next_bids(tmp_path, redis_url):
    with serving(tmp_path, redis_url, ADMIN_KEY, workers=2, redis_timeout_ms="2000") as [base]:
        exchange = setup(base)
        first = asyncio.run(burst(base, exchange, "phone-2"))
        assert len(first) == 3
        assert asyncio.run(send(base, [b["lurl"] for b in first], "")) == ["settled"] * 3
        second = asyncio.run(burst(base, exchange, "phone-2"))
        assert len(second) == 3  # the slots the losses freed, and no more
        assert asyncio.run(send(base, [b["nurl"] for b in second[:1]], "2.0")) == ["settled"]
        assert asyncio.run(send(base, [b["lurl"] for b in second[1:]], "")) == ["settled"] * 2
        assert len(asyncio.run(burst(base, exchange, "phone-2"))) == 2  # one impression counted, two freed
