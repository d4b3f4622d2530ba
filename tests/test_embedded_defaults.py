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
