"""Pacing, variants and the explainer over HTTP, as a user runs them: `geotarget serve --workers 2` in its default
configuration (every loop on: consumer, pacing and variant learning, triggers, delivery) on the benchmark's city
(scripts/bench_data.py), driven by wrk with teleporting devices (a random device of 50,000 at a random point).

Two copies of the same data are served in turn, ``--rounds`` times: ``plain``, where a third of the offers has a
daily budget it will not reach today (spent as traffic comes), and ``paced``, the same third paced ``even`` with
two creative variants rotated ``optimized``. Printed per copy: requests/s, p50/p99 latency, CPU ms per request of
the server's processes and of Redis (medians over the rounds), and paced ÷ plain (wrk at 8 connections), also
round by round (a round's two runs are back to back, each first in turn: a slow minute moves both). Then
``GET /v1/explain`` (the admin key, any device) through the paced server at 1 and 8 connections: its latency and
CPU per answer.

    python scripts/bench_adops.py [--set city] [--seconds 10] [--rounds 3]

Needs wrk (Debian package ``wrk``). Uses GEOTARGET_REDIS_URL when set, else an embedded Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geotarget.catalog import accounts  # noqa: E402
from geotarget.runtime import Runtime  # noqa: E402
from geotarget.settings import Settings  # noqa: E402
from scripts.bench_data import DATA_SETS, shops  # noqa: E402
from scripts.bench_harness import WRK_SCRIPT, Figures, bench_redis, drive, forget, start, stop  # noqa: E402
from scripts.bench_nearby import load_geotarget, serve_command, server_env  # noqa: E402
from tests.servers import free_port  # noqa: E402

EXPLAIN_SCRIPT = WRK_SCRIPT.replace('"/v1/nearby?lat=', '"/v1/explain?lat=')
VARIANTS = json.dumps([{"id": "plain"}, {"id": "bold", "title": "BOLD"}])


def copies(folder: Path, redis_url: str, set_name: str) -> tuple[dict[str, Settings], str, list[tuple[float, float]]]:
    data = list(shops(DATA_SETS[set_name]))
    plain = Settings(data_dir=folder / "plain", redis_url=redis_url, redis_prefix="badops-plain", admin_key="bench")
    started = time.perf_counter()
    load_geotarget(plain, data)
    runtime = Runtime.open(plain, follow=False, consume=False)
    try:
        key = accounts.create_app_key(runtime.repository, "bench").api_key
        with runtime.engine.begin() as sql:  # the same third has a budget in both copies: pacing's own cost
            sql.execute(text("UPDATE offers SET daily_budget = 1000000000 WHERE rowid % 3 = 0"))
    finally:
        runtime.close()
    paced = plain.model_copy(update={"data_dir": folder / "paced", "redis_prefix": "badops-paced"})
    shutil.copytree(plain.data_dir, paced.data_dir)
    runtime = Runtime.open(paced, follow=False, consume=False)
    try:
        with runtime.engine.begin() as sql:
            sql.execute(
                text("UPDATE offers SET pacing = 'even', rotation = 'optimized', variants = :v WHERE rowid % 3 = 0"),
                {"v": VARIANTS},
            )
    finally:
        runtime.close()
    print(f"{set_name}: {len(data):,} fences, two copies loaded in {time.perf_counter() - started:.0f} s", flush=True)
    return {"plain": plain, "paced": paced}, key, [(s.store.lat, s.store.lon) for s in data]


def median(taken: list[Figures]) -> Figures:
    return Figures(*(statistics.median(getattr(f, name) for f in taken) for name in Figures.__dataclass_fields__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="city")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-adops-"))
    taken: dict[str, list[Figures]] = {}
    try:
        with bench_redis() as redis_url:
            configured, key, centres = copies(folder, redis_url, args.set)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            for turn in range(args.rounds):
                for name, settings in configured.items() if turn % 2 == 0 else reversed(configured.items()):
                    env = server_env(settings)
                    env.pop("GEOTARGET_DELIVER_IN_SERVE")  # the default: every loop on
                    env["GEOTARGET_RATE_LIMIT_WRITES"] = "100000/second"  # explain's class: one admin key here
                    server, workers = start(serve_command("uvloop", port), {**env, "PYTHONPATH": str(ROOT)}, base)
                    try:
                        drive(base, "/v1/nearby", key, centres, 3, 8, workers, redis_url=redis_url)  # warm-up
                        run = drive(base, "/v1/nearby", key, centres, args.seconds, 8, workers, mode="teleport",
                                    redis_url=redis_url)  # fmt: skip
                        taken.setdefault(name, []).append(run)
                        for c in (1, 8) if name == "paced" else ():  # one merchant clicking; eight at once
                            asked = drive(base, "/v1/nearby", "bench", centres, args.seconds, c, workers,
                                          wrk_script=EXPLAIN_SCRIPT, mode="teleport", redis_url=redis_url)  # fmt: skip
                            taken.setdefault(f"explain c{c}", []).append(asked)
                    finally:
                        stop(server)
                        forget(redis_url, [settings.redis_prefix])
                    print(f"  round {turn + 1} {name}: {run.rps:,.0f} req/s, {run.total_cpu_ms:.2f} CPU ms", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{'run':<28} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms':>7} {'Redis':>6} {'total':>6}")
    figures = {name: median(runs) for name, runs in taken.items()}
    labels = {"plain": "nearby, budgets asap", "paced": "nearby, paced + variants",
              "explain c1": "explain c1 (admin, dry run)", "explain c8": "explain c8"}  # fmt: skip
    for name, f in figures.items():
        print(f"{labels[name]:<28} {f.rps:>7,.0f} {f.p50:>7.1f} {f.p99:>7.1f} {f.cpu_ms:>7.2f} "
              f"{f.redis_cpu_ms:>6.2f} {f.total_cpu_ms:>6.2f}")  # fmt: skip
    plain, paced = figures["plain"], figures["paced"]
    print(f"\npaced ÷ plain: CPU per request {paced.total_cpu_ms / plain.total_cpu_ms:.3f}, "
          f"worker CPU {paced.cpu_ms / plain.cpu_ms:.3f}, req/s {paced.rps / plain.rps:.3f} "
          f"({args.rounds} rounds, {os.cpu_count()} cores)")  # fmt: skip
    # each round's two runs were back to back: their ratio is what a slow minute of a shared machine moves least
    paired = sorted(a.total_cpu_ms / b.total_cpu_ms for a, b in zip(taken["paced"], taken["plain"], strict=True))
    print(
        f"paced ÷ plain per round (CPU per request): {', '.join(f'{r:.3f}' for r in paired)}; "
        f"median {statistics.median(paired):.3f}"
    )


if __name__ == "__main__":
    main()
