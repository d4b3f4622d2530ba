"""GET /v1/nearby on a 3-master Redis Cluster on loopback: how devices' keys and calls spread over the masters with
``SHARDS=64`` against ``SHARDS=1`` (every key of the deployment in one slot, so on one master), in the same run.

The downtown data set (scripts/bench_data.py) is served by `geotarget serve --workers 2` (the event consumer in
every worker, as a user runs it) and driven by wrk with teleporting devices (a random device of 50,000 at a
random point, every request) at 8 connections, once with offers capped per device only and once with every offer
also on a daily budget (never exhausted here: each request then reserves the budget in a call of its own).
Printed per run: requests/s, p99, CPU per request of serve's processes and of all masters, the request path's
round trips per request by kind (a device's call, the budgets' call, a give-back: from the server's /metrics),
and per master its share of the deployment's keys and of the device calls, and its Redis CPU per request.

    python scripts/bench_cluster.py [--seconds 20] [--shards 1,64]

Needs wrk, and redis-server and redis-cli (Debian's ``redis-server``) for the cluster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from redis.cluster import RedisCluster

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geotarget.catalog import accounts  # noqa: E402
from geotarget.runtime import Runtime  # noqa: E402
from geotarget.settings import Settings  # noqa: E402
from scripts.bench_data import DATA_SETS, shops  # noqa: E402
from scripts.bench_harness import drive, start, stop  # noqa: E402
from scripts.bench_nearby import load_geotarget, serve_command, server_env  # noqa: E402
from tests.cluster import redis_cluster  # noqa: E402
from tests.servers import free_port  # noqa: E402


@dataclass
class Master:
    node: redis.Redis
    cpu_s: float = 0.0
    scripts: int = 0
    decrs: int = 0

    def read(self) -> tuple[float, int, int]:
        cpu, stats = self.node.info("cpu"), self.node.info("commandstats")
        calls = {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval", "decr")}
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls["evalsha"] + calls["eval"], calls["decr"]

    def begin(self) -> None:
        self.cpu_s, self.scripts, self.decrs = self.read()

    def since(self) -> tuple[float, int, int]:
        cpu, scripts, decrs = self.read()
        return cpu - self.cpu_s, scripts - self.scripts, decrs - self.decrs


def masters(url: str) -> list[Master]:
    port = int(url.rsplit(":", 1)[1])
    nodes = redis.Redis(port=port).cluster("nodes")
    found = [address.split("@")[0] for address, node in nodes.items() if "master" in node["flags"]]
    return [Master(redis.Redis(a.split(":")[0], int(a.split(":")[1]), decode_responses=True)) for a in sorted(found)]


def calls(base: str) -> dict[str, float]:
    """The server's request-path Redis calls so far, by kind (its /metrics, summed over its workers)."""
    counted: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("geotarget_redis_call_duration_seconds_count{"):
            kind = line.split('call="', 1)[1].split('"', 1)[0]
            counted[kind] = counted.get(kind, 0.0) + float(line.rsplit(" ", 1)[1])
    return counted


def load(url: str, budgets: bool) -> tuple[Settings, str]:
    """The downtown shops, their fences and offers (with a daily budget each when ``budgets``), and an app key."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    settings = Settings(data_dir=data_dir, redis_url=url, admin_key="bench-admin", redis_prefix=f"load{os.getpid()}")
    load_geotarget(settings, list(shops(DATA_SETS["downtown"])), **({"daily_budget": 10**9} if budgets else {}))
    runtime = Runtime.open(settings, follow=False)
    key = accounts.create_app_key(runtime.repository, "bench").api_key
    runtime.close()
    return settings, key


def run(url: str, settings: Settings, key: str, shards: int, seconds: float, label: str, as_shipped: bool) -> None:
    centres = [(s.store.lat, s.store.lon) for s in shops(DATA_SETS["downtown"])]
    prefix = f"b{os.getpid()}{label[0]}{shards}"
    env = server_env(settings) | {"GEOTARGET_SHARDS": str(shards), "GEOTARGET_REDIS_PREFIX": prefix}
    if as_shipped:  # the loops process beside the workers and the serving rate limit as a user gets them
        for name in ("GEOTARGET_DELIVER_IN_SERVE", "GEOTARGET_RATE_LIMIT_SERVING"):
            env.pop(name)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    nodes = masters(url)
    server, workers = start(serve_command("uvloop", port), env, base)
    try:
        drive(base, "/v1/nearby", key, centres, 3, 8, workers, mode="teleport")  # warm-up
        for m in nodes:
            m.begin()
        before = calls(base)
        figures = drive(base, "/v1/nearby", key, centres, seconds, 8, workers, mode="teleport")
        spent = [m.since() for m in nodes]
        made = {kind: n - before.get(kind, 0.0) for kind, n in calls(base).items()}
    finally:
        stop(server)
    held = [sum(1 for _ in m.node.scan_iter(match=f"*{prefix}*", count=10_000)) for m in nodes]
    requests = max(1.0, figures.rps * seconds)
    device_calls = made.get("reserve", 0.0) + made.get("reserve_and_presence", 0.0)
    shared_calls, given_back = made.get("shared_counters", 0.0), made.get("shared_give_back", 0.0)
    cluster = RedisCluster(host="127.0.0.1", port=int(url.rsplit(":", 1)[1]))
    shared_port = cluster.get_node_from_key(f"{{{prefix}}}:x").port  # the master of the budgets' slot
    cluster.close()
    print(
        f"{label:<9} SHARDS={shards:<3} {figures.rps:7,.0f} req/s  p99 {figures.p99:6.1f} ms  "
        f"serve CPU {figures.cpu_ms:4.2f} ms/request  Redis CPU {1000 * sum(c for c, *_ in spent) / requests:5.3f}  "
        "round trips/request "
        f"{(device_calls + shared_calls + given_back) / requests:4.2f} (device {device_calls / requests:4.2f}, "
        f"budgets {shared_calls / requests:4.2f}, given back {given_back / requests:4.2f})"
    )
    for n, (m, (cpu, scripts, _), keys) in enumerate(zip(nodes, spent, held, strict=True)):
        shared_here = shards > 1 and m.node.connection_pool.connection_kwargs["port"] == shared_port
        device_here = scripts - (shared_calls if shared_here else 0.0)
        print(
            f"    master {n + 1}: {keys / max(1, sum(held)):6.1%} of the keys, "
            f"{device_here / max(1.0, device_calls):6.1%} of the device calls"
            f"{' (+ every budget call)' if shared_here and shared_calls else ''}, "
            f"Redis CPU {1000 * cpu / requests:5.3f} ms/request"
        )
    for m in nodes:
        for name in m.node.scan_iter(match=f"*{prefix}*", count=10_000):
            m.node.delete(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--shards", default="1,64")
    parser.add_argument(
        "--as-shipped", action="store_true", help="default delivery loops and serving rate limit (not the bench's)"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk (apt-get install wrk)")
    with redis_cluster(Path(tempfile.mkdtemp(prefix="bench-cluster-nodes-"))) as url:
        for budgets in (False, True):
            settings, key = load(url, budgets)
            label = "budgets" if budgets else "caps"
            try:
                for shards in (int(s) for s in args.shards.split(",")):
                    run(url, settings, key, shards, args.seconds, label, args.as_shipped)
                    time.sleep(1)
            finally:
                shutil.rmtree(settings.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
