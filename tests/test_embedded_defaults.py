"""With nothing configured, geotarget brings its own real Redis (Valkey from a wheel) and SQLite, and the demo
city answers at the coordinates it prints."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import Any

import httpx
import psutil
import pytest
import redis

from api.demo.city import EXAMPLE_POINT
from geotarget.store.embedded_redis import EmbeddedRedis
from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.servers import eventually, free_port, unconfigured, wait_ready


def test_the_embedded_server_is_a_real_redis_with_lua_and_stops_cleanly(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    client = redis.Redis.from_url(url)
    try:
        assert client.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, "{dev}:n", 41) == 41
        assert client.incr("{dev}:n") == 42
    finally:
        client.close()
        server.stop()
    assert not server.running
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()


@pytest.mark.slow
def test_geotarget_demo_serves_the_demo_city_with_embedded_redis_and_sqlite(tmp_path):
    port = free_port()
    process = unconfigured("demo", tmp_path / "data", port, output=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        children = [p.name() for p in psutil.Process(process.pid).children(recursive=True)]
        assert any("valkey" in name for name in children), children
        key = _printed(process, r"(gt_merchant_\S+)")

        lat, lon = EXAMPLE_POINT
        answer = httpx.get(
            f"{base}/v1/geofences/contains", params={"lat": lat, "lon": lon}, headers={"Authorization": f"Bearer {key}"}
        ).json()
        assert [f["name"] for f in answer["fences"]] == ["Café Tejo — Alfama"]
        app_key = _printed(process, r"app key:\s+(\S+)")
        offers = httpx.get(
            f"{base}/v1/nearby",
            params={"lat": lat, "lon": lon, "device_id": "demo-phone"},
            headers={"Authorization": f"Bearer {app_key}"},
        ).json()["offers"]
        assert "Free refill with any cake" in {o["title"] for o in offers}

        # Two weeks of simulated foot traffic went through serving and the consumer: ad ops see reach at once.
        adops_key = _printed(process, r"adops key:\s+(\S+)")
        adops = {"Authorization": f"Bearer {adops_key}"}

        scopes = httpx.get(f"{base}/v1/reports/scopes", headers=adops).json()
        cafe = next(m["id"] for m in scopes["merchants"] if m["name"] == "Café Tejo")

        def reach_rows() -> list[dict[str, Any]]:
            return httpx.get(f"{base}/v1/reports/reach", params={"merchant_id": cafe}, headers=adops).json()["rows"]

        eventually(
            lambda: (r := reach_rows()) and sum(x["visitors"] or 0 for x in r) and sum(x["impressions"] or 0 for x in r)
        )
        assert sum(1 for r in reach_rows() if r["visitors"]) >= 10  # most of the last two weeks

        assert (tmp_path / "data" / "geotarget.db").exists()
        assert (tmp_path / "data" / "admin.key").read_text().startswith("gt_admin_")
    finally:
        process.terminate()
        process.communicate(timeout=20)

    def ours() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]

    eventually(lambda: not ours(), timeout_s=10)


def _printed(process: subprocess.Popen[str], pattern: str) -> str:
    """The first match of ``pattern`` in what the demo prints from here on."""
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(pattern, process.stdout.readline())
        if found:
            return found.group(1)
    raise AssertionError(f"the demo printed nothing like {pattern!r}")


def test_a_killed_owner_leaves_no_orphaned_redis(tmp_path):
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from geotarget.store.embedded_redis import EmbeddedRedis;"
            f"print(EmbeddedRedis(Path({str(tmp_path)!r})).start(), flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = owner.stdout.readline().strip()
    assert redis.Redis.from_url(url).ping()
    owner.kill()  # SIGKILL: no atexit, no cleanup of its own
    owner.wait()
    owner.stdout.close()

    def gone() -> bool:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=0.2).ping()
        except redis.ConnectionError:
            return True
        return False

    eventually(gone, timeout_s=10)  # else the Redis outlived the process that started it


@pytest.mark.slow
def test_serve_starts_its_embedded_redis_again_when_it_dies_and_caps_and_events_recover(tmp_path):
    port = free_port()
    process = unconfigured("serve", tmp_path / "data", port, report_min_devices="1")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        admin = {"Authorization": f"Bearer {(tmp_path / 'data' / 'admin.key').read_text().strip()}"}
        merchant = httpx.post(f"{base}/v1/merchants", json={"name": "Café"}, headers=admin).json()
        owner = {"Authorization": f"Bearer {merchant['api_key']}"}
        app_key = httpx.post(f"{base}/v1/apps", json={"name": "a"}, headers=admin).json()["api_key"]
        app = {"Authorization": f"Bearer {app_key}"}
        fence = httpx.post(f"{base}/v1/geofences", json=ALFAMA_CAFE, headers=owner).json()
        offer = {"title": "Nata", "geofence_ids": [fence["id"]], "caps": {"per_device_per_day": 2}}
        assert httpx.post(f"{base}/v1/offers", json=offer, headers=owner).status_code == 201
        phone = {**INSIDE_ALFAMA_CAFE, "device_id": "phone-1"}

        def served() -> int:
            return len(httpx.get(f"{base}/v1/nearby", params=phone, headers=app).json()["offers"])

        eventually(lambda: served() == 1)  # the new offer reached the worker's catalog
        time.sleep(1.5)  # appendfsync everysec: the count is on disk
        [valkey] = [p for p in psutil.Process(process.pid).children(recursive=True) if "valkey" in p.name()]
        valkey.kill()
        valkey.wait(5)
        killed = time.monotonic()

        eventually(lambda: httpx.get(f"{base}/readyz").status_code == 200, timeout_s=10)
        restarted_in_s = time.monotonic() - killed
        probe = {**phone, "device_id": "another-phone"}
        eventually(lambda: httpx.get(f"{base}/v1/nearby", params=probe, headers=app).json().get("degraded") is None)
        assert served() == 1  # the second of two: the first was kept in the append-only file
        assert served() == 0  # capped
        [again] = [p for p in psutil.Process(process.pid).children(recursive=True) if "valkey" in p.name()]
        assert again.pid != valkey.pid and restarted_in_s < 10

        offer_id = httpx.get(f"{base}/v1/offers", headers=owner).json()["offers"][0]["id"]

        def impressions() -> int:
            rows = httpx.get(f"{base}/v1/reports/reach", params={"offer_id": offer_id}, headers=owner).json()["rows"]
            return sum(r["impressions"] or 0 for r in rows)

        eventually(lambda: impressions() >= 2, timeout_s=30, every_s=0.5)  # events flow again after the restart
    finally:
        process.terminate()
        process.wait(20)
