"""Load test of GET /v1/nearby on loopback: two uvicorn workers, a real Redis, the demo city scaled to 10,000
fences and 20,000 offers, random devices walking through the city. In the same run, the same load against a
trivial JSON endpoint of the same app (/healthz) is the ceiling; the ratio is the figure to compare.

    python scripts/bench_nearby.py [--seconds 20] [--concurrency 32] [--devices 2000]

Uses GEOTARGET_REDIS_URL when set, else an embedded Redis. The load comes from wrk (Debian package ``wrk``), a C
load generator with a Lua script for the walking devices; it still shares the 2 cores with the server, so
absolute numbers understate a real deployment, and the ratio to the ceiling is what carries over.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.demo.city import DEMO_CITY, Store, store_feature
from geofences import LatLng
from geofences.shapes import METRES_PER_DEGREE, moved
from geotarget.catalog import accounts
from geotarget.catalog.accounts import new_id
from geotarget.catalog.model import Offer
from geotarget.runtime import Runtime
from geotarget.settings import Settings
from geotarget.store.embedded_redis import EmbeddedRedis
from tests.servers import free_port, wait_ready

CENTRE = (38.7139, -9.1394)  # Rossio, Lisbon
HALF_SIDE_M = 4_000


def scaled_city(settings: Settings, fences: int, offers_per_fence: int, seed: int) -> list[tuple[float, float]]:
    """The demo city's shops repeated over 8 km × 8 km; returns the store centres (for walkers)."""
    rng = random.Random(seed)
    templates = [s for stores in DEMO_CITY.values() for s in stores]
    runtime = Runtime.open(settings, follow=False)
    centres: list[tuple[float, float]] = []
    try:
        merchants = [accounts.create_merchant(runtime.repository, f"Shop {i}", "Europe/Lisbon").id for i in range(500)]
        for start in range(0, fences, 1000):
            features, owners = [], []
            for _ in range(min(1000, fences - start)):
                t = rng.choice(templates)
                spot = moved(LatLng(*CENTRE), *(rng.uniform(-HALF_SIDE_M, HALF_SIDE_M) for _ in "ne"))
                lat, lon = spot.lat, spot.lon
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
    offers = []
    for fence_id in fence_ids:
        for j in range(per_fence):
            schedule = None if j == 0 else [{"days": ["daily"], "start": "00:00", "end": "24:00"}]
            offers.append(
                Offer(
                    id=new_id("off"),
                    merchant_id=merchant,
                    title=f"Offer {j}",
                    geofence_ids=(fence_id,),
                    nearby_m=rng.choice([0, 0, 100, 300]),
                    schedule=schedule,
                    special=j == 1,
                    caps={"per_device_per_day": 3},
                    priority=rng.randint(1, 100),
                    timezone="Europe/Lisbon",
                    created_at=now,
                    updated_at=now,
                )
            )
    runtime.repository.add_offers(offers)


WRK_SCRIPT = """
local centres = {CENTRES}
local devices = {DEVICES}
local pos = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  served, degraded, responses, failures = 0, 0, 0, 0
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
request = function()
  if "{PATH}" ~= "/v1/nearby" then return wrk.format("GET", "{PATH}") end
  local i = math.random(devices)
  local p = pos[i]
  if p == nil then local c = centres[math.random(#centres)]; p = {c[1], c[2]}; pos[i] = p end
  p[1] = p[1] + (math.random() - 0.5) * 20 / 111195
  p[2] = p[2] + (math.random() - 0.5) * 20 / {K}
  local path = string.format("/v1/nearby?lat=%.7f&lon=%.7f&device_id=walker-%d&accuracy_m=15", p[1], p[2], i)
  return wrk.format("GET", path, {["Authorization"] = "Bearer {KEY}"})
end
response = function(status, headers, body)
  responses = responses + 1
  if status ~= 200 then failures = failures + 1 end
  for _ in string.gmatch(body, '"offer_id"') do served = served + 1 end
  if string.find(body, "caps unavailable", 1, true) then degraded = degraded + 1 end
end
done = function(summary, latency, requests)
  local s, d, r, f = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("served"); d = d + t:get("degraded"); r = r + t:get("responses"); f = f + t:get("failures")
  end
  io.write(string.format("RESULT rps=%f p50=%f p95=%f p99=%f served=%d degraded=%d responses=%d failures=%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, s, d, r, f))
end
"""


def load(
    base: str, path: str, key: str, centres: list[tuple[float, float]], devices: int, seconds: float, concurrency: int
) -> dict[str, float]:
    """Drive the server with wrk (C, so the load generator costs little of the 2 cores)."""
    picked = random.Random(3).sample(centres, min(len(centres), 2000))
    script = (
        WRK_SCRIPT.replace("{CENTRES}", "{" + ",".join(f"{{{a:.7f},{b:.7f}}}" for a, b in picked) + "}")
        .replace("{DEVICES}", str(devices))
        .replace("{K}", f"{METRES_PER_DEGREE * math.cos(math.radians(CENTRE[0])):.3f}")
        .replace("{KEY}", key)
        .replace("{PATH}", path)
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    command = ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds:.0f}s", "-s", handle.name, base]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    figures = {k: float(v) for k, v in (pair.split("=") for pair in line.split()[1:])}
    if figures["failures"]:
        raise RuntimeError(f"{figures['failures']:.0f} non-200 answers")
    figures["served"] /= max(figures["responses"], 1)
    figures["degraded"] /= max(figures["responses"], 1)
    return figures


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
    app_key = accounts.create_app_key(runtime.repository, "bench").api_key
    runtime.close()

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server, timeout_s=180)
        time.sleep(2)  # both workers up
        load(base, "/v1/nearby", app_key, centres, args.devices, 3, args.concurrency)  # warm-up
        nearby_figures = load(base, "/v1/nearby", app_key, centres, args.devices, args.seconds, args.concurrency)
        ceiling = load(base, "/healthz", app_key, centres, args.devices, args.seconds, args.concurrency)
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
