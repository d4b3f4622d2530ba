"""Daily rollups: each closed UTC day of raw events compacted, exactly, into two files that reports read in its
place (docs/reports.md, "Rollups").

- ``events``: the day's events other than pings and visit records, each copy once (copies alike in every column are
  one; copies that differ under one id are kept, as queries pick among them by their own window), sorted by
  kind, merchant, offer and fence so that a read of one kind and one offer or fence reads a few row groups.
- ``segments``: the day's pings and visit records inside fences as one row per device, fence, kind and UTC quarter
  hour: first and last instant and the number of pings. Every question reports ask of pings is answered exactly by
  segments: a quarter hour lies inside one UTC day and one local day of every time zone (offsets are whole quarter
  hours), two pings of a quarter are under 30 minutes apart (so only a segment's first ping can start a visit,
  after a gap to the previous segment's last), and a visit's dwell runs from its first segment's first ping to its
  last segment's last.

A day's rollup records the raw files (and their sizes) it was made from. A reader uses it only while the day's raw
files are exactly those (a late event, an erasure, retention or compaction makes another set) and reads the raw
files otherwise, so figures never depend on whether a day was rolled; the next rollup run makes it again.

A closed ISO week (Monday to Sunday, UTC) with two or more days of events, all rolled, is merged: its days'
rollups as one file of each kind, sorted the same way. A report spends most of its time per file and per row group
it opens, not per row, so a 30-day report opens a handful of files instead of thirty. A week records the day
rollups it was merged from and stands for its days only while those are still their days' current rollups.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

import duckdb
import orjson
import pyarrow as pa

from geotarget.store.event_schema import SCHEMA
from geotarget.store.file_area import FileArea

_Entry = TypeVar("_Entry")

FOLDER = "rollups"
INDEX = f"{FOLDER}/index.json"
WEEKS = f"{FOLDER}/weeks.json"
# rows per row group: a fence's or an offer's rows are one or two groups to read, and a query opens few groups (a
# one-fence 30-day report over one merged file of 50 M pings' rollups, median: 0.13 s at 16,384 rows a group,
# 0.08 s at 65,536, 0.09 s at 122,880)
ROW_GROUP = 65_536
_ROLL_EVENTS = (Path(__file__).parent / "sql" / "rollup_events.sql").read_text()
_ROLL_SEGMENTS = (Path(__file__).parent / "sql" / "rollup_segments.sql").read_text()
_MERGE_SEGMENTS = (Path(__file__).parent / "sql" / "rollup_week_segments.sql").read_text()

SEGMENTS = pa.schema(
    [
        ("device_key", pa.string()),
        ("fence", pa.string()),
        ("kind", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("last_ts", pa.timestamp("us", tz="UTC")),
        ("pings", pa.int64()),
    ]
)


@dataclass(frozen=True)
class RolledDay:
    raw: Mapping[str, int]  # the raw files it was made from, with their sizes
    events: str
    segments: str
    rows: Mapping[str, int] = field(default_factory=dict)  # rows written per file (for people reading the index)


def read_index(area: FileArea) -> dict[date, RolledDay]:
    return _read_dated(area, INDEX, RolledDay)


def write_index(area: FileArea, index: Mapping[date, RolledDay]) -> None:
    _write_dated(area, INDEX, index)


def _read_dated(area: FileArea, name: str, entry: Callable[..., _Entry]) -> dict[date, _Entry]:
    """An index file of entries by day (``name``); none yet is empty."""
    data = area.read_bytes(name)
    return {date.fromisoformat(day): entry(**fields) for day, fields in orjson.loads(data).items()} if data else {}


def _write_dated(area: FileArea, name: str, entries: Mapping[date, object]) -> None:
    dated = {day.isoformat(): vars(entry) for day, entry in sorted(entries.items())}
    area.write_bytes(name, orjson.dumps(dated, option=orjson.OPT_INDENT_2))


def current(index: Mapping[date, RolledDay], raw: Mapping[str, int]) -> dict[date, RolledDay]:
    """The rollups still made of exactly the raw files there are now."""
    by_day: dict[date, dict[str, int]] = {}
    for name, size in raw.items():
        by_day.setdefault(day_of(name), {})[name] = size
    return {day: rolled for day, rolled in index.items() if dict(rolled.raw) == by_day.get(day)}


def roll_day(area: FileArea, connection: duckdb.DuckDBPyConnection, day: date, raw: Mapping[str, int]) -> RolledDay:
    """Write ``day``'s rollup from its raw files ``raw`` (names and sizes); the index is the caller's."""
    files = [area.url_of(name) for name in sorted(raw)]
    events = _rolled_events(connection, files)
    segments = connection.sql(_ROLL_SEGMENTS, params={"files": files}).to_arrow_table().cast(SEGMENTS)
    stem = f"{FOLDER}/day={day.isoformat()}/{uuid.uuid4().hex}"
    written = {
        kind: area.write_parquet(table, f"{stem}-{kind}.parquet", row_group_size=ROW_GROUP)
        for kind, table in (("events", events), ("segments", segments))
    }
    rows = {"events": events.num_rows, "segments": segments.num_rows}
    return RolledDay(dict(raw), written["events"], written["segments"], rows)


@dataclass(frozen=True)
class RolledWeek:
    days: Mapping[str, Sequence[str]]  # each day merged (ISO date) -> that day's rollup files, events and segments
    events: str
    segments: str
    rows: Mapping[str, int] = field(default_factory=dict)


def read_weeks(area: FileArea) -> dict[date, RolledWeek]:
    return _read_dated(area, WEEKS, RolledWeek)


def write_weeks(area: FileArea, weeks: Mapping[date, RolledWeek]) -> None:
    _write_dated(area, WEEKS, weeks)


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def stands_for(week: RolledWeek, monday: date, raw_days: Collection[date], rolled: Mapping[date, RolledDay]) -> bool:
    """Whether ``week`` is made of exactly the current rollups of its days that have raw files."""
    made_of = {date.fromisoformat(day): list(files) for day, files in week.days.items()}
    days = {monday + timedelta(days=n) for n in range(7)}
    return set(made_of) == days.intersection(raw_days) and all(
        day in rolled and [rolled[day].events, rolled[day].segments] == files for day, files in made_of.items()
    )


def weeks_read(
    weeks: Mapping[date, RolledWeek],
    first: date | None,
    last: date | None,
    raw_days: Collection[date],
    rolled: Mapping[date, RolledDay],
) -> dict[date, RolledWeek]:
    """The weeks a query over the days ``first``..``last`` reads in place of their days' rollups: those wholly
    inside that still stand for their days (``rolled``: the day rollups the query would read)."""
    return {
        monday: week
        for monday, week in weeks.items()
        if (first is None or first <= monday)
        and (last is None or monday + timedelta(days=6) <= last)
        and stands_for(week, monday, raw_days, rolled)
    }


def roll_weeks(
    area: FileArea,
    connection: duckdb.DuckDBPyConnection,
    weeks: Mapping[date, RolledWeek],
    rolled: Mapping[date, RolledDay],
    raw_days: Collection[date],
    today: date,
) -> dict[date, RolledWeek]:
    """Every closed week with two or more days of events, all rolled, merged (a week that still stands for its
    days is kept as it is); written as the new weeks index, which drops weeks that can no longer be made."""
    kept: dict[date, RolledWeek] = {}
    for monday in sorted({monday_of(day) for day in raw_days}):
        days = sorted(day for day in raw_days if monday_of(day) == monday)
        if monday + timedelta(days=6) >= today or len(days) < 2 or any(day not in rolled for day in days):
            continue
        old = weeks.get(monday)
        if old is not None and stands_for(old, monday, raw_days, rolled):
            kept[monday] = old
        else:
            kept[monday] = roll_week(area, connection, monday, {day: rolled[day] for day in days})
    if kept != weeks:
        write_weeks(area, kept)
    return kept


def roll_week(
    area: FileArea, connection: duckdb.DuckDBPyConnection, monday: date, days: Mapping[date, RolledDay]
) -> RolledWeek:
    """Merge a closed week's day rollups ``days``; the index is the caller's."""
    files = {kind: [area.url_of(getattr(day, kind)) for day in days.values()] for kind in ("events", "segments")}
    events = _rolled_events(connection, files["events"])
    segments = connection.sql(_MERGE_SEGMENTS, params={"files": files["segments"]}).to_arrow_table().cast(SEGMENTS)
    stem = f"{FOLDER}/week={monday.isoformat()}/{uuid.uuid4().hex}"
    written = {
        kind: area.write_parquet(table, f"{stem}-{kind}.parquet", row_group_size=ROW_GROUP)
        for kind, table in (("events", events), ("segments", segments))
    }
    made_of = {day.isoformat(): [rolled.events, rolled.segments] for day, rolled in sorted(days.items())}
    rows = {"events": events.num_rows, "segments": segments.num_rows}
    return RolledWeek(made_of, written["events"], written["segments"], rows)


def _rolled_events(connection: duckdb.DuckDBPyConnection, files: Sequence[str]) -> pa.Table:
    connection.register("empty_events", SCHEMA.empty_table())
    return connection.sql(_ROLL_EVENTS, params={"files": files}).to_arrow_table()


def day_of(name: str) -> date:
    """The UTC day of a raw file or a rollup file, from its ``day=YYYY-MM-DD`` folder."""
    folder = next(part for part in name.split("/") if part.startswith("day="))
    return date.fromisoformat(folder.removeprefix("day="))
