"""What the load benchmarks share: wrk driving a server with the walkers' script (bench_walkers.lua) and the
figures it prints, CPU per request of the server's workers and of Redis, a py-spy profile of one loaded worker,
starting and stopping servers, a local webhook receiver, and a Redis to run against."""

from __future__ import annotations

import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geofences.shapes import METRES_PER_DEGREE  # noqa: E402
from geotarget.store.embedded_redis import EmbeddedRedis  # noqa: E402
from tests.servers import wait_ready  # noqa: E402

WRK_SCRIPT = (Path(__file__).parent / "bench_walkers.lua").read_text()


@dataclass
class Figures:
    rps: float
    p50: float
    p99: float
    served: float
    degraded: float
    cpu_ms: float
    redis_cpu_ms: float = 0.0
    loops_cpu_ms: float = 0.0  # of cpu_ms: the trigger and delivery loops' process (``geotarget deliver``)

    @property
    def total_cpu_ms(self) -> float:
        return self.cpu_ms + self.redis_cpu_ms


def redis_cpu_s(redis_url: str | None) -> float:
    """The Redis server's CPU seconds so far (user + system), or 0 when there is none to ask."""
    if not redis_url:
        return 0.0
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        client.close()


def drive(
    base: str,
    path: str,
    key: str,
    centres: list[tuple[float, float]],
    seconds: float,
    connections: int,
    workers: list[psutil.Process],
    wrk_script: str = WRK_SCRIPT,
    mode: str = "walk",
    redis_url: str | None = None,
    rate: float | None = None,
) -> Figures:
    """``wrk_script``: a template with the placeholders of bench_walkers.lua, whose ``done`` prints RESULT;
    ``mode``: walk (2,000 devices walking) or teleport (50,000 devices, each request somewhere else); ``rate``:
    about this many requests per second in all (each connection waits ``connections / rate`` between its
    answer and its next request) instead of as many as the server answers. Two configurations compared at the
    same rate pay the same share of the machine's fixed costs, and neither is slowed by the other's extra
    processes fighting for its 2 cores."""
    picked = random.Random(3).sample(centres, min(len(centres), 2000))
    script = (
        wrk_script.replace("{CENTRES}", "{" + ",".join(f"{{{a:.7f},{b:.7f}}}" for a, b in picked) + "}")
        .replace("{DEVICES}", "50000" if mode == "teleport" else "2000")
        .replace("{MODE}", mode)
        .replace("{K}", f"{METRES_PER_DEGREE * math.cos(math.radians(picked[0][0])):.3f}")
        .replace("{M}", f"{METRES_PER_DEGREE:.3f}")
        .replace("{KEY}", key)
        .replace("{PATH}", path)
    )
    if rate is not None:
        script += f"\nfunction delay() return {1000 * connections / rate:.3f} end\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", "-s", handle.name, base]
    loops = [w for w in workers if "deliver" in w.cmdline()]
    cpu_before, redis_before = _cpu_s(workers), redis_cpu_s(redis_url)
    loops_before = _cpu_s(loops)
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    cpu, loops_cpu = _cpu_s(workers) - cpu_before, _cpu_s(loops) - loops_before
    redis_cpu = redis_cpu_s(redis_url) - redis_before
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    f = {k: float(v) for k, v in (pair.split("=") for pair in line.split()[1:])}
    if f["failures"]:
        raise RuntimeError(f"{path}: {f['failures']:.0f} non-200 answers of {f['responses']:.0f}")
    n = max(f["responses"], 1)
    served, degraded = f["served"] / n, f["degraded"] / n
    return Figures(
        f["rps"], f["p50"], f["p99"], served, degraded, 1000 * cpu / n, 1000 * redis_cpu / n, 1000 * loops_cpu / n
    )


def _cpu_s(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def profiled(worker: psutil.Process, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy on one loaded worker (GIL-holding samples only), collapsed stacks into a temporary file."""
    out = Path(tempfile.mkdtemp(prefix="pyspy-")) / "stacks.txt"
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [
        spy,
        "record",
        "--gil",
        "--nonblocking",
        "-p",
        str(worker.pid),
        "-d",
        str(int(seconds)),
        "-f",
        "raw",
    ]
    return subprocess.Popen([*command, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def print_profile(spy: subprocess.Popen[bytes], top: int = 15) -> None:
    """Where the worker's time went: share of samples by function, itself (self) and with callees (total)."""
    spy.wait(timeout=120)
    path = Path(spy.args[-1])  # type: ignore[index]
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue  # a frame py-spy could not name cleanly
        frames = [_function(f) for f in stack.split(";")]
        n = int(count)
        samples += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + n
    print(f"  py-spy --gil on one worker: {samples} samples")
    for name, table in (("self", own), ("total", total)):
        for frame, n in sorted(table.items(), key=lambda x: -x[1])[:top]:
            print(f"    {name:<5} {n / samples:6.1%}  {frame}")


def _function(frame: str) -> str:
    """``name (path/file.py:line)`` -> ``name (file.py)``: samples add up per function, not per line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0].rstrip(')')})"


def start(command: list[str], env: dict[str, str], base: str) -> tuple[subprocess.Popen[bytes], list[psutil.Process]]:
    server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(base, server, timeout_s=900)
    time.sleep(2)
    return server, psutil.Process(server.pid).children(recursive=True)


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=60)


RECEIVER = """
import asyncio, sys
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: 0\\r\\n\\r\\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=512)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def forget(redis_url: str, prefixes: list[str]) -> None:
    """Delete what a benchmark left in a shared Redis (cap counters, memberships): its prefixes' keys."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for prefix in prefixes:
        batch = list(client.scan_iter(f"{prefix}:*", count=10_000))
        for start in range(0, len(batch), 10_000):
            client.delete(*batch[start : start + 10_000])


@contextmanager
def bench_redis() -> Iterator[str]:
    """GEOTARGET_REDIS_URL when set, else an embedded Redis for the length of the block."""
    configured = os.environ.get("GEOTARGET_REDIS_URL")
    if configured:
        yield configured
        return
    embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="bench-redis-")))
    try:
        yield embedded.start()
    finally:
        embedded.stop()
