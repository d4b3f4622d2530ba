"""The ``geotarget`` command: serve the API (with embedded defaults), load the demo city, import fences."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.cli_events import retention, rollup
from api.cli_fences import fences_app
from api.cli_keys import keys_app, merchants_app
from api.cli_serve import demo_command, serve
from api.cli_support import day, existing_deployment, user_errors
from api.loops_process import exit_with_parent
from geotarget.runtime import Runtime
from geotarget.settings import Settings
from geotarget.store.embedded_redis import end_process
from geotarget.store.repository import EVERYONE

app = typer.Typer(help="geotarget: location-aware offers around merchants' stores.", no_args_is_help=True)
app.add_typer(fences_app, name="fences")
audiences_app = typer.Typer(help="Audiences built from visits.", no_args_is_help=True)
app.add_typer(audiences_app, name="audiences")
app.add_typer(keys_app, name="keys")
app.add_typer(merchants_app, name="merchants")
app.command()(retention)
app.command()(rollup)
app.command()(serve)
app.command("demo")(demo_command)
console = Console()


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
