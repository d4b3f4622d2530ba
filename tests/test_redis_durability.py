"""Caps are promises to people: they survive a restart of geotarget and of Redis, and the event pipeline heals
by itself when Redis comes back empty."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from api.deps import now
from api.main import create_app
from geotarget.runtime import Runtime
from geotarget.store.embedded_redis import EmbeddedRedis
from geotarget.store.keys import events_stream
from tests.conftest import ADMIN, make_settings, new_merchant
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.servers import free_port, unconfigured, wait_ready

CAPPED_LATTE = {"title": "capped latte", "caps": {"per_device_per_day": 3}, "status": "active"}


_LOGS: dict[str, Path] = {}  # server base URL -> its output, shown when an answer is degraded


@contextmanager
def embedded_serve(data_dir: Path) -> Iterator[str]:
    """``geotarget serve`` with nothing configured: its own embedded Redis and SQLite in ``data_dir``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    _LOGS[base] = data_dir.parent / f"serve-{port}.log"
    with _LOGS[base].open("w") as log:
        process = unconfigured("serve", data_dir, port, output=log.fileno(), admin_key="durable-admin")
        try:
            wait_ready(base, process)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=30)


def served(base: str, app_key: str, device: str) -> list[str]:
    answer = httpx.get(
        f"{base}/v1/nearby",
        params={**INSIDE_ALFAMA_CAFE, "device_id": device},
        headers={"Authorization": f"Bearer {app_key}"},
    ).json()
    if answer.get("degraded") is not None:
        told = [line for line in _LOGS[base].read_text().splitlines() if "/v1/nearby" not in line]
        pytest.fail(f"degraded answer {answer}; the server said:\n" + "\n".join(told[-40:]))
    return [o["title"] for o in answer["offers"]]


@pytest.mark.slow
def test_a_daily_cap_holds_across_a_restart_of_geotarget_serve_with_embedded_redis(tmp_path):
    data_dir = tmp_path / "data"
    with embedded_serve(data_dir) as base:
        admin = {"Authorization": "Bearer durable-admin"}
        owner = httpx.post(f"{base}/v1/merchants", json={"name": "Café", "timezone": "UTC"}, headers=admin).json()
        app_key = httpx.post(f"{base}/v1/apps", json={"name": "app"}, headers=admin).json()["api_key"]
        headers = {"Authorization": f"Bearer {owner['api_key']}"}
        fence = httpx.post(f"{base}/v1/geofences", json=ALFAMA_CAFE, headers=headers).json()["id"]
        assert httpx.post(f"{base}/v1/offers", json={**CAPPED_LATTE, "geofence_ids": [fence]}, headers=headers)
        assert [len(served(base, app_key, "phone")) for _ in range(4)] == [1, 1, 1, 0]
        assert httpx.get(f"{base}/readyz").json()["redis_persistence"] == "aof"
    with embedded_serve(data_dir) as base:
        assert served(base, app_key, "phone") == []
        assert served(base, app_key, "another phone") == ["capped latte"]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()


@contextmanager
def client_on(tmp_path: Path, redis_url: str, **settings: object) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = Runtime.open(make_settings(tmp_path, redis_url, f"sqlite:///{tmp_path / 'db.sqlite'}", **settings))
    try:
        with TestClient(create_app(runtime.settings, runtime)) as client:
            client.app.dependency_overrides[now] = lambda: datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
            yield client, runtime
    finally:
        runtime.close()


def city(client: TestClient) -> dict[str, str]:
    cafe = new_merchant(client)
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    assert client.post("/v1/offers", json={**CAPPED_LATTE, "geofence_ids": [fence]}, headers=cafe.headers)
    app = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
    return {"Authorization": f"Bearer {app}"}


def titles(client: TestClient, headers: dict[str, str], device: str) -> list[str]:
    answer = client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": device}, headers=headers).json()
    assert answer.get("degraded") is None, answer
    return [o["title"] for o in answer["offers"]]


def test_a_daily_cap_holds_across_a_restart_of_a_persistent_redis(tmp_path, own_redis):
    with client_on(tmp_path, own_redis.url) as (client, _):
        headers = city(client)
        assert [len(titles(client, headers, "phone")) for _ in range(4)] == [1, 1, 1, 0]
        time.sleep(1.2)  # appendfsync everysec
        own_redis.stop()
        own_redis.start()
        deadline = time.monotonic() + 5
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert titles(client, headers, "phone") == []
        assert titles(client, headers, "another phone") == ["capped latte"]


def test_the_consumer_recovers_by_itself_when_redis_comes_back_empty(tmp_path, own_redis):
    with client_on(tmp_path, own_redis.url, consume_in_serve=True, consumer_linger_ms=0) as (client, runtime):
        headers = city(client)
        titles(client, headers, "before")
        stream = redis.Redis.from_url(own_redis.url)
        wait_for(
            lambda: runtime.events.has_data() and stream.xlen(events_stream(runtime.settings.redis_prefix)) == 0,
            "the first events in the event store",
        )
        files_before = len(list(runtime.events.files()))

        stream.flushall()  # as if Redis restarted without its data
        for n in range(3):
            titles(client, headers, f"after-{n}")
        wait_for(lambda: len(list(runtime.events.files())) > files_before, "events written after the flush")


def wait_for(condition, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
