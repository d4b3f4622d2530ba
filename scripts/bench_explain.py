"""The decision explainer and pacing, in process, on the benchmark's city (scripts/bench_data.py: 10,000 fences,
20,000 offers over 150 km²): how long an explain answer takes against a /v1/nearby answer at the same points,
and what pacing and two creative variants on a third of the offers cost /v1/nearby (the pacing draw is the last
test of matching; a variant is a hash and a copy of the offer) against the same offers with the same daily
budgets, unpaced and without variants.

    python scripts/bench_explain.py [--set city] [--requests 2000]

Uses GEOTARGET_REDIS_URL when set, else an embedded Redis; SQLite in a temporary folder. Prints per figure the
median, p95 and p99 of wall time per call (ms) and the ratio to plain /v1/nearby measured in the same run,
interleaved, so a busy machine moves both.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_data import DATA_SETS, shops
from bench_harness import bench_redis
from bench_nearby import load_geotarget
from sqlalchemy import text

from geofences import LatLng
from geofences.shapes import moved
from geotarget.runtime import Runtime
from geotarget.serving.answers import NearbyQuery
from geotarget.serving.explain import explain
from geotarget.serving.pacing_loop import pace_once
from geotarget.settings import Settings


def figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"median {statistics.median(ordered):6.2f} ms  p95 {p(0.95):6.2f}  p99 {p(0.99):6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="city")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    data = list(shops(DATA_SETS[args.set]))
    with bench_redis() as redis_url, tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), redis_url=redis_url, redis_prefix="bexp", admin_key="bench")
        started = time.perf_counter()
        load_geotarget(settings, data)
        print(f"{args.set}: {len(data):,} fences loaded in {time.perf_counter() - started:.0f} s")
        runtime = Runtime.open(settings, follow=False, consume=False)
        try:
            rng = random.Random(3)
            points = [moved(LatLng(s.store.lat, s.store.lon), rng.uniform(-300, 300), rng.uniform(-300, 300))
                      for s in rng.sample(data, min(len(data), args.requests))]  # fmt: skip
            server, now = runtime.server, datetime.now(UTC)
            nearby_ms, explain_ms, listed = [], [], []
            for n, point in enumerate(points):
                query = NearbyQuery(point, f"phone-{n}", now, accuracy_m=10.0)
                t0 = time.perf_counter()
                server.nearby(query)
                t1 = time.perf_counter()
                found = explain(server, NearbyQuery(point, f"other-{n}", now, accuracy_m=10.0))
                t2 = time.perf_counter()
                nearby_ms.append((t1 - t0) * 1000)
                explain_ms.append((t2 - t1) * 1000)
                listed.append(len(found.offers))
            print(f"  /v1/nearby (in process)   {figures(nearby_ms)}")
            print(f"  explain (dry run)         {figures(explain_ms)}   offers listed: {statistics.median(listed):.0f}"
                  f"   ratio {statistics.median(explain_ms) / statistics.median(nearby_ms):.1f}x")  # fmt: skip

            runtime.close()  # the same third gets a daily budget in both copies: pacing's own cost is compared
            with runtime.engine.begin() as sql:
                sql.execute(text("UPDATE offers SET daily_budget = 1000000000 WHERE rowid % 3 = 0"))
            runtime = Runtime.open(settings, follow=False, consume=False)
            server = runtime.server
            paced_settings = settings.model_copy(update={"data_dir": Path(folder) / "paced", "redis_prefix": "bexq"})
            shutil.copytree(settings.data_dir, paced_settings.data_dir, ignore=shutil.ignore_patterns("paced"))
            other = Runtime.open(paced_settings, follow=False, consume=False)
            try:
                with other.engine.begin() as sql:  # and is paced (a budget it will not reach today), with variants
                    sql.execute(
                        text(
                            "UPDATE offers SET pacing = 'even', rotation = 'optimized', variants = :variants"
                            " WHERE rowid % 3 = 0"
                        ),
                        {"variants": json.dumps([{"id": "plain"}, {"id": "bold", "title": "BOLD"}])},
                    )
                other.close()
                other = Runtime.open(paced_settings, follow=False, consume=False)
                pace_once(other.server, now)
                plain_ms, paced_ms = [], []
                for n, point in enumerate(points):  # interleaved, each first in turn: a busy moment moves both
                    pair = [(paced_ms, other.server), (plain_ms, server)]
                    for samples, serving in pair if n % 2 else pair[::-1]:
                        query = NearbyQuery(point, f"pace-{n}", now, accuracy_m=10.0)
                        t0 = time.perf_counter()
                        serving.nearby(query)
                        samples.append((time.perf_counter() - t0) * 1000)
                paced = len(other.catalog.paced_offers())
                print(f"  a third paced, 2 variants each ({paced:,}): /v1/nearby {figures(paced_ms)}")
                print(f"  the same budgets, no pacing, no variants  {figures(plain_ms)}   "
                      f"ratio {statistics.median(paced_ms) / statistics.median(plain_ms):.3f}")  # fmt: skip
            finally:
                other.close()
        finally:
            runtime.close()


if __name__ == "__main__":
    main()
