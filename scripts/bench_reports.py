"""Benchmark reports over a large event store, from raw events and from daily rollups, at several store sizes.

For each size: generated pings of 100,000 phones over 30 days around 10,000 store-sized fences (sessions of 1-20
pings a minute apart, half of them at a store), through `geotarget ingest`'s own code; impressions (a tenth of them
held-out ghosts) and clicks of one offer per fence; the store compacted as the consumer's housekeeping does; then
the 30-day reach of one fence and of a 1,000-store chain, the heatmap of one fence, the lift of the chain's offer
and an audience refresh over the chain's fences, each timed from raw events, then again after `rollup` (daily
rollups and merged weeks, timed too), with every figure checked equal both ways.

    python scripts/bench_reports.py [--pings 5000000,50000000] [--fences 10000] [--engines duckdb,spark]
                                    [--spark-master local[2]]

Every query runs on each engine over the same files (DuckDB in process; Spark at --spark-master, warmed up by one
query first, so its figures are per query, not its start). Figures are checked equal across engines too.
"""

from __future__ import annotations

import argparse
import functools
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import CENTRE, make_fences

from geofences import FenceIndex
from geotarget.audiences.model import Visitors
from geotarget.measurement.ingest import ingest_file
from geotarget.store.event_store import ParquetEventStore, table_of
from geotarget.store.report_engines import DuckDBEngine
from geotarget.store.report_queries import Scope, audience_members, heatmap_rows, lift_arms, reach_figures
from geotarget.store.spark_engine import SparkEngine

START = datetime(2026, 10, 25, tzinfo=UTC)
DAYS = 30
CHAIN = 1_000  # fences f0..f999 are one merchant's stores
K = 10
ROLLED_RUNS = 3  # each query from rollups: the best of this many runs (raw queries run once: they take seconds)


def generate(path: Path, pings: int, shapes: list[Any], rng: np.random.Generator) -> None:
    """Sessions of 1-20 pings a minute apart within ~10 m; half of them at a random store."""
    k = 111_195 * math.cos(math.radians(CENTRE.lat))
    centres = np.array([(s.bounds[1] + s.bounds[3], s.bounds[0] + s.bounds[2]) for s in shapes]) / 2
    writer = None
    done = 0
    while done < pings:
        sessions = 200_000
        length = rng.integers(1, 21, sessions)
        at_store = rng.random(sessions) < 0.5
        store = centres[rng.integers(0, len(shapes), sessions)]
        lat = np.where(at_store, store[:, 0], CENTRE.lat + rng.uniform(-6_000, 6_000, sessions) / 111_195)
        lon = np.where(at_store, store[:, 1], CENTRE.lon + rng.uniform(-6_000, 6_000, sessions) / k)
        start = int(START.timestamp()) + rng.integers(0, DAYS * 86_400 - 1_200, sessions)
        device = rng.integers(0, 100_000, sessions)
        rows = np.repeat(np.arange(sessions), length)[: pings - done]
        step = np.arange(len(rows)) - np.repeat(np.cumsum(length) - length, length)[: len(rows)]
        frame = {
            "device_id": pa.array([f"phone-{d}" for d in device[rows]]),
            "lat": lat[rows] + rng.normal(0, 10, len(rows)) / 111_195,
            "lon": lon[rows] + rng.normal(0, 10, len(rows)) / k,
            "ts": start[rows] + step * 60,
            "accuracy_m": np.round(rng.uniform(3, 30, len(rows)), 1),
        }
        table = pa.table(frame)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        done += len(rows)
    if writer:
        writer.close()


def offer_events(store: ParquetEventStore, count: int, fences: int, rng: np.random.Generator) -> None:
    """``count`` impressions (a tenth ghosts) of offer o<fence> on fence f<fence>, a tenth of them clicked."""
    fence = rng.integers(0, fences, count)
    ids = np.arange(count)
    ghost = rng.random(count) < 0.1
    at = START + timedelta(seconds=1)
    ts = pa.array(
        [at + timedelta(seconds=int(s)) for s in rng.integers(0, DAYS * 86_400 - 3_600, count)],
        pa.timestamp("us", tz="UTC"),
    )
    columns = {
        "kind": pa.array(np.where(ghost, "ghost", "impression")),
        "event_id": pa.array([f"i{i}" for i in ids]),
        "ts": ts,
        "device_key": pa.array([f"dk{d}" for d in rng.integers(0, 100_000, count)]),
        "offer_id": pa.array([f"o{f}" for f in fence]),
        "merchant_id": pa.array([f"m{0 if f < CHAIN else f}" for f in fence]),
        "fence_id": pa.array([f"f{f}" for f in fence]),
    }
    store.write(table_of(columns))
    clicked = np.flatnonzero(~ghost & (rng.random(count) < 0.1))
    clicks = {
        "kind": pa.array(["click"] * len(clicked)),
        "event_id": pa.array([f"c{i}" for i in clicked]),
        "ts": pa.array([ts[int(i)].as_py() + timedelta(minutes=5) for i in clicked], pa.timestamp("us", tz="UTC")),
        "ref": pa.array([f"i{i}" for i in clicked]),
    }  # as the product writes them: a click names its impression, nothing else (measurement/interactions.py)
    store.write(table_of(clicks))


def queries(shapes: list[Any]) -> dict[str, Callable[[ParquetEventStore], Any]]:
    end = START + timedelta(days=DAYS)
    chain = tuple(f"f{i}" for i in range(CHAIN))
    west, south, east, north = shapes[0].bounds
    box = (west - 0.01, south - 0.005, east + 0.01, north + 0.005)
    rule = Visitors(kind="visitors", tags=("shop",), min_visits=2, days=30)  # the fences: by tag, given as zones
    one, whole_chain = Scope(fence_ids=("f0",), visit_fences=("f0",)), Scope(merchant_id="m0", visit_fences=chain)
    zones = dict.fromkeys(chain, "UTC")
    return {
        "one-fence reach": lambda s: reach_figures(s, one, START, end, "UTC", "day", K),
        "chain reach (1,000 stores)": lambda s: reach_figures(s, whole_chain, START, end, "UTC", "day", K),
        "one-fence heatmap": lambda s: len(heatmap_rows(s, box, START, end, "f0")),
        "lift (an offer over 1,000 stores)": lambda s: lift_arms(s, "o0", chain, START, end, 7),
        "audience refresh (1,000 stores)": lambda s: len(audience_members(s, rule, zones, end, ())),
    }


def timed(work: Callable[[], Any], runs: int = 1) -> tuple[float, Any]:
    """The best of ``runs`` times (one slow moment of a shared machine is not the query's), and the answer."""
    best, found = math.inf, None
    for _ in range(runs):
        started = time.perf_counter()
        found = work()
        best = min(best, time.perf_counter() - started)
    return best, found


def size_of(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 2**20


def run(pings: int, fences: int, engines: dict[str, Callable[..., Any]], rng: np.random.Generator) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    try:
        shapes = make_fences(fences, rng)
        index = FenceIndex(10)
        for i, shape in enumerate(shapes):
            index.add(f"f{i}", shape)
        source = work / "pings.parquet"
        generate(source, pings, shapes, rng)
        store = ParquetEventStore(work / "events")
        ingest_s, summary = timed(lambda: ingest_file(source, store, "bench-secret", index, set()))
        offer_events(store, pings // 20, fences, rng)
        rate, raw_mib = summary.accepted / ingest_s, size_of(work / "events")
        print(f"{pings:,} pings: ingest {ingest_s:.1f} s = {rate:,.0f} pings/s; raw store {raw_mib:,.0f} MiB")
        compact_s, merged = timed(store.compact)  # as the consumer's housekeeping leaves the store
        print(f"    compaction: {merged:,} files merged away in {compact_s:.1f} s")
        asked = queries(shapes)
        stores = {name: ParquetEventStore(work / "events", engine=engine) for name, engine in engines.items()}
        for name, on in stores.items():
            start_s, _ = timed(lambda on=on: asked["one-fence reach"](on))  # type: ignore[misc]
            print(f"    {name}: first query (start included) {start_s:.1f} s")
        raw = {(e, q): timed(lambda on=on, ask=ask: ask(on)) for q, ask in asked.items() for e, on in stores.items()}  # type: ignore[misc]
        roll_s, days = timed(lambda: store.roll((START + timedelta(days=DAYS + 1)).date()))
        rollup_mib = size_of(work / "events" / "rollups")
        print(f"    rollup of {len(days)} days: {roll_s:.1f} s; rollups {rollup_mib:,.0f} MiB")
        rolled = {
            (e, q): timed(lambda on=on, ask=ask: ask(on), ROLLED_RUNS)  # type: ignore[misc]
            for q, ask in asked.items()
            for e, on in stores.items()
        }
        expected = {q: raw[(next(iter(stores)), q)][1] for q in asked}
        for q in asked:
            for e in stores:
                same = raw[(e, q)][1] == expected[q] == rolled[(e, q)][1]
                print(
                    f"    {q:<34} {e:<7} raw {raw[(e, q)][0]:6.2f} s   "
                    f"rollups (best of {ROLLED_RUNS}) {rolled[(e, q)][0]:6.2f} s"
                    f"   ({'equal' if same else 'DIFFERENT'})"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", default="5000000,50000000")
    parser.add_argument("--fences", type=int, default=10_000)
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--spark-master", default="local[2]")
    args = parser.parse_args()
    known = {"duckdb": DuckDBEngine, "spark": functools.partial(SparkEngine, master=args.spark_master)}
    engines = {name: known[name] for name in args.engines.split(",")}
    for pings in (int(p) for p in args.pings.split(",")):
        run(pings, args.fences, engines, np.random.default_rng(7))
    print(f"(today is {date.today()}; figures checked equal from raw events and rollups, on every engine)")


if __name__ == "__main__":
    main()
