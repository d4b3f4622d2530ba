"""What the event consumer costs per event: the stream entries of ``--events`` pings and impressions over the
downtown data set, moved into Parquet by ``StreamConsumer.drain`` (read, parse, fences, write, acknowledge), with
the consumer's CPU per event; then by ``geotarget consume --processes N`` for each N of ``--processes``
(consumers sharing one consumer group, started, then paused with SIGSTOP while the events are appended, then
timed from SIGCONT until the stream is empty).

    python scripts/bench_consumer.py [--events 200000] [--processes 1,2]

Uses GEOTARGET_REDIS_URL when set, else an embedded Redis.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geotarget.measurement.events import Event  # noqa: E402
from geotarget.runtime import Runtime  # noqa: E402
from geotarget.settings import Settings  # noqa: E402
from scripts.bench_data import DATA_SETS, shops  # noqa: E402
from scripts.bench_harness import bench_redis, forget  # noqa: E402
from scripts.bench_nearby import load_geotarget  # noqa: E402


def events(count: int, centres: list[tuple[float, float]]) -> list[Event]:
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(hours=1)
    made = []
    for n in range(count):
        lat, lon = rng.choice(centres)
        at = start + timedelta(milliseconds=n)
        kind = "ping" if n % 3 else "impression"
        extra = {} if kind == "ping" else {"offer_id": "off_1", "merchant_id": "mer_1", "fence_id": "fen_1"}
        made.append(
            Event(
                kind=kind, event_id=f"e{n}", at=at, device_key=f"d{n % 5_000:05d}", lat=lat, lon=lon, cell="c", **extra
            )
        )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--processes", default="1,2", help="consumer processes to compare, comma separated")
    args = parser.parse_args()
    with bench_redis() as redis_url:
        print(consume(redis_url, args.events))
        for processes in (int(n) for n in args.processes.split(",")):
            print(consume_in_processes(redis_url, args.events, processes))


def downtown(redis_url: str, prefix: str) -> tuple[Runtime, list[tuple[float, float]]]:
    """A deployment of its own holding the downtown catalog, and its shops' positions."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-consumer-"))
    settings = Settings(data_dir=data_dir, redis_url=redis_url, admin_key="bench-admin", redis_prefix=prefix)
    shop_list = list(shops(DATA_SETS["downtown"]))
    load_geotarget(settings, shop_list)
    return Runtime.open(settings, follow=False, consume=False), [(s.store.lat, s.store.lon) for s in shop_list]


def append(runtime: Runtime, count: int, centres: list[tuple[float, float]]) -> None:
    made = events(count, centres)
    for start in range(0, len(made), 5_000):
        runtime.server.sink.append(made[start : start + 5_000])


def consume(redis_url: str, count: int) -> str:
    """The downtown catalog, ``count`` events in the stream, then one drain, timed."""
    prefix = f"benchc{os.getpid()}"
    runtime, centres = downtown(redis_url, prefix)
    try:
        append(runtime, count, centres)
        wall, cpu = time.perf_counter(), time.process_time()
        settled = runtime.consumer.drain()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return (
            f"consumer: {settled:,} events in {wall:.2f} s: {settled / wall:,.0f} events/s, "
            f"{cpu / settled * 1e6:.1f} µs CPU per event (batches of {runtime.consumer.batch_size:,})"
        )
    finally:
        runtime.close()
        forget(redis_url, [prefix])


def consume_in_processes(redis_url: str, count: int, processes: int) -> str:
    """``geotarget consume --processes N`` started and paused, ``count`` events appended, then timed from when
    they go on until the stream is empty, with the consumers' CPU."""
    import psutil

    prefix = f"benchp{os.getpid()}x{processes}"
    runtime, centres = downtown(redis_url, prefix)
    env = {**os.environ, "GEOTARGET_DATA_DIR": str(runtime.settings.data_dir), "GEOTARGET_REDIS_URL": redis_url}
    env |= {"GEOTARGET_REDIS_PREFIX": prefix, "GEOTARGET_ADMIN_KEY": "bench-admin"}
    command = [sys.executable, "-m", "api", "consume", "--processes", str(processes)]
    launcher = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client, stream = runtime.consumer.client, runtime.consumer.stream
    try:
        runtime.consumer._ensure_group()
        while len(client.xinfo_consumers(stream, "event-store")) < processes:  # each has read once: ready
            time.sleep(0.2)
        time.sleep(5)  # past the first housekeeping round, which a consumer runs as soon as it starts
        workers = [psutil.Process(launcher.pid), *psutil.Process(launcher.pid).children()]
        for worker in workers:
            worker.send_signal(signal.SIGSTOP)
        append(runtime, count, centres)
        cpu_before = sum(sum(w.cpu_times()[:2]) for w in workers)
        wall = time.perf_counter()
        for worker in workers:
            worker.send_signal(signal.SIGCONT)
        while client.xlen(stream):
            time.sleep(0.05)
        wall = time.perf_counter() - wall
        cpu = sum(sum(w.cpu_times()[:2]) for w in workers) - cpu_before
        return (
            f"consume --processes {processes}: {count:,} events in {wall:.2f} s: {count / wall:,.0f} events/s, "
            f"{cpu / count * 1e6:.1f} µs CPU per event over the consumers"
        )
    finally:
        launcher.terminate()
        launcher.wait(timeout=60)
        runtime.close()
        forget(redis_url, [prefix])


if __name__ == "__main__":
    main()
