"""Load test of GET /v1/nearby on loopback: two uvicorn workers, a real Redis, the demo city scaled to 10,000
fences and 20,000 offers, random devices walking through the city. In the same run, the same load against a
trivial JSON endpoint of the same app (/healthz) is the ceiling; the ratio is the figure to compare.

    python scripts/bench_nearby.py [--seconds 20] [--concurrency 32] [--devices 2000]

Uses GEOTARGET_REDIS_URL when set, else an embedded Redis. The load generator runs on the same 2 cores as the
server, so absolute numbers understate a real deployment; the ratio to the ceiling is what carries over.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geotarget import accounts
from geotarget.accounts import new_id
from geotarget.demo import DEMO_CITY, Store, store_feature
from geotarget.runtime import Runtime
from geotarget.settings import Settings
from geotarget.store import repository
from geotarget.store.database import transaction
from geotarget.store.embedded_redis import EmbeddedRedis
from tests.servers import free_port, wait_ready

CENTRE = (38.7139, -9.1394)  # Rossio, Lisbon
HALF_SIDE_M = 4_000
K = 111_195 * math.cos(math.radians(CENTRE[0]))


def scaled_city(settings: Settings, fences: int, offers_per_fence: int, seed: int) -> list[tuple[float, float]]:
    """The demo city's shops repeated over 8 km × 8 km; returns the store centres (for walkers)."""
    rng = random.Random(seed)
    templates = [s for stores in DEMO_CITY.values() for s in stores]
    runtime = Runtime.open(settings, follow=False)
    centres: list[tuple[float, float]] = []
    try:
        merchants = [accounts.create_merchant(runtime.factory, f"Shop {i}", "Europe/Lisbon").id for i in range(500)]
        for start in range(0, fences, 1000):
            features, owners = [], []
            for _ in range(min(1000, fences - start)):
                t = rng.choice(templates)
                lat = CENTRE[0] + rng.uniform(-HALF_SIDE_M, HALF_SIDE_M) / 111_195
                lon = CENTRE[1] + rng.uniform(-HALF_SIDE_M, HALF_SIDE_M) / K
                store = Store(t.name, lat, lon, t.width_m, t.depth_m, rng.uniform(0, 180), t.radius_m, t.tags)
                features.append(store_feature(store))
                owners.append(rng.choice(merchants))
                centres.append((lat, lon))
            for merchant in set(owners):
                mine = [f for f, o in zip(features, owners, strict=True) if o == merchant]
                results = runtime.fences.create_many(merchant, mine)
                _add_offers(runtime, merchant, [r.id for r in results if r.id], offers_per_fence, rng)
    finally:
        runtime.close()
    return centres


def _add_offers(runtime: Runtime, merchant: str, fence_ids: list[str], per_fence: int, rng: random.Random) -> None:
    """Offers written straight to storage in one transaction (20,000 API calls would only time the setup)."""
    now = datetime.now(UTC)
    with transaction(runtime.factory) as session:
        for fence_id in fence_ids:
            for j in range(per_fence):
                schedule = (
                    None
                    if j == 0
                    else {
                        "windows": [
                            {
                                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                "start": "00:00",
                                "end": "24:00",
                            }
                        ],
                        "valid_from": None,
                        "valid_to": None,
                        "blackout_dates": [],
                    }
                )
                repository.add_offer(
                    session,
                    {
                        "id": new_id("off"),
                        "merchant_id": merchant,
                        "title": f"Offer {j}",
                        "body": "",
                        "geofence_ids": [fence_id],
                        "nearby_m": rng.choice([0, 0, 100, 300]),
                        "schedule": schedule,
                        "special": j == 1,
                        "caps": {"per_device_per_day": 3},
                        "priority": rng.randint(1, 100),
                        "targeting": {},
                        "status": "active",
                        "timezone": "Europe/Lisbon",
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                    },
                )


async def load(base: str, path_of, headers: dict[str, str], seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    degraded = served = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=10) as client:

        async def worker(n: int) -> None:
            nonlocal degraded, served
            while time.perf_counter() < deadline:
                path, params = path_of(n)
                started = time.perf_counter()
                response = await client.get(path, params=params)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
                body = response.json()
                served += len(body.get("offers", ()))
                degraded += 1 if body.get("degraded") else 0

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {
        "rps": len(latencies) / elapsed,
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "p99": q[98] * 1000,
        "requests": len(latencies),
        "served": served / len(latencies),
        "degraded": degraded / len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fences", type=int, default=10_000)
    parser.add_argument("--offers-per-fence", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--devices", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-nearby-"))
    embedded = None
    redis_url = os.environ.get("GEOTARGET_REDIS_URL")
    if not redis_url:
        embedded = EmbeddedRedis(data_dir / "redis")
        redis_url = embedded.start()
    prefix = f"bench{os.getpid()}"
    env = {
        **os.environ,
        "GEOTARGET_DATA_DIR": str(data_dir),
        "GEOTARGET_REDIS_URL": redis_url,
        "GEOTARGET_ADMIN_KEY": "bench-admin",
        "GEOTARGET_REDIS_PREFIX": prefix,
    }
    env.pop("GEOTARGET_DATABASE_URL", None)
    settings = Settings(data_dir=data_dir, redis_url=redis_url, admin_key="bench-admin", redis_prefix=prefix)
    started = time.perf_counter()
    centres = scaled_city(settings, args.fences, args.offers_per_fence, seed=7)
    print(
        f"city: {args.fences:,} fences, {args.fences * args.offers_per_fence:,} offers, "
        f"built in {time.perf_counter() - started:.1f} s"
    )
    runtime = Runtime.open(settings, follow=False)
    app_key = accounts.create_app_key(runtime.factory, "bench").api_key
    runtime.close()

    import subprocess

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "geotarget", "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server, timeout_s=180)
        time.sleep(2)  # both workers up
        rng = random.Random(11)
        walkers = [list(rng.choice(centres)) for _ in range(args.devices)]

        def nearby_request(n: int) -> tuple[str, dict[str, object]]:
            i = rng.randrange(args.devices)
            walker = walkers[i]
            walker[0] += rng.gauss(0, 10) / 111_195
            walker[1] += rng.gauss(0, 10) / K
            return "/v1/nearby", {"lat": walker[0], "lon": walker[1], "device_id": f"walker-{i}", "accuracy_m": 15}

        headers = {"Authorization": f"Bearer {app_key}"}
        asyncio.run(load(base, nearby_request, headers, 3, args.concurrency))  # warm-up
        nearby_figures = asyncio.run(load(base, nearby_request, headers, args.seconds, args.concurrency))
        ceiling = asyncio.run(load(base, lambda n: ("/healthz", {}), {}, args.seconds, args.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=30)
        if embedded is not None:
            embedded.stop()
    print(
        f"{args.workers} workers, concurrency {args.concurrency}, {args.devices:,} walking devices, "
        f"{args.seconds:.0f} s each"
    )
    print(f"{'endpoint':<14} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'offers/req':>10} {'degraded':>9}")
    for name, f in (("/v1/nearby", nearby_figures), ("/healthz", ceiling)):
        print(
            f"{name:<14} {f['rps']:>8,.0f} {f['p50']:>7.1f} {f['p95']:>7.1f} {f['p99']:>7.1f} "
            f"{f['served']:>10.2f} {f['degraded']:>8.1%}"
        )
    print(f"nearby ÷ ceiling: {nearby_figures['rps'] / ceiling['rps']:.2f} of the trivial endpoint's rate")


if __name__ == "__main__":
    main()
