"""A national network, measured as a user runs it (DESIGN §9.2): 10,000, 100,000 and 1,000,000 fences of one
chain, two offers each, in two layouts: ``country`` (scripts/bench_data.py: five dense centres and the rest
spread over 300 km × 300 km) and ``even`` (the city set's local density, 10,000 fences per 150 km², at every
size, so a request's cost can only grow with the size of the catalog, not with what lies around it).

Per size and layout, printed as it is known:

- import: ``geotarget fences import`` of a GeoParquet of the stores (every core, in batches), wall time;
- offers: two per fence stored in one go (the API would only time 2,000,000 requests);
- start: ``geotarget serve --workers 2`` from launch to ``/readyz``, first from SQL (its workers then write the
  catalog snapshot: its size) and again from the snapshot (``start_s``; ``worker_s``: from the worker process's
  own start, without the launcher's migrations and imports); RSS and PSS of each worker (PSS counts a shared
  page once per sharer, so it is what a worker really costs);
- /v1/nearby under wrk (teleporting devices at random stores, 8 connections): CPU ms per request of the
  workers (from /proc), p99 latency, and the PSS per worker after it (what the requests decoded and mapped in);
- one write: a new fence with an offer, created through the API, until every worker serves it.

The start, memory, requests and write are measured once per configuration: ``default`` as a user runs it
(every loop on: the loops process beside the workers; the per-device serving limit at its default) and
``tuned`` (no loops process, the limit out of the way). ``worker_s`` is from the first worker's fork.

    python scripts/bench_scale.py [--sizes 10000,100000] [--layouts country,even] [--configs tuned,default]
        [--seconds 10] [--warm 3] [--keep] [--kept FOLDER ...] [--profile]

Uses GEOTARGET_REDIS_URL when set, else an embedded Redis; SQLite in a temporary folder.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geotarget.catalog import accounts  # noqa: E402
from geotarget.catalog.accounts import new_id  # noqa: E402
from geotarget.catalog.model import Offer  # noqa: E402
from geotarget.runtime import Runtime  # noqa: E402
from geotarget.settings import Settings  # noqa: E402
from scripts.bench_data import DATA_SETS, DataSet, Shop, shops  # noqa: E402
from scripts.bench_harness import bench_redis, drive, forget, print_profile, profiled, stop  # noqa: E402
from scripts.bench_nearby import DAILY, server_env  # noqa: E402
from tests.servers import free_port, wait_ready  # noqa: E402

CITY = DATA_SETS["city"]
CHAIN = "National chain"


def layout(name: str, fences: int) -> DataSet:
    if name == "country":
        return replace(DATA_SETS["country"], fences=fences, merchants=1)
    side = 2 * CITY.half_side_m * math.sqrt(fences / CITY.fences)  # the city's density at every size
    return replace(CITY, name="even", fences=fences, half_side_m=side / 2, merchants=1)


def write_parquet(data: list[Shop], path: Path) -> None:
    gpd.GeoDataFrame.from_features([s.feature() for s in data], crs=4326).to_parquet(path, row_group_size=10_000)


def add_offers(settings: Settings, merchant: str, data: list[Shop]) -> None:
    runtime = Runtime.open(settings, follow=False, consume=False, load_catalog=False)
    try:
        ids = [f.id for f in runtime.repository.fences(merchant)]
        now = datetime.now(UTC)
        offers = [
            Offer(
                id=new_id("off"),
                merchant_id=merchant,
                title=o.title,
                geofence_ids=(fence_id,),
                nearby_m=o.nearby_m,
                schedule=None if o.always else DAILY,
                special=o.special,
                caps={"per_device_per_day": 3},
                priority=o.priority,
                timezone="Europe/Lisbon",
                created_at=now,
                updated_at=now,
            )
            for fence_id, shop in zip(ids, data, strict=True)
            for o in shop.offers
        ]
        for start in range(0, len(offers), 50_000):
            runtime.repository.add_offers(offers[start : start + 50_000])
    finally:
        runtime.close()


def _is_worker(process: psutil.Process) -> bool:
    """A serving worker (forked by the forkserver, api/forked_workers.py): not the forkserver itself, not the
    loops process, not multiprocessing's resource tracker."""
    parent = process.parent()
    return parent is not None and all("forkserver" in " ".join(p.cmdline()) for p in (process, parent))


def snapshot_mb(root: Path, timeout_s: float) -> float:
    """The size of the catalog snapshot once one is written (the first worker writes it after it serves)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        written = [p for p in root.glob("[0-9]*-*") if (p / "meta.json").is_file()] if root.is_dir() else []
        if written:
            return sum(f.stat().st_size for f in written[0].iterdir()) / 2**20
        time.sleep(0.5)
    raise TimeoutError(f"no catalog snapshot in {root} after {timeout_s:.0f} s")


def memory_mb(workers: list[psutil.Process]) -> tuple[float, float]:
    """The largest worker's RSS and PSS, in MB."""
    full = [w.memory_full_info() for w in workers]
    return max(m.rss for m in full) / 2**20, max(m.pss for m in full) / 2**20


def one_write(base: str, merchant_key: str, app_key: str, near: Shop) -> float:
    """Seconds from a new fence and offer being stored to every worker serving it (20 answers in a row)."""
    merchant = {"Authorization": f"Bearer {merchant_key}"}
    lat, lon = near.store.lat + 0.0009, near.store.lon + 0.0009
    fence = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"radius_m": 25},
    }
    made = httpx.post(f"{base}/v1/geofences", json=fence, headers=merchant, timeout=30).raise_for_status().json()
    started = time.perf_counter()
    body = {"title": "Opening day", "geofence_ids": [made["id"]], "priority": 100}
    offer = httpx.post(f"{base}/v1/offers", json=body, headers=merchant, timeout=30).raise_for_status().json()
    in_a_row, asked = 0, 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {app_key}"}) as client:
        while in_a_row < 20 and time.perf_counter() - started < 60:
            asked += 1
            answer = client.get("/v1/nearby", params={"lat": lat, "lon": lon, "device_id": f"scale-{asked}"}).json()
            in_a_row = in_a_row + 1 if any(o["offer_id"] == offer["id"] for o in answer["offers"]) else 0
    took = time.perf_counter() - started
    httpx.delete(f"{base}/v1/offers/{offer['id']}", headers=merchant, timeout=30).raise_for_status()
    httpx.delete(f"{base}/v1/geofences/{made['id']}", headers=merchant, timeout=30).raise_for_status()
    return took  # and gone again: a kept deployment measured again has no rival for the next one


@dataclass(frozen=True)
class Deployment:
    """A loaded deployment: its folder (SQLite, catalog snapshots), its stores and the keys to use it."""

    folder: Path
    layout: str
    data: list[Shop]
    merchant_key: str
    app_key: str

    def settings(self, redis_url: str) -> Settings:
        return _settings(self.folder, redis_url)

    def env(self, redis_url: str, config: str) -> dict[str, str]:
        env = server_env(self.settings(redis_url)) | {"GEOTARGET_MAX_FENCES_PER_MERCHANT": str(2 * len(self.data))}
        if config == "default":  # as a user runs it: every loop on, the per-device limit at its default
            env = {k: v for k, v in env.items() if k not in TUNED}
        return env

    @classmethod
    def kept(cls, folder: Path, redis_url: str) -> Deployment:
        """A deployment kept by an earlier run (``--keep``), with new keys (a key is only stored hashed)."""
        _, name, fences, _ = folder.name.split("-", 3)
        runtime = Runtime.open(_settings(folder, redis_url), follow=False, consume=False, load_catalog=False)
        try:
            merchant = runtime.repository.merchant_named(CHAIN)
            assert merchant is not None, f"no {CHAIN!r} in {folder}"
            merchant_key = accounts.issue_merchant_key(runtime.repository, merchant.id)
            app_key = accounts.create_app_key(runtime.repository, "bench").api_key
        finally:
            runtime.close()
        return cls(folder, name, list(shops(layout(name, int(fences)))), merchant_key, app_key)


def _settings(folder: Path, redis_url: str) -> Settings:
    prefix = f"scale{os.getpid()}{folder.name.rsplit('-', 1)[-1]}"[:32]
    return Settings(data_dir=folder, redis_url=redis_url, admin_key="bench-admin", redis_prefix=prefix)


TUNED = ("GEOTARGET_DELIVER_IN_SERVE", "GEOTARGET_RATE_LIMIT_SERVING")  # what server_env sets beyond the data


def load(layout_name: str, fences: int, redis_url: str) -> tuple[Deployment, dict[str, float]]:
    """Import the stores, add their offers and start once."""
    data = list(shops(layout(layout_name, fences)))
    folder = Path(tempfile.mkdtemp(prefix=f"scale-{layout_name}-{fences}-"))
    figures: dict[str, float] = {}
    parquet = folder / "stores.parquet"
    write_parquet(data, parquet)
    settings = _settings(folder, redis_url)
    runtime = Runtime.open(settings, follow=False, consume=False)
    merchant = accounts.create_merchant(runtime.repository, CHAIN, "Europe/Lisbon")
    app_key = accounts.create_app_key(runtime.repository, "bench").api_key
    runtime.close()
    deployment = Deployment(folder, layout_name, data, merchant.api_key, app_key)
    env = deployment.env(redis_url, "tuned")
    began = time.perf_counter()
    command = [sys.executable, "-m", "api", "fences", "import", str(parquet), "--merchant", merchant.id]
    subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
    figures["import_s"] = time.perf_counter() - began
    began = time.perf_counter()
    add_offers(settings, merchant.id, data)
    figures["offers_s"] = time.perf_counter() - began
    return deployment, figures | first_start(deployment, redis_url)


def first_start(deployment: Deployment, redis_url: str) -> dict[str, float]:
    """Start without a snapshot: the workers read SQL (and, after an import, store the reach covers of the
    offers' distances, computed once), and one writes the snapshot later starts map."""
    port = free_port()
    env = deployment.env(redis_url, "tuned")
    began = time.perf_counter()
    server = subprocess.Popen(_serve(port), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server, timeout_s=3_600)
        figures = {"first_start_s": time.perf_counter() - began}
        figures["snapshot_mb"] = snapshot_mb(deployment.folder / "catalog", timeout_s=600)
    finally:
        stop(server)
        forget(redis_url, [deployment.settings(redis_url).redis_prefix])
    return figures


def _snapshot_of(deployment: Deployment, redis_url: str) -> dict[str, float]:
    """A kept deployment whose snapshots were deleted (to measure another snapshot writer) starts once first."""
    if any((deployment.folder / "catalog").glob("[0-9]*-*/meta.json")):
        return {}
    return first_start(deployment, redis_url)


def _serve(port: int) -> list[str]:
    return [sys.executable, "-m", "api", "serve", "--port", str(port), "--workers", "2"]


def measure(
    deployment: Deployment, redis_url: str, config: str, seconds: float, warm: float, profile: bool
) -> dict[str, float]:
    """Start from the snapshot, load it with teleporting devices and write once: the figures of one row."""
    figures: dict[str, float] = {}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = deployment.env(redis_url, config)
    began = time.perf_counter()
    server = subprocess.Popen(_serve(port), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(base, server, timeout_s=3_600)
        figures["start_s"], ready_at = time.perf_counter() - began, time.time()
        workers = [w for w in psutil.Process(server.pid).children(recursive=True) if _is_worker(w)]
        figures["worker_s"] = ready_at - min(w.create_time() for w in workers)
        time.sleep(2)
        figures["rss_mb"], figures["pss_mb"] = memory_mb(workers)
        centres = [(s.store.lat, s.store.lon) for s in deployment.data]
        app_key = deployment.app_key
        drive(base, "/v1/nearby", app_key, centres, warm, 8, workers, mode="teleport")  # warm-up
        if profile:
            spy = profiled(max(workers, key=lambda w: sum(w.cpu_times()[:2])), seconds)  # a loaded one
            drive(base, "/v1/nearby", app_key, centres, seconds, 8, workers, mode="teleport")
            print(f"  profile: {deployment.layout} {len(deployment.data):,} {config}")
            print_profile(spy)
        loaded = drive(base, "/v1/nearby", app_key, centres, seconds, 8, workers, mode="teleport")
        figures["cpu_ms"], figures["p99_ms"], figures["offers"] = loaded.cpu_ms, loaded.p99, loaded.served
        _, figures["loaded_pss_mb"] = memory_mb(workers)  # with what the requests decoded and mapped in
        near = random.Random().choice(deployment.data)  # away from what an older run may have left
        figures["write_s"] = one_write(base, deployment.merchant_key, app_key, near)
    finally:
        stop(server)
        forget(redis_url, [deployment.settings(redis_url).redis_prefix])
    return figures


LOADING = ("import_s", "offers_s", "first_start_s", "snapshot_mb")
COLUMNS = (
    *LOADING,
    "start_s",
    "worker_s",
    "rss_mb",
    "pss_mb",
    "loaded_pss_mb",
    "cpu_ms",
    "p99_ms",
    "offers",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--layouts", default="country,even")
    parser.add_argument("--configs", default="tuned,default", help="tuned: no loops process, no per-device limit")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--warm",
        type=float,
        default=3,
        help="seconds of requests before measuring (a started worker decodes the "
        "offers and shapes of a snapshot as requests first touch them)",
    )
    parser.add_argument("--keep", action="store_true", help="keep each deployment's folder (printed)")
    parser.add_argument("--kept", type=Path, nargs="*", default=[], help="measure these kept deployments instead")
    parser.add_argument("--profile", action="store_true", help="print a py-spy profile of one loaded worker")
    args = parser.parse_args()
    configs = args.configs.split(",")
    print(
        f"{'layout':<8} {'fences':>9} {'config':>8} " + " ".join(f"{c:>13}" for c in (*COLUMNS, "write_s")), flush=True
    )
    with bench_redis() as redis_url:
        kept = [Deployment.kept(folder, redis_url) for folder in args.kept]
        loads = [(d, dict.fromkeys(LOADING, math.nan) | _snapshot_of(d, redis_url)) for d in kept] or (
            load(name, int(size), redis_url) for size in args.sizes.split(",") for name in args.layouts.split(",")
        )
        for deployment, loading in loads:
            try:
                for config in configs:
                    f = loading | measure(deployment, redis_url, config, args.seconds, args.warm, args.profile)
                    row = " ".join(f"{f[c]:>13,.2f}" for c in (*COLUMNS, "write_s"))
                    print(f"{deployment.layout:<8} {len(deployment.data):>9,} {config:>8} {row}", flush=True)
            finally:
                if args.keep or kept:
                    print(f"  kept: {deployment.folder}", flush=True)
                else:
                    shutil.rmtree(deployment.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
