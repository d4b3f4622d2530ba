"""Benchmark `geotarget ingest`: 10 million generated pings against 10,000 fences, and in the same run the same
fence assignment done with geopandas.sjoin (ratio and disagreements, which must be 0), then the time to produce a
30-day reach report over that data, and refreshing audiences over it (each rule; members published to Redis when
GEOTARGET_REDIS_URL is set).

    python scripts/bench_ingest.py [--pings 10000000] [--fences 10000] [--devices 100000]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import CENTRE, make_fences

from geofences import CircleShape, FenceIndex
from geofences.bulk import query_many
from geotarget.audiences.model import RULE
from geotarget.measurement.ingest import ingest_file
from geotarget.settings import Settings
from geotarget.store.event_store import ParquetEventStore
from geotarget.store.redis_audiences import RedisMemberships
from geotarget.store.redis_client import connect_blocking
from geotarget.store.report_queries import Scope, audience_members, reach_figures


def generate(path: Path, n: int, devices: int, rng: np.random.Generator) -> None:
    """Pings of ``devices`` phones over 30 days, clustered around the city centre (where the shops are)."""
    k = 111_195 * math.cos(math.radians(CENTRE.lat))
    start = int(datetime(2026, 10, 25, tzinfo=UTC).timestamp())
    chunk = 2_000_000
    writer = None
    for first in range(0, n, chunk):
        m = min(chunk, n - first)
        frame = pd.DataFrame(
            {
                "device_id": "phone-" + pd.Series(rng.integers(0, devices, m)).astype(str),
                "lat": CENTRE.lat + rng.uniform(-6_000, 6_000, m) / 111_195,
                "lon": CENTRE.lon + rng.uniform(-6_000, 6_000, m) / k,
                "ts": start + rng.integers(0, 30 * 86_400, m),
                "accuracy_m": rng.uniform(3, 50, m).round(1),
            }
        )
        table = __import__("pyarrow").Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=10_000_000)
    parser.add_argument("--fences", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=100_000)
    args = parser.parse_args()
    rng = np.random.default_rng(5)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    shapes = make_fences(args.fences, rng)
    index = FenceIndex(10)
    for i, shape in enumerate(shapes):
        index.add(f"f{i}", shape)
    source = work / "pings.parquet"
    generate(source, args.pings, args.devices, rng)
    store = ParquetEventStore(work / "events")

    started = time.perf_counter()
    summary = ingest_file(source, store, "bench-secret", index, set())
    ingest_s = time.perf_counter() - started
    print(
        f"ingest: {summary.accepted:,} pings in {ingest_s:.1f} s = {summary.accepted / ingest_s:,.0f} pings/s "
        f"(validate, hash, H3 cell, fences, write Parquet)"
    )

    pings = pq.read_table(source, columns=["lat", "lon"]).to_pandas()
    started = time.perf_counter()
    query_many(index, pings.lat.to_numpy(), pings.lon.to_numpy())
    assign_s = time.perf_counter() - started
    polygons = [(f"f{i}", s) for i, s in enumerate(shapes) if not isinstance(s, CircleShape)]
    circles = [(f"f{i}", s) for i, s in enumerate(shapes) if isinstance(s, CircleShape)]
    started = time.perf_counter()
    points = gpd.GeoDataFrame(
        {"point": np.arange(len(pings))}, geometry=gpd.points_from_xy(pings.lon, pings.lat), crs=4326
    )
    fences = gpd.GeoDataFrame({"fence": [f for f, _ in polygons]}, geometry=[s.geometry for _, s in polygons], crs=4326)
    boxes = gpd.GeoDataFrame(
        {
            "fence": [f for f, _ in circles],
            "clat": [s.center.lat for _, s in circles],
            "clon": [s.center.lon for _, s in circles],
            "r": [s.radius_m for _, s in circles],
        },
        geometry=[__import__("shapely").box(*s.bounds) for _, s in circles],
        crs=4326,
    )
    joined = gpd.sjoin(points, fences, predicate="intersects")[["point", "fence"]]
    near = gpd.sjoin(points, boxes, predicate="intersects")
    lat = pings.lat.to_numpy()[near.point.to_numpy()]
    lon = pings.lon.to_numpy()[near.point.to_numpy()]
    phi0, phi = np.radians(near.clat.to_numpy()), np.radians(lat)
    h = np.sin((phi - phi0) / 2) ** 2 + np.cos(phi0) * np.cos(phi) * np.sin(np.radians(lon - near.clon) / 2) ** 2
    inside = 2 * 6_371_008.8 * np.arcsin(np.sqrt(np.clip(h, 0, 1))) <= near.r.to_numpy()
    sjoin_pairs = pd.concat([joined, near.loc[inside, ["point", "fence"]]])
    sjoin_s = time.perf_counter() - started
    print(
        f"fence assignment alone: query_many {len(pings) / assign_s:,.0f} pings/s, geopandas.sjoin "
        f"{len(pings) / sjoin_s:,.0f} pings/s (ratio {sjoin_s / assign_s:.2f}); whole ingest ÷ sjoin = "
        f"{(summary.accepted / ingest_s) / (len(pings) / sjoin_s):.2f} (sjoin does no validation, hashing or writing)"
    )

    stored = pq.read_table(store.glob.rsplit("/", 2)[0], columns=["lat", "lon", "fences"]).to_pandas()
    order = pd.MultiIndex.from_frame(pings[["lat", "lon"]].round(9))
    ours = stored.assign(key=list(zip(stored.lat.round(9), stored.lon.round(9), strict=True)))
    ours = ours.explode("fences").dropna(subset=["fences"])
    mine = set(zip(ours.key, ours.fences, strict=True))
    keys = list(zip(pings.lat.round(9), pings.lon.round(9), strict=True))
    theirs = {(keys[p], f) for p, f in zip(sjoin_pairs.point, sjoin_pairs.fence, strict=True)}
    print(f"disagreements with sjoin: {len(mine ^ theirs)} (of {len(theirs):,} inside-pairs); {len(order):,} pings")

    visit_fences = tuple(f"f{i}" for i in range(0, args.fences, 10))
    what = f"visitors and visits of {len(visit_fences):,} fences over {summary.accepted:,} pings"
    time_report(store, Scope(visit_fences=visit_fences), what)
    time_report(store, Scope(fence_ids=("f0",), visit_fences=("f0",)), "one fence, what a merchant asks for")
    time_audiences(store, visit_fences, summary.accepted)


def time_audiences(store: ParquetEventStore, fences: tuple[str, ...], pings: int) -> None:
    """One refresh per rule kind over ``fences`` (a merchant with many stores): the DuckDB query, then writing
    the members to Redis."""
    zones = dict.fromkeys(fences, "Europe/Helsinki")
    now = datetime(2026, 11, 24, tzinfo=UTC)
    rules = [
        {"kind": "visitors", "min_visits": 2, "days": 30},
        {"kind": "regulars", "min_days": 3, "days": 28},
        {"kind": "lapsed", "seen_within_days": 30, "not_within_days": 7},
        {"kind": "dwellers", "min_dwell_s": 600, "days": 30},
    ]
    redis_url = os.environ.get("GEOTARGET_REDIS_URL")
    memberships = RedisMemberships(connect_blocking(redis_url), f"bench{os.getpid()}") if redis_url else None
    for figures in rules:
        rule = RULE.validate_python({**figures, "tags": ["shop"]})  # the fences are given by ``zones``
        started = time.perf_counter()
        members = audience_members(store, rule, zones, now, set())
        query_s = time.perf_counter() - started
        line = f"audience refresh, {rule.kind} of {len(fences):,} fences over {pings:,} pings: query {query_s:.1f} s"
        if memberships is not None:
            started = time.perf_counter()
            memberships.publish(f"aud_{rule.kind}", 1, members, 600)
            line += f", publish {time.perf_counter() - started:.1f} s"
        print(f"{line}; {len(members):,} members", flush=True)
    if memberships is not None:
        for key in memberships.client.scan_iter(f"bench{os.getpid()}:*", count=10_000):
            memberships.client.delete(key)
        memberships.close()


def time_report(store: ParquetEventStore, scope: Scope, what: str) -> None:
    """The per-day figures, then the window's totals (the second query a reach report makes)."""
    k = Settings.model_fields["report_min_devices"].default
    window = (datetime(2026, 10, 25, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC), "Europe/Helsinki", "day", k)
    started = time.perf_counter()
    figures = reach_figures(store, scope, *window)
    days = time.perf_counter() - started
    totals = reach_figures(store, scope, *window, whole=date(2026, 10, 25))
    whole = time.perf_counter() - started - days
    visitors = sum(f.value for f in figures if f.metric == "visitors")
    unique = sum(f.value for f in totals if f.metric == "visitors")
    print(
        f"30-day reach report ({what}): {days:.1f} s per day + {whole:.1f} s totals; "
        f"{visitors:,.0f} visitor-days, {unique:,.0f} visitors"
    )


if __name__ == "__main__":
    main()
