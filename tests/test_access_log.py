"""What a served request leaves in the server's output: route, status, latency and key id; never a device id or
a position (docs/privacy.md)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.servers import serving


@pytest.mark.slow
def test_the_access_log_holds_no_device_id_and_no_position(tmp_path, redis_url):
    log = tmp_path / "serve.log"
    with serving(tmp_path / "data", redis_url, "log-admin", log=log) as [base]:
        admin = {"Authorization": "Bearer log-admin"}
        merchant = httpx.post(f"{base}/v1/merchants", json={"name": "Café"}, headers=admin).json()
        httpx.post(f"{base}/v1/geofences", json=ALFAMA_CAFE, headers={"Authorization": f"Bearer {merchant['api_key']}"})
        app = httpx.post(f"{base}/v1/apps", json={"name": "Phone app"}, headers=admin).json()
        phone = {"Authorization": f"Bearer {app['api_key']}"}
        params = {**INSIDE_ALFAMA_CAFE, "device_id": "phone-of-maria-0451"}
        assert httpx.get(f"{base}/v1/nearby", params=params, headers=phone).status_code == 200
        assert httpx.delete(f"{base}/v1/devices/phone-of-joao-0452", headers=admin).status_code == 200
        assert httpx.get(f"{base}/v1/devices-typo/phone-of-ana-0453", headers=admin).status_code == 404
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["logger"] == "geotarget.access"]
    (asked,) = [r for r in requests if r["route"] == "/v1/nearby"]
    assert asked | {"latency_ms": 0} == asked | {"method": "GET", "status": 200, "key_id": app["id"], "latency_ms": 0}
    assert asked["latency_ms"] > 0 and "GET /v1/nearby 200" in asked["message"]
    assert any(r["route"] == "/v1/devices/{device_id}" and r["status"] == 200 for r in requests)
    assert any(r["route"] == "-" and r["status"] == 404 for r in requests)
    for secret in ("phone-of-maria-0451", "phone-of-joao-0452", "phone-of-ana-0453"):
        assert secret not in text
    assert str(INSIDE_ALFAMA_CAFE["lat"]) not in text and str(INSIDE_ALFAMA_CAFE["lon"]) not in text
