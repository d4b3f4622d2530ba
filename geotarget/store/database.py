"""Engine, sessions and migrations. SQLite by default (a file in the data directory, readable by its owner only),
PostgreSQL by URL.

Text with a NUL character is refused before it reaches either database (``InvalidInput``): PostgreSQL cannot
store it at all, and SQLite would store what PostgreSQL refuses, so a deployment would behave differently by
its database."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from geotarget.errors import InvalidInput

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine with sane defaults: WAL and foreign keys for SQLite, pre-ping and timeouts for PostgreSQL, and
    JSON columns read with orjson (a starting worker reads ten of them per offer: 2.1 M at 100,000 fences)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            Path(path).touch(mode=0o600)  # SQLite gives its -wal and -shm files the same mode
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 15}, json_deserializer=orjson.loads
        )
        _refuse_nul(engine)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args={"connect_timeout": 5},
        json_deserializer=orjson.loads,
    )
    _refuse_nul(engine)
    return engine


def _refuse_nul(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _check(_conn: Any, _cursor: Any, _statement: str, parameters: Any, *_: Any) -> None:
        rows = parameters if isinstance(parameters, list) else [parameters]
        for row in rows:
            values = row.values() if isinstance(row, dict) else row or ()
            if any(isinstance(v, str) and "\x00" in v for v in values):
                raise InvalidInput("text may not contain the NUL character (\\u0000)", None, "nul_character")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; idempotent, and safe when several processes start at once
    (an advisory lock on PostgreSQL, a lock file beside the database on SQLite)."""
    from alembic import command  # a worker never migrates (serve does, once, before it starts them)
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    database = engine.url.database
    lock_path = Path(f"{database}.migrate.lock") if engine.dialect.name == "sqlite" and database else None
    with _file_lock(lock_path), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(724513)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    if path is None or path.name.startswith(":memory:"):
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back (nothing half-written) when it raises."""
    with factory() as session, session.begin():
        yield session


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
