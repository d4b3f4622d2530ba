"""``geotarget retention`` and ``geotarget rollup``: the event store's housekeeping, run now from a shell (a running
consumer does both every 10 minutes). Each takes the consumer lock, so it never rewrites files while a consumer's
housekeeping does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from api.cli_support import day, user_errors
from geotarget.measurement.privacy import apply_retention
from geotarget.runtime import Runtime
from geotarget.settings import Settings

console = Console()
_Done = TypeVar("_Done")


def retention() -> None:
    """Apply GEOTARGET_RETENTION_DAYS now: old raw pings become visit records."""
    settings = Settings()
    removed = _locked(settings, lambda runtime: apply_retention(runtime.events, settings.retention_days, _today()))
    console.print(f"removed {removed:,} raw pings older than {settings.retention_days} days")


def rollup(
    on: Annotated[
        str | None, typer.Option("--day", help="Roll up this UTC day again (YYYY-MM-DD), even if current.")
    ] = None,
) -> None:
    """Roll up every closed UTC day whose rollup is missing or stale (a late event, an erasure, retention or
    compaction changed its raw files), or the one day given, and merge the closed weeks whose merge is missing or
    stale: reports then read them from their rollups."""
    with user_errors():
        chosen = day(on, "--day")
    if chosen is not None and chosen >= _today():
        console.print(f"[red]{chosen} is not closed yet: only days before today (UTC) are rolled up[/]")
        raise typer.Exit(2)
    rolled = _locked(Settings(), lambda runtime: runtime.events.roll(_today(), [chosen] if chosen else ()))
    for done in rolled:
        console.print(f"rolled up {done.isoformat()}")
    console.print(f"{len(rolled)} day(s) rolled up")


def _locked(settings: Settings, work: Callable[[Runtime], _Done]) -> _Done:
    runtime = Runtime.open(settings, follow=False, consume=False)
    try:
        if not runtime.consumer.lead():
            console.print("[yellow]an event consumer is running and does this itself; nothing done[/]")
            raise typer.Exit(1)
        try:
            return work(runtime)
        finally:
            runtime.consumer.release()
    finally:
        runtime.close()


def _today() -> date:
    return datetime.now(UTC).date()
