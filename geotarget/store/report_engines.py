"""Who runs a report query: the embedded DuckDB (the default) or Apache Spark (``store/spark_engine.py``).

Every report, audience rule and lift is one SQL file (``sql/*.sql``) in DuckDB's dialect with ``$name``
parameters; an engine runs it over three views whose files the event store chose (``Views``), so both engines read
the same files with the same definition.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import duckdb

from geotarget.store import rollups
from geotarget.store.event_schema import SCHEMA
from geotarget.store.file_area import FileArea


@dataclass(frozen=True)
class Views:
    """The files (names in the event store's area) behind each view a report query reads."""

    events: Sequence[str]
    rolled_segments: Sequence[str]
    raw_events: Sequence[str]

    def files(self, sql: str | None = None) -> dict[str, Sequence[str]]:
        """Each view's files; with ``sql``, only the views it names (a view costs its files' footers to set up)."""
        every = {"events": self.events, "rolled_segments": self.rolled_segments, "raw_events": self.raw_events}
        return {name: files for name, files in every.items() if sql is None or re.search(rf"\b{name}\b", sql)}


SCHEMA_OF_VIEW = {"events": SCHEMA, "rolled_segments": rollups.SEGMENTS, "raw_events": SCHEMA}


class ReportEngine(Protocol):
    def run(self, sql: str, params: Mapping[str, Any], views: Views) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` with ``params``, over ``views``."""
        ...

    def close(self) -> None: ...


def duckdb_connection(area: FileArea) -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB (connections are not shared across threads) that reads ``area``, in UTC."""
    connection = duckdb.connect(":memory:")
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET parquet_metadata_cache = true")
    area.lend_to(connection)
    return connection


def register_views(connection: duckdb.DuckDBPyConnection, area: FileArea, views: Views, sql: str | None = None) -> None:
    """Each view (of those ``sql`` names, or all) is its files unioned by name with an empty table of every column,
    so files from older versions (without some column) read as NULL there."""
    for name, files in views.files(sql).items():
        connection.register(f"empty_{name}", SCHEMA_OF_VIEW[name].empty_table())
        union = ""
        if files:
            urls = ", ".join("'" + area.url_of(f).replace("'", "''") + "'" for f in files)
            union = f" UNION ALL BY NAME SELECT * FROM read_parquet([{urls}], union_by_name = true)"
        connection.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM empty_{name}{union}")


class DuckDBEngine:
    """A fresh in-process DuckDB per query: nothing to start, nothing shared between threads."""

    def __init__(self, area: FileArea) -> None:
        self.area = area

    def run(self, sql: str, params: Mapping[str, Any], views: Views) -> list[tuple[Any, ...]]:
        with duckdb_connection(self.area) as connection:
            register_views(connection, self.area, views, sql)
            return connection.execute(sql, dict(params)).fetchall()

    def close(self) -> None:
        pass
