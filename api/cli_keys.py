"""``geotarget keys …`` and ``geotarget merchants list``: the admin's key routes from a shell on the server.

They need the database only. With ``GEOTARGET_REDIS_URL`` set they also notify the serving workers, as the API
does; without it the workers see the change at their next poll of the change log (``GEOTARGET_SYNC_POLL_S``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table

from api.cli_support import existing_deployment, user_errors
from geotarget.catalog.keys import DEFAULT_GRACE_S, revoke_key, rotate_key
from geotarget.catalog.model import as_utc, iso_utc
from geotarget.settings import Settings
from geotarget.store import database
from geotarget.store.fence_sync import RedisFenceNotifier
from geotarget.store.redis_client import connect
from geotarget.store.repository import EVERYONE, Repository

keys_app = typer.Typer(help="API keys: list, rotate, revoke.", no_args_is_help=True)
merchants_app = typer.Typer(help="Merchants.", no_args_is_help=True)
console = Console()


def _print(table: Table) -> None:
    (console if console.is_terminal else Console(width=200)).print(table)  # piped: not cut to 80 columns


@contextmanager
def _repository() -> Iterator[Repository]:
    settings = existing_deployment(Settings())
    engine = database.make_engine(settings.sqlalchemy_url())
    try:
        database.migrate(engine)
        yield Repository(database.session_factory(engine))
    finally:
        engine.dispose()


def _notify_workers() -> None:
    settings = Settings()
    if settings.redis_url:
        client = connect(settings.redis_url, 2_000)
        try:
            RedisFenceNotifier(client, settings.key_prefix()).changed()
        except redis.RedisError:
            console.print("Redis did not answer: workers will see the change at their next poll")
        finally:
            client.close()


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else iso_utc(moment)


@keys_app.command("list")
def list_keys() -> None:
    """Every issued key with its owner, last use and expiry (never the key itself)."""
    table = Table("id", "role", "owner", "name", "created", "last used", "expires", "revoked")
    with _repository() as repository:
        records = repository.keys.records()
    for key in records:
        when = (_when(key.created_at), _when(key.last_used_at), _when(key.expires_at))
        table.add_row(key.id, key.role, key.owner_id or "-", key.name, *when, "yes" if key.revoked else "")
    _print(table)


@keys_app.command("rotate")
def rotate(
    key_id: str,
    grace_s: Annotated[int, typer.Option("--grace-s", min=0, help="How long the old key keeps working.")] = (
        DEFAULT_GRACE_S
    ),
    expires_at: Annotated[
        datetime | None, typer.Option("--expires-at", help="When the new key stops working (UTC).")
    ] = None,
) -> None:
    """A new key for KEY_ID (same id); prints it once."""
    with user_errors(), _repository() as repository:
        rotated = rotate_key(repository, key_id, grace_s, None if expires_at is None else as_utc(expires_at))
    _notify_workers()
    console.print(f"new key for {rotated.id} (shown once):\n  {rotated.api_key}", highlight=False)
    console.print(f"the old key works until {iso_utc(rotated.previous_valid_until)}", highlight=False)


@keys_app.command("revoke")
def revoke(key_id: str) -> None:
    """Refuse KEY_ID from now on (every worker within a sync poll)."""
    with user_errors(), _repository() as repository:
        revoke_key(repository, key_id)
    _notify_workers()
    console.print(f"revoked {key_id}")


@merchants_app.command("list")
def list_merchants() -> None:
    table = Table("id", "name", "time zone", "cap per device per day")
    with _repository() as repository:
        merchants = repository.merchants(EVERYONE)
    for merchant in merchants:
        cap = "-" if merchant.cap_per_device_per_day is None else str(merchant.cap_per_device_per_day)
        table.add_row(merchant.id, merchant.name, merchant.timezone or "-", cap)
    _print(table)
