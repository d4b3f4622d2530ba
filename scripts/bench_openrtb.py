"""Load test of POST /v1/openrtb2/bid against GET /v1/nearby on the same server, in the same run.

A bid request is the same question as a nearby call (who is here, what may they see) asked in OpenRTB: the target
is that answering it costs at most a little more than the matching itself, bids/s >= 0.7 x nearby/s. One data set
(scripts/bench_data.py), one `geotarget serve` with 2 workers and a real Redis; every offer has a bid price and a
link, so both routes see the same candidates. wrk (C, Lua scripts of devices walking around random shops) drives
each route at 8 and 64 connections, alternating routes so the machine's drift falls on both. Printed per run:
requests/s, p50/p99 latency, bids or offers per answer, and server CPU ms per request read from /proc; then the
ratios. The target compares like with like: a one-slot bid request against /v1/nearby?limit=1 (one offer
reserved each); /v1/nearby with its default limit of 5 is printed too. ``--profile`` adds a py-spy profile of
one loaded worker answering bid requests.

    python scripts/bench_openrtb.py [--set city] [--seconds 10] [--profile]

Needs wrk (Debian package ``wrk``). Uses GEOTARGET_REDIS_URL when set, else an embedded Redis.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geotarget.catalog import accounts  # noqa: E402
from geotarget.runtime import Runtime  # noqa: E402
from geotarget.settings import Settings  # noqa: E402
from geotarget.store.embedded_redis import EmbeddedRedis  # noqa: E402
from scripts.bench_data import DATA_SETS, shops  # noqa: E402
from scripts.bench_harness import (  # noqa: E402
    WRK_SCRIPT,
    Figures,
    drive,
    forget,
    print_profile,
    profiled,
    start,
    stop,
)
from scripts.bench_nearby import load_geotarget, server_env  # noqa: E402
from tests.servers import free_port  # noqa: E402

BIDDERS = (Path(__file__).parent / "bench_bidders.lua").read_text()
ONE_OFFER = WRK_SCRIPT.replace("accuracy_m=15", "accuracy_m=15&limit=1")  # the same answer size as one bid
TARGET = 0.7


def bench(set_name: str, redis_url: str, seconds: float, profile: bool) -> dict[str, Figures]:
    shop_list = list(shops(DATA_SETS[set_name]))
    centres = [(s.store.lat, s.store.lon) for s in shop_list]
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-openrtb-{set_name}-"))
    prefix = f"bench{os.getpid()}rtb"
    settings = Settings(data_dir=data_dir, redis_url=redis_url, admin_key="bench-admin", redis_prefix=prefix)
    load_geotarget(settings, shop_list, bid_cpm=2.0, url="https://shop.example/offer")
    runtime = Runtime.open(settings, follow=False)
    app = accounts.create_app_key(runtime.repository, "bench").api_key
    exchange = accounts.create_app_key(runtime.repository, "exchange", "exchange").api_key
    runtime.close()
    print(f"{set_name}: {len(shop_list):,} fences, every offer bidding 2.0 CPM", flush=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "api", "serve", "--port", str(port), "--workers", "2"]
    server, workers = start(command, server_env(settings), base)
    results: dict[str, Figures] = {}
    try:
        drive(base, "/v1/nearby", app, centres, 3, 8, workers)  # warm-up, both routes
        drive(base, "/v1/openrtb2/bid", exchange, centres, 3, 8, workers, BIDDERS)
        if profile:
            spy = profiled(max(workers, key=lambda w: sum(w.cpu_times()[:2])), seconds)
            drive(base, "/v1/openrtb2/bid", exchange, centres, seconds, 8, workers, BIDDERS)
            print_profile(spy)
        for c in (8, 64):
            results[f"nearby c{c}"] = drive(base, "/v1/nearby", app, centres, seconds, c, workers)
            results[f"nearby1 c{c}"] = drive(base, "/v1/nearby", app, centres, seconds, c, workers, ONE_OFFER)
            results[f"bid c{c}"] = drive(base, "/v1/openrtb2/bid", exchange, centres, seconds, c, workers, BIDDERS)
    finally:
        stop(server)
        shutil.rmtree(data_dir, ignore_errors=True)
        forget(redis_url, [prefix])
    return results


def print_table(results: dict[str, Figures]) -> None:
    print(f"\n{'run':<10} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'answers':>7} {'CPU ms':>7}")
    for run, f in results.items():
        print(f"{run:<10} {f.rps:>7,.0f} {f.p50:>7.1f} {f.p99:>7.1f} {f.served:>7.2f} {f.cpu_ms:>7.2f}")
    for c in (8, 64):
        n, one, b = results[f"nearby c{c}"], results[f"nearby1 c{c}"], results[f"bid c{c}"]
        ratio = b.rps / one.rps
        verdict = "meets" if ratio >= TARGET else "misses"
        print(
            f"c{c}: bid / nearby with limit=1 (one offer each) req/s {ratio:.2f} ({verdict} the {TARGET} target), "
            f"CPU per request {b.cpu_ms / one.cpu_ms:.2f}x, p99 {b.p99:.1f} vs {one.p99:.1f} ms; "
            f"bid / nearby with its default limit of 5: req/s {b.rps / n.rps:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="city", choices=sorted(DATA_SETS))
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--profile", action="store_true", help="print a py-spy profile of a worker bidding")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install wrk)")
    embedded = None
    redis_url = os.environ.get("GEOTARGET_REDIS_URL")
    if not redis_url:
        embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="bench-redis-")))
        redis_url = embedded.start()
    started = time.perf_counter()
    try:
        print_table(bench(args.set, redis_url, args.seconds, args.profile))
    finally:
        if embedded is not None:
            embedded.stop()
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
