"""One merchant's bulk upload never stalls everyone else: fence work runs in a bounded pool of worker processes,
so ``/v1/nearby`` on the same server keeps its latency while four 5,000-fence bulks are being stored."""

from __future__ import annotations

import statistics
import threading
import time

import httpx
import pytest

from tests.fixtures import ALFAMA_CAFE, INSIDE_ALFAMA_CAFE
from tests.servers import serving


def small_squares(count: int, west: float = 24.90, south: float = 60.15) -> dict[str, object]:
    """``count`` 20 m squares on a grid in Helsinki, each a valid fence."""
    side = 0.0002
    features = []
    for n in range(count):
        x, y = west + (n % 100) * side * 2, south + (n // 100) * side * 2
        ring = [[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]
        features.append(
            {
                "type": "Feature",
                "properties": {"name": f"kiosk {n}"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    return {"type": "FeatureCollection", "features": features}


@pytest.mark.slow
def test_nearby_keeps_its_latency_during_four_concurrent_5000_fence_bulks(tmp_path, redis_url):
    with serving(tmp_path / "data", redis_url, "iso-admin", workers=1) as [base]:
        admin = {"Authorization": "Bearer iso-admin"}
        merchant = httpx.post(f"{base}/v1/merchants", json={"name": "Bulk Bakery"}, headers=admin).json()
        app = httpx.post(f"{base}/v1/apps", json={"name": "Phone app"}, headers=admin).json()
        owner = {"Authorization": f"Bearer {merchant['api_key']}"}
        phone = {"Authorization": f"Bearer {app['api_key']}"}
        fence = httpx.post(f"{base}/v1/geofences", json=ALFAMA_CAFE, headers=owner).json()
        offer = {"title": "Pastel de nata", "geofence_ids": [fence["id"]], "status": "active"}
        assert httpx.post(f"{base}/v1/offers", json=offer, headers=owner).status_code == 201

        bulk = small_squares(5_000)
        outcomes: list[httpx.Response] = []

        def upload() -> None:
            outcomes.append(httpx.post(f"{base}/v1/geofences/bulk", json=bulk, headers=owner, timeout=600))

        uploads = [threading.Thread(target=upload) for _ in range(4)]
        for thread in uploads:
            thread.start()
        latencies_ms: list[float] = []
        with httpx.Client(base_url=base, headers=phone, timeout=30) as client:
            n = 0
            while any(t.is_alive() for t in uploads):
                n += 1
                started = time.perf_counter()
                answer = client.get("/v1/nearby", params={**INSIDE_ALFAMA_CAFE, "device_id": f"walker-{n}"})
                latencies_ms.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text
                time.sleep(0.01)
        for thread in uploads:
            thread.join()

        assert [r.status_code for r in outcomes] == [200] * 4, [r.text[:200] for r in outcomes]
        assert all(r.json()["created"] == 5_000 for r in outcomes)
        assert len(latencies_ms) >= 50
        p99 = statistics.quantiles(latencies_ms, n=100)[98]
        print(
            f"nearby during bulks: n={len(latencies_ms)} p50={statistics.median(latencies_ms):.1f} ms p99={p99:.1f} ms"
        )
        assert p99 < 100, f"p99 {p99:.0f} ms over {len(latencies_ms)} requests"
