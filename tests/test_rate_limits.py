"""Rate limits: per key and route class, counted in Redis across workers, answered with 429 and the headers that
say when to come back; a refused request touches nothing; a Redis fault lets requests through (caps still hold)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from geotarget.runtime import Runtime
from geotarget.settings import Settings
from geotarget.store.embedded_redis import EmbeddedRedis
from geotarget.store.rate_limits import RateLimits
from geotarget.store.redis_client import connect
from tests.conftest import ADMIN, MerchantKey, make_settings, new_merchant
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.servers import free_port

LIMITED = {"rate_limit_serving": "3/second", "rate_limit_writes": "4/second", "rate_limit_reports": "2/minute"}


@pytest.fixture
def limited(tmp_path: Path, redis_url: str) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(tmp_path, redis_url, f"sqlite:///{tmp_path / 'db.sqlite'}", **LIMITED)
    runtime = Runtime.open(settings)
    try:
        with TestClient(create_app(settings, runtime)) as client:
            yield client, settings
    finally:
        runtime.close()


def _offer_nearby(client: TestClient) -> tuple[MerchantKey, dict[str, str]]:
    cafe = new_merchant(client)
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    body = {"title": "latte", "geofence_ids": [fence], "caps": {"per_device_per_day": 100}, "status": "active"}
    assert client.post("/v1/offers", json=body, headers=cafe.headers).status_code == 201
    app = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
    return cafe, {"Authorization": f"Bearer {app}"}


def _cap_counts(settings: Settings) -> int:
    client = redis.Redis.from_url(str(settings.redis_url), decode_responses=True)
    return sum(int(client.get(key) or 0) for key in client.scan_iter(f"{settings.redis_prefix}:*:cap:*"))


def _wait_for_next_second() -> None:
    """Start a burst just after a second turns, so a slow machine does not split it over two windows."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


@pytest.mark.slow
def test_over_the_limit_is_429_with_retry_after_and_touches_no_cap_then_recovers(limited):
    client, settings = limited
    _, app = _offer_nearby(client)
    params = {**INSIDE_ALFAMA_CAFE, "device_id": "phone"}
    time.sleep(1.1)  # the set-up's requests were writes: another class, but let the second pass anyway
    _wait_for_next_second()
    answers = [client.get("/v1/nearby", params=params, headers=app) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "serving rate limit (3 per 1 second)" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 2  # the window slides: up to a third of a second more
    assert refused.headers["RateLimit-Limit"] == "3" and refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) == int(refused.headers["Retry-After"])
    assert _cap_counts(settings) == 3  # the refused request reserved nothing

    time.sleep(int(refused.headers["Retry-After"]) + 0.05)
    assert client.get("/v1/nearby", params=params, headers=app).status_code == 200
    assert _cap_counts(settings) == 4


@pytest.mark.parametrize("phase", [i / 20 for i in range(20)])
def test_a_device_that_waits_its_retry_after_is_served(phase):
    """The window slides, so the end of the fixed window alone was too early a time to come back (a refused
    phone retried at Retry-After and was refused again, whenever its burst fell early in a window)."""
    from geotarget.serving.device_limits import DeviceLimits

    now = [1000.0 + phase]
    limiter = DeviceLimits("3/second", clock=lambda: now[0])
    for burst in range(4):  # it keeps asking until refused, waits as told, asks again
        refusal = None
        for _ in range(10):
            refusal = limiter.check("app", "phone")
            if refusal is not None:
                break
        assert refusal is not None and 1 <= refusal.retry_after_s <= 2, (phase, burst)
        now[0] += refusal.retry_after_s
        assert limiter.check("app", "phone") is None, (phase, burst, refusal.retry_after_s)


@pytest.mark.slow
def test_one_keys_traffic_never_limits_another_key_or_another_class(limited):
    client, _ = limited
    cafe, app = _offer_nearby(client)
    other_app = client.post("/v1/apps", json={"name": "other"}, headers=ADMIN).json()["api_key"]
    params = {**INSIDE_ALFAMA_CAFE, "device_id": "phone"}
    time.sleep(1.1)
    _wait_for_next_second()
    statuses = [client.get("/v1/nearby", params=params, headers=app).status_code for _ in range(4)]
    assert statuses[-1] == 429

    assert client.get("/v1/nearby", params=params, headers={"Authorization": f"Bearer {other_app}"}).status_code == 200
    assert client.get("/v1/reports/reach", params={"merchant_id": cafe.id}, headers=cafe.headers).status_code == 200


@pytest.mark.slow
def test_writes_and_reports_have_their_own_limits(limited):
    client, _ = limited
    cafe = new_merchant(client)
    time.sleep(1.1)
    _wait_for_next_second()
    writes = [client.get("/v1/geofences", headers=cafe.headers).status_code for _ in range(5)]
    assert writes == [200, 200, 200, 200, 429]
    reports = [client.get("/v1/reports/reach", params={"merchant_id": cafe.id}, headers=cafe.headers) for _ in range(3)]
    assert [r.status_code for r in reports] == [200, 200, 429]
    assert 1 < int(reports[-1].headers["Retry-After"]) <= 60  # a per-minute limit: a longer wait


def test_unauthenticated_requests_are_refused_without_counting_against_anyone(limited):
    client, _ = limited
    for _ in range(10):
        assert client.get("/v1/nearby", params=INSIDE_ALFAMA_CAFE).status_code == 401
    assert client.get("/healthz").status_code == 200


@pytest.fixture
def clients() -> Iterator[Callable[..., redis.Redis]]:
    """``connect`` whose clients are closed after the test (an open pool outlives it otherwise)."""
    made: list[redis.Redis] = []

    def make(url: str, timeout_ms: int = 50) -> redis.Redis:
        made.append(connect(url, timeout_ms))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.mark.slow
def test_limits_fail_open_when_redis_is_away_and_come_back_with_it(tmp_path, clients):
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    try:
        limits = RateLimits(clients(server.url), "t", {"serving": "2/second"})
        _wait_for_next_second()
        assert [limits.check("key_a", "serving") is None for _ in range(3)] == [True, True, False]
        server.stop()
        assert all(limits.check("key_b", "serving") is None for _ in range(20))
        assert limits.unavailable == 1  # one fault, then a pause: not a timeout per request
        server.start()
        time.sleep(1.1)
        _wait_for_next_second()
        assert [limits.check("key_b", "serving") is None for _ in range(3)] == [True, True, False]
    finally:
        server.stop()


def test_a_dead_redis_port_is_a_pass_not_an_error(clients):
    limits = RateLimits(clients(f"redis://127.0.0.1:{free_port()}/0"), "t", {"serving": "1/second"})
    assert limits.check("key_a", "serving") is None and limits.check("key_a", "serving") is None


def test_limits_are_checked_when_settings_load(tmp_path):
    with pytest.raises(ValueError, match="rate_limit_serving"):
        Settings(data_dir=tmp_path, rate_limit_serving="lots per second")
    assert Settings(data_dir=tmp_path, rate_limit_reports="").rate_limits()["reports"] == ""


def test_a_large_limit_is_counted_in_leases_and_still_holds_across_workers(redis_url, clients):
    """200/second: each worker counts ten requests per Redis call; two workers sharing a key let through no
    more than 200 in the second, and at most a lease each fewer."""
    prefix = f"t{time.time_ns()}"
    workers = [RateLimits(clients(redis_url, 2_000), prefix, {"serving": "200/second"}) for _ in range(2)]
    calls = []
    for worker in workers:
        hit = worker._limiter.hit
        worker._limiter.hit = lambda *a, hit=hit, **k: calls.append(1) or hit(*a, **k)  # type: ignore[method-assign]
    _wait_for_next_second()
    allowed = sum(workers[i % 2].check("key_a", "serving") is None for i in range(300))
    assert 200 - 2 * 10 <= allowed <= 200
    assert len(calls) < 300 / 5  # leases of ten, and a few exact calls at the end of the window


@pytest.mark.slow
def test_a_flooding_device_never_refuses_a_quiet_device_of_the_same_app(limited):
    """DESIGN §9.6: the app key ships in every copy of the app; the serving limit counts per device."""
    client, _ = limited
    _, app = _offer_nearby(client)
    flood = {**INSIDE_ALFAMA_CAFE, "device_id": "noisy-phone"}
    quiet = {**INSIDE_ALFAMA_CAFE, "device_id": "quiet-phone"}
    time.sleep(1.1)
    _wait_for_next_second()
    flooded, quietly = [], []
    for n in range(12):
        flooded.append(client.get("/v1/nearby", params=flood, headers=app).status_code)
        if n % 6 == 0:
            quietly.append(client.get("/v1/nearby", params=quiet, headers=app).status_code)

    assert flooded.count(429) >= 9 and flooded[:3] == [200, 200, 200]
    assert quietly == [200, 200]
    refused = client.get("/v1/nearby", params=flood, headers=app)
    assert "this device is over its serving rate limit (3 per 1 second)" in refused.json()["error"]["message"]


@pytest.fixture
def limited_in_total(tmp_path: Path, redis_url: str) -> Iterator[TestClient]:
    limits = LIMITED | {"rate_limit_serving_total": "4/second", "rate_limit_batches": "2/second"}
    settings = make_settings(tmp_path, redis_url, f"sqlite:///{tmp_path / 'db.sqlite'}", **limits)
    runtime = Runtime.open(settings)
    try:
        with TestClient(create_app(settings, runtime)) as client:
            yield client
    finally:
        runtime.close()


@pytest.mark.slow
def test_a_total_per_key_when_set_and_batches_per_key(limited_in_total):
    client = limited_in_total
    _, app = _offer_nearby(client)
    time.sleep(1.1)
    _wait_for_next_second()
    statuses = [
        client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": f"phone-{n}"}, headers=app).status_code
        for n in range(5)
    ]
    assert statuses == [200, 200, 200, 200, 429]  # four devices, one each: the key's total

    time.sleep(1.1)
    _wait_for_next_second()
    ping = {"device_id": "phone", **INSIDE_ALFAMA_CAFE, "ts": int(time.time())}
    pings = [client.post("/v1/pings", json=ping, headers=app) for _ in range(3)]
    assert [p.status_code for p in pings] == [200, 200, 429]
    assert "batches rate limit (2 per 1 second)" in pings[-1].json()["error"]["message"]


def test_each_worker_takes_its_share_of_a_device_limit():
    from geotarget.serving.device_limits import DeviceLimits

    now = [1000.0]
    workers = [DeviceLimits("20/second", workers=2, clock=lambda: now[0]) for _ in range(2)]
    spread = sum(workers[i % 2].check("app", "phone") is None for i in range(40))
    assert spread == 20  # spread over both workers: the whole limit
    now[0] += 1.0  # the next second (the previous one still weighs in: slide on)
    now[0] += 1.0
    held = sum(workers[0].check("app", "phone") is None for _ in range(40))
    assert held == 10  # kept on one worker: its share
