"""What every ``geotarget`` command does the same way: a user's mistake is one clear line and exit status 2 (never
a traceback), and commands that read a deployment say which one and refuse to invent an empty one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import redis
import typer
from redis.exceptions import RedisClusterException
from rich.console import Console

from geofences import FenceError
from geotarget.errors import GeotargetError
from geotarget.settings import Settings
from geotarget.store.redis_client import close, connect, is_cluster

errors = Console(stderr=True, soft_wrap=True)  # one line each, however narrow the terminal


@contextmanager
def user_errors() -> Iterator[None]:
    """A domain or fence error (an unknown id, a scope missing, a bad window) ends the command with its message."""
    try:
        yield
    except (GeotargetError, FenceError) as error:
        where = f" ({error.field})" if error.field else ""
        errors.print(f"[red]error:[/] {error.message}{where}", highlight=False)
        raise typer.Exit(2) from None


def day(value: str | None, option: str) -> date | None:
    """A ``YYYY-MM-DD`` option, or a usage error naming it."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a day as YYYY-MM-DD", param_hint=option) from None


def existing_deployment(settings: Settings) -> Settings:
    """Say which data directory (or database) a reading command uses, and stop when there is nothing there: run
    from the wrong folder, it would otherwise create an empty deployment and report nothing."""
    data_dir = settings.data_dir.resolve()
    if settings.database_url:
        errors.print(f"data: {data_dir}, database {settings.database_url.split('@')[-1]}", highlight=False)
        return settings
    database = Path(settings.sqlalchemy_url().removeprefix("sqlite:///"))
    if not database.exists():
        errors.print(
            f"[red]error:[/] no geotarget database in {data_dir} (run this where `geotarget serve` runs, or set "
            "GEOTARGET_DATA_DIR or GEOTARGET_DATABASE_URL)",
            highlight=False,
        )
        raise typer.Exit(2)
    errors.print(f"data: {data_dir}", highlight=False)
    return settings


def reachable_cluster(redis_url: str) -> None:
    """A Redis Cluster must answer when serving starts (its clients need the slot map): say so in one line."""
    if not is_cluster(redis_url):
        return
    try:
        close(connect(redis_url, 2_000))
    except (redis.RedisError, RedisClusterException) as error:
        errors.print(f"[red]error:[/] the Redis Cluster at {redis_url} does not answer: {error}", highlight=False)
        raise typer.Exit(2) from None
