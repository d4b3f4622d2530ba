"""The ``geotarget`` command: serve the API (with embedded defaults), load the demo city, import fences."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from api.cli_events import retention, rollup
from api.cli_fences import fences_app
from api.cli_keys import keys_app, merchants_app
from api.cli_support import day, existing_deployment, reachable_cluster, user_errors
from api.demo.city import DEMO_CITY, EXAMPLE_POINT, load_demo_city
from api.demo.traffic import simulate_once
from api.logs import log_config
from api.loops_process import LoopsProcess, exit_with_parent
from geofences import LatLng
from geotarget.metrics import MULTIPROCESS_DIR
from geotarget.runtime import Runtime
from geotarget.settings import Settings
from geotarget.store import database
from geotarget.store.embedded_redis import EmbeddedRedis, end_process
from geotarget.store.repository import EVERYONE

app = typer.Typer(help="geotarget: location-aware offers around merchants' stores.", no_args_is_help=True)
app.add_typer(fences_app, name="fences")
audiences_app = typer.Typer(help="Audiences built from visits.", no_args_is_help=True)
app.add_typer(audiences_app, name="audiences")
app.add_typer(keys_app, name="keys")
app.add_typer(merchants_app, name="merchants")
app.command()(retention)
app.command()(rollup)
console = Console()


def _admin_key(settings: Settings) -> str:
    """The configured admin key, else one kept in the data directory (generated on first start)."""
    if settings.admin_key:
        return settings.admin_key
    path = settings.data_dir / "admin.key"
    if path.exists():
        return path.read_text().strip()
    key = f"gt_admin_{secrets.token_urlsafe(24)}"
    path.write_text(key + "\n")
    path.chmod(0o600)
    console.print(f"[bold]No GEOTARGET_ADMIN_KEY set; generated one[/] (kept in {path}):\n  {key}")
    return key


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (they share Redis and the database).")] = 1,
    demo: Annotated[bool, typer.Option(help="Load the demo city and print keys to try.")] = False,
    loop: Annotated[
        Literal["auto", "asyncio", "uvloop"], typer.Option(help="Event loop (auto: uvloop where installed).")
    ] = "auto",
) -> None:
    """Serve the API and web pages; with nothing configured, SQLite and a private embedded Redis."""
    import uvicorn

    from api.http_protocol import DeadlineHttpToolsProtocol

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["GEOTARGET_ADMIN_KEY"] = _admin_key(settings)
    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir.resolve() / "redis")
        os.environ["GEOTARGET_REDIS_URL"] = embedded.start()
        embedded.supervise()  # started again within a second if it dies
        url = os.environ["GEOTARGET_REDIS_URL"]
        console.print(f"No GEOTARGET_REDIS_URL set; started an embedded Redis at {url}", soft_wrap=True)  # unbroken
    os.environ["GEOTARGET_DATA_DIR"] = str(settings.data_dir.resolve())
    settings = Settings()
    reachable_cluster(settings.redis_url or "")
    database.migrate(database.make_engine(settings.sqlalchemy_url()))
    os.environ["GEOTARGET_MIGRATE_ON_START"] = "false"
    os.environ["GEOTARGET_WORKERS"] = str(workers)  # each worker takes its share of the per-device limits
    if workers > 1:
        _share_metrics(settings.data_dir.resolve() / "metrics")
    if demo:
        _load_demo(Settings(), host, port)
    loops = None
    if settings.triggers and settings.deliver_in_serve:  # one process of loops for every worker (api/loops_process.py)
        os.environ["GEOTARGET_DELIVER_IN_SERVE"] = "false"  # the workers leave the loops to it
        loops = LoopsProcess(dict(os.environ))
        loops.start(f"http://{_local(host)}:{port}/readyz")
    try:
        uvicorn.run(
            "api.main:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=False,  # it prints query strings: device ids and positions (see api/access_log.py)
            http=DeadlineHttpToolsProtocol,  # slow headers and bodies are cut off (api/http_protocol.py)
            loop=loop,
            log_config=log_config(settings.log_format),
        )
    finally:
        if loops is not None:
            loops.stop()
        if embedded is not None:
            embedded.stop()


def _local(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _share_metrics(folder: Path) -> None:
    """Workers keep their Prometheus figures in files there, so any worker's /metrics answers for all (the
    workers import prometheus_client after this is set; a folder the operator set is kept as it is)."""
    if os.environ.get(MULTIPROCESS_DIR):
        return
    shutil.rmtree(folder, ignore_errors=True)  # the figures of a previous run's processes
    folder.mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR] = str(folder)


@app.command("demo")
def demo_command(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Serve the demo city (the same as serve --demo)."""
    serve(host=host, port=port, workers=workers, demo=True)


def _load_demo(settings: Settings, host: str, port: int) -> None:
    runtime = Runtime.open(settings, follow=False)
    try:
        kept = settings.data_dir / "demo-keys.json"
        keys = load_demo_city(runtime.repository, runtime.fences, runtime.offers, kept)
        runtime.catalog.sync(runtime.repository)
        shops = [LatLng(s.lat, s.lon) for stores in DEMO_CITY.values() for s in stores]
        with console.status("Simulating two weeks of foot traffic through the serving path…"):
            sent = simulate_once(runtime.repository, runtime.server, shops, datetime.now(UTC))
        if sent:
            print(f"Sent {sent:,} simulated pings of demo phones; the reach dashboard (/adops) shows them.")
    finally:
        runtime.close()
    base = f"http://{host}:{port}"
    app_key, adops_key = keys.pop("app")[1], keys.pop("adops")[1]
    lines = [f"  {name:<20} {merchant_id}  {key}" for name, (merchant_id, key) in keys.items()]
    print("Demo city: central Lisbon (merchant, id, API key)\n" + "\n".join(lines))
    print(f"  app key:   {app_key}\n  adops key: {adops_key}")
    first_key = next(iter(keys.values()))[1]
    lat, lon = EXAMPLE_POINT
    print(
        f"Try:\n  curl -H 'Authorization: Bearer {app_key}' "
        f"'{base}/v1/nearby?lat={lat}&lon={lon}&device_id=demo-phone'\n"
        f"  curl -H 'Authorization: Bearer {first_key}' {base}/v1/geofences\n"
        f"  curl -H 'Authorization: Bearer {first_key}' "
        f"'{base}/v1/geofences/contains?lat={lat}&lon={lon}&within_m=500'\n"
        f"  Why each offer is shown there or not (a dry run: nothing is counted):\n"
        f"  curl -H 'Authorization: Bearer {first_key}' "
        f"'{base}/v1/explain?lat={lat}&lon={lon}&device_id=demo-phone'\n"
        f"  Pages: {base}/merchant (merchant key), {base}/adops (adops key)\n"
        f"  API docs: {base}/docs\n"
        f"These keys are kept in {kept} and shown again at the next start.\n"
        "Webhooks to a receiver on this machine (http://127.0.0.1:…) are refused unless the server runs with\n"
        "  GEOTARGET_WEBHOOK_ALLOW_PRIVATE=true (loopback and private addresses; docs/triggers.md)"
    )


@app.command()
def consume(
    processes: Annotated[int, typer.Option(min=1, max=64, help="Consumer processes to run here.")] = 1,
    parent_pid: Annotated[int, typer.Option(hidden=True, help="Stop once this process is gone.")] = 0,
) -> None:
    """Move events from the Redis stream into the event store, until stopped (SIGTERM/Ctrl-C). Any number of
    consumers may run, here and on other machines: they share the stream's consumer group."""
    if processes > 1:
        _consumers_until_stopped(processes)
        return
    stop = exit_with_parent(parent_pid) if parent_pid else None
    _until_stopped(Runtime.open(Settings(), follow=False, consume=True), "event consumer", stop)


def _consumers_until_stopped(processes: int) -> None:
    """``processes`` consumers of their own (one GIL each), each started again within a second should it die."""
    command = [sys.executable, "-m", "api", "consume", "--parent-pid", str(os.getpid())]
    children = [subprocess.Popen(command) for _ in range(processes)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            children = [c if c.poll() is None else subprocess.Popen(command) for c in children]
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            end_process(child, 15.0)
        console.print(f"{processes} event consumers stopped")


def _until_stopped(runtime: Runtime, what: str, stop: threading.Event | None = None) -> None:
    """Keep the runtime's background loops going until SIGTERM, Ctrl-C or ``stop``."""
    stop = stop or threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()
        console.print(f"{what} stopped")


@app.command()
def deliver(
    parent_pid: Annotated[int, typer.Option(hidden=True, help="Stop once this process (serve) is gone.")] = 0,
) -> None:
    """Run the trigger and delivery loops (transitions into signed webhook and broker deliveries), until stopped.
    Any number may run; ``serve`` starts one beside its workers unless GEOTARGET_DELIVER_IN_SERVE=false."""
    stop = exit_with_parent(parent_pid) if parent_pid else None  # watched while the runtime opens too
    _until_stopped(Runtime.open(Settings(), follow=True, consume=False, deliver=True), "delivery worker", stop)


@app.command()
def report(
    offer: Annotated[str | None, typer.Option(help="Offer id.")] = None,
    fence: Annotated[str | None, typer.Option(help="Geofence id.")] = None,
    merchant: Annotated[str | None, typer.Option(help="Merchant id.")] = None,
    first: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    last: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive).")] = None,
    granularity: Annotated[str, typer.Option(help="day or week")] = "day",
    output: Annotated[str, typer.Option("--format", help="table, csv, json or html")] = "table",
) -> None:
    """A reach report, as ad ops see it (k-suppressed)."""
    import json

    from geotarget.measurement.reporting import ReportRequest, rows_to_csv

    if granularity not in ("day", "week") or output not in ("table", "csv", "json", "html"):
        raise typer.BadParameter("granularity is day|week; format is table|csv|json|html")
    window = (day(first, "--from"), day(last, "--to"))
    runtime = Runtime.open(existing_deployment(Settings()), follow=False, consume=False)
    try:
        request = ReportRequest(offer, fence, merchant, *window, granularity)  # type: ignore[arg-type]
        with user_errors():
            result = runtime.reports.reach(request, EVERYONE, datetime.now(UTC).date())
    finally:
        runtime.close()
    scope = " ".join(f"{name}={value}" for name, value in result["scope"].items())
    rows = result["rows"]
    if output == "json":
        print(json.dumps(result, indent=2))
    elif output == "csv":
        print(rows_to_csv(rows), end="")
    elif output == "html":
        print(_html(result, scope))
    else:
        table = Table(
            "period",
            "impr.",
            "reach",
            "avg f",
            "1",
            "2",
            "3",
            "4",
            "5+",
            "visitors",
            "visits",
            "after exp.",
            "blocked",
            "clicks",
            "redeemed",
            "bids",
            "wins",
            "spend",
            title=f"reach of {scope}, {result['from']} to {result['to']} ({result['timezone']})",
        )
        for row in rows:
            f = row["frequency"]
            table.add_row(
                row["period"],
                *(_show(row[c]) for c in ("impressions", "reach", "avg_frequency")),
                *(_show(f[b]) for b in ("1", "2", "3", "4", "5+")),
                *(_show(row[c]) for c in ("visitors", "visits", "visits_after_exposure", "cap_blocked")),
                *(_show(row[c]) for c in ("clicks", "redemptions", "bids", "wins", "spend")),
            )
        wide = console if console.is_terminal else Console(width=200)  # piped: not cut to 80 columns
        wide.print(table)
        wide.print(f"— = suppressed (fewer than {result['k']} devices)")


def _show(value: object) -> str:
    return "—" if value is None else str(value)


def _html(result: dict[str, object], scope: str) -> str:
    from html import escape

    from geotarget.measurement.reporting import rows_to_csv

    lines = rows_to_csv(result["rows"]).strip().splitlines()  # type: ignore[arg-type]
    head, *body = [line.split(",") for line in lines]
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    rows = "".join("<tr>" + "".join(f"<td>{escape(c) or '—'}</td>" for c in r) + "</tr>" for r in body)
    return (
        f"<!doctype html><meta charset=utf-8><title>reach of {escape(scope)}</title><h1>Reach of {escape(scope)}</h1>"
        f"<table border=1><tr>{cells}</tr>{rows}</table><p>— = suppressed (fewer than {result['k']} devices)</p>"
    )


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or Parquet of pings")],
    presence: Annotated[
        bool, typer.Option(help="Also move presence: fire enter, dwell and exit (and their webhooks) from these pings.")
    ] = False,
    app_key_id: Annotated[
        str, typer.Option("--app", help="With --presence: the app key id whose webhooks hear of these devices.")
    ] = "",
) -> None:
    """Load a bulk ping file (device_id, lat, lon, ts, accuracy_m?, lmt?) into the event store. Old files should
    not push, so presence moves only with --presence."""
    from tqdm import tqdm

    from geotarget.measurement.ingest import ingest_file

    runtime = Runtime.open(Settings(), follow=False, consume=False)
    try:
        erased = runtime.repository.erased_devices()
        with tqdm(unit=" pings", unit_scale=True, desc=file.name) as bar:
            moved = (lambda table, ids: runtime.move_presence_bulk(table, ids, app_key_id)) if presence else None
            secret, index = runtime.server.device_secret, runtime.catalog.index
            summary = ingest_file(file, runtime.events, secret, index, erased, progress=bar.update, written=moved)
    except ValueError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    finally:
        runtime.close()
    console.print(
        f"{summary.rows:,} rows: {summary.accepted:,} stored, {summary.dropped_lmt:,} limit-ad-tracking "
        f"dropped, {sum(summary.rejected.values()):,} rejected"
    )
    for reason, count in summary.rejected.most_common():
        if count:
            console.print(f"  {count:>10,}  {reason}")


@audiences_app.command("refresh")
def refresh_audiences(
    merchant: Annotated[str | None, typer.Option("--merchant", help="Only this merchant's audiences.")] = None,
) -> None:
    """Recompute every audience's members from the event store now and publish them to Redis (``serve`` also
    does this every GEOTARGET_AUDIENCE_REFRESH_S)."""
    runtime = Runtime.open(existing_deployment(Settings()), follow=False, consume=False)
    try:
        done = runtime.audiences.refresh_all(merchant)
    finally:
        runtime.close()
    for audience in done:
        size = "suppressed (under k devices)" if audience.suppressed else f"{audience.size:,} devices"
        console.print(f"{audience.id}  {audience.name}: {size}")
    console.print(f"refreshed {len(done)} audience(s)")
