"""Load test of GET /v1/nearby on loopback against its ceiling and its peer, for three cities (scripts/bench_data.py).

For each data set, in one run: geotarget with 2 uvicorn workers and a real Redis; the same server's /healthz (the
ceiling: a trivial JSON answer through the same stack); and the peer a user would build instead
(scripts/peers/postgis_peer.py: FastAPI + PostGIS + a Redis Lua cap), loaded with the same fences and offers.
Each is driven by wrk (C, with a Lua script of devices walking around random shops, or teleporting: a random
device of 50,000 at a random point, every request) at 8 and 64 connections. Printed per run: requests/s, p50/p99
latency, offers per answer, and CPU ms per request of the server's processes (its workers and its trigger and
delivery loops' process; read from /proc: steadier than req/s on a shared 2-core machine) and of Redis (its INFO
cpu). ``--rounds N`` runs every configuration N times in turn and prints each figure's median: one slow minute
of a shared machine then moves one round, not one configuration. ``--rate R`` also drives every configuration
at about R requests/s (8 connections that wait between requests), so configurations are compared at the same
load: flat out, a configuration with more processes (the listening one's delivery loop and webhook receiver)
slows everything else on the 2 cores, and CPU per request rises for work it shares with the others.

geotarget runs in several configurations in the same run (``--configs``): ``default`` (what a user runs: the
consumer loop in every worker, the trigger and delivery loops in serve's process of their own, nobody
listening), ``lean`` (the trigger and delivery loops off, as this benchmark ran before), ``triggers_off``
(``GEOTARGET_TRIGGERS=false``) and ``listening`` (the default with a webhook of the benchmark's app listening to
every fence: the worst case for presence, every transition a webhook sent). ``--stacks`` compares the HTTP stack
on the default configuration: uvicorn with uvloop (``serve``'s default), uvicorn on plain asyncio, and granian.

    python scripts/bench_nearby.py [--sets downtown,city,country] [--seconds 10] [--configs default,lean,...]
        [--workloads walk,teleport] [--stacks uvloop,asyncio,granian] [--profile] [--rounds 1] [--rate R]

Needs wrk and PostGIS (Debian packages ``wrk`` and ``postgresql-<major>-postgis-3``; installed with apt-get
when missing and allowed). Uses GEOTARGET_REDIS_URL when set, else an embedded Redis; PostgreSQL from
BENCH_PEER_DSN (default the local ``test`` database).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geotarget.catalog import accounts  # noqa: E402
from geotarget.catalog.accounts import new_id  # noqa: E402
from geotarget.catalog.model import Offer  # noqa: E402
from geotarget.runtime import Runtime  # noqa: E402
from geotarget.settings import Settings  # noqa: E402
from scripts.bench_data import DATA_SETS, DataSet, Shop, shops  # noqa: E402
from scripts.bench_harness import (  # noqa: E402
    RECEIVER,
    Figures,
    bench_redis,
    drive,
    forget,
    print_profile,
    profiled,
    start,
    stop,
)
from tests.servers import free_port  # noqa: E402

PEERS = ROOT / "scripts" / "peers"
DAILY = [{"days": ["daily"], "start": "00:00", "end": "24:00"}]


Targeting = Callable[[Runtime, list[str]], dict[str, list[dict[str, object]]]]


def load_geotarget(
    settings: Settings, data: list[Shop], targeting_of: Targeting | None = None, **offer_fields: object
) -> None:
    """Shops, fences and offers; ``targeting_of`` gives, per merchant, the targeting of its offers by position
    (every third the same), e.g. audiences (scripts/bench_audiences.py); ``offer_fields`` are set on every offer
    (a bid price and a link: scripts/bench_openrtb.py)."""
    runtime = Runtime.open(settings, follow=False)
    try:
        merchants = [
            accounts.create_merchant(runtime.repository, f"Shop {i}", "Europe/Lisbon").id
            for i in range(max(s.merchant for s in data) + 1)
        ]
        targeting = targeting_of(runtime, merchants) if targeting_of else {}
        by_merchant: dict[int, list[Shop]] = {}
        for shop in data:
            by_merchant.setdefault(shop.merchant, []).append(shop)
        now = datetime.now(UTC)
        offers = []
        for number, mine in by_merchant.items():
            results = runtime.fences.create_many(merchants[number], [s.feature() for s in mine])
            offers += [
                Offer(
                    id=new_id("off"),
                    merchant_id=merchants[number],
                    title=o.title,
                    geofence_ids=(r.id,),
                    nearby_m=o.nearby_m,
                    schedule=None if o.always else DAILY,
                    special=o.special,
                    caps={"per_device_per_day": 3},
                    targeting=targeting.get(merchants[number], [{}, {}, {}])[n % 3],
                    priority=o.priority,
                    timezone="Europe/Lisbon",
                    created_at=now,
                    updated_at=now,
                    **offer_fields,  # type: ignore[arg-type]
                )
                for n, (shop, r, o) in enumerate(
                    (shop, r, o) for shop, r in zip(mine, results, strict=True) if r.id for o in shop.offers
                )
            ]
        runtime.repository.add_offers(offers)  # in one go: 200,000 API calls would only time the setup
    finally:
        runtime.close()


def server_env(settings: Settings) -> dict[str, str]:
    """The environment of a `geotarget serve` over the data a benchmark loaded (no webhooks: no delivery loops)."""
    env = {
        **os.environ,
        "GEOTARGET_DATA_DIR": str(settings.data_dir),
        "GEOTARGET_REDIS_URL": settings.redis_url or "",
        "GEOTARGET_ADMIN_KEY": settings.admin_key or "",
        "GEOTARGET_REDIS_PREFIX": settings.redis_prefix,
        "GEOTARGET_DELIVER_IN_SERVE": "false",
        # counted per device in each worker (its cost is measured) but never refused, whatever the walk's pace;
        # GEOTARGET_RATE_LIMIT_SERVING="" measures without the limiter
        "GEOTARGET_RATE_LIMIT_SERVING": os.environ.get("GEOTARGET_RATE_LIMIT_SERVING", "20000/second"),
    }
    env.pop("GEOTARGET_DATABASE_URL", None)
    return env


def load_peer(dsn: str, data: list[Shop]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((PEERS / "postgis_schema.sql").read_text())
        fences, offers = io.StringIO(), io.StringIO()
        for number, shop in enumerate(data):
            geometry = shop.feature()["geometry"]
            s = shop.store
            if geometry["type"] == "Point":  # type: ignore[index]
                fences.write(f"{number}\t{s.lon}\t{s.lat}\t{s.radius_m}\t\\N\n")
            else:
                ring = ", ".join(f"{x} {y}" for x, y in geometry["coordinates"][0])  # type: ignore[index]
                fences.write(f"{number}\t{s.lon}\t{s.lat}\t\\N\tPOLYGON(({ring}))\n")
            for j, o in enumerate(shop.offers):
                offers.write(f"o{number}-{j}\t{number}\t{shop.merchant}\t{o.title}\t{o.nearby_m}\t{o.priority}\t")
                offers.write(f"{'t' if o.special else 'f'}\t3\n")
        with conn.cursor() as cur:
            with cur.copy("COPY peer_fences (id, lon, lat, radius_m, wkt) FROM STDIN") as copy:
                copy.write(fences.getvalue())
            with cur.copy("COPY peer_offers FROM STDIN") as copy:
                copy.write(offers.getvalue())
        conn.execute((PEERS / "postgis_index.sql").read_text())


CONFIGS: dict[str, dict[str, str]] = {
    "default": {},  # what a user runs: every loop on (serve's loops process included), nobody listening
    "lean": {"GEOTARGET_DELIVER_IN_SERVE": "false"},  # as this benchmark ran in round 2
    "triggers_off": {"GEOTARGET_TRIGGERS": "false"},
    "listening": {"GEOTARGET_WEBHOOK_ALLOW_PRIVATE": "true"},  # and a webhook of the app on every fence
}


def delivered(base: str) -> float:
    """Webhook deliveries made so far, over every delivery loop (from /metrics)."""
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        if line.startswith("geotarget_webhook_deliveries_delivered_total "):
            return float(line.split()[1])
    return 0.0


def serve_command(stack: str, port: int) -> list[str]:
    if stack == "granian":
        granian = shutil.which("granian") or str(Path(sys.executable).parent / "granian")
        return [granian, "--interface", "asgi", "--factory", "--workers", "2", "--port", str(port),
                "--log-level", "warning", "api.main:create_app_from_env"]  # fmt: skip
    loop = ["--loop", "asyncio"] if stack == "asyncio" else []
    return [sys.executable, "-m", "api", "serve", "--port", str(port), "--workers", "2", *loop]


def bench(
    data: DataSet,
    redis_url: str,
    dsn: str,
    seconds: float,
    profile: bool,
    configs: list[str],
    workloads: list[str],
    stacks: list[str],
    rounds: int = 1,
    rate: float | None = None,
) -> dict[str, Figures]:
    shop_list = list(shops(data))
    centres = [(s.store.lat, s.store.lon) for s in shop_list]
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{data.name}-"))
    prefix = f"bench{os.getpid()}{data.name}"
    settings = Settings(data_dir=data_dir, redis_url=redis_url, admin_key="bench-admin", redis_prefix=prefix)
    started = time.perf_counter()
    load_geotarget(settings, shop_list)
    runtime = Runtime.open(settings, follow=False)
    key = accounts.create_app_key(runtime.repository, "bench").api_key
    runtime.close()
    loaded = time.perf_counter()
    load_peer(dsn, shop_list)
    print(
        f"{data.name}: {len(shop_list):,} fences; geotarget loaded in {loaded - started:.0f} s, "
        f"PostGIS in {time.perf_counter() - loaded:.0f} s",
        flush=True,
    )
    results: dict[str, list[Figures]] = {}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    receiver_port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(receiver_port)])
    runs = [(config, "uvloop") for config in configs] + [("default", s) for s in stacks if s != "uvloop"]
    runs *= rounds  # one configuration after another, again: a slow minute of the machine hits all of them
    try:
        for turn, (config, stack) in enumerate(runs):
            env = server_env(settings) | CONFIGS[config]
            if "GEOTARGET_DELIVER_IN_SERVE" not in CONFIGS[config]:
                env.pop("GEOTARGET_DELIVER_IN_SERVE", None)
            name = config if stack == "uvloop" else f"{config}/{stack}"
            begun = time.perf_counter()
            server, workers = start(serve_command(stack, port), env, base)
            print(f"  geotarget {name} ready in {time.perf_counter() - begun:.0f} s", flush=True)
            hook_id = None
            try:
                if config.startswith("listening"):
                    hook = {"url": f"http://127.0.0.1:{receiver_port}/hook", "events": ["enter", "dwell", "exit"]}
                    made = httpx.post(f"{base}/v1/webhooks", json=hook, headers={"Authorization": f"Bearer {key}"})
                    made.raise_for_status()
                    hook_id = made.json()["id"]
                    time.sleep(3)  # every worker's subscriptions are read again within 2 s
                drive(base, "/v1/nearby", key, centres, 3, 8, workers, redis_url=redis_url)  # warm-up
                first = turn < len(runs) // rounds
                if profile and first and stack == "uvloop" and config in ("default", "listening"):
                    spy = profiled(max(workers, key=lambda w: sum(w.cpu_times()[:2])), seconds)  # a loaded worker
                    drive(base, "/v1/nearby", key, centres, seconds, 8, workers, mode="teleport", redis_url=redis_url)
                    print(f"  profile: {name}, teleporting devices")
                    print_profile(spy)
                for mode in workloads:
                    for c in (8, 64) if config == "default" else (8,):
                        sent = delivered(base)
                        figures = drive(
                            base, "/v1/nearby", key, centres, seconds, c, workers, mode=mode, redis_url=redis_url
                        )
                        results.setdefault(f"{name} {mode} c{c}", []).append(figures)
                        if config == "listening":
                            per_request = (delivered(base) - sent) / max(1.0, figures.rps * seconds)
                            print(f"  {name} {mode} c{c}: {per_request:.2f} webhook deliveries per request")
                    if rate is not None and stack == "uvloop":  # the same offered load for every configuration
                        figures = drive(
                            base, "/v1/nearby", key, centres, seconds, 8, workers, mode=mode, redis_url=redis_url,
                            rate=rate,
                        )  # fmt: skip
                        results.setdefault(f"{name} {mode} c8@{rate:.0f}/s", []).append(figures)
                if config == "default" or stack != "uvloop":
                    for c in (8, 64) if stack == "uvloop" else (8,):
                        figures = drive(base, "/healthz", key, centres, seconds, c, workers)
                        results.setdefault(f"{name} healthz c{c}", []).append(figures)
            finally:
                if hook_id is not None:  # kept in SQL, which every configuration shares: the next ones hear nobody
                    httpx.delete(f"{base}/v1/webhooks/{hook_id}", headers={"Authorization": f"Bearer {key}"})
                stop(server)
                forget(redis_url, [prefix])  # each configuration starts clean: no counters, no transitions left over
    finally:
        receiver.terminate()
    reach = max(m for m, _ in data.nearby_m)
    peer_env = {
        **os.environ,
        "PEER_DSN": dsn,
        "PEER_REDIS": redis_url,
        "PEER_REACH_M": str(reach),
        "PEER_KEY": key,
        "PYTHONPATH": str(ROOT),
    }
    uvicorn = [
        sys.executable,
        "-m",
        "uvicorn",
        "scripts.peers.postgis_peer:app",
        "--port",
        str(port),
        "--workers",
        "2",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    server, workers = start(uvicorn, peer_env, base)
    try:
        drive(base, "/v1/nearby", key, centres, 3, 8, workers)
        for mode in [mode for _ in range(rounds) for mode in workloads]:
            for c in (8, 64):
                figures = drive(base, "/v1/nearby", key, centres, seconds, c, workers, mode=mode, redis_url=redis_url)
                results.setdefault(f"peer {mode} c{c}", []).append(figures)
    finally:
        stop(server)
        shutil.rmtree(data_dir, ignore_errors=True)
        forget(redis_url, [prefix, "peer"])  # the peer keeps its cap counters and events under "peer"
    return {run: median(taken) for run, taken in results.items()}


def median(taken: list[Figures]) -> Figures:
    """Each figure's median over the rounds."""
    return Figures(*(statistics.median(getattr(f, name) for f in taken) for name in Figures.__dataclass_fields__))


def ensure_tools(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
        major = conn.execute("SHOW server_version_num").fetchone()[0][:2]  # type: ignore[index]
    missing = ([] if found else [f"postgresql-{major}-postgis-3"]) + ([] if shutil.which("wrk") else ["wrk"])
    if missing:
        print(f"installing {' '.join(missing)} with apt-get", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="downtown,city,country")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--configs", default="default,lean,triggers_off,listening")
    parser.add_argument("--workloads", default="walk,teleport")
    parser.add_argument("--stacks", default="uvloop", help="uvloop,asyncio,granian: the HTTP stack, compared")
    parser.add_argument("--profile", action="store_true", help="print a py-spy profile of one loaded worker")
    parser.add_argument("--rounds", type=int, default=1, help="run every configuration this many times, in turn")
    parser.add_argument(
        "--rate", type=float, default=None, help="also drive every configuration at about this many requests/s (c8)"
    )
    args = parser.parse_args()
    dsn = os.environ.get("BENCH_PEER_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    ensure_tools(dsn)
    table: list[tuple[str, dict[str, Figures]]] = []
    options = (args.configs.split(","), args.workloads.split(","), args.stacks.split(","))
    with bench_redis() as redis_url:
        for name in args.sets.split(","):
            figures = bench(
                DATA_SETS[name], redis_url, dsn, args.seconds, args.profile, *options, args.rounds, args.rate
            )
            table.append((name, figures))
            print_table(table[-1:])  # as soon as it is known: a long run may be stopped
    print_table(table)


def print_table(table: list[tuple[str, dict[str, Figures]]]) -> None:
    print(
        f"\n{'set':<9} {'run':<30} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'offers':>6} {'degr':>5} "
        f"{'CPU ms':>7} {'loops':>6} {'Redis':>6} {'total':>6}"
    )
    for name, results in table:
        for run, f in results.items():
            print(
                f"{name:<9} {run:<30} {f.rps:>7,.0f} {f.p50:>7.1f} {f.p99:>7.1f} {f.served:>6.2f} "
                f"{f.degraded:>5.0%} {f.cpu_ms:>7.2f} {f.loops_cpu_ms:>6.2f} {f.redis_cpu_ms:>6.2f} "
                f"{f.total_cpu_ms:>6.2f}"
            )
        for run, f in results.items():
            config, _, rest = run.partition(" ")
            mode, _, connections = rest.rpartition(" ")
            if config.startswith("peer") or mode == "healthz":
                continue
            ratios = []
            if (healthz := results.get(f"{config} healthz {connections}")) is not None:
                ratios.append(f"nearby/healthz {f.rps / healthz.rps:.2f}")
            if (peer := results.get(f"peer {mode} {connections}")) is not None:
                ratios.append(f"nearby/peer {f.rps / peer.rps:.2f}")
            if config != "triggers_off" and (off := results.get(f"triggers_off {mode} {connections}")):
                ratios.append(f"CPU/triggers_off {f.total_cpu_ms / off.total_cpu_ms:.2f}")
            if config.startswith("listening") and (quiet := results.get(f"default {mode} {connections}")):
                ratios.append(f"CPU/no listener {f.total_cpu_ms / quiet.total_cpu_ms:.2f}")
            if ratios:
                print(f"{name:<9} {run:<30} {', '.join(ratios)}")
    print(flush=True)


if __name__ == "__main__":
    main()
