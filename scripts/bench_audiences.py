"""What audiences cost /v1/nearby: the same city loaded twice, without audiences and with them on a third of the
offers (alternately include and exclude; half of the walking devices are members), served by 2 workers and driven
by wrk at 8 connections, alternately three times. Printed: requests/s, CPU per request read from /proc of the
workers, offers per answer, and Redis script calls per request (a candidate outside its audience is skipped,
which sometimes needs a second reservation), medians of 3; the CPU ratio is the figure (target <= 1.10).

    python scripts/bench_audiences.py [--sets city,downtown] [--seconds 8] [--profile]

Needs wrk (scripts/bench_nearby.py installs it); uses GEOTARGET_REDIS_URL when set, else an embedded Redis.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geotarget.audiences.model import RULE, Audience  # noqa: E402
from geotarget.catalog import accounts  # noqa: E402
from geotarget.catalog.accounts import new_id  # noqa: E402
from geotarget.measurement.devices import device_key  # noqa: E402
from geotarget.runtime import Runtime  # noqa: E402
from geotarget.settings import Settings  # noqa: E402
from geotarget.store.embedded_redis import EmbeddedRedis  # noqa: E402
from geotarget.store.redis_audiences import RedisMemberships  # noqa: E402
from geotarget.store.redis_client import connect_blocking  # noqa: E402
from scripts.bench_data import DATA_SETS, DataSet, shops  # noqa: E402
from scripts.bench_harness import (  # noqa: E402
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


def _audiences(runtime: Runtime, merchants: list[str]) -> dict[str, list[dict[str, object]]]:
    """Eight published audiences (generation 1, members: half of the walkers), each shared by many merchants'
    offers (serving does not ask whose they are; one per merchant would write millions of memberships), and the
    targeting of a merchant's offers by position: none, include, exclude."""
    now = datetime.now(UTC)
    members = [device_key(runtime.server.device_secret, f"walker-{i}") for i in range(1, 2001, 2)]
    memberships = RedisMemberships(connect_blocking(runtime.redis_url), runtime.settings.redis_prefix)
    rule = RULE.validate_python({"kind": "visitors", "tags": ["shop"]})
    audiences = []
    for owner in merchants[:8]:
        made = runtime.repository.audiences.add(
            Audience(new_id("aud"), owner, "walkers", rule, None, True, 0, None, now)
        )
        runtime.repository.audiences.refreshed(made.id, len(members), 1, now)
        memberships.publish(made.id, 1, members, 3_600)
        audiences.append(made.id)
    memberships.close()
    return {
        merchant: [{}, {"audiences": {"include": [aud]}}, {"audiences": {"exclude": [aud]}}]
        for merchant, aud in zip(merchants, itertools.cycle(audiences), strict=False)
    }


def bench(data: DataSet, redis_url: str, seconds: float, profile: bool = False) -> None:
    """The same data loaded twice, without audiences and with them on a third of the offers; /v1/nearby at 8
    connections on each, alternately, three times (the machine's noise moves both alike)."""
    shop_list = list(shops(data))
    centres = [(s.store.lat, s.store.lon) for s in shop_list]
    servers = {}
    for name, targeting in (("plain", None), ("audiences", _audiences)):
        data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{data.name}-{name}-"))
        settings = Settings(
            data_dir=data_dir, redis_url=redis_url, admin_key="bench-admin", redis_prefix=f"b{os.getpid()}{name}"
        )
        load_geotarget(settings, shop_list, targeting)
        runtime = Runtime.open(settings, follow=False)
        key = accounts.create_app_key(runtime.repository, "bench").api_key
        runtime.close()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "api", "serve", "--port", str(port), "--workers", "2"]
        servers[name] = (base, key, *start(command, server_env(settings), base))
    runs: dict[str, list[Figures]] = {name: [] for name in servers}
    try:
        for base, key, _, workers in servers.values():
            drive(base, "/v1/nearby", key, centres, 3, 8, workers)  # warm-up
        if profile:
            base, key, _, workers = servers["audiences"]
            spy = profiled(max(workers, key=lambda w: sum(w.cpu_times()[:2])), seconds)
            drive(base, "/v1/nearby", key, centres, seconds, 8, workers)
            print_profile(spy)
        calls: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(3):
            for name, (base, key, _, workers) in servers.items():
                before = _evalsha_calls(redis_url)
                runs[name].append(drive(base, "/v1/nearby", key, centres, seconds, 8, workers))
                answered = runs[name][-1].rps * seconds
                calls[name].append((_evalsha_calls(redis_url) - before) / answered)
    finally:
        for _, _, server, _ in servers.values():
            stop(server)
        forget(redis_url, [f"b{os.getpid()}{name}" for name in servers])
    print(f"\n{data.name}: /v1/nearby c8, audiences on a third of the offers (members: half the devices)")
    for name, figures in runs.items():
        cpu = sorted(f.cpu_ms for f in figures)[1]
        rps = sorted(f.rps for f in figures)[1]
        served = sum(f.served for f in figures) / len(figures)
        trips = sorted(calls[name])[1]
        print(
            f"  {name:<10} {rps:>7,.0f} req/s  {cpu:.3f} ms CPU/req  {served:.2f} offers/answer  "
            f"{trips:.3f} Lua calls/req (medians of 3)"
        )
    plain, audiences = (sorted(f.cpu_ms for f in runs[n])[1] for n in ("plain", "audiences"))
    print(f"  CPU per request with audiences / without: {audiences / plain:.3f}", flush=True)


def _evalsha_calls(redis_url: str) -> int:
    """Scripts Redis has run so far (every /v1/nearby makes one in the usual case)."""
    stats = redis.Redis.from_url(redis_url).info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="city,downtown")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--profile", action="store_true", help="print a py-spy profile of one loaded worker")
    args = parser.parse_args()
    embedded = None
    redis_url = os.environ.get("GEOTARGET_REDIS_URL")
    if not redis_url:
        embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="bench-redis-")))
        redis_url = embedded.start()
    try:
        for name in args.sets.split(","):
            bench(DATA_SETS[name], redis_url, args.seconds, args.profile)
    finally:
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    main()
