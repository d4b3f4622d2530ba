"""Benchmark of triggers: the presence engine, its added cost on /v1/nearby, and webhook delivery.

1. **Presence**: pings/s through ``PresenceTracker`` (index lookup + one Lua call per ping on a real Redis) with
   100,000 devices walking around the 10,000 fences of the *city* data set (scripts/bench_data.py), in one
   process; beside it, in the same run, the floor of one Redis round trip (EVALSHA of an empty script) from the
   same process, as a ratio.
2. **Added cost per /v1/nearby**: the city served by 2 uvicorn workers, driven by wrk (8 connections) with
   ``GEOTARGET_TRIGGERS=true`` and then ``false``; server CPU per request from /proc of the workers (target:
   triggers add at most 15 %).
3. **Delivery**: 10,000 signed deliveries queued for a local receiver (a minimal asyncio HTTP server in its own
   process), sent by one delivery loop (16 in flight): deliveries/s; then deliveries queued steadily at half
   that rate: p50/p99 of the send latency and of the time from queued to delivered.

    python scripts/bench_triggers.py [--seconds 10] [--pings 200000] [--deliveries 10000] [--profile]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geofences import LatLng  # noqa: E402
from geofences.shapes import moved  # noqa: E402
from geotarget.catalog import accounts  # noqa: E402
from geotarget.runtime import Runtime  # noqa: E402
from geotarget.settings import Settings  # noqa: E402
from geotarget.store import keys  # noqa: E402
from geotarget.store.embedded_redis import EmbeddedRedis  # noqa: E402
from geotarget.store.redis_client import connect_raw  # noqa: E402
from geotarget.store.redis_deliveries import INDEX_KEEP, RedisDeliveries  # noqa: E402
from geotarget.store.transports import Transports  # noqa: E402
from geotarget.triggers.delivering import Deliverer  # noqa: E402
from geotarget.triggers.dispatch import SubscriptionCache  # noqa: E402
from geotarget.triggers.listening import Listening  # noqa: E402
from geotarget.triggers.tracker import Fix  # noqa: E402
from geotarget.triggers.webhooks import Queued, RetryPolicy, Subscription, delivery_id, event_id  # noqa: E402
from geotarget.triggers.workers import delivery_lap  # noqa: E402
from scripts.bench_data import DATA_SETS, shops  # noqa: E402
from scripts.bench_harness import (  # noqa: E402
    RECEIVER,
    Figures,
    drive,
    print_profile,
    profiled,
    start,
    stop,
)
from scripts.bench_nearby import load_geotarget, server_env  # noqa: E402
from tests.servers import free_port  # noqa: E402

DEVICES = 100_000


def presence(runtime: Runtime, centres: list[LatLng], pings: int) -> tuple[float, float]:
    """(pings/s through the tracker, Redis round trips/s of an empty script), one process, same run."""
    tracker = runtime.server.tracker
    assert tracker is not None
    tracker.listening = Listening(apps=frozenset({"bench"}))  # a webhook of this app: every fence is listened
    rng = random.Random(11)
    homes = [rng.choice(centres) for _ in range(DEVICES)]
    start_at = datetime.now(UTC) - timedelta(hours=2)
    walk = []
    for i in range(pings):
        device = rng.randrange(DEVICES)
        where = moved(homes[device], rng.uniform(-120, 120), rng.uniform(-120, 120))
        walk.append((f"k{device}", f"device-{device}", Fix(where, start_at + timedelta(milliseconds=20 * i), 10.0)))
    began = time.perf_counter()
    for key, raw, fix in walk:
        tracker.seen(key, raw, "bench", [fix])
    rate = pings / (time.perf_counter() - began)
    empty = runtime.redis.register_script("return 0")
    began = time.perf_counter()
    rounds = 20_000
    for _ in range(rounds):
        empty(keys=[], args=[])
    return rate, rounds / (time.perf_counter() - began)


def deliveries(settings: Settings, redis_url: str, count: int, seconds: float) -> dict[str, float]:
    """Capacity: a backlog of ``count`` drained by one delivery loop. Latency: then, for ``seconds``, deliveries
    queued at half that rate, and how long each waited from queued to delivered."""
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    time.sleep(0.5)
    client = connect_raw(redis_url)
    queue = RedisDeliveries(client, settings.redis_prefix)
    sub = Subscription("whk_bench", "app", "key_bench", f"http://127.0.0.1:{port}/hook", ("enter",), "whsec_bench")
    transports = Transports(allow_private=True)
    deliverer = Deliverer(SubscriptionCache(lambda: [sub]), transports, queue, RetryPolicy(), parallel=16)
    queue.ensure_group()

    def enqueue(i: int) -> None:
        now = datetime.now(UTC)
        event = {"id": event_id("bench", i), "type": "enter", "at": now.isoformat(), "geofence_id": "f1"}
        event |= {"merchant_id": "m1", "distance_m": 0.0, "device_id": f"device-{i}"}
        queue.enqueue_many([Queued(delivery_id(sub.id, str(event["id"])), sub.id, event, f"k{i % 5000}")], now)

    def drain(until: int) -> int:
        sent = 0
        while sent < until:
            sent += delivery_lap(queue, deliverer, "bench", 100)
        deliverer.idle(600)  # taken is not yet sent: wait for the sending threads
        return sent

    try:
        for i in range(count):
            enqueue(i)
        began = time.perf_counter()
        drain(count)
        rate = count / (time.perf_counter() - began)
        client.delete(keys.webhook_index(settings.redis_prefix, sub.id))
        steady = min(int(rate / 2 * seconds), INDEX_KEEP)

        def produce() -> None:
            started = time.perf_counter()
            for i in range(steady):
                time.sleep(max(0.0, started + i * 2 / rate - time.perf_counter()))
                enqueue(count + i)

        producer = threading.Thread(target=produce)
        producer.start()
        drain(steady)
        producer.join()
        listed = queue.listed(sub.id, "delivered", limit=steady)
        send = sorted(d.latency_ms or 0.0 for d in listed)
        waited = sorted(((d.last_attempt_at or d.created_at) - d.created_at).total_seconds() * 1000 for d in listed)
        return {
            "rate": rate,
            "steady": len(listed),
            "send_p50": statistics.median(send),
            "send_p99": send[int(0.99 * (len(send) - 1))],
            "waited_p50": statistics.median(waited),
            "waited_p99": waited[int(0.99 * (len(waited) - 1))],
        }
    finally:
        deliverer.close()
        transports.close()
        client.close()
        receiver.terminate()


def nearby_cost(
    env: dict[str, str], key: str, centres: list[tuple[float, float]], seconds: float, profile: bool
) -> dict[str, Figures]:
    """CPU ms per /v1/nearby with triggers on, then off (each after a warm-up)."""
    figures = {}
    for triggers in ("true", "false"):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "api", "serve", "--port", str(port), "--workers", "2"]
        server, workers = start(command, {**env, "GEOTARGET_TRIGGERS": triggers}, base)
        try:
            drive(base, "/v1/nearby", key, centres, 3, 8, workers)
            if profile:
                spy = profiled(max(workers, key=lambda w: sum(w.cpu_times()[:2])), seconds)
                drive(base, "/v1/nearby", key, centres, seconds, 8, workers)
                print(f"  triggers={triggers}")
                print_profile(spy, top=12)
            figures[triggers] = drive(base, "/v1/nearby", key, centres, seconds, 8, workers)
        finally:
            stop(server)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--pings", type=int, default=200_000)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    embedded = None
    redis_url = os.environ.get("GEOTARGET_REDIS_URL")
    if not redis_url:
        embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="bench-redis-")))
        redis_url = embedded.start()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-triggers-"))
    prefix = f"benchtrg{os.getpid()}"
    settings = Settings(data_dir=data_dir, redis_url=redis_url, admin_key="bench-admin", redis_prefix=prefix)
    try:
        shop_list = list(shops(DATA_SETS["city"]))
        centres = [LatLng(s.store.lat, s.store.lon) for s in shop_list]
        load_geotarget(settings, shop_list)
        runtime = Runtime.open(settings, follow=False, consume=False)
        key = accounts.create_app_key(runtime.repository, "bench").api_key
        try:
            rate, floor = presence(runtime, centres, args.pings)
        finally:
            runtime.close()
        print(
            f"presence: {rate:,.0f} pings/s ({DEVICES:,} devices, {len(centres):,} fences, one process); "
            f"empty Redis script {floor:,.0f}/s; ratio {rate / floor:.2f}",
            flush=True,
        )
        env = server_env(settings)
        points = [(c.lat, c.lon) for c in centres]
        cost = nearby_cost(env, key, points, args.seconds, args.profile)
        on, off = cost["true"], cost["false"]
        print(f"/v1/nearby c8, triggers on:  {on.rps:,.0f} req/s, p99 {on.p99:.1f} ms, {on.cpu_ms:.3f} ms CPU/req")
        print(f"/v1/nearby c8, triggers off: {off.rps:,.0f} req/s, p99 {off.p99:.1f} ms, {off.cpu_ms:.3f} ms CPU/req")
        print(f"added CPU per request: {100 * (on.cpu_ms / off.cpu_ms - 1):+.1f} % (target <= 15 %)", flush=True)
        d = deliveries(settings, redis_url, args.deliveries, args.seconds)
        print(f"delivery: {d['rate']:,.0f} deliveries/s from a backlog of {args.deliveries:,} (one loop, 16 in flight)")
        print(
            f"at half that rate ({d['steady']:,.0f} deliveries): send p50 {d['send_p50']:.1f} ms, p99 "
            f"{d['send_p99']:.1f} ms; queued to delivered p50 {d['waited_p50']:.0f} ms, p99 {d['waited_p99']:.0f} ms"
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    main()
