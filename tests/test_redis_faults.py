"""Redis stops mid-run: /v1/nearby keeps answering, withholds capped offers and says so; readiness reports it;
when Redis comes back, serving recovers by itself. The Redis here is a real server process the test controls."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.deps import now
from api.main import create_app
from geotarget.runtime import Runtime
from geotarget.store.embedded_redis import EmbeddedRedis
from tests.conftest import ADMIN, make_settings, new_merchant
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE


@pytest.fixture
def own_redis(tmp_path):
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    yield server
    server.stop()


def test_nearby_degrades_while_redis_is_down_and_recovers_without_a_restart(tmp_path, own_redis):
    settings = make_settings(tmp_path, own_redis.url, f"sqlite:///{tmp_path / 'db.sqlite'}")
    runtime = Runtime.open(settings)
    try:
        with TestClient(create_app(settings, runtime)) as client:
            client.app.dependency_overrides[now] = lambda: datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
            cafe = new_merchant(client)
            fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
            for title, caps in (("capped latte", {"per_device_per_day": 5}), ("free water", None)):
                body = {"title": title, "geofence_ids": [fence], "caps": caps}
                assert client.post("/v1/offers", json=body, headers=cafe.headers).status_code == 201
            app = client.post("/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
            params = {**INSIDE_ALFAMA_CAFE, "device_id": "phone", "limit": 5}
            headers = {"Authorization": f"Bearer {app}"}

            def titles() -> tuple[list[str], str | None, float]:
                started = time.perf_counter()
                body = client.get("/v1/nearby", params=params, headers=headers).json()
                return sorted(o["title"] for o in body["offers"]), body.get("degraded"), time.perf_counter() - started

            assert titles()[:2] == (["capped latte", "free water"], None)

            own_redis.stop()
            offers, degraded, seconds = titles()
            assert (offers, degraded) == (["free water"], "caps unavailable")
            assert seconds < 5.0  # the Redis timeout is 50 ms; generous for a loaded CI machine
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("unavailable")
            assert client.get("/healthz").status_code == 200

            own_redis.start()
            assert titles()[:2] == (["capped latte", "free water"], None)
            assert client.get("/readyz").status_code == 200
    finally:
        runtime.close()
